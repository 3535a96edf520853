package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Floats is a float32 vector that travels as one msgpack bin of little-endian IEEE 754 bits:
// 4 bytes a value, copied in one piece, where msgpack's own []float32 spends 5 bytes and a
// call per element. Every bit survives, NaN payloads and negative zero included.
//
// A nil Floats travels as msgpack nil and decodes to nil; an empty one decodes to an empty,
// non-nil slice. A decoded Floats is freshly allocated: it never aliases the frame.
type Floats []float32

var (
	_ msgpack.CustomEncoder = Floats(nil)
	// The decoder is on the pointer: msgpack can only fill a slice through its address.
	_ msgpack.CustomDecoder = (*Floats)(nil)
)

// hostLittleEndian selects the copy that reinterprets memory; big-endian hosts convert value
// by value.
var hostLittleEndian = binary.NativeEndian.Uint32([]byte{1, 0, 0, 0}) == 1

// portableBlock is how many bytes the portable path converts at a time, so it needs a small
// scratch buffer rather than one as large as the vector.
const portableBlock = 32 << 10

// EncodeMsgpack writes f as a bin.
func (f Floats) EncodeMsgpack(e *msgpack.Encoder) error {
	if f == nil {
		return e.EncodeNil()
	}
	if len(f) > MaxFloats {
		return fmt.Errorf("%w: %d floats, at most %d", ErrTooLarge, len(f), MaxFloats)
	}
	if err := e.EncodeBytesLen(4 * len(f)); err != nil {
		return err
	}
	if hostLittleEndian {
		return writeFloatsNative(e, f)
	}
	return writeFloatsPortable(e, f)
}

// DecodeMsgpack reads a bin written by EncodeMsgpack into a new slice.
func (f *Floats) DecodeMsgpack(d *msgpack.Decoder) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	if c == msgpcode.Nil {
		*f = nil
		return d.DecodeNil()
	}
	if c != msgpcode.Bin8 && c != msgpcode.Bin16 && c != msgpcode.Bin32 {
		return fmt.Errorf("%w: floats must be a bin, got code %#x", ErrMalformed, c)
	}
	n, err := d.DecodeBytesLen()
	if err != nil {
		return err
	}
	if n%4 != 0 {
		return fmt.Errorf("%w: floats bin of %d bytes is not a multiple of 4", ErrMalformed, n)
	}
	if n/4 > MaxFloats {
		return fmt.Errorf("%w: %d floats, at most %d", ErrTooLarge, n/4, MaxFloats)
	}
	out := make(Floats, n/4)
	if hostLittleEndian {
		err = readFloatsNative(d, out)
	} else {
		err = readFloatsPortable(d, out)
	}
	if err != nil {
		return err
	}
	*f = out
	return nil
}

// asBytes views the memory of f as bytes; on a little-endian host these are its wire bytes.
func asBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

func writeFloatsNative(e *msgpack.Encoder, f []float32) error {
	_, err := e.Writer().Write(asBytes(f))
	return err
}

func readFloatsNative(d *msgpack.Decoder, f []float32) error {
	return d.ReadFull(asBytes(f))
}

// writeFloatsPortable is
//
//	for _, v := range f { write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v))) }
//
// a block at a time.
func writeFloatsPortable(e *msgpack.Encoder, f []float32) error {
	buf := make([]byte, 0, min(portableBlock, 4*len(f)))
	for len(f) > 0 {
		n := min(len(f), portableBlock/4)
		buf = buf[:0]
		for _, v := range f[:n] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		if _, err := e.Writer().Write(buf); err != nil {
			return err
		}
		f = f[n:]
	}
	return nil
}

// readFloatsPortable is the inverse of writeFloatsPortable.
func readFloatsPortable(d *msgpack.Decoder, f []float32) error {
	buf := make([]byte, min(portableBlock, 4*len(f)))
	for len(f) > 0 {
		n := min(len(f), portableBlock/4)
		b := buf[:4*n]
		if err := d.ReadFull(b); err != nil {
			return err
		}
		for i := range f[:n] {
			f[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		f = f[n:]
	}
	return nil
}
