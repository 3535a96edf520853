package text

import (
	"sync"
	"testing"
)

// goTreeTrain is the Train split of the whole Go tree (its .go files), read once per binary
// for the benchmarks that measure the real corpus.
var goTreeTrain = sync.OnceValues(func() ([]Doc, error) {
	dir, err := GoSourceDir()
	if err != nil {
		return nil, err
	}
	docs, err := ReadCorpus(dir, true)
	if err != nil {
		return nil, err
	}
	return SplitDocs(docs)[Train], nil
})

func docBytes(docs []Doc) int64 {
	var n int64
	for _, d := range docs {
		n += int64(len(d.Text))
	}
	return n
}

// BenchmarkTrainBPE trains on a few MB (the tests' corpus) and on the Go tree's whole Train
// split at the vocabulary of the language model. SetBytes makes MB/s the training text read.
func BenchmarkTrainBPE(b *testing.B) {
	b.Run("few-MB/vocab=1024", func(b *testing.B) {
		docs := SplitDocs(goDocs(b, trainFolders...))[Train]
		b.SetBytes(docBytes(docs))
		for b.Loop() {
			if _, err := TrainBPE(docs, 1024); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-tree-train/vocab=4096", func(b *testing.B) {
		docs, err := goTreeTrain()
		if err != nil {
			b.Skip(err)
		}
		b.SetBytes(min(docBytes(docs), TrainBytesLimit))
		for b.Loop() {
			if _, err := TrainBPE(docs, 4096); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeBPE measures Encode with the chunk cache already filled (the steady state of
// tokenizing a corpus) and empty (a fresh tokenizer, every chunk new to it), and Tokenize of
// the Go tree's Train split with a vocabulary of 4096.
func BenchmarkEncodeBPE(b *testing.B) {
	bpe, docs := sharedBPE(b)
	text := concat(docs)
	b.Run("warm", func(b *testing.B) {
		dst := bpe.Encode(nil, text)
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			dst = bpe.Encode(dst[:0], text)
		}
	})
	b.Run("cold", func(b *testing.B) {
		enc, _ := bpe.MarshalBinary()
		dst := bpe.Encode(nil, text)
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			b.StopTimer()
			fresh, err := ParseTokenizer(enc)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			dst = fresh.Encode(dst[:0], text)
		}
	})
	b.Run("go-tree-train/vocab=4096/Tokenize", func(b *testing.B) {
		docs, err := goTreeTrain()
		if err != nil {
			b.Skip(err)
		}
		bpe, err := TrainBPE(docs, 4096)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(docBytes(docs))
		var toks *Tokens
		for b.Loop() {
			toks = Tokenize(bpe, docs)
		}
		b.ReportMetric(float64(toks.Bytes())/float64(len(toks.IDs)), "bytes/token")
	})
}
