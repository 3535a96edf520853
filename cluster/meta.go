package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MetaMaxSize is the most bytes an encoded Meta may take: memberlist's limit
// on node metadata, which it enforces by panicking.
const MetaMaxSize = 512

// ProtocolVersion is the version of troupe's node-to-node protocol that this
// build speaks. Start puts it in Meta.Protocol so that a coordinator can keep
// nodes that do not understand each other out of one world.
const ProtocolVersion = 1

// Device names for Meta.Device.
const (
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// Meta is what a node tells the cluster about itself through memberlist's
// node metadata.
type Meta struct {
	// RemoteAddr is the "host:port" of the node's actor endpoint.
	RemoteAddr string
	// Incarnation identifies one start of the node's process; it is random
	// and differs across restarts at the same address.
	Incarnation uint64
	// Protocol is the troupe protocol version the node speaks.
	Protocol uint8
	// Device is where the node trains: DeviceCPU or DeviceCUDA.
	Device string
	// Capacity is the node's training throughput in samples per second, as
	// configured or measured; 0 means unknown.
	Capacity uint32
	// Leaving is set by Membership.Leave just before the node leaves, so that
	// the others can tell a departure from a failure.
	Leaving bool
}

// Errors of the metadata codec.
var (
	ErrMetaTooLarge = errors.New("cluster: node metadata exceeds 512 bytes")
	ErrMetaCorrupt  = errors.New("cluster: corrupt node metadata")
)

// Layout of an encoded Meta, all integers big-endian:
//
//	format u8 | flags u8 | protocol u8 | incarnation u64 | capacity u32 |
//	len u8, device | len u8, remote address
//
// The format byte lets a later layout coexist with this one; flags bits other
// than flagLeaving must be zero, so every accepted encoding is canonical.
const (
	metaFormat   = 1
	flagLeaving  = 1 << 0
	metaFixedLen = 1 + 1 + 1 + 8 + 4
)

// Encode returns the compact binary form of m. It fails with ErrMetaTooLarge
// when a string is longer than 255 bytes or the whole exceeds MetaMaxSize,
// and with ErrMetaCorrupt when a string is not valid UTF-8.
func (m Meta) Encode() ([]byte, error) {
	for _, s := range []string{m.Device, m.RemoteAddr} {
		if len(s) > 255 {
			return nil, fmt.Errorf("%w: field of %d bytes", ErrMetaTooLarge, len(s))
		}
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("%w: invalid UTF-8 %q", ErrMetaCorrupt, s)
		}
	}
	size := metaFixedLen + 1 + len(m.Device) + 1 + len(m.RemoteAddr)
	if size > MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMetaTooLarge, size)
	}
	var flags byte
	if m.Leaving {
		flags |= flagLeaving
	}
	b := make([]byte, 0, size)
	b = append(b, metaFormat, flags, m.Protocol)
	b = binary.BigEndian.AppendUint64(b, m.Incarnation)
	b = binary.BigEndian.AppendUint32(b, m.Capacity)
	b = append(b, byte(len(m.Device)))
	b = append(b, m.Device...)
	b = append(b, byte(len(m.RemoteAddr)))
	b = append(b, m.RemoteAddr...)
	return b, nil
}

// DecodeMeta parses the output of Meta.Encode. Any other input, including
// truncated, oversized or trailing bytes, an unknown format or flag, and
// strings that are not UTF-8, gives an error wrapping ErrMetaCorrupt or
// ErrMetaTooLarge. b is not retained.
func DecodeMeta(b []byte) (Meta, error) {
	if len(b) > MetaMaxSize {
		return Meta{}, fmt.Errorf("%w: %d bytes", ErrMetaTooLarge, len(b))
	}
	if len(b) < metaFixedLen {
		return Meta{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrMetaCorrupt, len(b), metaFixedLen)
	}
	if b[0] != metaFormat {
		return Meta{}, fmt.Errorf("%w: unknown format %d", ErrMetaCorrupt, b[0])
	}
	if b[1]&^flagLeaving != 0 {
		return Meta{}, fmt.Errorf("%w: unknown flags %#x", ErrMetaCorrupt, b[1])
	}
	m := Meta{
		Leaving:     b[1]&flagLeaving != 0,
		Protocol:    b[2],
		Incarnation: binary.BigEndian.Uint64(b[3:]),
		Capacity:    binary.BigEndian.Uint32(b[11:]),
	}
	rest := b[metaFixedLen:]
	var err error
	if m.Device, rest, err = readString(rest); err != nil {
		return Meta{}, fmt.Errorf("device: %w", err)
	}
	if m.RemoteAddr, rest, err = readString(rest); err != nil {
		return Meta{}, fmt.Errorf("remote address: %w", err)
	}
	if len(rest) != 0 {
		return Meta{}, fmt.Errorf("%w: %d trailing bytes", ErrMetaCorrupt, len(rest))
	}
	return m, nil
}

// readString reads a length-prefixed UTF-8 string from the front of b.
func readString(b []byte) (s string, rest []byte, err error) {
	if len(b) == 0 {
		return "", nil, fmt.Errorf("%w: missing length", ErrMetaCorrupt)
	}
	n := int(b[0])
	if len(b)-1 < n {
		return "", nil, fmt.Errorf("%w: string of %d bytes, %d left", ErrMetaCorrupt, n, len(b)-1)
	}
	raw := b[1 : 1+n]
	if !utf8.Valid(raw) {
		return "", nil, fmt.Errorf("%w: invalid UTF-8", ErrMetaCorrupt)
	}
	return string(raw), b[1+n:], nil
}
