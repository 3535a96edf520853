package text

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestGoSourceDir(t *testing.T) {
	dir, err := GoSourceDir()
	if err != nil {
		t.Skipf("no Go source tree: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "strings", "strings.go")); err != nil {
		t.Fatalf("GoSourceDir() = %s, which has no strings/strings.go: %v", dir, err)
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func paths(docs []Doc) []string {
	var p []string
	for _, d := range docs {
		p = append(p, d.Path)
	}
	return p
}

func TestReadCorpusSkips(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"b.go":              "package b\n",
		"a.go":              "package a\n",
		"notes.txt":         "notes\n",
		"sub/c.go":          "package c\n",
		"sub/testdata/x.go": "package x\n",
		"testdata/y.go":     "package y\n",
		".git/z.go":         "package z\n",
		"_old/w.go":         "package w\n",
		".hidden.go":        "package h\n",
		"_skip.go":          "package s\n",
		"nul.go":            "package n\x00\n",
		"latin1.go":         "package l // caf\xe9\n",
		"empty.go":          "",
		"unicode.go":        "package u // café\n",
	})
	if err := os.Symlink(filepath.Join(root, "a.go"), filepath.Join(root, "link.go")); err != nil {
		t.Log("no symbolic links here:", err)
	}
	docs, err := ReadCorpus(root, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := paths(docs), []string{"a.go", "b.go", "sub/c.go", "unicode.go"}; !slices.Equal(got, want) {
		t.Errorf("goOnly: paths %q, want %q", got, want)
	}
	if string(docs[0].Text) != "package a\n" {
		t.Errorf("a.go reads %q", docs[0].Text)
	}
	docs, err = ReadCorpus(root, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := paths(docs), []string{"a.go", "b.go", "notes.txt", "sub/c.go", "unicode.go"}; !slices.Equal(got, want) {
		t.Errorf("all files: paths %q, want %q", got, want)
	}
	// A root that itself starts with "." is read: only names below it are skipped.
	t.Chdir(root)
	if docs, err := ReadCorpus(".", true); err != nil || len(docs) != 4 {
		t.Errorf(`ReadCorpus(".") = %d docs, %v; want 4`, len(docs), err)
	}
}

func TestReadCorpusSingleFile(t *testing.T) {
	root := writeFiles(t, map[string]string{"book.txt": "once upon a time\n", "bin.dat": "\x00\x01", "d/x.bin": "\xff\xfe"})
	docs, err := ReadCorpus(filepath.Join(root, "book.txt"), true) // goOnly does not apply to a named file
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].Path != "book.txt" || string(docs[0].Text) != "once upon a time\n" {
		t.Errorf("single file: %+v", docs)
	}
	if _, err := ReadCorpus(filepath.Join(root, "bin.dat"), false); !errors.Is(err, ErrNotText) {
		t.Errorf("binary file: err %v, want ErrNotText", err)
	}
	if _, err := ReadCorpus(filepath.Join(root, "d"), false); !errors.Is(err, ErrEmptyCorpus) {
		t.Errorf("folder of binary files: err %v, want ErrEmptyCorpus", err)
	}
	if _, err := ReadCorpus(t.TempDir(), true); !errors.Is(err, ErrEmptyCorpus) {
		t.Errorf("empty folder: err %v, want ErrEmptyCorpus", err)
	}
	if _, err := ReadCorpus(filepath.Join(root, "missing"), true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: err %v, want fs.ErrNotExist", err)
	}
}

func TestSplitString(t *testing.T) {
	for s, want := range map[Split]string{Train: "train", Validation: "validation", Test: "test", 7: "Split(7)"} {
		if s.String() != want {
			t.Errorf("Split(%d).String() = %q, want %q", int(s), s.String(), want)
		}
	}
}

func TestSplitOfFormula(t *testing.T) {
	for _, p := range []string{"", "strings/strings.go", "net/http/server.go", "a", "b"} {
		sum := sha256.Sum256([]byte(p))
		h := binary.BigEndian.Uint64(sum[:]) % 1000
		want := Test
		if h < 900 {
			want = Train
		} else if h < 950 {
			want = Validation
		}
		if got := SplitOf(p); got != want || SplitOf(p) != got {
			t.Errorf("SplitOf(%q) = %v, want %v (h = %d)", p, got, want, h)
		}
	}
}

// TestSplitOfGoTree checks the split fractions over the Go tree's files: the hash spreads
// real paths as it should.
func TestSplitOfGoTree(t *testing.T) {
	dir, err := GoSourceDir()
	if err != nil {
		t.Skipf("no Go source tree: %v", err)
	}
	var n [3]int
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".go") {
			rel, _ := filepath.Rel(dir, path)
			n[SplitOf(filepath.ToSlash(rel))]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	total := float64(n[0] + n[1] + n[2])
	if total < 1000 {
		t.Skipf("only %v Go files: too few to measure fractions", total)
	}
	for s, want := range []float64{0.90, 0.05, 0.05} {
		got := float64(n[s]) / total
		if got < want-0.025 || got > want+0.025 {
			t.Errorf("%v: %.3f of %v files, want about %.2f", Split(s), got, total, want)
		}
	}
	t.Logf("train/validation/test: %d/%d/%d files", n[0], n[1], n[2])
}

func TestSplitDocsMany(t *testing.T) {
	var docs []Doc
	for i := range 200 {
		docs = append(docs, Doc{Path: strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "/" + string(rune('0'+i%10)) + ".go", Text: []byte{byte(i)}})
	}
	sp := SplitDocs(docs)
	total := 0
	for s, ds := range sp {
		for _, d := range ds {
			if SplitOf(d.Path) != s {
				t.Errorf("%s in %v, SplitOf says %v", d.Path, s, SplitOf(d.Path))
			}
		}
		total += len(ds)
	}
	if total != len(docs) || len(sp) != 3 {
		t.Errorf("%d docs in %d splits, want %d in 3", total, len(sp), len(docs))
	}
}

func TestSplitDocsSingle(t *testing.T) {
	text := bytes.Repeat([]byte("0123456789"), 100)
	sp := SplitDocs([]Doc{{Path: "book.txt", Text: text}})
	lens := map[Split]int{Train: 900, Validation: 50, Test: 50}
	var joined []byte
	for _, s := range []Split{Train, Validation, Test} {
		if len(sp[s]) != 1 || sp[s][0].Path != "book.txt" || len(sp[s][0].Text) != lens[s] {
			t.Fatalf("%v: %d docs, want one of %d bytes named book.txt", s, len(sp[s]), lens[s])
		}
		joined = append(joined, sp[s][0].Text...)
	}
	if !bytes.Equal(joined, text) {
		t.Error("the three pieces do not make the original text")
	}
	// Appending to one piece must not overwrite the next.
	_ = append(sp[Train][0].Text, 'X')
	if sp[Validation][0].Text[0] != text[900] {
		t.Error("appending to the train piece overwrote the validation piece")
	}
	// A tiny file still gives three docs, some empty.
	sp = SplitDocs([]Doc{{Path: "t", Text: []byte("abc")}})
	if n := len(sp[Train][0].Text) + len(sp[Validation][0].Text) + len(sp[Test][0].Text); n != 3 {
		t.Errorf("tiny file: pieces hold %d bytes, want 3", n)
	}
}
