package checkpoint

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"
)

// FormatVersion is the layout version written into every manifest; a reader refuses others.
const FormatVersion = 1

// Part names inside a checkpoint folder. The manifest is written last and commits the rest.
const (
	paramsPart    = "params.bin"
	optimizerPart = "optimizer.bin"
	statePart     = "state.json"
	manifestPart  = "manifest.json"
)

// dataParts are the parts a manifest of FormatVersion lists, in the order Save writes them.
var dataParts = []string{paramsPart, optimizerPart, statePart}

// vectorMagic opens every binary part. The layout that follows is little-endian:
//
//	magic [8]byte | count uint32 | length [count]uint64 | values [sum of lengths]float32
var vectorMagic = [8]byte{'T', 'R', 'P', 'C', 'K', 'P', 'T', '1'}

const vectorHeader = len(vectorMagic) + 4

// encodeVectors lays out float32 vectors bit-exactly (NaN payloads included).
func encodeVectors(vs ...[]float32) []byte {
	total := 0
	for _, v := range vs {
		total += len(v)
	}
	b := make([]byte, vectorHeader+8*len(vs)+4*total)
	copy(b, vectorMagic[:])
	binary.LittleEndian.PutUint32(b[len(vectorMagic):], uint32(len(vs)))
	at := vectorHeader
	for _, v := range vs {
		binary.LittleEndian.PutUint64(b[at:], uint64(len(v)))
		at += 8
	}
	for _, v := range vs {
		putFloats(b[at:at+4*len(v)], v)
		at += 4 * len(v)
	}
	return b
}

// littleEndianHost: this machine lays float32 bits out in memory as the format stores them, so
// vectors move as one block copy instead of value by value (a third of a save's time, before).
var littleEndianHost = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// asBytes is v's memory seen as bytes.
func asBytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// putFloats writes v into out (4*len(v) bytes), little-endian.
func putFloats(out []byte, v []float32) {
	if littleEndianHost {
		copy(out, asBytes(v))
		return
	}
	for i, f := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
	}
}

// decodeVectors is the inverse of encodeVectors. It believes no count or length until the
// bytes present back it, so it never allocates more than about len(b) bytes. The vectors
// share one backing array, each clipped to its own length.
func decodeVectors(b []byte) ([][]float32, error) {
	if len(b) < vectorHeader || [8]byte(b[:8]) != vectorMagic {
		return nil, errors.New("bad magic: not a troupe checkpoint part")
	}
	count := uint64(binary.LittleEndian.Uint32(b[len(vectorMagic):]))
	rest := uint64(len(b) - vectorHeader)
	if count > rest/8 {
		return nil, fmt.Errorf("header claims %d vectors, only %d bytes follow", count, rest)
	}
	rest -= 8 * count
	lengths := make([]uint64, count)
	var total uint64
	for i := range lengths {
		n := binary.LittleEndian.Uint64(b[vectorHeader+8*i:])
		if n > rest/4-total {
			return nil, fmt.Errorf("vector %d claims %d values, more than the %d bytes present", i, n, rest)
		}
		lengths[i] = n
		total += n
	}
	if 4*total != rest {
		return nil, fmt.Errorf("vectors hold %d values (%d bytes), but %d bytes follow the header", total, 4*total, rest)
	}
	values := b[uint64(vectorHeader)+8*count:]
	all := make([]float32, total)
	if littleEndianHost {
		copy(asBytes(all), values)
	} else {
		for i := range all {
			all[i] = math.Float32frombits(binary.LittleEndian.Uint32(values[4*i:]))
		}
	}
	out := make([][]float32, count)
	var at uint64
	for i, n := range lengths {
		out[i] = all[at : at+n : at+n]
		at += n
	}
	return out, nil
}

