package text

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// awkward is text a tokenizer must still round-trip: invalid UTF-8, NULs, long runs (longer
// than a chunk), every byte value.
func awkward() []byte {
	b := []byte("\xff\xfe\x00 x := \"caf\xc3\xa9\" \xe2\x82 \r\n\t\t" + strings.Repeat("a", 200) + strings.Repeat(" ", 100) + strings.Repeat("}", 70) + "\n")
	for c := range 256 {
		b = append(b, byte(c))
	}
	return b
}

func roundTrip(t *testing.T, tok Tokenizer, text []byte) []int32 {
	t.Helper()
	ids := tok.Encode(nil, text)
	for i, id := range ids {
		if id < 0 || int(id) >= tok.VocabSize() {
			t.Fatalf("%s: ids[%d] = %d outside the vocabulary of %d", tok.Name(), i, id, tok.VocabSize())
		}
	}
	back, err := tok.Decode(nil, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, text) {
		t.Fatalf("%s: Decode(Encode(x)) differs from x (%d bytes back, want %d)", tok.Name(), len(back), len(text))
	}
	return ids
}

func TestRoundTripBytes(t *testing.T) {
	text := concat(goDocs(t, "strings"))
	if ids := roundTrip(t, Bytes{}, text); len(ids) != len(text) {
		t.Errorf("%d ids for %d bytes", len(ids), len(text))
	}
	roundTrip(t, Bytes{}, awkward())
	roundTrip(t, Bytes{}, nil)
	// Encode and Decode append.
	ids := Bytes{}.Encode([]int32{7}, []byte("ab"))
	if !slices.Equal(ids, []int32{7, 'a', 'b'}) {
		t.Errorf("Encode appends: %v", ids)
	}
	b, _ := Bytes{}.Decode([]byte("x"), []int32{'y'})
	if string(b) != "xy" {
		t.Errorf("Decode appends: %q", b)
	}
}

func TestRoundTripBPE(t *testing.T) {
	bpe, _ := sharedBPE(t)
	for _, d := range goDocs(t, "strings") {
		roundTrip(t, bpe, d.Text)
	}
	roundTrip(t, bpe, awkward())
	roundTrip(t, bpe, nil)
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		const alphabet = " \t\nab_x(){}.:=\"\xff"
		b := make([]byte, r.IntN(300))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		roundTrip(t, bpe, b)
	}
	ids := bpe.Encode([]int32{-5}, []byte("ab"))
	if ids[0] != -5 || len(ids) < 2 {
		t.Errorf("Encode appends: %v", ids)
	}
}

// TestBPECompresses measures bytes per token on held-out files: the validation and test
// splits of the folders the BPE was trained on.
func TestBPECompresses(t *testing.T) {
	bpe, docs := sharedBPE(t)
	sp := SplitDocs(docs)
	held := append(slices.Clone(sp[Validation]), sp[Test]...)
	for name, ds := range map[string][]Doc{"train": sp[Train], "held-out": held} {
		toks := Tokenize(bpe, ds)
		ratio := float64(toks.Bytes()) / float64(len(toks.IDs))
		t.Logf("%s: %d bytes, %d tokens, %.2f bytes per token", name, toks.Bytes(), len(toks.IDs), ratio)
		if ratio <= 2 {
			t.Errorf("%s: %.2f bytes per token at vocabulary 1024, want more than 2", name, ratio)
		}
	}
}

// naiveEncode applies every merge in order to every occurrence, left to right: the definition
// Encode must agree with.
func naiveEncode(b *BPE, text []byte) []int32 {
	var out []int32
	for i := 0; i < len(text); {
		j := chunkEnd(text, i)
		ids := Bytes{}.Encode(nil, text[i:j])
		for k, m := range b.merges {
			var next []int32
			for p := 0; p < len(ids); {
				if p+1 < len(ids) && ids[p] == m.a && ids[p+1] == m.b {
					next = append(next, int32(ByteVocab+k))
					p += 2
				} else {
					next = append(next, ids[p])
					p++
				}
			}
			ids = next
		}
		out = append(out, ids...)
		i = j
	}
	return out
}

