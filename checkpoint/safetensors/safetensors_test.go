package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// specials are values whose bits must survive a round trip: NaN payloads, signed zero,
// infinities and subnormals.
var specials = []float32{
	math.Float32frombits(0x7fc00001), math.Float32frombits(0xffa00000), float32(math.Inf(1)), float32(math.Inf(-1)),
	float32(math.Copysign(0, -1)), 0, math.SmallestNonzeroFloat32, -math.MaxFloat32, 1.5, -2.25,
}

func sampleTensors() []Tensor {
	seq := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i)*0.25 - 3
		}
		return v
	}
	return []Tensor{
		{Name: "0.weight", Shape: []int{3, 4}, Data: seq(12)},
		{Name: "0.bias", Shape: []int{3}, Data: seq(3)},
		{Name: "scalar", Shape: []int{}, Data: []float32{42}},
		{Name: "empty", Shape: []int{0, 5}, Data: []float32{}},
		{Name: "conv.weight", Shape: []int{2, 1, 3, 3}, Data: seq(18)},
		{Name: "specials", Shape: []int{len(specials)}, Data: specials},
		{Name: "ünïcode \"quoted\"\n", Shape: []int{1, 1}, Data: []float32{7}},
	}
}

func sameTensors(t *testing.T, got, want []Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || !slices.Equal(g.Shape, w.Shape) || len(g.Data) != len(w.Data) {
			t.Fatalf("tensor %d: %q %v (%d values), want %q %v (%d values)", i, g.Name, g.Shape, len(g.Data), w.Name, w.Shape, len(w.Data))
		}
		for j := range w.Data {
			if math.Float32bits(g.Data[j]) != math.Float32bits(w.Data[j]) {
				t.Fatalf("tensor %q value %d: bits %#x, want %#x", w.Name, j, math.Float32bits(g.Data[j]), math.Float32bits(w.Data[j]))
			}
		}
	}
}

func TestRoundTripKeepsOrderBitsAndMetadata(t *testing.T) {
	meta := map[string]string{"format": "pt", "troupe.model": `{"input":[784]}`, "empty": "", "ключ": "значение"}
	for _, m := range []map[string]string{meta, nil} {
		raw, err := Encode(sampleTensors(), m)
		if err != nil {
			t.Fatal(err)
		}
		n := binary.LittleEndian.Uint64(raw)
		if n%8 != 0 {
			t.Errorf("header length %d is not a multiple of 8", n)
		}
		if strings.Contains(string(raw[8:8+n]), MetadataKey) != (m != nil) {
			t.Errorf("metadata %v: header %s", m, raw[8:8+n])
		}
		got, gotMeta, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		sameTensors(t, got, sampleTensors())
		if len(gotMeta) != len(m) {
			t.Fatalf("metadata %v, want %v", gotMeta, m)
		}
		for k, v := range m {
			if gotMeta[k] != v {
				t.Errorf("metadata %q = %q, want %q", k, gotMeta[k], v)
			}
		}
	}
}

// TestEncodeExactBytes pins the layout: header length, JSON in the given order, space
// padding, then the values little-endian.
func TestEncodeExactBytes(t *testing.T) {
	raw, err := Encode([]Tensor{{Name: "b", Shape: []int{2}, Data: []float32{1, -2}}, {Name: "a", Shape: []int{}, Data: []float32{0.5}}},
		map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	header := `{"__metadata__":{"k":"v"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[],"data_offsets":[8,12]}}`
	for len(header)%8 != 0 {
		header += " "
	}
	want := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	want = append(want, header...)
	for _, v := range []float32{1, -2, 0.5} {
		want = binary.LittleEndian.AppendUint32(want, math.Float32bits(v))
	}
	if !bytes.Equal(raw, want) {
		t.Fatalf("Encode wrote\n%q\nwant\n%q", raw, want)
	}
}

func TestEncodeRejectsWhatCannotBeRead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
		want    string
	}{
		{"duplicate", []Tensor{{Name: "w", Shape: []int{1}, Data: []float32{1}}, {Name: "w", Shape: []int{1}, Data: []float32{2}}}, nil, `"w" appears twice`},
		{"empty name", []Tensor{{Name: "", Shape: []int{1}, Data: []float32{1}}}, nil, "empty name"},
		{"reserved", []Tensor{{Name: MetadataKey, Shape: []int{1}, Data: []float32{1}}}, nil, "reserved"},
		{"short data", []Tensor{{Name: "w", Shape: []int{2, 3}, Data: make([]float32, 5)}}, nil, "holds 6 values, data has 5"},
		{"negative dim", []Tensor{{Name: "w", Shape: []int{-1}, Data: nil}}, nil, "out of range"},
		{"bad utf-8 name", []Tensor{{Name: "\xff", Shape: []int{1}, Data: []float32{1}}}, nil, "UTF-8"},
		{"bad utf-8 meta", nil, map[string]string{"k": "\xfe"}, "UTF-8"},
		{"rank", []Tensor{{Name: "w", Shape: make([]int, MaxRank+1), Data: nil}}, nil, "dimensions"},
	} {
		_, err := Encode(tc.tensors, tc.meta)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrFormat mentioning %q", tc.name, err, tc.want)
		}
	}
}

