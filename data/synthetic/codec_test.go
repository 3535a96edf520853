package synthetic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/troupe-ml/troupe/data"
)

// tinyModel is a small valid model for the codec tests: 2 classes, 6 pixels, rank 2.
func tinyModel(t testing.TB) *Model {
	t.Helper()
	m, err := Fit(randomSet(200, 2, []int{2, 3}, 4), FitConfig{Rank: 2, Components: 2, Seed: 3, Len: 64})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// reseal recomputes the trailing checksum, so that a test can reach the checks behind it.
func reseal(b []byte) []byte {
	if len(b) < 4 {
		return b
	}
	b = slices.Clone(b)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}

func TestModelRoundTrip(t *testing.T) {
	for name, m := range map[string]*Model{"tiny": tinyModel(t), "images": smallModel(t, FitConfig{Rank: 7, Components: 2, Seed: 1})} {
		var buf bytes.Buffer
		n, err := m.WriteTo(&buf)
		if err != nil || n != int64(buf.Len()) {
			t.Fatalf("%s: WriteTo: %d, %v", name, n, err)
		}
		enc := slices.Clone(buf.Bytes())
		back, err := ReadModel(&buf)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		again, _ := back.MarshalBinary()
		if !bytes.Equal(enc, again) {
			t.Fatalf("%s: encoding changes on a round trip", name)
		}
		if back.Seed() != m.Seed() || back.Len() != m.Len() || !slices.Equal(back.Shape(), m.Shape()) {
			t.Fatalf("%s: stream or shape lost", name)
		}
		a, b := gatherAll(t, m, m.Len()), gatherAll(t, back, back.Len())
		if !slices.Equal(a.x, b.x) || !slices.Equal(a.labels, b.labels) {
			t.Fatalf("%s: the decoded model draws other samples", name)
		}
	}
}

// TestModelDecodeErrors corrupts a valid encoding in targeted ways, resealing the checksum
// where the corruption is meant to reach a later check.
func TestModelDecodeErrors(t *testing.T) {
	m := tinyModel(t)
	if m.Components() != 4 || m.SampleSize() != 6 || m.Rank() != 2 {
		t.Fatalf("tiny model: %d components, size %d, rank %d; the offsets below assume 4, 6, 2", m.Components(), m.SampleSize(), m.Rank())
	}
	enc, _ := m.MarshalBinary()
	put32 := func(off int, v uint32) []byte {
		b := slices.Clone(enc)
		binary.LittleEndian.PutUint32(b[off:], v)
		return reseal(b)
	}
	// Offsets in the tiny model's header: version 8, ndims 12, dims 16 and 20, classes 24,
	// rank 28, ncomps 32, seed 36, len 44, priors 52, first component 68.
	comp := 68
	compBytes := 4 + 8 + 4*6*(2+2)
	for name, b := range map[string][]byte{
		"empty":           nil,
		"magic":           append([]byte("trpsynGX"), enc[8:]...),
		"version":         put32(8, 2),
		"no dims":         put32(12, 0),
		"many dims":       put32(12, 9),
		"zero dim":        put32(16, 0),
		"huge dim":        put32(20, 1<<30),
		"no classes":      put32(24, 0),
		"rank over size":  put32(28, 7),
		"huge rank":       put32(28, 1<<31),
		"no components":   put32(32, 0),
		"huge ncomps":     put32(32, 1<<31),
		"one comp fewer":  put32(32, 3),
		"truncated":       enc[:len(enc)-1],
		"extended":        append(slices.Clone(enc), 0),
		"flipped bit":     func() []byte { b := slices.Clone(enc); b[100] ^= 4; return b }(),
		"stream too long": func() []byte { b := slices.Clone(enc); binary.LittleEndian.PutUint64(b[44:], 1<<40); return reseal(b) }(),
		"NaN prior": func() []byte {
			b := slices.Clone(enc)
			binary.LittleEndian.PutUint64(b[52:], math.Float64bits(math.NaN()))
			return reseal(b)
		}(),
		"zero priors":        func() []byte { b := slices.Clone(enc); clear(b[52:68]); return reseal(b) }(),
		"class out of range": put32(comp, 2),
		"negative weight": func() []byte {
			b := slices.Clone(enc)
			binary.LittleEndian.PutUint64(b[comp+4:], math.Float64bits(-1))
			return reseal(b)
		}(),
		"infinite mean":  put32(comp+12, math.Float32bits(float32(math.Inf(1)))),
		"negative noise": put32(comp+compBytes-4, math.Float32bits(-1)),
		"zero weights": func() []byte {
			b := slices.Clone(enc)
			for k := range 4 {
				clear(b[comp+k*compBytes+4 : comp+k*compBytes+12])
			}
			return reseal(b)
		}(),
	} {
		var m Model
		err := m.UnmarshalBinary(b)
		if !errors.Is(err, ErrModelFormat) {
			t.Errorf("%s: error %v, want ErrModelFormat", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	// Every truncation fails cleanly.
	for n := range len(enc) {
		if err := new(Model).UnmarshalBinary(enc[:n]); err == nil {
			t.Fatalf("truncation to %d bytes decoded", n)
		}
	}
}

// TestModelDecodeBounded checks that a header claiming a huge model costs no memory: the
// length check comes before any allocation.
func TestModelDecodeBounded(t *testing.T) {
	enc, _ := tinyModel(t).MarshalBinary()
	b := slices.Clone(enc[:68])
	binary.LittleEndian.PutUint32(b[16:], 64)
	binary.LittleEndian.PutUint32(b[20:], 64)
	binary.LittleEndian.PutUint32(b[28:], MaxRank)
	binary.LittleEndian.PutUint32(b[32:], 2*MaxFitComponents)
	b = append(b, make([]byte, 4)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := new(Model).UnmarshalBinary(b)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrModelFormat) {
		t.Fatalf("error %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Errorf("rejecting a lying header allocated %d bytes", got)
	}
}

// FuzzModelDecode feeds arbitrary bytes, and the same bytes with a valid checksum, to the
// decoder: it must return an error or a model that encodes back to the same bytes and samples
// without panicking.
func FuzzModelDecode(f *testing.F) {
	enc, _ := tinyModel(f).MarshalBinary()
	f.Add(enc)
	f.Add(enc[:70])
	one, _ := Fit(randomSet(20, 1, []int{3}, 1), FitConfig{Rank: 0, Components: 1, Len: 3})
	enc1, _ := one.MarshalBinary()
	f.Add(enc1)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, reseal(b)} {
			var m Model
			if err := m.UnmarshalBinary(in); err != nil {
				if !errors.Is(err, ErrModelFormat) {
					t.Fatalf("error %v does not wrap ErrModelFormat", err)
				}
				continue
			}
			out, err := m.MarshalBinary()
			if err != nil || !bytes.Equal(in, out) {
				t.Fatalf("decoded model encodes differently (%v)", err)
			}
			if m.Len() > 0 {
				x := make([]float32, m.SampleSize())
				l := make([]int32, 1)
				if err := m.Gather([]int32{int32(m.Len() - 1)}, x, l, data.Normalize{}); err != nil {
					t.Fatal(err)
				}
				if l[0] < 0 || int(l[0]) >= m.NumClasses() {
					t.Fatalf("label %d of %d classes", l[0], m.NumClasses())
				}
			}
		}
	})
}
