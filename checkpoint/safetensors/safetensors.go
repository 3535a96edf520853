// Package safetensors reads and writes the safetensors file format for float32 tensors, so
// that weights trained here load in PyTorch and other frameworks without pickle.
//
// A file is an 8-byte little-endian header length N, then N bytes of JSON, then the tensor
// data. The JSON maps every tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets into the data that follows the header) and may hold "__metadata__", a map of
// strings to strings. Encode pads the header with spaces so that the data starts on an
// 8-byte boundary, and lays the tensors out in the order given.
//
// Decode trusts nothing in its input: it checks the header length, the JSON, every offset
// and shape, and that the tensors tile the data exactly, and returns an error, never a panic,
// for anything else. It allocates no more than about the size of its input.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Tensor is one named float32 array, row-major. A scalar has an empty Shape and one value.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Limits of the format as this package enforces them.
const (
	// MaxHeaderSize bounds the JSON header, as the reference implementation does, so that a
	// corrupt length cannot make a reader parse (or allocate) without bound.
	MaxHeaderSize = 100 << 20
	// MetadataKey is the reserved header entry holding the free-form metadata.
	MetadataKey = "__metadata__"
	// DTypeF32 is the only dtype this package reads and writes.
	DTypeF32 = "F32"
	// MaxRank bounds the number of dimensions of a tensor, which keeps what a header of
	// zero-sized dimensions can make Decode allocate in proportion to its size.
	MaxRank = 64
)

// ErrFormat is wrapped by every error Decode returns for bytes that are not a valid
// safetensors file of float32 tensors, and by Encode's errors for tensors it cannot write.
var ErrFormat = errors.New("safetensors: invalid")