// state is state.json: everything of a Snapshot but the vectors, plus their lengths so that
// the binary parts can be checked against it.
type state struct {
	Step          int64             `json:"step"`
	Epoch         int               `json:"epoch"`
	Seed          uint64            `json:"seed"`
	Meta          map[string]string `json:"meta"`
	ParamsLen     int               `json:"params_len"`
	Optimizer     optimizerState    `json:"optimizer"`
	Extra         []byte            `json:"extra"` // base64 in JSON
	FormatVersion int               `json:"format"`
	Generation    uint64            `json:"generation,omitempty"`
	World         []string          `json:"world,omitempty"`
}

type optimizerState struct {
	Name          string `json:"name"`
	Step          int64  `json:"step"`
	BufferLengths []int  `json:"buffer_lengths"`
}

func encodeState(s *Snapshot) []byte {
	lengths := make([]int, len(s.Optimizer.Buffers))
	for i, b := range s.Optimizer.Buffers {
		lengths[i] = len(b)
	}
	b, err := json.MarshalIndent(state{
		Step: s.Step, Epoch: s.Epoch, Seed: s.Seed, Meta: s.Meta, ParamsLen: len(s.Params),
		Optimizer: optimizerState{Name: s.Optimizer.Name, Step: s.Optimizer.Step, BufferLengths: lengths},
		Extra:     s.Extra, FormatVersion: FormatVersion, Generation: s.Generation, World: s.World,
	}, "", "  ")
	if err != nil {
		panic("checkpoint: encoding state: " + err.Error()) // only strings, numbers and bytes: cannot fail
	}
	return b
}

func decodeState(b []byte) (*state, error) {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if st.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("format version %d, want %d", st.FormatVersion, FormatVersion)
	}
	if st.Step < 0 || st.ParamsLen < 0 {
		return nil, fmt.Errorf("negative step %d or parameter count %d", st.Step, st.ParamsLen)
	}
	for i, n := range st.Optimizer.BufferLengths {
		if n < 0 {
			return nil, fmt.Errorf("optimizer buffer %d has negative length %d", i, n)
		}
	}
	return &st, nil
}

// manifest is manifest.json, the commit record of a checkpoint.
type manifest struct {
	FormatVersion int       `json:"format"`
	Step          int64     `json:"step"`
	Created       string    `json:"created"` // RFC 3339
	Parts         []partSum `json:"parts"`
	Generation    uint64    `json:"generation,omitempty"` // the world that wrote it, in a cluster
	World         []string  `json:"world,omitempty"`
}

type partSum struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"` // lower-case hex
}

func encodeManifest(m *manifest) []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic("checkpoint: encoding manifest: " + err.Error()) // plain strings and numbers: cannot fail
	}
	return b
}

// decodeManifest parses and checks a manifest: known version, a valid time, and exactly the
// parts this version defines, each with a plausible size and digest.
func decodeManifest(b []byte) (*manifest, time.Time, error) {
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, time.Time{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if m.FormatVersion != FormatVersion {
		return nil, time.Time{}, fmt.Errorf("format version %d, want %d", m.FormatVersion, FormatVersion)
	}
	created, err := time.Parse(time.RFC3339, m.Created)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("created: %w", err)
	}
	if len(m.Parts) != len(dataParts) {
		return nil, time.Time{}, fmt.Errorf("lists %d parts, want %d (%v)", len(m.Parts), len(dataParts), dataParts)
	}
	for _, want := range dataParts {
		p, ok := m.part(want)
		if !ok {
			return nil, time.Time{}, fmt.Errorf("does not list %s", want)
		}
		if p.Bytes < 0 {
			return nil, time.Time{}, fmt.Errorf("%s: negative size %d", want, p.Bytes)
		}
		if d, err := hex.DecodeString(p.SHA256); err != nil || len(d) != 32 {
			return nil, time.Time{}, fmt.Errorf("%s: sha256 %q is not 64 hex digits", want, p.SHA256)
		}
	}
	return &m, created, nil
}

// part finds a part by name. With exactly len(dataParts) entries each found once, duplicates
// are impossible.
func (m *manifest) part(name string) (partSum, bool) {
	for _, p := range m.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return partSum{}, false
}
