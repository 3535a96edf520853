package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// encodeIDX writes an unsigned-byte IDX stream.
func encodeIDX(dims []int, payload []byte) []byte {
	b := []byte{0, 0, idxUnsignedByte, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, payload...)
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func counting(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestReadIDXValid(t *testing.T) {
	tests := []struct {
		name string
		dims []int
	}{
		{"labels", []int{5}},
		{"images", []int{3, 4, 2}},
		{"empty", []int{0, 28, 28}},
		{"larger than first chunk", []int{3, firstChunk}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := 1
			for _, d := range tc.dims {
				n *= d
			}
			payload := counting(n)
			raw := encodeIDX(tc.dims, payload)
			dir := t.TempDir()
			for _, src := range []struct {
				what string
				read func() (*IDX, error)
			}{
				{"stream", func() (*IDX, error) { return ReadIDX(bytes.NewReader(raw)) }},
				{"plain file", func() (*IDX, error) { return ReadIDXFile(writeFile(t, dir, "plain", raw)) }},
				{"gzip file", func() (*IDX, error) { return ReadIDXFile(writeFile(t, dir, "z.gz", gzipBytes(t, raw))) }},
			} {
				got, err := src.read()
				if err != nil {
					t.Fatalf("%s: %v", src.what, err)
				}
				if !equalInts(got.Dims, tc.dims) || !bytes.Equal(got.Data, payload) {
					t.Errorf("%s: got dims %v and %d bytes, want %v and %d", src.what, got.Dims, len(got.Data), tc.dims, len(payload))
				}
				if cap(got.Data) != len(payload) {
					t.Errorf("%s: payload capacity %d, want exactly %d", src.what, cap(got.Data), len(payload))
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadIDXErrors(t *testing.T) {
	valid := encodeIDX([]int{2, 3}, counting(6))
	tests := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrTruncated, "header magic: want 4 bytes, got 0"},
		{"bad magic", []byte{1, 2, 8, 1, 0, 0, 0, 0}, ErrNotIDX, "01 02 08 01"},
		{"gzip given to ReadIDX", gzipBytes(t, valid), ErrNotIDX, "gzip-compressed"},
		{"float32 type", []byte{0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0}, ErrUnsupportedType, "0x0d (float32)"},
		{"unknown type", []byte{0, 0, 0x42, 1, 0, 0, 0, 0}, ErrUnsupportedType, "0x42 (unknown)"},
		{"no dims", []byte{0, 0, 8, 0}, ErrBadDims, "0 dimensions"},
		{"too many dims", []byte{0, 0, 8, 9}, ErrBadDims, "9 dimensions"},
		{"short dims", []byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 0}, ErrTruncated, "header dimensions: want 12 bytes, got 6"},
		{"too large", encodeIDX([]int{1 << 16, 1 << 16}, nil), ErrTooLarge, "[65536 65536]"},
		{"max uint32 dims", encodeIDX([]int{1<<32 - 1, 1<<32 - 1, 1<<32 - 1}, nil), ErrTooLarge, "more than 2147483648 elements"},
		{"truncated payload", valid[:len(valid)-2], ErrTruncated, "want 6 payload bytes, got 4"},
		{"trailing garbage", append(append([]byte{}, valid...), 9, 9, 9), ErrTrailingData, "3 byte(s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadIDX(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tc.msg)
			}
		})
	}
}

func TestReadIDXFileErrorsNameTheFile(t *testing.T) {
	raw := encodeIDX([]int{40, 28, 28}, counting(40*28*28))
	gz := gzipBytes(t, raw)
	flipped := func(b []byte, at int) []byte {
		c := append([]byte(nil), b...)
		c[at] ^= 0xff
		return c
	}
	tests := []struct {
		name    string
		content []byte
		want    error  // nil: check only the message
		msg     string // the message must contain it
	}{
		{"train-images-idx3-ubyte", raw[:1016], ErrTruncated, "train-images-idx3-ubyte: data: truncated IDX: want 31360 payload bytes, got 1000"},
		{"cut.gz", gz[:len(gz)/2], nil, "gzip stream: unexpected EOF"},
		{"crc.gz", flipped(gz, len(gz)-6), gzip.ErrChecksum, "crc.gz"},
		{"deflate.gz", flipped(gz, 20), nil, "deflate.gz: "},
		{"header.gz", flipped(gz, 2), nil, "header.gz: data: gzip header: gzip: invalid header"},
		{"trailing.gz", append(gzipBytes(t, raw[:len(raw)-1]), 0), nil, "trailing.gz"},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, tc.name, tc.content)
			idx, err := ReadIDXFile(path)
			if err == nil {
				t.Fatalf("decoded %v without error", idx.Dims)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %q, want it to contain %q", err, tc.msg)
			}
		})
	}
	if _, err := ReadIDXFile(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
}

// TestReadIDXHostileHeaderAllocation checks that a header claiming the maximum size with almost
// no payload behind it costs little memory.
func TestReadIDXHostileHeaderAllocation(t *testing.T) {
	in := encodeIDX([]int{1 << 15, 1 << 16}, counting(100))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadIDX(bytes.NewReader(in))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4*firstChunk {
		t.Errorf("allocated %d bytes for a 100-byte payload, want at most %d", got, 4*firstChunk)
	}
}

func FuzzReadIDX(f *testing.F) {
	f.Add(encodeIDX([]int{3}, []byte{1, 2, 3}))
	f.Add(encodeIDX([]int{2, 2, 2}, counting(8)))
	f.Add(encodeIDX([]int{0}, nil))
	f.Add([]byte{0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		idx, err := ReadIDX(bytes.NewReader(in))
		if err != nil {
			return
		}
		n := 1
		for _, d := range idx.Dims {
			n *= d
		}
		// A decoded stream is exactly header + payload.
		if len(idx.Data) != n || 4+4*len(idx.Dims)+n != len(in) {
			t.Fatalf("dims %v, %d payload bytes, input %d bytes", idx.Dims, len(idx.Data), len(in))
		}
		if !bytes.Equal(encodeIDX(idx.Dims, idx.Data), in) {
			t.Fatal("re-encoding differs from the input")
		}
	})
}
