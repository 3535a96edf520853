package wire

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The portable path is what a big-endian host runs; on this host it must write and read the
// same bytes as the native one.
func TestFloatsPortableMatchesNative(t *testing.T) {
	for _, n := range []int{0, 1, 3, portableBlock/4 - 1, portableBlock / 4, 3*portableBlock/4 + 5} {
		f := randomFloats(n, uint64(n))
		f = append(f, specialFloats()...)
		native := encodeWith(t, f, writeFloatsNative)
		portable := encodeWith(t, f, writeFloatsPortable)
		if !bytes.Equal(native, portable) {
			t.Fatalf("n=%d: portable encoding differs from native", n)
		}
		for name, read := range map[string]func(*msgpack.Decoder, []float32) error{
			"native": readFloatsNative, "portable": readFloatsPortable,
		} {
			got := make(Floats, len(f))
			if err := read(msgpack.NewDecoder(bytes.NewReader(native)), got); err != nil {
				t.Fatalf("n=%d %s read: %v", n, name, err)
			}
			if !sameValue(reflectOf(got), reflectOf(f)) {
				t.Fatalf("n=%d: %s read changed the floats", n, name)
			}
		}
	}
}

func encodeWith(t *testing.T, f Floats, write func(*msgpack.Encoder, []float32) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := write(msgpack.NewEncoder(&buf), f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// msgpack fills a custom-decoded slice only through its address; these are the places a
// Floats can sit.
func TestFloatsDecodeWherever(t *testing.T) {
	want := Floats{1, 2, 3}
	t.Run("top level", func(t *testing.T) {
		b, _ := msgpack.Marshal(want)
		var got Floats
		if err := msgpack.Unmarshal(b, &got); err != nil || !sameValue(reflectOf(got), reflectOf(want)) {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("struct field", func(t *testing.T) {
		type holder struct{ F Floats }
		b, _ := msgpack.Marshal(holder{want})
		var got holder
		if err := msgpack.Unmarshal(b, &got); err != nil || !sameValue(reflectOf(got.F), reflectOf(want)) {
			t.Fatalf("got %v, %v", got.F, err)
		}
	})
	t.Run("slice element", func(t *testing.T) {
		b, _ := msgpack.Marshal([]Floats{want, nil, {}})
		var got []Floats
		if err := msgpack.Unmarshal(b, &got); err != nil || len(got) != 3 ||
			!sameValue(reflectOf(got[0]), reflectOf(want)) || got[1] != nil || got[2] == nil {
			t.Fatalf("got %#v, %v", got, err)
		}
	})
	t.Run("replaces what was there", func(t *testing.T) {
		b, _ := msgpack.Marshal(Floats(nil))
		got := Floats{9}
		if err := msgpack.Unmarshal(b, &got); err != nil || got != nil {
			t.Fatalf("got %v, %v", got, err)
		}
	})
}
