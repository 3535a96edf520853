package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// IDX is a decoded IDX file of unsigned bytes: Dims[0] is usually the sample count, and Data
// holds the product of Dims values in row-major order.
type IDX struct {
	Dims []int
	Data []uint8
}

const (
	// idxUnsignedByte is the only element type code troupe reads (MNIST stores pixels and labels as it).
	idxUnsignedByte = 0x08
	// MaxIDXDims bounds the dimension count of a header: real files have 1 to 4.
	MaxIDXDims = 8
	// MaxIDXElements bounds the element count a header may claim, so a hostile or corrupt header
	// is rejected before anything is read.
	MaxIDXElements = 1 << 31
	// firstChunk is how much payload memory is reserved before any payload byte has arrived;
	// the buffer doubles from there up to the claimed size, so a header that lies about its
	// size costs at most about twice the bytes actually present.
	firstChunk = 64 << 10
)

// Errors of the IDX decoder; each returned error wraps one of them and says what was found.
var (
	ErrNotIDX          = errors.New("data: not an IDX file")
	ErrUnsupportedType = errors.New("data: unsupported IDX element type")
	ErrBadDims         = errors.New("data: bad IDX dimensions")
	ErrTooLarge        = errors.New("data: IDX too large")
	ErrTruncated       = errors.New("data: truncated IDX")
	ErrTrailingData    = errors.New("data: trailing data after IDX payload")
)

// idxTypeNames names the IDX element types troupe does not read, for the error message.
var idxTypeNames = map[byte]string{0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}

// ReadIDX decodes one IDX stream of unsigned bytes and checks that it ends right after the
// payload. It reads r to its end.
func ReadIDX(r io.Reader) (*IDX, error) { return readIDX(r) }

// ReadIDXFile reads an IDX file, gunzipping it when it starts with the gzip magic bytes.
// Errors start with the path of the file.
func ReadIDXFile(path string) (*IDX, error) {
	idx, _, err := readIDXFile(path, io.Discard)
	return idx, err
}

// readIDXFile is ReadIDXFile that also copies the file's raw (still compressed) bytes to raw,
// so a caller can hash the file in the same pass. It reports whether the file was gzipped.
func readIDXFile(path string, raw io.Writer) (*IDX, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(io.TeeReader(f, raw), 1<<16)
	head, _ := br.Peek(2)
	var src io.Reader = br
	gzipped := len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b
	if gzipped {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, true, fmt.Errorf("%s: data: gzip header: %w", path, err)
		}
		defer zr.Close()
		src = gzipErrors{zr}
	}
	idx, err := readIDX(src)
	if err != nil {
		// Drain so that raw sees the whole file even when decoding stopped early.
		_, _ = io.Copy(io.Discard, br)
		return nil, gzipped, fmt.Errorf("%s: %w", path, err)
	}
	return idx, gzipped, nil
}

// gzipErrors marks errors of the gzip layer (corrupt stream, bad checksum, cut-off file) so the
// message says where the problem lies; io.EOF passes through untouched.
type gzipErrors struct{ r io.Reader }

func (g gzipErrors) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("gzip stream: %w", err)
	}
	return n, err
}

func readIDX(r io.Reader) (*IDX, error) {
	var magic [4]byte
	if n, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, headerReadError(err, "magic", n, len(magic))
	}
	if magic[0] != 0 || magic[1] != 0 {
		hint := ""
		if magic[0] == 0x1f && magic[1] == 0x8b {
			hint = " (gzip-compressed: decompress first or use ReadIDXFile)"
		}
		return nil, fmt.Errorf("%w: magic % x does not start with two zero bytes%s", ErrNotIDX, magic, hint)
	}
	if magic[2] != idxUnsignedByte {
		name := idxTypeNames[magic[2]]
		if name == "" {
			name = "unknown"
		}
		return nil, fmt.Errorf("%w: 0x%02x (%s): only 0x08 (unsigned byte) is supported", ErrUnsupportedType, magic[2], name)
	}
	ndims := int(magic[3])
	if ndims == 0 || ndims > MaxIDXDims {
		return nil, fmt.Errorf("%w: header says %d dimensions, want 1 to %d", ErrBadDims, ndims, MaxIDXDims)
	}
	var raw [4 * MaxIDXDims]byte
	if n, err := io.ReadFull(r, raw[:4*ndims]); err != nil {
		return nil, headerReadError(err, "dimensions", n, 4*ndims)
	}
	dims := make([]int, ndims)
	total := uint64(1)
	for i := range dims {
		d := binary.BigEndian.Uint32(raw[4*i:])
		dims[i] = int(d)
		total *= uint64(d) // cannot overflow: total <= MaxIDXElements and d < 1<<32
		if total > MaxIDXElements {
			return nil, fmt.Errorf("%w: dimensions %v claim more than %d elements", ErrTooLarge, dimsPrefix(raw[:4*ndims]), uint64(MaxIDXElements))
		}
	}
	payload, err := readPayload(r, int(total))
	if err != nil {
		return nil, err
	}
	if err := expectEOF(r); err != nil {
		return nil, err
	}
	return &IDX{Dims: dims, Data: payload}, nil
}

// headerReadError turns a short header read into ErrTruncated and passes other errors on.
func headerReadError(err error, part string, got, want int) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: header %s: want %d bytes, got %d", ErrTruncated, part, want, got)
	}
	return fmt.Errorf("data: header %s: %w", part, err)
}

// dimsPrefix decodes every dimension of a header, for error messages.
func dimsPrefix(raw []byte) []uint32 {
	out := make([]uint32, len(raw)/4)
	for i := range out {
		out[i] = binary.BigEndian.Uint32(raw[4*i:])
	}
	return out
}

// readPayload reads exactly want bytes. It grows its buffer as bytes arrive instead of trusting
// the header, and never reserves more than want.
func readPayload(r io.Reader, want int) ([]byte, error) {
	buf := make([]byte, 0, min(want, firstChunk))
	for len(buf) < want {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(want, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF && len(buf) < want:
			return nil, fmt.Errorf("%w: want %d payload bytes, got %d", ErrTruncated, want, len(buf))
		case err != nil && err != io.EOF:
			return nil, fmt.Errorf("data: payload after %d of %d bytes: %w", len(buf), want, err)
		}
	}
	return buf, nil
}

// expectEOF checks that nothing follows the payload. Reading to the end also makes a gzip
// reader verify its checksum.
func expectEOF(r io.Reader) error {
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		if n > 0 {
			extra, _ := io.Copy(io.Discard, io.LimitReader(r, 1<<20))
			more := ""
			if extra == 1<<20 {
				more = " or more"
			}
			return fmt.Errorf("%w: %d byte(s)%s", ErrTrailingData, 1+extra, more)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("data: after payload: %w", err)
		}
	}
}
