package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Before msgpack decodes a frame, scan walks it once and checks every length prefix against
// the bytes that remain and against the limits. msgpack trusts a prefix: a bin claiming 4 GiB
// makes it allocate 4 GiB, an array claiming a million elements makes it allocate a million
// slots, whatever follows. After the scan, every allocation is bounded by the frame's size.

const (
	// maxDepth bounds nesting: the deepest message is body map > world map > members array > id.
	maxDepth = 4
	// maxMapPairs bounds a map: the widest body (StateChunk) has six fields.
	maxMapPairs = 16
)

// scanFrame checks that b holds exactly a msgpack array (the header), then a msgpack map (the
// body), and nothing after; it returns the length of the header.
func scanFrame(b []byte) (headerLen int, err error) {
	s := scanner{b: b}
	if err := s.expect("header", msgpcode.IsFixedArray, msgpcode.Array16, msgpcode.Array32); err != nil {
		return 0, err
	}
	if err := s.value(1); err != nil {
		return 0, err
	}
	headerLen = s.pos
	if err := s.expect("body", msgpcode.IsFixedMap, msgpcode.Map16, msgpcode.Map32); err != nil {
		return 0, err
	}
	if err := s.value(1); err != nil {
		return 0, err
	}
	if s.pos != len(b) {
		return 0, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-s.pos)
	}
	return headerLen, nil
}

type scanner struct {
	b   []byte
	pos int
}

// expect checks that the next value starts with a fixed code (isFixed) or one of codes.
func (s *scanner) expect(what string, isFixed func(byte) bool, codes ...byte) error {
	if s.pos >= len(s.b) {
		return fmt.Errorf("%w: truncated before the %s", ErrMalformed, what)
	}
	c := s.b[s.pos]
	if isFixed(c) {
		return nil
	}
	for _, want := range codes {
		if c == want {
			return nil
		}
	}
	return fmt.Errorf("%w: the %s starts with code %#x", ErrMalformed, what, c)
}

// value skips one value at nesting depth.
func (s *scanner) value(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxDepth)
	}
	if s.pos >= len(s.b) {
		return fmt.Errorf("%w: truncated at byte %d", ErrMalformed, s.pos)
	}
	c := s.b[s.pos]
	s.pos++
	switch {
	case msgpcode.IsFixedNum(c):
		return nil
	case msgpcode.IsFixedString(c):
		return s.skipBytes("string", int(c&msgpcode.FixedStrMask), MaxStringBytes)
	case msgpcode.IsFixedArray(c):
		return s.array(int(c&msgpcode.FixedArrayMask), depth)
	case msgpcode.IsFixedMap(c):
		return s.mapPairs(int(c&msgpcode.FixedMapMask), depth)
	}
	switch c {
	case msgpcode.Nil, msgpcode.False, msgpcode.True:
		return nil
	case msgpcode.Uint8, msgpcode.Int8:
		return s.skip(1)
	case msgpcode.Uint16, msgpcode.Int16:
		return s.skip(2)
	case msgpcode.Uint32, msgpcode.Int32, msgpcode.Float:
		return s.skip(4)
	case msgpcode.Uint64, msgpcode.Int64, msgpcode.Double:
		return s.skip(8)
	case msgpcode.Str8, msgpcode.Str16, msgpcode.Str32:
		n, err := s.length(c)
		if err != nil {
			return err
		}
		return s.skipBytes("string", n, MaxStringBytes)
	case msgpcode.Bin8, msgpcode.Bin16, msgpcode.Bin32:
		n, err := s.length(c)
		if err != nil {
			return err
		}
		return s.skipBytes("bin", n, MaxFrameBytes)
	case msgpcode.Array16, msgpcode.Array32:
		n, err := s.length(c)
		if err != nil {
			return err
		}
		return s.array(n, depth)
	case msgpcode.Map16, msgpcode.Map32:
		n, err := s.length(c)
		if err != nil {
			return err
		}
		return s.mapPairs(n, depth)
	}
	// Ext types (and the never-used code 0xc1) appear in no message.
	return fmt.Errorf("%w: unexpected code %#x at byte %d", ErrMalformed, c, s.pos-1)
}

// length reads the big-endian length that follows the code c of a string, bin, array or map.
func (s *scanner) length(c byte) (int, error) {
	var width int
	switch c {
	case msgpcode.Str8, msgpcode.Bin8:
		width = 1
	case msgpcode.Str16, msgpcode.Bin16, msgpcode.Array16, msgpcode.Map16:
		width = 2
	default:
		width = 4
	}
	if len(s.b)-s.pos < width {
		return 0, fmt.Errorf("%w: truncated length at byte %d", ErrMalformed, s.pos)
	}
	p := s.b[s.pos : s.pos+width]
	s.pos += width
	switch width {
	case 1:
		return int(p[0]), nil
	case 2:
		return int(binary.BigEndian.Uint16(p)), nil
	default:
		return int(binary.BigEndian.Uint32(p)), nil
	}
}

func (s *scanner) skip(n int) error {
	if len(s.b)-s.pos < n {
		return fmt.Errorf("%w: truncated at byte %d: %d bytes needed, %d left", ErrMalformed, s.pos, n, len(s.b)-s.pos)
	}
	s.pos += n
	return nil
}

func (s *scanner) skipBytes(what string, n, limit int) error {
	if n > limit {
		return fmt.Errorf("%w: %s of %d bytes, at most %d", ErrTooLarge, what, n, limit)
	}
	return s.skip(n)
}

func (s *scanner) array(n, depth int) error {
	if n > MaxMembers {
		return fmt.Errorf("%w: array of %d elements, at most %d", ErrTooLarge, n, MaxMembers)
	}
	// Each element takes at least a byte: check before walking them.
	if n > len(s.b)-s.pos {
		return fmt.Errorf("%w: array of %d elements in %d bytes", ErrMalformed, n, len(s.b)-s.pos)
	}
	for range n {
		if err := s.value(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

func (s *scanner) mapPairs(n, depth int) error {
	if n > maxMapPairs {
		return fmt.Errorf("%w: map of %d pairs, at most %d", ErrTooLarge, n, maxMapPairs)
	}
	for range 2 * n {
		if err := s.value(depth + 1); err != nil {
			return err
		}
	}
	return nil
}