func formatf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// checkShape returns the number of elements of shape, or an error for too many dimensions,
// a negative or huge one, or a product that overflows.
func checkShape(shape []int) (uint64, error) {
	if len(shape) > MaxRank {
		return 0, fmt.Errorf("shape has %d dimensions, more than %d", len(shape), MaxRank)
	}
	n := uint64(1)
	for _, d := range shape {
		if d < 0 || d > math.MaxInt32 {
			return 0, fmt.Errorf("dimension %d of shape %v is out of range", d, shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64/4 {
			return 0, fmt.Errorf("shape %v holds too many elements", shape)
		}
		n = lo
	}
	return n, nil
}

// Encode lays tensors out in the given order after a header that records them and
// metadata. Names must be unique, non-empty, valid UTF-8 and not MetadataKey; every tensor
// must hold exactly the product of its shape in values.
func Encode(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	var h bytes.Buffer
	h.WriteByte('{')
	comma := false
	writeKey := func(k string) {
		if comma {
			h.WriteByte(',')
		}
		comma = true
		kb, _ := json.Marshal(k) // a string always marshals
		h.Write(kb)
		h.WriteByte(':')
	}
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, formatf("metadata %q is not valid UTF-8", k)
			}
			keys = append(keys, k)
		}
		slices.Sort(keys) // a deterministic header: equal inputs give equal bytes
		writeKey(MetadataKey)
		h.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			vb, _ := json.Marshal(metadata[k])
			h.Write(kb)
			h.WriteByte(':')
			h.Write(vb)
		}
		h.WriteByte('}')
	}
	seen := make(map[string]bool, len(tensors))
	var offset uint64
	for _, t := range tensors {
		switch {
		case t.Name == "":
			return nil, formatf("a tensor has an empty name")
		case t.Name == MetadataKey:
			return nil, formatf("tensor name %q is reserved", t.Name)
		case !utf8.ValidString(t.Name):
			return nil, formatf("tensor name %q is not valid UTF-8", t.Name)
		case seen[t.Name]:
			return nil, formatf("tensor %q appears twice", t.Name)
		}
		seen[t.Name] = true
		n, err := checkShape(t.Shape)
		if err != nil {
			return nil, formatf("tensor %q: %v", t.Name, err)
		}
		if n != uint64(len(t.Data)) {
			return nil, formatf("tensor %q: shape %v holds %d values, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		writeKey(t.Name)
		h.WriteString(`{"dtype":"` + DTypeF32 + `","shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		end := offset + 4*n
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > MaxHeaderSize {
		return nil, formatf("header of %d bytes exceeds %d", h.Len(), MaxHeaderSize)
	}
	if offset > math.MaxInt-uint64(8+h.Len()) {
		return nil, formatf("%d bytes of tensor data do not fit in memory", offset)
	}
	out := make([]byte, 8+h.Len()+int(offset))
	binary.LittleEndian.PutUint64(out, uint64(h.Len()))
	copy(out[8:], h.Bytes())
	at := 8 + h.Len()
	for _, t := range tensors {
		for _, v := range t.Data {
			binary.LittleEndian.PutUint32(out[at:], math.Float32bits(v))
			at += 4
		}
	}
	return out, nil
}

// entry is one tensor as the header describes it.
type entry struct {
	name       string
	shape      []int
	begin, end uint64
}

// Decode parses a safetensors file of float32 tensors. It returns the tensors in the order
// of their data (the order Encode was given) and the metadata (nil when the file has none).
func Decode(b []byte) ([]Tensor, map[string]string, error) {
	if len(b) < 8 {
		return nil, nil, formatf("%d bytes: shorter than the 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	rest := uint64(len(b) - 8)
	switch {
	case n > MaxHeaderSize:
		return nil, nil, formatf("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	case n > rest:
		return nil, nil, formatf("header length %d exceeds the %d bytes after it", n, rest)
	case n < 2:
		return nil, nil, formatf("header length %d is too short for a JSON object", n)
	}
	header, data := b[8:8+n], b[8+n:]
	if !utf8.Valid(header) {
		return nil, nil, formatf("header is not valid UTF-8")
	}
	if header[0] != '{' {
		return nil, nil, formatf("header does not start with '{'")
	}
	entries, meta, err := parseHeader(header)
	if err != nil {
		return nil, nil, formatf("header: %v", err)
	}
	// The tensors must tile the data exactly: sorted by offset, each begins where the previous
	// ends, the first at 0 and the last at the end of the file. This rules out overlaps, gaps
	// and data past the end.
	slices.SortStableFunc(entries, func(x, y entry) int {
		if c := cmpUint64(x.begin, y.begin); c != 0 {
			return c
		}
		return cmpUint64(x.end, y.end)
	})
	var at uint64
	for _, e := range entries {
		switch {
		case e.begin < at:
			return nil, nil, formatf("tensor %q: data_offsets [%d, %d] overlap the tensor before, which ends at %d", e.name, e.begin, e.end, at)
		case e.begin > at:
			return nil, nil, formatf("tensor %q: data_offsets [%d, %d] leave a gap after byte %d", e.name, e.begin, e.end, at)
		case e.end < e.begin:
			return nil, nil, formatf("tensor %q: data_offsets [%d, %d] end before they begin", e.name, e.begin, e.end)
		case e.end > uint64(len(data)):
			return nil, nil, formatf("tensor %q: data_offsets [%d, %d] run past the %d bytes of data", e.name, e.begin, e.end, len(data))
		}
		count, err := checkShape(e.shape)
		if err != nil {
			return nil, nil, formatf("tensor %q: %v", e.name, err)
		}
		if count*4 != e.end-e.begin {
			return nil, nil, formatf("tensor %q: shape %v needs %d bytes, data_offsets [%d, %d] hold %d", e.name, e.shape, count*4, e.begin, e.end, e.end-e.begin)
		}
		at = e.end
	}
	if at != uint64(len(data)) {
		return nil, nil, formatf("%d bytes of data after the last tensor", uint64(len(data))-at)
	}
	out := make([]Tensor, len(entries))
	for i, e := range entries {
		raw := data[e.begin:e.end]
		vals := make([]float32, len(raw)/4)
		for j := range vals {
			vals[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
		out[i] = Tensor{Name: e.name, Shape: e.shape, Data: vals}
	}
	return out, meta, nil
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseHeader reads the header object token by token, so that a name given twice is an
// error rather than silently the last one.
func parseHeader(header []byte) ([]entry, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, nil, err
	}
	var entries []entry
	var meta map[string]string
	seen := map[string]bool{}
	for dec.More() {
		name, err := stringToken(dec)
		if err != nil {
			return nil, nil, err
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("%q appears twice", name)
		}
		seen[name] = true
		if name == MetadataKey {
			if meta, err = parseMetadata(dec); err != nil {
				return nil, nil, fmt.Errorf("%s: %v", MetadataKey, err)
			}
			continue
		}
		if name == "" {
			return nil, nil, errors.New("a tensor has an empty name")
		}
		e, err := parseEntry(dec)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %v", name, err)
		}
		e.name = name
		entries = append(entries, e)
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("data after the JSON object (only space padding may follow it)")
	}
	return entries, meta, nil
}

// parseMetadata reads null or an object of strings.
func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("want an object of strings, got %v", describe(tok))
	}
	meta := map[string]string{}
	for dec.More() {
		k, err := stringToken(dec)
		if err != nil {
			return nil, err
		}
		if _, dup := meta[k]; dup {
			return nil, fmt.Errorf("key %q appears twice", k)
		}
		v, err := dec.Token()
		if err != nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("value of %q is %v, not a string", k, describe(v))
		}
		meta[k] = s
	}
	return meta, expectDelim(dec, '}')
}

// parseEntry reads {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, each field
// exactly once and no other.
func parseEntry(dec *json.Decoder) (entry, error) {
	var e entry
	if err := expectDelim(dec, '{'); err != nil {
		return e, err
	}
	var haveDType, haveShape, haveOffsets bool
	for dec.More() {
		field, err := stringToken(dec)
		if err != nil {
			return e, err
		}
		switch field {
		case "dtype":
			if haveDType {
				return e, errors.New("dtype appears twice")
			}
			haveDType = true
			tok, err := dec.Token()
			if err != nil {
				return e, err
			}
			dt, ok := tok.(string)
			if !ok {
				return e, fmt.Errorf("dtype is %v, not a string", describe(tok))
			}
			if dt != DTypeF32 {
				return e, fmt.Errorf("dtype %q is not supported: only %s (float32) tensors can be read", dt, DTypeF32)
			}
		case "shape":
			if haveShape {
				return e, errors.New("shape appears twice")
			}
			haveShape = true
			dims, err := uintArray(dec, "shape", MaxRank)
			if err != nil {
				return e, err
			}
			e.shape = make([]int, len(dims))
			for i, d := range dims {
				if d > math.MaxInt32 {
					return e, fmt.Errorf("shape dimension %d is too large", d)
				}
				e.shape[i] = int(d)
			}
		case "data_offsets":
			if haveOffsets {
				return e, errors.New("data_offsets appears twice")
			}
			haveOffsets = true
			offs, err := uintArray(dec, "data_offsets", 2)
			if err != nil {
				return e, err
			}
			if len(offs) != 2 {
				return e, fmt.Errorf("data_offsets holds %d numbers, want [begin, end]", len(offs))
			}
			e.begin, e.end = offs[0], offs[1]
		default:
			return e, fmt.Errorf("unknown field %q", field)
		}
	}
	switch {
	case !haveDType:
		return e, errors.New("dtype missing")
	case !haveShape:
		return e, errors.New("shape missing")
	case !haveOffsets:
		return e, errors.New("data_offsets missing")
	}
	return e, expectDelim(dec, '}')
}

// uintArray reads an array of at most limit non-negative integers.
func uintArray(dec *json.Decoder, what string, limit int) ([]uint64, error) {
	if err := expectDelim(dec, '['); err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	var out []uint64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s holds %v, not a number", what, describe(tok))
		}
		if len(out) == limit {
			return nil, fmt.Errorf("%s holds more than %d numbers", what, limit)
		}
		v, err := strconv.ParseUint(num.String(), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s holds %s, not a non-negative integer", what, num)
		}
		out = append(out, v)
	}
	return out, expectDelim(dec, ']')
}

func stringToken(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %v", describe(tok))
	}
	return s, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("want %q, got %v", want, describe(tok))
	}
	return nil
}

// describe names a JSON token for an error message.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		return strconv.Quote(v.String())
	case string:
		return strconv.Quote(v)
	case json.Number:
		return "number " + v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprintf("%v", tok)
}
