package wire

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the format this package writes and the only one it reads. A change that an older
// reader would misread or reject bumps it, so that a mixed fleet reports ErrVersion rather
// than malformed frames. Version 2 added Header.To.
const Version uint8 = 2

// Limits that Decode enforces on every frame and Encode on every message, so a node never
// sends what its peers would refuse.
const (
	// MaxFrameBytes bounds a whole frame: twice MaxChunkBytes, leaving room for the header,
	// and well above what a node sends in practice (DefaultChunkBytes).
	MaxFrameBytes = 8 << 20
	// MaxFloats is the most floats a frame can hold: 4 bytes each.
	MaxFloats = MaxFrameBytes / 4
	// MaxStringBytes bounds node ids, addresses and fingerprints.
	MaxStringBytes = 1024
	// MaxMembers bounds a world and a Commit's voters: fleets of thousands, with room to spare.
	MaxMembers = 1 << 16
)

// Sentinel errors. Every error Decode and Encode return wraps one of them.
var (
	// ErrMalformed: the frame is not a valid encoding of a message (truncated, trailing bytes,
	// wrong types, negative offsets, a chunk past its total, ...).
	ErrMalformed = errors.New("wire: malformed frame")
	// ErrTooLarge: the frame or one of its fields exceeds a limit above.
	ErrTooLarge = errors.New("wire: too large")
	// ErrUnknownKind: the kind byte names no message type.
	ErrUnknownKind = errors.New("wire: unknown message kind")
	// ErrVersion: the frame was written in another version of the format.
	ErrVersion = errors.New("wire: unsupported version")
)

// prefixBytes is the raw prefix of a frame: the version byte, then the kind byte.
const prefixBytes = 2

// headerFields is the length of the msgpack array that holds a Header.
const headerFields = 5

// Encode returns the frame of m: version, kind, the header as a msgpack array, the body as a
// msgpack map. The frame is a new slice owned by the caller; m is neither kept nor modified.
// It fails, wrapping a sentinel, on a message that Decode would reject. A nil m panics.
func Encode(m Message) ([]byte, error) {
	if m == nil {
		panic("wire: Encode of a nil Message")
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	buf := bytes.NewBuffer(make([]byte, 0, sizeHint(m)))
	buf.WriteByte(Version)
	buf.WriteByte(byte(m.Kind()))

	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	enc.UseCompactInts(true)
	h := m.header()
	err := firstError(
		enc.EncodeArrayLen(headerFields),
		enc.EncodeUint64(h.Generation),
		enc.EncodeInt64(h.Step),
		enc.EncodeUint64(h.Incarnation),
		enc.EncodeString(h.From),
		enc.EncodeString(h.To),
	)
	if err == nil {
		err = enc.Encode(m)
	}
	if err != nil {
		return nil, fmt.Errorf("wire: encoding %v: %w", m.Kind(), err)
	}
	if buf.Len() > MaxFrameBytes {
		return nil, fmt.Errorf("%w: %v frame of %d bytes, at most %d", ErrTooLarge, m.Kind(), buf.Len(), MaxFrameBytes)
	}
	return buf.Bytes(), nil
}

// sizeHint guesses the frame size of m so that Encode allocates once.
func sizeHint(m Message) int {
	const fixed = 128
	switch m := m.(type) {
	case *ReduceChunk:
		return fixed + 4*len(m.Data)
	case *StateChunk:
		return fixed + 4*len(m.Data)
	case *JobSpec:
		return fixed + len(m.YAML)
	case *Commit:
		return fixed + idsSizeHint(m.World.Members) + idsSizeHint(m.Voters)
	case *Accept:
		return fixed + idsSizeHint(m.World.Members)
	case *Promise:
		if m.Accepted != nil {
			return fixed + idsSizeHint(m.Accepted.Members)
		}
		return fixed
	default:
		return fixed
	}
}

// idsSizeHint allows each id its bytes and a short string prefix.
func idsSizeHint(ids []string) int {
	n := 0
	for _, id := range ids {
		n += 2 + len(id)
	}
	return n
}

// Decode returns the message frame holds. The message is newly allocated and shares no memory
// with frame, which the caller may reuse at once. Errors wrap ErrMalformed, ErrTooLarge,
// ErrUnknownKind or ErrVersion; no input makes Decode panic or allocate much more than
// len(frame).
func Decode(frame []byte) (Message, error) {
	kind, h, body, err := splitFrame(frame)
	if err != nil {
		return nil, err
	}
	m := newMessage(kind)
	*m.header() = h

	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(bytes.NewReader(body))
	dec.DisallowUnknownFields(true)
	if err := dec.Decode(m); err != nil {
		if errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("%v body: %w", kind, err) // from Floats, already says what it is
		}
		return nil, fmt.Errorf("%w: %v body: %w", ErrMalformed, kind, err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// PeekHeader returns the kind and header of frame without decoding its body, so a receiver
// can drop a message of an older generation before copying its payload. It checks the whole
// frame's structure and limits, as Decode does, but not the body's fields.
func PeekHeader(frame []byte) (Kind, Header, error) {
	kind, h, _, err := splitFrame(frame)
	return kind, h, err
}

// splitFrame checks the prefix and the structure of frame and decodes its header. body is the
// rest of frame: one msgpack map whose lengths scan has checked.
func splitFrame(frame []byte) (kind Kind, h Header, body []byte, err error) {
	if len(frame) > MaxFrameBytes {
		return 0, h, nil, fmt.Errorf("%w: frame of %d bytes, at most %d", ErrTooLarge, len(frame), MaxFrameBytes)
	}
	if len(frame) < prefixBytes {
		return 0, h, nil, fmt.Errorf("%w: frame of %d bytes is shorter than its prefix", ErrMalformed, len(frame))
	}
	if frame[0] != Version {
		return 0, h, nil, fmt.Errorf("%w: version %d, this node reads %d", ErrVersion, frame[0], Version)
	}
	kind = Kind(frame[1])
	if newMessage(kind) == nil {
		return 0, h, nil, fmt.Errorf("%w: %v", ErrUnknownKind, kind)
	}
	rest := frame[prefixBytes:]
	headerLen, err := scanFrame(rest)
	if err != nil {
		return 0, h, nil, err
	}

	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(bytes.NewReader(rest[:headerLen]))
	n, err := dec.DecodeArrayLen()
	if err == nil && n != headerFields {
		err = fmt.Errorf("%d fields, want %d", n, headerFields)
	}
	if err == nil {
		h.Generation, err = dec.DecodeUint64()
	}
	if err == nil {
		h.Step, err = dec.DecodeInt64()
	}
	if err == nil {
		h.Incarnation, err = dec.DecodeUint64()
	}
	if err == nil {
		h.From, err = dec.DecodeString()
	}
	if err == nil {
		h.To, err = dec.DecodeString()
	}
	if err != nil {
		return 0, Header{}, nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	if err := h.validate(); err != nil {
		return 0, Header{}, nil, err
	}
	return kind, h, rest[headerLen:], nil
}
