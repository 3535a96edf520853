package cluster

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	cases := []Meta{
		{},
		{RemoteAddr: "10.0.0.7:8090", Incarnation: 0xdeadbeefcafef00d, Protocol: ProtocolVersion, Device: DeviceCUDA, Capacity: 12000},
		{RemoteAddr: "[2001:db8::1]:8090", Device: DeviceCPU, Leaving: true, Incarnation: 1<<64 - 1, Capacity: 1<<32 - 1, Protocol: 255},
		{RemoteAddr: strings.Repeat("a", 255), Device: strings.Repeat("d", capDeviceLen)}, // exactly MetaMaxSize bytes
	}
	for _, want := range cases {
		b, err := want.Encode()
		if err != nil {
			t.Fatalf("Encode(%+v): %v", want, err)
		}
		if len(b) > MetaMaxSize {
			t.Fatalf("encoded %d bytes, over %d", len(b), MetaMaxSize)
		}
		got, err := DecodeMeta(b)
		if err != nil {
			t.Fatalf("DecodeMeta: %v", err)
		}
		if got != want {
			t.Fatalf("round trip: got %+v, want %+v", got, want)
		}
	}
}

func TestMetaCap(t *testing.T) {
	atCap := Meta{RemoteAddr: strings.Repeat("a", 255), Device: strings.Repeat("d", capDeviceLen)}
	b, err := atCap.Encode()
	if err != nil || len(b) != MetaMaxSize {
		t.Fatalf("meta at the cap: %d bytes, %v; want %d, nil", len(b), err, MetaMaxSize)
	}
	over := atCap
	over.Device += "x"
	if _, err := over.Encode(); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("meta one byte over the cap: %v, want ErrMetaTooLarge", err)
	}
	long := Meta{RemoteAddr: strings.Repeat("a", 256)}
	if _, err := long.Encode(); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("256-byte field: %v, want ErrMetaTooLarge", err)
	}
	if _, err := DecodeMeta(make([]byte, MetaMaxSize+1)); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("decoding %d bytes: %v, want ErrMetaTooLarge", MetaMaxSize+1, err)
	}
	bad := Meta{Device: "\xff"}
	if _, err := bad.Encode(); !errors.Is(err, ErrMetaCorrupt) {
		t.Fatalf("invalid UTF-8: %v, want ErrMetaCorrupt", err)
	}
}

func TestDecodeMetaRejectsGarbage(t *testing.T) {
	good, err := Meta{RemoteAddr: "h:1", Device: DeviceCPU}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"empty":           nil,
		"short header":    good[:metaFixedLen-1],
		"unknown format":  edit(func(b []byte) []byte { b[0] = 2; return b }),
		"unknown flag":    edit(func(b []byte) []byte { b[1] |= 0x80; return b }),
		"missing device":  good[:metaFixedLen],
		"device too long": edit(func(b []byte) []byte { b[metaFixedLen] = 200; return b }),
		"missing address": good[:metaFixedLen+1+len(DeviceCPU)],
		"truncated":       good[:len(good)-1],
		"trailing byte":   append(bytes.Clone(good), 0),
		"invalid utf-8":   edit(func(b []byte) []byte { b[metaFixedLen+1] = 0xff; return b }),
	}
	for name, b := range cases {
		if _, err := DecodeMeta(b); !errors.Is(err, ErrMetaCorrupt) {
			t.Errorf("%s: %v, want ErrMetaCorrupt", name, err)
		}
	}
}

// FuzzDecodeMeta checks that decoding never panics and that every accepted
// input is canonical: it encodes back to the same bytes.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{{}, {RemoteAddr: "127.0.0.1:1", Device: DeviceCUDA, Leaving: true, Capacity: 7}} {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %x decodes to %+v, which encodes to %x", b, m, again)
		}
	})
}

// capDeviceLen is the device length that, with a 255-byte remote address,
// makes an encoded Meta exactly MetaMaxSize bytes long.
const capDeviceLen = MetaMaxSize - metaFixedLen - 2 - 255
