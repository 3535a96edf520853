package text

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Errors of Windows.
var (
	ErrIndexOutOfRange = errors.New("text: window index out of range")
	ErrBufferLength    = errors.New("text: buffer length does not match")
	ErrTooFewTokens    = errors.New("text: too few tokens for one window")
)

// separator ends every document in Tokens, so a model learns where a file stops and windows
// that span two files show it.
var separator = []byte("\n")

// Tokens is a tokenized corpus: the ids of every doc, each followed by the ids of "\n". The
// ids are uint16s, as no vocabulary exceeds MaxVocab = 2^16: half the memory of int32s for a
// stream as long as the corpus (the Go source is 80 MB of text).
type Tokens struct {
	IDs []uint16

	tok   Tokenizer
	bytes int64
}

// Tokenize encodes docs with t. The docs are taken in the order of the sha256 of their paths,
// not as given, so that every peer builds the same stream from the same files however it
// listed them; docs with equal paths (the pieces of a one-file corpus) keep their order.
func Tokenize(t Tokenizer, docs []Doc) *Tokens {
	sep := t.Encode(nil, separator)
	var n int64
	for _, d := range docs {
		n += int64(len(d.Text) + len(separator))
	}
	// No token is shorter than a byte, so n ids hold the stream: one allocation that never
	// grows, where doubling would copy the stream several times over. A tokenizer that
	// compresses leaves most of it untouched (pages never written are never resident); the
	// stream moves into a slice of its own size when that saves more than a quarter.
	ids := make([]uint16, 0, n)
	var doc []int32 // one doc's ids, reused
	for _, i := range sortedByPathHash(docs) {
		doc = t.Encode(doc[:0], docs[i].Text)
		doc = append(doc, sep...)
		for _, id := range doc {
			ids = append(ids, uint16(id))
		}
	}
	if int64(len(ids)) < n*3/4 {
		ids = append(make([]uint16, 0, len(ids)), ids...)
	}
	return &Tokens{IDs: ids, tok: t, bytes: n}
}

// Tokenizer is the tokenizer the ids came from.
func (t *Tokens) Tokenizer() Tokenizer { return t.tok }

// Bytes is the number of text bytes the tokens encode, separators included: the denominator
// of bits per byte, which compares models across tokenizers.
func (t *Tokens) Bytes() int64 { return t.bytes }

// Digest is the hex sha256 of the tokenizer's MarshalBinary followed by the ids as
// little-endian uint32s. Peers compare digests to know that they train on the same data with
// the same tokenizer. It hashes all the ids on every call.
func (t *Tokens) Digest() string {
	h := sha256.New()
	if t.tok != nil {
		b, err := t.tok.MarshalBinary()
		if err != nil {
			// Still a digest, and one that no successful encoding can collide with.
			b = []byte("error: " + err.Error())
		}
		h.Write(b) // self-delimiting: its header gives its length

	}
	var buf [4096]byte
	ids := t.IDs
	for len(ids) > 0 {
		k := min(len(ids), len(buf)/4)
		for i, id := range ids[:k] {
			binary.LittleEndian.PutUint32(buf[4*i:], uint32(id))
		}
		h.Write(buf[:4*k])
		ids = ids[k:]
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Windows are the samples of a language model cut from Tokens: sample i reads the block
// IDs[i*T : i*T+T] and its labels are the next tokens, IDs[i*T+1 : i*T+T+1]. The windows do
// not overlap, so an epoch sees every token once.
type Windows struct {
	ids   []uint16
	block int
	n     int
}

// NewWindows cuts t into windows of blockSize tokens, at most limit of them when limit > 0.
// It is an error when blockSize < 1 or the tokens do not fill one window (blockSize+1 ids).
func NewWindows(t *Tokens, blockSize, limit int) (*Windows, error) {
	if blockSize < 1 {
		return nil, fmt.Errorf("text: block size %d, want at least 1", blockSize)
	}
	n := 0
	if len(t.IDs) > 0 {
		n = (len(t.IDs) - 1) / blockSize
	}
	if n < 1 {
		return nil, fmt.Errorf("%w: %d tokens, a window of %d needs %d", ErrTooFewTokens, len(t.IDs), blockSize, blockSize+1)
	}
	if limit > 0 {
		n = min(n, limit)
	}
	return &Windows{ids: t.IDs, block: blockSize, n: n}, nil
}

// Len is the number of windows.
func (w *Windows) Len() int { return w.n }

// SampleSize is the block size: the number of inputs of a sample.
func (w *Windows) SampleSize() int { return w.block }

// LabelsPerSample is the block size too: one next token per input position.
func (w *Windows) LabelsPerSample() int { return w.block }

// Gather writes window idx[j] into x[j*T:(j+1)*T] as float32 token ids (exact: ids are below
// 2^16) and its next tokens into labels[j*T:(j+1)*T]. The indices are int32s, as in
// data.Dataset.Gather, so one sample interface serves both. It needs len(x) == len(labels) ==
// len(idx)*T, checks every index before writing anything, and allocates nothing.
func (w *Windows) Gather(idx []int32, x []float32, labels []int32) error {
	T := w.block
	if len(x) != len(idx)*T {
		return fmt.Errorf("%w: x holds %d values, want %d windows x %d = %d", ErrBufferLength, len(x), len(idx), T, len(idx)*T)
	}
	if len(labels) != len(idx)*T {
		return fmt.Errorf("%w: labels holds %d values, want %d windows x %d = %d", ErrBufferLength, len(labels), len(idx), T, len(idx)*T)
	}
	for j, i := range idx {
		if i < 0 || int(i) >= w.n {
			return fmt.Errorf("%w: idx[%d] = %d, %d windows", ErrIndexOutOfRange, j, i, w.n)
		}
	}
	for j, i := range idx {
		src := w.ids[int(i)*T : int(i)*T+T+1]
		dx, dl := x[j*T:j*T+T], labels[j*T:j*T+T]
		for k := range dx {
			dx[k] = float32(src[k])
			dl[k] = int32(src[k+1])
		}
	}
	return nil
}
