package text

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// Errors of the tokenizers.
var (
	ErrBadVocab         = errors.New("text: bad vocabulary")
	ErrVocabSize        = errors.New("text: vocabulary size out of range")
	ErrBadToken         = errors.New("text: token id out of range")
	ErrUnknownTokenizer = errors.New("text: unknown tokenizer")
)

// Tokenizer maps text to token ids and back. Decode(Encode(x)) == x for every byte string x,
// valid UTF-8 or not. Implementations here are safe for concurrent use.
type Tokenizer interface {
	Name() string // "byte" or "bpe"
	// VocabSize is one more than the largest id Encode can return.
	VocabSize() int
	// Encode appends the ids of text to dst.
	Encode(dst []int32, text []byte) []int32
	// Decode appends the bytes of ids to dst; an id outside [0, VocabSize()) is an error
	// wrapping ErrBadToken, and dst comes back as it was.
	Decode(dst []byte, ids []int32) ([]byte, error)
	// MarshalBinary encodes the tokenizer for ParseTokenizer.
	MarshalBinary() ([]byte, error)
}

// ByteVocab is the vocabulary of Bytes and the number of byte tokens at the start of every BPE.
const ByteVocab = 256

// MaxVocab is the largest vocabulary: ids must fit the uint16 fields of the encoding.
const MaxVocab = 1 << 16

// Bytes is the byte-level tokenizer: token i is byte i. It needs no training and never meets
// an unknown input, which makes it the baseline every other tokenizer is measured against.
type Bytes struct{}

// Name is "byte".
func (Bytes) Name() string { return "byte" }

// VocabSize is 256.
func (Bytes) VocabSize() int { return ByteVocab }

// Encode appends one id per byte.
func (Bytes) Encode(dst []int32, text []byte) []int32 {
	dst = slices.Grow(dst, len(text))
	for _, c := range text {
		dst = append(dst, int32(c))
	}
	return dst
}

// Decode appends one byte per id.
func (Bytes) Decode(dst []byte, ids []int32) ([]byte, error) {
	n := len(dst)
	dst = slices.Grow(dst, len(ids))
	for i, id := range ids {
		if id < 0 || id >= ByteVocab {
			return dst[:n], badToken(i, id, ByteVocab)
		}
		dst = append(dst, byte(id))
	}
	return dst, nil
}

// MarshalBinary encodes the byte tokenizer: a header and a checksum, no merges.
func (Bytes) MarshalBinary() ([]byte, error) { return marshalTokenizer(kindByte, nil), nil }

// NewTokenizer builds the tokenizer called name: "byte" (vocab must be 0 or 256, and docs
// are not read) or "bpe" (trained on docs by TrainBPE to vocab ids).
func NewTokenizer(name string, docs []Doc, vocab int) (Tokenizer, error) {
	switch name {
	case "byte":
		if vocab != 0 && vocab != ByteVocab {
			return nil, fmt.Errorf("%w: the byte tokenizer has %d ids, not %d", ErrVocabSize, ByteVocab, vocab)
		}
		return Bytes{}, nil
	case "bpe":
		return TrainBPE(docs, vocab)
	}
	return nil, fmt.Errorf("%w %q: want \"byte\" or \"bpe\"", ErrUnknownTokenizer, name)
}

// The binary encoding of a tokenizer, all integers little-endian:
//
//	magic   [4]byte "TRTK"
//	version uint8   1
//	kind    uint8   1 byte, 2 bpe
//	vocab   uint32  256 for byte; 256..65536 for bpe
//	merges  [vocab-256][2]uint16  bpe only: merge i makes id 256+i from two earlier ids
//	crc     uint32  crc32 (IEEE) of everything before it
//
// The merges are the whole of a BPE: everything else is derived from them, so two peers
// holding the same bytes tokenize identically.
const (
	tokMagic     = "TRTK"
	tokVersion   = 1
	kindByte     = 1
	kindBPE      = 2
	tokHeaderLen = 4 + 1 + 1 + 4
	tokCRCLen    = 4
)

func marshalTokenizer(kind byte, merges []pair) []byte {
	b := make([]byte, 0, tokHeaderLen+4*len(merges)+tokCRCLen)
	b = append(b, tokMagic...)
	b = append(b, tokVersion, kind)
	b = binary.LittleEndian.AppendUint32(b, uint32(ByteVocab+len(merges)))
	for _, m := range merges {
		b = binary.LittleEndian.AppendUint16(b, uint16(m.a))
		b = binary.LittleEndian.AppendUint16(b, uint16(m.b))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// ParseTokenizer decodes the output of MarshalBinary of either kind. Anything malformed is an
// error wrapping ErrBadVocab that says what is wrong. The length the header declares is
// checked against the bytes present before anything is allocated, so a hostile header costs
// nothing; memory stays proportional to len(b).
func ParseTokenizer(b []byte) (Tokenizer, error) {
	if len(b) < len(tokMagic) {
		return nil, fmt.Errorf("%w: truncated: %d bytes, shorter than the magic", ErrBadVocab, len(b))
	}
	if string(b[:len(tokMagic)]) != tokMagic {
		return nil, fmt.Errorf("%w: bad magic %q, want %q", ErrBadVocab, b[:len(tokMagic)], tokMagic)
	}
	if len(b) < tokHeaderLen+tokCRCLen {
		return nil, fmt.Errorf("%w: truncated: %d bytes, shorter than header and checksum (%d)", ErrBadVocab, len(b), tokHeaderLen+tokCRCLen)
	}
	if v := b[4]; v != tokVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadVocab, v, tokVersion)
	}
	kind := b[5]
	vocab := binary.LittleEndian.Uint32(b[6:10])
	switch kind {
	case kindByte:
		if vocab != ByteVocab {
			return nil, fmt.Errorf("%w: byte tokenizer with vocabulary %d, want %d", ErrBadVocab, vocab, ByteVocab)
		}
	case kindBPE:
		if vocab < ByteVocab || vocab > MaxVocab {
			return nil, fmt.Errorf("%w: bpe vocabulary %d outside [%d, %d]", ErrBadVocab, vocab, ByteVocab, MaxVocab)
		}
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrBadVocab, kind)
	}
	nMerges := int(vocab) - ByteVocab
	want := tokHeaderLen + 4*nMerges + tokCRCLen
	if len(b) < want {
		return nil, fmt.Errorf("%w: truncated: %d bytes, vocabulary %d needs %d", ErrBadVocab, len(b), vocab, want)
	}
	if len(b) > want {
		return nil, fmt.Errorf("%w: %d trailing bytes after the checksum", ErrBadVocab, len(b)-want)
	}
	body := b[:want-tokCRCLen]
	if got, sum := crc32.ChecksumIEEE(body), binary.LittleEndian.Uint32(b[want-tokCRCLen:]); got != sum {
		return nil, fmt.Errorf("%w: checksum mismatch: crc32 %08x, header says %08x", ErrBadVocab, got, sum)
	}
	if kind == kindByte {
		return Bytes{}, nil
	}
	merges := make([]pair, nMerges)
	for i := range merges {
		off := tokHeaderLen + 4*i
		merges[i] = pair{
			a: int32(binary.LittleEndian.Uint16(body[off:])),
			b: int32(binary.LittleEndian.Uint16(body[off+2:])),
		}
	}
	bpe, err := newBPE(merges)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadVocab, err)
	}
	return bpe, nil
}

func badToken(i int, id int32, vocab int) error {
	return fmt.Errorf("%w: ids[%d] = %d, vocabulary of %d", ErrBadToken, i, id, vocab)
}
