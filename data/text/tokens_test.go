package text

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
)

func TestTokenizeOrderAndSeparators(t *testing.T) {
	docs := []Doc{{Path: "b.go", Text: []byte("bb")}, {Path: "a.go", Text: []byte("a")}, {Path: "c.go", Text: []byte("ccc")}}
	toks := Tokenize(Bytes{}, docs)
	order := slices.Clone(docs)
	slices.SortFunc(order, func(x, y Doc) int {
		hx, hy := sha256.Sum256([]byte(x.Path)), sha256.Sum256([]byte(y.Path))
		return bytes.Compare(hx[:], hy[:])
	})
	var want []byte
	for _, d := range order {
		want = append(append(want, d.Text...), '\n')
	}
	got, err := Bytes{}.Decode(nil, int32s(toks.IDs))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stream %q, want %q (docs by sha256 of path, each followed by a newline)", got, want)
	}
	if toks.Bytes() != int64(len(want)) {
		t.Errorf("Bytes() = %d, want %d", toks.Bytes(), len(want))
	}
	// The order docs come in does not matter...
	rev := slices.Clone(docs)
	slices.Reverse(rev)
	if Tokenize(Bytes{}, rev).Digest() != toks.Digest() {
		t.Error("the same docs in another order tokenize differently")
	}
	// ...except between docs of one path: the pieces of a one-file corpus keep theirs.
	same := []Doc{{Path: "f", Text: []byte("xy")}, {Path: "f", Text: []byte("z")}}
	var byteTok Tokenizer = Bytes{}
	if got, _ := byteTok.Decode(nil, int32s(Tokenize(byteTok, same).IDs)); string(got) != "xy\nz\n" {
		t.Errorf("docs of one path: %q, want %q", got, "xy\nz\n")
	}
	if toks := Tokenize(byteTok, nil); len(toks.IDs) != 0 || toks.Bytes() != 0 {
		t.Errorf("no docs: %d ids, %d bytes", len(toks.IDs), toks.Bytes())
	}
}

func TestTokenizeBPE(t *testing.T) {
	bpe, docs := sharedBPE(t)
	toks := Tokenize(bpe, docs)
	if toks.Tokenizer() != Tokenizer(bpe) {
		t.Error("Tokenizer() is not the tokenizer given")
	}
	got, err := bpe.Decode(nil, int32s(toks.IDs))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != toks.Bytes() {
		t.Fatalf("decoded %d bytes, Bytes() = %d", len(got), toks.Bytes())
	}
	var want []byte
	for _, i := range sortedByPathHash(docs) {
		want = append(append(want, docs[i].Text...), '\n')
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the decoded stream is not the docs in sha256 order of their paths")
	}
}

func TestDigest(t *testing.T) {
	docs := []Doc{{Path: "a", Text: []byte("hello, world")}}
	toks := Tokenize(Bytes{}, docs)
	h := sha256.New()
	m, _ := Bytes{}.MarshalBinary()
	h.Write(m)
	for _, id := range toks.IDs {
		h.Write(binary.LittleEndian.AppendUint32(nil, uint32(id)))
	}
	if want := hex.EncodeToString(h.Sum(nil)); toks.Digest() != want {
		t.Errorf("Digest() = %s, want sha256(MarshalBinary || ids) = %s", toks.Digest(), want)
	}
	if Tokenize(Bytes{}, docs).Digest() != toks.Digest() {
		t.Error("Digest is not reproducible")
	}
	bpe, err := TrainBPE(docs, 258)
	if err != nil {
		t.Fatal(err)
	}
	if Tokenize(bpe, docs).Digest() == toks.Digest() {
		t.Error("another tokenizer, same digest")
	}
	if Tokenize(Bytes{}, []Doc{{Path: "a", Text: []byte("hello, World")}}).Digest() == toks.Digest() {
		t.Error("other text, same digest")
	}
	big := &Tokens{IDs: make([]uint16, 5000)} // more than one buffer of the hasher
	for i := range big.IDs {
		big.IDs[i] = uint16(i)
	}
	h.Reset()
	for _, id := range big.IDs {
		h.Write(binary.LittleEndian.AppendUint32(nil, uint32(id)))
	}
	if want := hex.EncodeToString(h.Sum(nil)); big.Digest() != want {
		t.Error("Digest of 5000 ids without a tokenizer is not the sha256 of the ids")
	}
}