// file builds a safetensors file from a raw header and data.
func file(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func TestDecodeRejectsMalformedFiles(t *testing.T) {
	eight := make([]byte, 8)
	ok := `{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	if _, _, err := Decode(file(ok, eight)); err != nil {
		t.Fatalf("the well-formed base case fails: %v", err)
	}
	huge := binary.LittleEndian.AppendUint64(nil, MaxHeaderSize+1)
	for _, tc := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"empty", nil, "shorter than the 8-byte"},
		{"length past end", file(ok, eight)[:20], "exceeds the"},
		{"length over limit", append(huge, make([]byte, 64)...), "exceeds the limit"},
		{"length max", binary.LittleEndian.AppendUint64(nil, math.MaxUint64), "exceeds the limit"},
		{"length 0", file("", nil), "too short"},
		{"not an object", file(`["w"]`, nil), "start with '{'"},
		{"bad json", file(`{"w":{"dtype":"F32",`, nil), "header"},
		{"bad utf-8", file("{\"\xff\":1}", nil), "UTF-8"},
		{"trailing json", file(ok+`{}`, eight), "after the JSON object"},
		{"f16", file(`{"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}`, eight), `dtype "F16" is not supported`},
		{"i64", file(`{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, eight), `dtype "I64" is not supported`},
		{"dtype not string", file(`{"w":{"dtype":1,"shape":[2],"data_offsets":[0,8]}}`, eight), "dtype is number 1"},
		{"duplicate tensor", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), `"w" appears twice`},
		{"duplicate field", file(`{"w":{"dtype":"F32","shape":[2],"shape":[2],"data_offsets":[0,8]}}`, eight), "shape appears twice"},
		{"unknown field", file(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"stride":[1]}}`, eight), `unknown field "stride"`},
		{"missing offsets", file(`{"w":{"dtype":"F32","shape":[2]}}`, eight), "data_offsets missing"},
		{"missing shape", file(`{"w":{"dtype":"F32","data_offsets":[0,8]}}`, eight), "shape missing"},
		{"missing dtype", file(`{"w":{"shape":[2],"data_offsets":[0,8]}}`, eight), "dtype missing"},
		{"empty name", file(`{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight), "empty name"},
		{"negative dim", file(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, eight), "non-negative integer"},
		{"fractional dim", file(`{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}`, eight), "non-negative integer"},
		{"huge dim", file(`{"w":{"dtype":"F32","shape":[99999999999],"data_offsets":[0,8]}}`, eight), "too large"},
		{"overflowing shape", file(`{"w":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,8]}}`, eight), "too many elements"},
		{"rank", file(`{"w":{"dtype":"F32","shape":[`+strings.Repeat("1,", MaxRank)+`1],"data_offsets":[0,4]}}`, eight[:4]), "more than 64"},
		{"one offset", file(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[8]}}`, eight), "want [begin, end]"},
		{"three offsets", file(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}`, eight), "more than 2"},
		{"shape mismatch", file(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), "shape [3] needs 12 bytes"},
		{"past the end", file(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, eight), "run past"},
		{"reversed", file(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]},"v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight), "end before they begin"},
		{"overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "overlap"},
		{"gap", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "gap"},
		{"trailing data", file(ok, make([]byte, 12)), "4 bytes of data after"},
		{"meta not strings", file(`{"__metadata__":{"k":1}}`, nil), "not a string"},
		{"meta duplicate", file(`{"__metadata__":{"k":"a","k":"b"}}`, nil), `key "k" appears twice`},
		{"meta array", file(`{"__metadata__":["k"]}`, nil), "object of strings"},
		{"meta twice", file(`{"__metadata__":{},"__metadata__":{}}`, nil), "appears twice"},
	} {
		got, meta, err := Decode(tc.raw)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrFormat mentioning %q", tc.name, err, tc.want)
		}
		if got != nil || meta != nil {
			t.Errorf("%s: returned data along with the error", tc.name)
		}
	}
}

// TestDecodeAcceptsForeignLayouts reads what other writers may produce: a header without
// padding, keys in any order, data laid out in another order than the header's, null
// metadata.
func TestDecodeAcceptsForeignLayouts(t *testing.T) {
	data := binary.LittleEndian.AppendUint32(nil, math.Float32bits(1))
	data = binary.LittleEndian.AppendUint32(data, math.Float32bits(2))
	data = binary.LittleEndian.AppendUint32(data, math.Float32bits(3))
	raw := file(`{"z":{"data_offsets":[4,12],"shape":[1,2],"dtype":"F32"},"__metadata__":null,"a":{"shape":[],"dtype":"F32","data_offsets":[0,4]}}`, data)
	got, meta, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if meta != nil {
		t.Errorf("metadata %v, want nil", meta)
	}
	sameTensors(t, got, []Tensor{{Name: "a", Shape: []int{}, Data: []float32{1}}, {Name: "z", Shape: []int{1, 2}, Data: []float32{2, 3}}})
}

func FuzzDecode(f *testing.F) {
	good, err := Encode(sampleTensors(), map[string]string{"format": "pt"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-4])
	f.Add(file(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}}`, nil))
	f.Add(file(`{"__metadata__":{"a":"b"}}`, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		tensors, meta, err := Decode(raw)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		total := 0
		for _, x := range tensors {
			total += 4 * len(x.Data)
		}
		if total > len(raw) {
			t.Fatalf("decoded %d bytes of values from a %d-byte file", total, len(raw))
		}
		// Whatever decodes must encode, and decode again to the same thing.
		again, err := Encode(tensors, meta)
		if err != nil {
			t.Fatalf("decoded tensors do not encode: %v", err)
		}
		tensors2, meta2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded file does not decode: %v", err)
		}
		sameTensors(t, tensors2, tensors)
		if len(meta2) != len(meta) {
			t.Fatalf("metadata %v became %v", meta, meta2)
		}
		for k, v := range meta {
			if meta2[k] != v {
				t.Fatalf("metadata %q: %q became %q", k, v, meta2[k])
			}
		}
	})
}
