package cluster

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// maxMeta has every string at its limit, so it encodes to exactly
// MetaMaxSize bytes.
func maxMeta() Meta {
	return Meta{
		RemoteAddr:  strings.Repeat("a", MetaMaxAddrLen),
		DataAddr:    strings.Repeat("h", MetaMaxAddrLen-len(":65535")) + ":65535",
		Device:      strings.Repeat("d", MetaMaxDeviceLen),
		Incarnation: 1<<64 - 1, Capacity: 1<<32 - 1, Protocol: 255, Leaving: true,
	}
}

func TestMetaRoundTrip(t *testing.T) {
	cases := []Meta{
		{},
		{RemoteAddr: "10.0.0.7:8090", DataAddr: "10.0.0.7:8091", Incarnation: 0xdeadbeefcafef00d, Protocol: ProtocolVersion, Device: DeviceCUDA, Capacity: 12000},
		{RemoteAddr: "[2001:db8::1]:8090", DataAddr: "[fe80::1%eth0]:1", Device: DeviceCPU, Leaving: true, Incarnation: 1<<64 - 1, Capacity: 1<<32 - 1, Protocol: 255},
		{DataAddr: "node-3.example.org:65535"},
		maxMeta(),
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
	b, err := maxMeta().Encode()
	if err != nil || len(b) != MetaMaxSize {
		t.Fatalf("meta at the cap: %d bytes, %v; want %d, nil", len(b), err, MetaMaxSize)
	}
	overs := []struct {
		field string
		set   func(m *Meta)
	}{
		{"Device", func(m *Meta) { m.Device = strings.Repeat("d", MetaMaxDeviceLen+1) }},
		{"RemoteAddr", func(m *Meta) { m.RemoteAddr = strings.Repeat("a", MetaMaxAddrLen+1) }},
		{"DataAddr", func(m *Meta) { m.DataAddr = strings.Repeat("h", MetaMaxAddrLen+1-len(":1")) + ":1" }},
	}
	// One byte over a limit is refused both in an otherwise maximal Meta
	// (one byte over the cap) and alone (each limit holds by itself).
	for _, o := range overs {
		for _, m := range []Meta{maxMeta(), {}} {
			o.set(&m)
			if _, err := m.Encode(); !errors.Is(err, ErrMetaTooLarge) {
				t.Errorf("%s one byte over its limit in %d-byte strings: %v, want ErrMetaTooLarge",
					o.field, len(m.Device)+len(m.RemoteAddr)+len(m.DataAddr), err)
			}
		}
	}
	if _, err := DecodeMeta(make([]byte, MetaMaxSize+1)); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("decoding %d bytes: %v, want ErrMetaTooLarge", MetaMaxSize+1, err)
	}
	bad := Meta{Device: "\xff"}
	if _, err := bad.Encode(); !errors.Is(err, ErrMetaCorrupt) {
		t.Fatalf("invalid UTF-8: %v, want ErrMetaCorrupt", err)
	}
}

func TestMetaDataAddr(t *testing.T) {
	cases := []struct {
		addr string
		ok   bool
	}{
		{"", true}, // no collective endpoint
		{"127.0.0.1:9000", true},
		{"[::1]:80", true},
		{"[fe80::1%eth0]:443", true},
		{"worker-7.internal:65535", true},
		{"127.0.0.1", false},
		{":9000", false},
		{"[::1]:", false},
		{"h:0", false},
		{"h:65536", false},
		{"h:http", false},
		{"h:-1", false},
		{"::1:80", false},
		{"[::1:80", false},
		{"h:1\xff", false},
	}
	for _, c := range cases {
		b, err := Meta{DataAddr: c.addr}.Encode()
		if c.ok {
			if err != nil {
				t.Errorf("Encode with DataAddr %q: %v, want nil", c.addr, err)
			}
			continue
		}
		if !errors.Is(err, ErrMetaCorrupt) {
			t.Errorf("Encode with DataAddr %q: %v, want ErrMetaCorrupt", c.addr, err)
		}
		if b != nil {
			t.Errorf("Encode with DataAddr %q returned %x with its error", c.addr, b)
		}
		// Decoding must refuse what Encode refuses, or a decoded Meta could
		// fail to encode again.
		raw := append(encodeHeader(metaFormat), 0, 0, byte(len(c.addr)))
		raw = append(raw, c.addr...)
		if _, err := DecodeMeta(raw); !errors.Is(err, ErrMetaCorrupt) {
			t.Errorf("DecodeMeta with DataAddr %q: %v, want ErrMetaCorrupt", c.addr, err)
		}
	}
}

// encodeHeader is the fixed part of an encoding of Meta{} in the given format.
func encodeHeader(format byte) []byte {
	return append([]byte{format}, make([]byte, metaFixedLen-1)...)
}

// A node of protocol 1 published format 1: the strings without the data
// address. It is refused with an error that says why, not read as a node
// without a data address.
func TestDecodeMetaRejectsFormatWithoutDataAddr(t *testing.T) {
	old := append(encodeHeader(metaFormatNoDataAddr), 3, 'c', 'p', 'u', 3, 'h', ':', '1')
	_, err := DecodeMeta(old)
	if !errors.Is(err, ErrMetaCorrupt) {
		t.Fatalf("format 1: %v, want ErrMetaCorrupt", err)
	}
	if !strings.Contains(err.Error(), "data address") {
		t.Fatalf("format 1 error %q does not name the missing data address", err)
	}
	// The same bytes with the current format byte lack the last string.
	old[0] = metaFormat
	if _, err := DecodeMeta(old); !errors.Is(err, ErrMetaCorrupt) {
		t.Fatalf("format 1 layout under format %d: %v, want ErrMetaCorrupt", metaFormat, err)
	}
}

func TestDecodeMetaRejectsGarbage(t *testing.T) {
	good, err := Meta{RemoteAddr: "h:1", DataAddr: "h:2", Device: DeviceCPU}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	deviceLen := metaFixedLen
	remoteEnd := metaFixedLen + 1 + len(DeviceCPU) + 1 + len("h:1")
	overLimit := append(encodeHeader(metaFormat), MetaMaxDeviceLen+1)
	overLimit = append(overLimit, strings.Repeat("d", MetaMaxDeviceLen+1)...)
	overLimit = append(overLimit, 0, 0)
	cases := map[string][]byte{
		"empty":                nil,
		"short header":         good[:metaFixedLen-1],
		"unknown format":       edit(func(b []byte) []byte { b[0] = metaFormat + 1; return b }),
		"format zero":          edit(func(b []byte) []byte { b[0] = 0; return b }),
		"unknown flag":         edit(func(b []byte) []byte { b[1] |= 0x80; return b }),
		"missing device":       good[:metaFixedLen],
		"device past the end":  edit(func(b []byte) []byte { b[deviceLen] = 30; return b }),
		"device over limit":    overLimit,
		"missing address":      good[:metaFixedLen+1+len(DeviceCPU)],
		"missing data address": good[:remoteEnd],
		"truncated":            good[:len(good)-1],
		"trailing byte":        append(bytes.Clone(good), 0),
		"invalid utf-8":        edit(func(b []byte) []byte { b[metaFixedLen+1] = 0xff; return b }),
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
	seeds := []Meta{
		{},
		{RemoteAddr: "127.0.0.1:1", DataAddr: "127.0.0.1:2", Device: DeviceCUDA, Leaving: true, Capacity: 7},
		{DataAddr: "[::1]:65535", Device: DeviceCPU},
		maxMeta(),
	}
	for _, m := range seeds {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 0, 0})
	f.Add(append(encodeHeader(metaFormatNoDataAddr), 0, 0))
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