func seqTokens(n int) *Tokens {
	t := &Tokens{IDs: make([]uint16, n)}
	for i := range t.IDs {
		t.IDs[i] = uint16(i * 3)
	}
	return t
}

func TestWindowsGather(t *testing.T) {
	toks := seqTokens(23) // (23-1)/4 = 5 windows of 4
	w, err := NewWindows(toks, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	if w.Len() != 5 || w.SampleSize() != 4 || w.LabelsPerSample() != 4 {
		t.Fatalf("Len %d SampleSize %d LabelsPerSample %d, want 5 4 4", w.Len(), w.SampleSize(), w.LabelsPerSample())
	}
	idx := []int32{4, 0, 2, 4}
	x := make([]float32, len(idx)*4)
	labels := make([]int32, len(idx)*4)
	if err := w.Gather(idx, x, labels); err != nil {
		t.Fatal(err)
	}
	for j, i32 := range idx {
		i := int(i32)
		for k := range 4 {
			if want := float32(toks.IDs[i*4+k]); x[j*4+k] != want {
				t.Errorf("x[%d] = %v, want %v", j*4+k, x[j*4+k], want)
			}
			if want := int32(toks.IDs[i*4+k+1]); labels[j*4+k] != want {
				t.Errorf("labels[%d] = %d, want the next token %d", j*4+k, labels[j*4+k], want)
			}
			if k < 3 && float32(labels[j*4+k]) != x[j*4+k+1] {
				t.Errorf("window %d: labels are not the inputs shifted by one", i)
			}
		}
	}
	// Exactly enough tokens for one window, and the limit.
	if w, err := NewWindows(seqTokens(5), 4, 0); err != nil || w.Len() != 1 {
		t.Errorf("5 tokens, block 4: %v windows, %v", w, err)
	}
	if w, err := NewWindows(toks, 4, 2); err != nil || w.Len() != 2 {
		t.Errorf("limit 2: %v, %v", w, err)
	}
	if w, err := NewWindows(toks, 4, 100); err != nil || w.Len() != 5 {
		t.Errorf("limit 100: %v, %v", w, err)
	}
	if w, err := NewWindows(toks, 1, 0); err != nil || w.Len() != 22 {
		t.Errorf("block 1: %v, %v", w, err)
	}
}

func TestWindowsErrors(t *testing.T) {
	for _, bs := range []int{0, -3} {
		if _, err := NewWindows(seqTokens(100), bs, 0); err == nil {
			t.Errorf("block size %d: no error", bs)
		}
	}
	for _, n := range []int{0, 1, 4} {
		if _, err := NewWindows(seqTokens(n), 4, 0); !errors.Is(err, ErrTooFewTokens) {
			t.Errorf("%d tokens, block 4: err %v, want ErrTooFewTokens", n, err)
		}
	}
	w, err := NewWindows(seqTokens(23), 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	x, labels := make([]float32, 8), make([]int32, 8)
	for i := range x {
		x[i], labels[i] = -1, -1
	}
	for _, idx := range [][]int32{{0, -1}, {0, 3}, {1 << 30, 0}} { // 3: beyond the limit
		if err := w.Gather(idx, x, labels); !errors.Is(err, ErrIndexOutOfRange) {
			t.Errorf("Gather(%v): err %v, want ErrIndexOutOfRange", idx, err)
		}
	}
	if err := w.Gather([]int32{0, 1}, x[:7], labels); !errors.Is(err, ErrBufferLength) {
		t.Errorf("short x: err %v, want ErrBufferLength", err)
	}
	if err := w.Gather([]int32{0, 1}, x, make([]int32, 9)); !errors.Is(err, ErrBufferLength) {
		t.Errorf("long labels: err %v, want ErrBufferLength", err)
	}
	for i := range x {
		if x[i] != -1 || labels[i] != -1 {
			t.Fatal("a failed Gather wrote into the buffers")
		}
	}
	if err := w.Gather(nil, nil, nil); err != nil {
		t.Errorf("empty Gather: %v", err)
	}
	if n := testing.AllocsPerRun(10, func() { _ = w.Gather([]int32{0, 1}, x, labels) }); n != 0 {
		t.Errorf("Gather allocates %v times", n)
	}
}
