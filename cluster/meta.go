package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"unicode/utf8"
)

// MetaMaxSize is the most bytes an encoded Meta may take: memberlist's limit
// on node metadata, which it enforces by panicking.
const MetaMaxSize = 512

// ProtocolVersion is the version of troupe's node-to-node protocol that this
// build speaks. Start puts it in Meta.Protocol so that a coordinator can keep
// nodes that do not understand each other out of one world. Version 2 added
// Meta.DataAddr, without which a node cannot join a world's ring.
const ProtocolVersion = 2

// Limits on Meta's strings, chosen so that a Meta with every string at its
// limit encodes to exactly MetaMaxSize bytes. A device name is a short word;
// the two addresses share what is left, which holds any IP address with a
// zone and a host name of over 200 bytes.
const (
	MetaMaxDeviceLen = 32
	MetaMaxAddrLen   = (MetaMaxSize - metaFixedLen - 3 - MetaMaxDeviceLen) / 2
)

// A Meta with every string at its limit must fit: the array length goes
// negative, and the build fails, if the limits above outgrow MetaMaxSize.
var _ [MetaMaxSize - (metaFixedLen + 3 + MetaMaxDeviceLen + 2*MetaMaxAddrLen)]struct{}

// Device names for Meta.Device.
const (
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// Meta is what a node tells the cluster about itself through memberlist's
// node metadata.
type Meta struct {
	// RemoteAddr is the "host:port" of the node's actor endpoint. At most
	// MetaMaxAddrLen bytes.
	RemoteAddr string
	// DataAddr is the "host:port" of the node's collective Endpoint
	// (cluster/collective), which the peers dial to build a world's ring.
	// Empty means the node has none and cannot take part in a ring; otherwise
	// it must have a host and a numeric port, at most MetaMaxAddrLen bytes.
	DataAddr string
	// Incarnation identifies one start of the node's process; it is random
	// and differs across restarts at the same address.
	Incarnation uint64
	// Protocol is the troupe protocol version the node speaks.
	Protocol uint8
	// Device is where the node trains: DeviceCPU or DeviceCUDA. At most
	// MetaMaxDeviceLen bytes.
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
//	len u8, device | len u8, remote address | len u8, data address
//
// The format byte lets a later layout coexist with this one; flags bits other
// than flagLeaving must be zero and strings must keep to the limits Encode
// enforces, so every accepted encoding is canonical.
//
// Format 1 lacked the data address. DecodeMeta rejects it rather than reading
// it as an empty DataAddr: such a node runs an older protocol and could not
// join a ring anyway, and an error (the member is reported with MetaValid
// false) says so where a silently empty address would not.
const (
	metaFormat           = 2
	metaFormatNoDataAddr = 1
	flagLeaving          = 1 << 0
	metaFixedLen         = 1 + 1 + 1 + 8 + 4
)

// metaString is one length-prefixed string of the layout, in order.
type metaString struct {
	name  string
	value *string
	limit int
	check func(string) error // nil: any UTF-8
}

// stringFields lists m's strings in layout order, pointing into m.
func (m *Meta) stringFields() [3]metaString {
	return [3]metaString{
		{"device", &m.Device, MetaMaxDeviceLen, nil},
		{"remote address", &m.RemoteAddr, MetaMaxAddrLen, nil},
		{"data address", &m.DataAddr, MetaMaxAddrLen, checkDataAddr},
	}
}

// checkDataAddr accepts "" (no endpoint) or a "host:port" that a peer can
// dial: a non-empty host and a port in 1..65535.
func checkDataAddr(s string) error {
	if s == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("no host in %q", s)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("port %q is not in 1..65535", port)
	}
	return nil
}

// Encode returns the compact binary form of m. It fails with ErrMetaTooLarge
// when a string is longer than its limit (MetaMaxDeviceLen, MetaMaxAddrLen),
// and with ErrMetaCorrupt when a string is not valid UTF-8 or DataAddr is
// neither empty nor a "host:port" with a numeric port. Within the limits the
// encoding never exceeds MetaMaxSize.
func (m Meta) Encode() ([]byte, error) {
	size := metaFixedLen
	for _, f := range m.stringFields() {
		s := *f.value
		if len(s) > f.limit {
			return nil, fmt.Errorf("%w: %s of %d bytes, limit %d", ErrMetaTooLarge, f.name, len(s), f.limit)
		}
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("%w: %s is invalid UTF-8 %q", ErrMetaCorrupt, f.name, s)
		}
		if f.check != nil {
			if err := f.check(s); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrMetaCorrupt, f.name, err)
			}
		}
		size += 1 + len(s)
	}
	var flags byte
	if m.Leaving {
		flags |= flagLeaving
	}
	b := make([]byte, 0, size)
	b = append(b, metaFormat, flags, m.Protocol)
	b = binary.BigEndian.AppendUint64(b, m.Incarnation)
	b = binary.BigEndian.AppendUint32(b, m.Capacity)
	for _, f := range m.stringFields() {
		b = append(b, byte(len(*f.value)))
		b = append(b, *f.value...)
	}
	return b, nil
}

// DecodeMeta parses the output of Meta.Encode. Any other input, including
// truncated, oversized or trailing bytes, an unknown or older format, an
// unknown flag, strings over their limits or not UTF-8, and a DataAddr that
// Encode would refuse, gives an error wrapping ErrMetaCorrupt or
// ErrMetaTooLarge. b is not retained.
func DecodeMeta(b []byte) (Meta, error) {
	if len(b) > MetaMaxSize {
		return Meta{}, fmt.Errorf("%w: %d bytes", ErrMetaTooLarge, len(b))
	}
	if len(b) < metaFixedLen {
		return Meta{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrMetaCorrupt, len(b), metaFixedLen)
	}
	if b[0] == metaFormatNoDataAddr {
		return Meta{}, fmt.Errorf("%w: format %d has no data address: the node runs troupe protocol 1", ErrMetaCorrupt, b[0])
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
	for _, f := range m.stringFields() {
		s, after, err := readString(rest, f.limit)
		if err != nil {
			return Meta{}, fmt.Errorf("%s: %w", f.name, err)
		}
		if f.check != nil {
			if err := f.check(s); err != nil {
				return Meta{}, fmt.Errorf("%w: %s: %w", ErrMetaCorrupt, f.name, err)
			}
		}
		*f.value, rest = s, after
	}
	if len(rest) != 0 {
		return Meta{}, fmt.Errorf("%w: %d trailing bytes", ErrMetaCorrupt, len(rest))
	}
	return m, nil
}

// readString reads a length-prefixed UTF-8 string of at most limit bytes
// from the front of b.
func readString(b []byte, limit int) (s string, rest []byte, err error) {
	if len(b) == 0 {
		return "", nil, fmt.Errorf("%w: missing length", ErrMetaCorrupt)
	}
	n := int(b[0])
	if n > limit {
		return "", nil, fmt.Errorf("%w: string of %d bytes, limit %d", ErrMetaCorrupt, n, limit)
	}
	if len(b)-1 < n {
		return "", nil, fmt.Errorf("%w: string of %d bytes, %d left", ErrMetaCorrupt, n, len(b)-1)
	}
	raw := b[1 : 1+n]
	if !utf8.Valid(raw) {
		return "", nil, fmt.Errorf("%w: invalid UTF-8", ErrMetaCorrupt)
	}
	return string(raw), b[1+n:], nil
}
