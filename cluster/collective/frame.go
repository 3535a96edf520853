package collective

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"unsafe"
)

// A chunk on the wire is a header followed by count float32 values, little-endian.
//
// headerSize: generation u64, step i64, phase u8 + 3 pad, round u32, offset u64, count u32.
const headerSize = 8 + 8 + 4 + 4 + 8 + 4

// rxScratchBytes is the receive scratch of a reduce-scatter: floats are read into it and added
// into place while the next read is on its way. Small enough to stay in the L2 cache beside
// the destination's lines, large enough that a read takes whatever the socket holds.
const rxScratchBytes = 128 << 10

// maxZeroReads bounds how often a reader may return nothing without an error.
const maxZeroReads = 100

func putHeader(b []byte, s Stamp, phase, round, off, count int) {
	binary.LittleEndian.PutUint64(b[0:], s.Generation)
	binary.LittleEndian.PutUint64(b[8:], uint64(s.Step))
	b[16] = byte(phase)
	b[17], b[18], b[19] = 0, 0, 0
	binary.LittleEndian.PutUint32(b[20:], uint32(round))
	binary.LittleEndian.PutUint64(b[24:], uint64(off))
	binary.LittleEndian.PutUint32(b[32:], uint32(count))
}

// checkHeader accepts exactly the chunk the receiver expects next. A header from a peer is
// untrusted: nothing in it is used but to compare, so a hostile one cannot steer a read or an
// allocation.
func checkHeader(b []byte, stamp Stamp, phase, round, off, count int) error {
	got := Stamp{Generation: binary.LittleEndian.Uint64(b[0:]), Step: int64(binary.LittleEndian.Uint64(b[8:]))}
	if got != stamp {
		return fmt.Errorf("%w: chunk of generation %d step %d during generation %d step %d",
			ErrStale, got.Generation, got.Step, stamp.Generation, stamp.Step)
	}
	gotPhase := b[16]
	if b[17]|b[18]|b[19] != 0 {
		return fmt.Errorf("%w: chunk header padding %x", ErrProtocol, b[17:20])
	}
	gotRound := binary.LittleEndian.Uint32(b[20:])
	gotOff := binary.LittleEndian.Uint64(b[24:])
	gotCount := binary.LittleEndian.Uint32(b[32:])
	if int(gotPhase) != phase || uint64(gotRound) != uint64(round) || gotOff != uint64(off) || uint64(gotCount) != uint64(count) {
		return fmt.Errorf("%w: got phase %d round %d offset %d count %d, want %d %d %d %d",
			ErrProtocol, gotPhase, gotRound, gotOff, gotCount, phase, round, off, count)
	}
	return nil
}

// littleEndian is true where float32 memory already is the wire format, so floats go to and
// from the socket without conversion. A variable so tests can run the portable path.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// bytesOf views floats as their memory.
func bytesOf(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), len(f)*4)
}

// floatsOf views 4-byte aligned memory as floats.
func floatsOf(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// sender writes chunks: header and floats in one writev where the stream is a TCP socket.
type sender struct {
	hdr  [headerSize]byte
	iov  [2][]byte
	bufs net.Buffers
	wire []byte     // portable path only: floats converted to little-endian
	raw  *rawStream // nil: through w's Write
}

func (s *sender) header(stamp Stamp, phase, round, off, count int) {
	putHeader(s.hdr[:], stamp, phase, round, off, count)
}

// chunk writes the header set last and f.
func (s *sender) chunk(w io.Writer, f []float32) error {
	if littleEndian && s.raw != nil {
		return s.raw.writev(s.hdr[:], bytesOf(f))
	}
	if littleEndian {
		s.iov[0], s.iov[1] = s.hdr[:], bytesOf(f)
		s.bufs = s.iov[:]
		_, err := s.bufs.WriteTo(w)
		s.iov[0], s.iov[1] = nil, nil // keep no reference to the caller's data
		return err
	}
	if _, err := w.Write(s.hdr[:]); err != nil {
		return err
	}
	if s.wire == nil {
		s.wire = make([]byte, rxScratchBytes)
	}
	for len(f) > 0 {
		n := min(len(f), len(s.wire)/4)
		for i, v := range f[:n] {
			binary.LittleEndian.PutUint32(s.wire[4*i:], math.Float32bits(v))
		}
		if _, err := w.Write(s.wire[:4*n]); err != nil {
			return err
		}
		f = f[n:]
	}
	return nil
}

// readAdd reads len(dst) floats from rd and adds them into dst, each read's whole floats as
// soon as they are in, so the scratch is summed while it is still in cache. buf is the
// scratch: 4-byte aligned, at least 4 bytes.
func readAdd(rd io.Reader, dst []float32, buf []byte) error {
	return readFloats(rd, dst, buf, true)
}

// readCopy reads len(dst) floats from rd into dst: straight into dst's memory where that is
// the wire format, through buf otherwise.
func readCopy(rd io.Reader, dst []float32, buf []byte) error {
	if littleEndian {
		_, err := io.ReadFull(rd, bytesOf(dst))
		return err
	}
	return readFloats(rd, dst, buf, false)
}

func readFloats(rd io.Reader, dst []float32, buf []byte, add bool) error {
	left := len(dst) * 4 // bytes not yet read
	have := 0            // bytes at the front of buf not yet used: fewer than 4 between reads
	zero := 0
	for left > 0 {
		n, err := rd.Read(buf[have : have+min(left, len(buf)-have)])
		if n < 0 || n > min(left, len(buf)-have) {
			return fmt.Errorf("%w: reader returned %d bytes", ErrProtocol, n)
		}
		have += n
		left -= n
		whole := have &^ 3
		if whole > 0 {
			k := whole / 4
			switch {
			case littleEndian && add:
				addTo(dst[:k], floatsOf(buf[:whole]))
			case add:
				for i := range dst[:k] {
					dst[i] += math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
				}
			default:
				for i := range dst[:k] {
					dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
				}
			}
			dst = dst[k:]
			have = copy(buf, buf[whole:have])
		}
		if left == 0 {
			return nil
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if n == 0 {
			if zero++; zero >= maxZeroReads {
				return io.ErrNoProgress
			}
		} else {
			zero = 0
		}
	}
	return nil
}
