package wire

import (
	"testing"
	"time"
)

// decodeBudget is far above what the largest legal frame takes to decode, even under -race on
// a loaded machine; a hostile frame that needs longer has found super-linear work.
const decodeBudget = 2 * time.Second

// FuzzDecode feeds Decode arbitrary frames. It must never panic, must finish in bounded time,
// and a frame it accepts must re-encode to a message equal to the one decoded.
func FuzzDecode(f *testing.F) {
	for _, m := range validMessages() {
		f.Add(mustEncode(f, m))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		start := time.Now()
		m, err := Decode(frame)
		if took := time.Since(start); took > decodeBudget {
			t.Fatalf("Decode of %d bytes took %v", len(frame), took)
		}
		if _, _, perr := PeekHeader(frame); err == nil && perr != nil {
			t.Fatalf("Decode accepted a frame PeekHeader rejects: %v", perr)
		}
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned a message with error %v", err)
			}
			return
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded %T does not re-encode: %v", m, err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", m, err)
		}
		if !sameMessage(back, m) {
			t.Fatalf("re-encoding changed the message:\n got %+v\nwant %+v", back, m)
		}
	})
}
