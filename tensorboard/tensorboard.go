// Package tensorboard writes scalar summaries in TensorBoard's event file format, so that
// `tensorboard --logdir DIR` plots a run's curves next to those of other frameworks.
//
// An event file is a sequence of records: the data's length as a little-endian uint64, the
// masked CRC-32C of those 8 bytes, the data, the masked CRC-32C of the data. Each record's
// data is an Event protocol buffer; the first says which version of the format follows, the
// others carry a Summary of one or more scalar Values. The encoding here is written by hand
// for the few fields it needs (no protobuf dependency):
//
//	Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//	Summary { repeated Value value = 1; }
//	Value   { string tag = 1; float simple_value = 2; }
package tensorboard

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FileVersion is the version string of the first event of every file.
const FileVersion = "brain.Event:2"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaskedCRC is the checksum of a record's length and data: CRC-32C, rotated right by 15 bits
// plus a constant, so that a CRC of data that holds CRCs stays well distributed.
func MaskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// Scalar is one named value of a step.
type Scalar struct {
	Tag   string
	Value float64 // written as a float32, as TensorBoard's simple_value holds it
}

// Writer appends events to one file. Its methods may be called from several goroutines.
type Writer struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	buf  []byte
	path string
}

// Create makes dir (and its parents) and opens a new event file in it, named as TensorBoard
// expects (events.out.tfevents.SECONDS.HOST), with the process id appended so that several
// processes on one host can share the directory, and a counter after that for a second
// writer of one process within one second.
func Create(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	now := time.Now()
	base := filepath.Join(dir, fmt.Sprintf("events.out.tfevents.%d.%s.%d", now.Unix(), host, os.Getpid()))
	path := base
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	for i := 1; errors.Is(err, fs.ErrExist) && i < 1000; i++ {
		path = fmt.Sprintf("%s.%d", base, i)
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	}
	if err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	w := &Writer{f: f, w: bufio.NewWriter(f), path: path}
	w.record(appendEvent(nil, now, 0, FileVersion, nil))
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// Path is the event file's path.
func (w *Writer) Path() string { return w.path }

// Add writes one event holding the scalars of a step. It buffers; Flush makes them visible.
func (w *Writer) Add(step int64, at time.Time, scalars ...Scalar) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = appendEvent(w.buf[:0], at, step, "", scalars)
	return w.record(w.buf)
}

// record frames data as a record into the buffer.
func (w *Writer) record(data []byte) error {
	var head [12]byte
	binary.LittleEndian.PutUint64(head[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(head[8:], MaskedCRC(head[:8]))
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], MaskedCRC(data))
	w.w.Write(head[:])
	w.w.Write(data)
	_, err := w.w.Write(tail[:])
	if err != nil {
		return fmt.Errorf("tensorboard: %w", err)
	}
	return nil
}

// Flush writes what is buffered to the file, where TensorBoard picks it up.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("tensorboard: %w", err)
	}
	return nil
}

// Close flushes and closes the file.
func (w *Writer) Close() error {
	err := w.Flush()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("tensorboard: %w", cerr)
	}
	return err
}

// Protocol buffer wire types.
const (
	wireVarint = 0
	wire64     = 1
	wireBytes  = 2
	wire32     = 5
)

func appendKey(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field<<3|wire))
}

func appendString(b []byte, field int, s string) []byte {
	b = appendKey(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendEvent encodes an Event: the wall time, the step, and either the file version or a
// summary of scalars.
func appendEvent(b []byte, at time.Time, step int64, version string, scalars []Scalar) []byte {
	b = appendKey(b, 1, wire64)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(at.Unix())+float64(at.Nanosecond())/1e9))
	if step != 0 {
		b = appendKey(b, 2, wireVarint)
		b = binary.AppendUvarint(b, uint64(step))
	}
	if version != "" {
		b = appendString(b, 3, version)
	}
	if len(scalars) == 0 {
		return b
	}
	size := 0
	for _, s := range scalars {
		v := valueSize(s.Tag)
		size += 1 + uvarintLen(v) + v
	}
	b = appendKey(b, 5, wireBytes)
	b = binary.AppendUvarint(b, uint64(size))
	for _, s := range scalars {
		b = appendKey(b, 1, wireBytes)
		b = binary.AppendUvarint(b, uint64(valueSize(s.Tag)))
		b = appendString(b, 1, s.Tag)
		b = appendKey(b, 2, wire32)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(s.Value)))
	}
	return b
}

// valueSize is the encoded size of a Value with this tag: the tag field and the 4-byte float.
func valueSize(tag string) int { return 1 + uvarintLen(len(tag)) + len(tag) + 1 + 4 }

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}
