package text

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseTokenizer feeds ParseTokenizer arbitrary bytes: it must not panic, anything it
// refuses must wrap ErrBadVocab, and anything it accepts must be a working tokenizer that
// encodes back to the same bytes.
func FuzzParseTokenizer(f *testing.F) {
	b, _ := Bytes{}.MarshalBinary()
	f.Add(b)
	small, err := TrainBPE([]Doc{{Path: "a.go", Text: []byte("package main\n\nfunc main() {\n\tprintln(\"hello, world\")\n}\n")}}, 290)
	if err != nil {
		f.Fatal(err)
	}
	b, _ = small.MarshalBinary()
	f.Add(b)
	f.Add(rawTokenizer(kindBPE, 258, []pair{{'a', 'b'}, {256, 256}}))
	f.Add([]byte(tokMagic))
	sample := append([]byte("func (s *T) String() string { return \"é\\xff\" }\n\t\t// done"), 0xff, 0, 0x80)
	f.Fuzz(func(t *testing.T, in []byte) {
		tok, err := ParseTokenizer(in)
		if err != nil {
			if !errors.Is(err, ErrBadVocab) {
				t.Fatalf("error %v does not wrap ErrBadVocab", err)
			}
			return
		}
		out, err := tok.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, in) {
			t.Fatal("MarshalBinary of a parsed tokenizer differs from its input")
		}
		again, err := ParseTokenizer(out)
		if err != nil {
			t.Fatal(err)
		}
		if again.Name() != tok.Name() || again.VocabSize() != tok.VocabSize() {
			t.Fatalf("re-parsed %s/%d, first %s/%d", again.Name(), again.VocabSize(), tok.Name(), tok.VocabSize())
		}
		ids := tok.Encode(nil, sample)
		for _, id := range ids {
			if id < 0 || int(id) >= tok.VocabSize() {
				t.Fatalf("Encode made id %d, vocabulary %d", id, tok.VocabSize())
			}
		}
		back, err := tok.Decode(nil, ids)
		if err != nil || !bytes.Equal(back, sample) {
			t.Fatalf("Decode(Encode(sample)) = %q, %v", back, err)
		}
		if ids2 := again.Encode(nil, sample); len(ids2) != len(ids) {
			t.Fatal("the re-parsed tokenizer encodes differently")
		}
	})
}