func TestBPEEncodeMatchesDefinition(t *testing.T) {
	bpe := smallBPE(t)
	text := append(concat(goDocs(t, "strings"))[:20000], awkward()...)
	want := naiveEncode(bpe, text)
	for pass := range 2 { // the second pass reads the chunk cache
		if got := bpe.Encode(nil, text); !slices.Equal(got, want) {
			t.Fatalf("pass %d: Encode differs from applying the merges in order", pass)
		}
	}
}

func TestBPEConcurrentEncode(t *testing.T) {
	bpe, err := TrainBPE(goDocs(t, "strings"), 400)
	if err != nil {
		t.Fatal(err)
	}
	docs := goDocs(t, "bufio", "strings")
	want := make([][]int32, len(docs))
	for i, d := range docs {
		want[i] = naiveEncode(bpe, d.Text)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := range docs {
				i := (k + g) % len(docs)
				if got := bpe.Encode(nil, docs[i].Text); !slices.Equal(got, want[i]) {
					t.Errorf("goroutine %d: %s encodes differently", g, docs[i].Path)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestBPEDeterministic(t *testing.T) {
	docs := SplitDocs(goDocs(t, "strings", "bufio", "fmt"))[Train]
	a, err := TrainBPE(docs, 700)
	if err != nil {
		t.Fatal(err)
	}
	// The same docs in another order: the result depends on paths and bytes only.
	rev := slices.Clone(docs)
	slices.Reverse(rev)
	b, err := TrainBPE(rev, 700)
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := a.MarshalBinary()
	mb, _ := b.MarshalBinary()
	if !bytes.Equal(ma, mb) {
		t.Fatal("two trainings on the same docs learned different merges")
	}
	if a.VocabSize() != 700 {
		t.Errorf("VocabSize %d, want 700", a.VocabSize())
	}
}

func TestTrainBPEEdges(t *testing.T) {
	docs := []Doc{{Path: "a", Text: []byte("ab cd")}}
	for _, v := range []int{-1, 0, 255, MaxVocab + 1} {
		if _, err := TrainBPE(docs, v); !errors.Is(err, ErrVocabSize) {
			t.Errorf("vocab %d: err %v, want ErrVocabSize", v, err)
		}
	}
	// Chunks "ab" and " cd": three pairs of count 1, the smallest (a, b) first: (' ', 'c').
	b, err := TrainBPE(docs, 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := []pair{{' ', 'c'}, {'a', 'b'}, {256, 'd'}}
	if !slices.Equal(b.merges, want) {
		t.Errorf("merges %v, want %v", b.merges, want)
	}
	if b.VocabSize() != 259 {
		t.Errorf("a corpus that runs out of pairs: VocabSize %d, want 259", b.VocabSize())
	}
	if ids := b.Encode(nil, []byte("ab cd")); !slices.Equal(ids, []int32{257, 258}) {
		t.Errorf("Encode: %v", ids)
	}
	// The most frequent pair wins; overlapping runs merge left to right.
	b, err = TrainBPE([]Doc{{Path: "x", Text: []byte("aaa xy xy")}}, 257)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.merges, []pair{{' ', 'x'}}) {
		t.Errorf("merges %v, want [( x)]", b.merges)
	}
	b, err = TrainBPE([]Doc{{Path: "x", Text: []byte("aaaaa aaa")}}, 258)
	if err != nil {
		t.Fatal(err)
	}
	// "aaaaa" and " aaa" hold (a, a) 6 times; after it, "aaaaa" is (256 256 a) and " aaa" is
	// (' ' 256 a), so (256, a) comes next, twice, before (256, 256) once.
	if !slices.Equal(b.merges, []pair{{'a', 'a'}, {256, 'a'}}) {
		t.Errorf("merges %v, want [(a a) (256 a)]", b.merges)
	}
	if got, want := b.Encode(nil, []byte("aaaaa")), []int32{256, 257}; !slices.Equal(got, want) {
		t.Errorf("Encode(aaaaa) = %v, want %v", got, want)
	}
	// No docs, or vocabulary 256: no merges, encodes like Bytes.
	for _, ds := range [][]Doc{nil, docs} {
		b, err := TrainBPE(ds, 256)
		if err != nil || b.VocabSize() != 256 {
			t.Fatalf("TrainBPE(vocab 256) = %v, %v", b, err)
		}
		roundTrip(t, b, awkward())
	}
	var zero BPE
	roundTrip(t, &zero, awkward())
}

// TestTrainerCounts checks the incremental pair counts against a count from scratch after
// many merges.
func TestTrainerCounts(t *testing.T) {
	tr := newTrainer(trainingText(goDocs(t, "strings", "bufio"), TrainBytesLimit))
	tr.run(500)
	want := map[uint32]int64{}
	for w := range tr.count {
		s := tr.word(int32(w))
		for i := 0; i+1 < len(s); i++ {
			want[pairKey(s[i], s[i+1])] += tr.count[w]
		}
	}
	for k, i := range tr.pairs {
		if got := tr.stats[i].count; got != want[k] {
			t.Fatalf("pair (%d, %d): count %d, recounted %d", k>>16, k&0xffff, got, want[k])
		}
		delete(want, k)
	}
	if len(want) != 0 {
		t.Fatalf("%d pairs present but never counted", len(want))
	}
}

func TestNewTokenizer(t *testing.T) {
	docs := []Doc{{Path: "a", Text: []byte("hello hello world")}}
	for _, v := range []int{0, 256} {
		tok, err := NewTokenizer("byte", nil, v)
		if err != nil || tok.Name() != "byte" || tok.VocabSize() != 256 {
			t.Errorf(`NewTokenizer("byte", %d) = %v, %v`, v, tok, err)
		}
	}
	if _, err := NewTokenizer("byte", nil, 512); !errors.Is(err, ErrVocabSize) {
		t.Errorf("byte with vocab 512: err %v, want ErrVocabSize", err)
	}
	tok, err := NewTokenizer("bpe", docs, 260)
	if err != nil || tok.Name() != "bpe" || tok.VocabSize() != 260 {
		t.Errorf(`NewTokenizer("bpe", 260) = %v, %v`, tok, err)
	}
	if _, err := NewTokenizer("bpe", docs, 10); !errors.Is(err, ErrVocabSize) {
		t.Errorf("bpe with vocab 10: err %v, want ErrVocabSize", err)
	}
	if _, err := NewTokenizer("wordpiece", docs, 0); !errors.Is(err, ErrUnknownTokenizer) || !strings.Contains(err.Error(), "wordpiece") {
		t.Errorf("unknown name: err %v, want ErrUnknownTokenizer naming it", err)
	}
}

func TestDecodeBadToken(t *testing.T) {
	bpe := smallBPE(t)
	for _, tok := range []Tokenizer{Bytes{}, bpe} {
		for _, id := range []int32{-1, int32(tok.VocabSize()), 1 << 20} {
			dst, err := tok.Decode([]byte("keep"), []int32{'a', id})
			if !errors.Is(err, ErrBadToken) {
				t.Errorf("%s: Decode(%d): err %v, want ErrBadToken", tok.Name(), id, err)
			}
			if string(dst) != "keep" {
				t.Errorf("%s: Decode(%d) returned dst %q, want it unchanged", tok.Name(), id, dst)
			}
		}
	}
}

func sameTokenizer(t *testing.T, a, b Tokenizer) {
	t.Helper()
	ma, _ := a.MarshalBinary()
	mb, _ := b.MarshalBinary()
	if a.Name() != b.Name() || a.VocabSize() != b.VocabSize() || !bytes.Equal(ma, mb) {
		t.Fatalf("tokenizers differ: %s/%d and %s/%d", a.Name(), a.VocabSize(), b.Name(), b.VocabSize())
	}
	text := awkward()
	if !slices.Equal(a.Encode(nil, text), b.Encode(nil, text)) {
		t.Fatal("tokenizers encode differently")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	bpe, _ := sharedBPE(t)
	for _, tok := range []Tokenizer{Bytes{}, smallBPE(t), bpe, &BPE{}} {
		b, err := tok.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if want := tokHeaderLen + 4*(tok.VocabSize()-ByteVocab) + tokCRCLen; len(b) != want {
			t.Errorf("%s/%d: %d bytes, want %d", tok.Name(), tok.VocabSize(), len(b), want)
		}
		back, err := ParseTokenizer(b)
		if err != nil {
			t.Fatalf("%s/%d: %v", tok.Name(), tok.VocabSize(), err)
		}
		sameTokenizer(t, tok, back)
	}
}

// rawTokenizer builds an encoding with a correct checksum, to reach the checks behind it.
func rawTokenizer(kind byte, vocab uint32, merges []pair) []byte {
	b := append([]byte(tokMagic), tokVersion, kind)
	b = binary.LittleEndian.AppendUint32(b, vocab)
	for _, m := range merges {
		b = binary.LittleEndian.AppendUint16(b, uint16(m.a))
		b = binary.LittleEndian.AppendUint16(b, uint16(m.b))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func wantBadVocab(t *testing.T, what string, b []byte, msg string) {
	t.Helper()
	tok, err := ParseTokenizer(b)
	if !errors.Is(err, ErrBadVocab) {
		t.Fatalf("%s: ParseTokenizer = %v, %v; want an error wrapping ErrBadVocab", what, tok, err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: error %q does not say %q", what, err, msg)
	}
}

func TestParseCorrupt(t *testing.T) {
	good, _ := smallBPE(t).MarshalBinary()
	for i := range good {
		for _, flip := range []byte{0x01, 0x80, 0xff} {
			b := slices.Clone(good)
			b[i] ^= flip
			wantBadVocab(t, "flipped byte", b, "")
		}
	}
	for n := range len(good) {
		wantBadVocab(t, "truncated", good[:n], "truncated")
	}
	byteEnc, _ := Bytes{}.MarshalBinary()
	for n := range len(byteEnc) {
		wantBadVocab(t, "truncated byte tokenizer", byteEnc[:n], "")
	}
	wantBadVocab(t, "trailing byte", append(slices.Clone(good), 0), "trailing")
	wantBadVocab(t, "bad magic", append([]byte("GIF8"), good[4:]...), "magic")
	wantBadVocab(t, "empty", nil, "truncated")

	crcLast := func(b []byte) []byte { // rewrite the checksum after an edit
		body := b[:len(b)-tokCRCLen]
		return binary.LittleEndian.AppendUint32(slices.Clone(body), crc32.ChecksumIEEE(body))
	}
	b := slices.Clone(good)
	b[4] = 2
	wantBadVocab(t, "version", crcLast(b), "version")
	wantBadVocab(t, "kind", rawTokenizer(9, 256, nil), "kind")
	wantBadVocab(t, "byte kind with merges", rawTokenizer(kindByte, 257, []pair{{1, 2}}), "byte tokenizer")
	wantBadVocab(t, "vocab below 256", rawTokenizer(kindBPE, 255, nil), "outside")
	wantBadVocab(t, "vocab too big", rawTokenizer(kindBPE, MaxVocab+1, nil), "outside")
	wantBadVocab(t, "vocab 2^32-1", rawTokenizer(kindBPE, ^uint32(0), nil), "outside")
	// A header claiming the largest vocabulary, over a few bytes: refused before allocating.
	wantBadVocab(t, "lying length", rawTokenizer(kindBPE, MaxVocab, []pair{{1, 2}}), "truncated")
	wantBadVocab(t, "later id", rawTokenizer(kindBPE, 258, []pair{{1, 2}, {3, 258}}), "not below")
	wantBadVocab(t, "own id", rawTokenizer(kindBPE, 257, []pair{{256, 1}}), "not below")
	wantBadVocab(t, "repeated merge", rawTokenizer(kindBPE, 258, []pair{{1, 2}, {1, 2}}), "repeats")
	// Doubling tokens: 2, 4, 8, ... bytes. A token longer than a chunk is refused.
	var doubling []pair
	for i := range 10 {
		doubling = append(doubling, pair{int32(ByteVocab + i - 1), int32(ByteVocab + i - 1)})
	}
	doubling[0] = pair{'a', 'a'}
	wantBadVocab(t, "overlong token", rawTokenizer(kindBPE, uint32(ByteVocab+len(doubling)), doubling), "longer than")
	// The longest tokens allowed parse.
	if _, err := ParseTokenizer(rawTokenizer(kindBPE, uint32(ByteVocab+6), doubling[:6])); err != nil {
		t.Errorf("tokens of up to %d bytes: %v", maxChunk, err)
	}
	// 65535 is the largest id; a vocabulary of 65536 must be able to hold it.
	many := make([]pair, MaxVocab-ByteVocab)
	for i := range many {
		many[i] = pair{int32(i / 256), int32(i % 256)}
	}
	tok, err := ParseTokenizer(rawTokenizer(kindBPE, MaxVocab, many))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, tok, awkward())
	if _, err := tok.Decode(nil, []int32{MaxVocab - 1}); err != nil {
		t.Errorf("Decode(65535): %v", err)
	}
}
