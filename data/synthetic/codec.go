package synthetic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// The binary form of a Model, all little-endian:
//
//	magic    8 bytes "trpsynGM"
//	version  u32 (1)
//	ndims    u32, then ndims x u32 sample dimensions
//	classes  u32
//	rank     u32
//	ncomps   u32
//	seed     u64
//	len      u64
//	prior    classes x f64
//	ncomps x { class u32, weight f64, mean size x f32, basis size*rank x f32, noise size x f32 }
//	crc      u32, CRC-32C of every byte before it
//
// The header fixes the exact length of the rest, so a reader checks the length and the
// checksum before it allocates anything for the parameters.
const (
	modelMagic   = "trpsynGM"
	modelVersion = 1
	// MaxModelBytes bounds what ReadModel reads.
	MaxModelBytes = 1 << 30
	maxDims       = 8
)

// ErrModelFormat reports bytes that are not a valid encoded Model.
var ErrModelFormat = errors.New("synthetic: malformed model")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes the parameters, the seed and the stream length.
func (m *Model) MarshalBinary() ([]byte, error) {
	n := 8 + 4 + 4 + 4*len(m.shape) + 4*3 + 8*2 + 8*m.classes + len(m.comps)*(4+8+4*m.size*(m.rank+2)) + 4
	b := make([]byte, 0, n)
	b = append(b, modelMagic...)
	b = binary.LittleEndian.AppendUint32(b, modelVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.shape)))
	for _, d := range m.shape {
		b = binary.LittleEndian.AppendUint32(b, uint32(d))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(m.classes))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.rank))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.comps)))
	b = binary.LittleEndian.AppendUint64(b, m.seed)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.n))
	for _, p := range m.prior {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p))
	}
	for _, c := range m.comps {
		b = binary.LittleEndian.AppendUint32(b, uint32(c.class))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.weight))
		for _, part := range [][]float32{c.mean, c.basis, c.noise} {
			for _, v := range part {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
			}
		}
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b, nil
}

// WriteTo writes the binary form to w.
func (m *Model) WriteTo(w io.Writer) (int64, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

// ReadModel reads a Model written by WriteTo, refusing more than MaxModelBytes.
func ReadModel(r io.Reader) (*Model, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxModelBytes+1))
	if err != nil {
		return nil, fmt.Errorf("synthetic: reading model: %w", err)
	}
	if len(b) > MaxModelBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrModelFormat, MaxModelBytes)
	}
	m := new(Model)
	if err := m.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return m, nil
}

// decoder reads little-endian fields from a slice whose length was checked beforehand.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) u32() uint32 {
	v := binary.LittleEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) u64() uint64 {
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *decoder) f32s(n int) ([]float32, bool) {
	out := make([]float32, n)
	for k := range out {
		v := math.Float32frombits(d.u32())
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, false
		}
		out[k] = v
	}
	return out, true
}

// UnmarshalBinary decodes b into m. It checks the magic, version, every count against the
// package limits, the exact length and the checksum before allocating, then that every value
// is finite, priors and weights non-negative and residual deviations non-negative.
func (m *Model) UnmarshalBinary(b []byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrModelFormat}, args...)...)
	}
	const fixed = 8 + 4 + 4
	if len(b) < fixed+4 || string(b[:8]) != modelMagic {
		return bad("not a model file")
	}
	d := &decoder{b: b, off: 8}
	if v := d.u32(); v != modelVersion {
		return bad("version %d, this reader knows %d", v, modelVersion)
	}
	ndims := int(d.u32())
	if ndims < 1 || ndims > maxDims {
		return bad("%d sample dimensions", ndims)
	}
	head := fixed + 4*ndims + 4*3 + 8*2
	if len(b) < head+4 {
		return bad("truncated header")
	}
	shape := make([]int, ndims)
	size := 1
	for k := range shape {
		v := d.u32()
		if v < 1 || v > MaxModelSize {
			return bad("dimension %d is %d", k, v)
		}
		shape[k] = int(v)
		size *= int(v)
		if size > MaxModelSize {
			return bad("shape %v is over %d values", shape[:k+1], MaxModelSize)
		}
	}
	classes := int(d.u32())
	rank := int(d.u32())
	ncomps := int(d.u32())
	seed := d.u64()
	n := d.u64()
	switch {
	case classes < 1 || classes > 256:
		return bad("%d classes", classes)
	case rank > min(MaxRank, size):
		return bad("rank %d for %d values", rank, size)
	case ncomps < 1 || ncomps > classes*MaxFitComponents:
		return bad("%d components for %d classes", ncomps, classes)
	case n > MaxLen:
		return bad("stream length %d", n)
	}
	compBytes := int64(4 + 8 + 4*size*(rank+2))
	if want := int64(head+8*classes+4) + int64(ncomps)*compBytes; int64(len(b)) != want {
		return bad("%d bytes, the header implies %d", len(b), want)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return bad("checksum %08x, stored %08x", got, want)
	}
	out := Model{shape: shape, size: size, classes: classes, rank: rank, seed: seed, n: int(n)}
	out.prior = make([]float64, classes)
	for c := range out.prior {
		p := math.Float64frombits(d.u64())
		if !(p >= 0) || math.IsInf(p, 0) {
			return bad("prior of class %d is %v", c, p)
		}
		out.prior[c] = p
	}
	out.comps = make([]component, ncomps)
	for k := range out.comps {
		c := &out.comps[k]
		c.class = int(d.u32())
		c.weight = math.Float64frombits(d.u64())
		if c.class >= classes {
			return bad("component %d has class %d of %d", k, c.class, classes)
		}
		if !(c.weight >= 0) || math.IsInf(c.weight, 0) {
			return bad("component %d has weight %v", k, c.weight)
		}
		var ok1, ok2, ok3 bool
		c.mean, ok1 = d.f32s(size)
		c.basis, ok2 = d.f32s(size * rank)
		c.noise, ok3 = d.f32s(size)
		if !ok1 || !ok2 || !ok3 {
			return bad("component %d holds a value that is not finite", k)
		}
		for j, s := range c.noise {
			if s < 0 {
				return bad("component %d has negative deviation %v at %d", k, s, j)
			}
		}
	}
	if err := out.index(); err != nil {
		return fmt.Errorf("%w: %v", ErrModelFormat, err)
	}
	*m = out
	return nil
}
