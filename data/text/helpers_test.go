package text

import (
	"path/filepath"
	"sync"
	"testing"
)

// goDocs reads the .go files of the given folders of the Go tree, with paths relative to its
// src folder. It skips the test when the tree is missing: a stripped Go installation is not a
// bug of this package.
func goDocs(t testing.TB, folders ...string) []Doc {
	t.Helper()
	dir, err := GoSourceDir()
	if err != nil {
		t.Skipf("no Go source tree: %v", err)
	}
	var docs []Doc
	for _, f := range folders {
		d, err := ReadCorpus(filepath.Join(dir, filepath.FromSlash(f)), true)
		if err != nil {
			t.Fatal(err)
		}
		for i := range d {
			d[i].Path = f + "/" + d[i].Path
		}
		docs = append(docs, d...)
	}
	return docs
}

// trainFolders are a few MB of varied Go source: enough for a vocabulary of 1024, quick to
// train on even under the race detector.
var trainFolders = []string{"go", "net/http"}

var shared struct {
	once    sync.Once
	docs    []Doc
	bpe1024 *BPE
	err     error
}

// sharedBPE is a BPE of 1024 ids trained once per test binary on the Train split of
// trainFolders, with those docs.
func sharedBPE(t testing.TB) (*BPE, []Doc) {
	t.Helper()
	docs := goDocs(t, trainFolders...)
	shared.once.Do(func() {
		shared.docs = docs
		shared.bpe1024, shared.err = TrainBPE(SplitDocs(docs)[Train], 1024)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.bpe1024, shared.docs
}

// smallBPE trains a vocabulary of 300 on the strings package: the encoding is short enough to
// corrupt at every byte.
func smallBPE(t testing.TB) *BPE {
	t.Helper()
	b, err := TrainBPE(goDocs(t, "strings"), 300)
	if err != nil {
		t.Fatal(err)
	}
	if b.VocabSize() != 300 {
		t.Fatalf("VocabSize %d, want 300", b.VocabSize())
	}
	return b
}

func concat(docs []Doc) []byte {
	var b []byte
	for _, d := range docs {
		b = append(b, d.Text...)
	}
	return b
}

// int32s is ids as the tokenizers' Decode takes them.
func int32s(ids []uint16) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}
