package text

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors of the corpus readers.
var (
	ErrNoGoSource  = errors.New("text: Go source tree not found")
	ErrEmptyCorpus = errors.New("text: no documents read")
	ErrNotText     = errors.New("text: not UTF-8 text")
)

// goEnvTimeout bounds `go env GOROOT`, which answers in milliseconds unless something is wrong.
const goEnvTimeout = 30 * time.Second

// GoSourceDir returns the src folder of the Go installation: `go env GOROOT` first, because
// the go command on PATH is the toolchain the user builds with, then runtime.GOROOT() (the
// root this binary was built from) when the go command is missing or fails. It is an error
// when the folder does not exist, as in an installation stripped of its sources.
func GoSourceDir() (string, error) {
	var tried []string
	if root, err := goEnvGOROOT(); err != nil {
		tried = append(tried, err.Error())
	} else if dir, err := isDir(filepath.Join(root, "src")); err != nil {
		tried = append(tried, err.Error())
	} else {
		return dir, nil
	}
	// runtime.GOROOT is deprecated for finding the toolchain, but it is the right answer here:
	// a tree of Go source, when no go command can name a better one.
	if root := runtime.GOROOT(); root == "" {
		tried = append(tried, "runtime.GOROOT() is empty")
	} else if dir, err := isDir(filepath.Join(root, "src")); err != nil {
		tried = append(tried, err.Error())
	} else {
		return dir, nil
	}
	return "", fmt.Errorf("%w: %s", ErrNoGoSource, strings.Join(tried, "; "))
}

// goEnvGOROOT asks the go command for its GOROOT. It runs outside any module and with
// GOFLAGS cleared and GOTOOLCHAIN=local, so neither a go.mod nor the environment can make it
// switch toolchains (and download one) just to answer.
func goEnvGOROOT() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), goEnvTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "env", "GOROOT")
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("go env GOROOT: %w: %s", err, msg)
		}
		return "", fmt.Errorf("go env GOROOT: %w", err)
	}
	root := strings.TrimSpace(string(out))
	if root == "" {
		return "", errors.New("go env GOROOT printed nothing")
	}
	return root, nil
}

func isDir(dir string) (string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s is not a directory", dir)
	}
	return dir, nil
}

// Doc is one file of a corpus.
type Doc struct {
	Path string // relative to the corpus root, slash-separated; the base name for a single file
	Text []byte
}

// ReadCorpus reads the text files under root. A regular file is read as the whole corpus, one
// Doc named by its base name (goOnly does not apply: the caller named it). A directory is
// walked in lexical order, so the result does not depend on the file system: folders named
// "testdata" (fixtures, often generated or deliberately malformed) and names starting with
// "." or "_" (hidden, or ignored by the go command) are skipped, as are symbolic links, files
// other than "*.go" when goOnly, and files that are not valid UTF-8 or hold a NUL byte
// (binary data would only teach a model noise). It is an error when no file is read.
func ReadCorpus(root string, goOnly bool) ([]Doc, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("text: %w", err)
	}
	if st.Mode().IsRegular() {
		b, err := os.ReadFile(root)
		if err != nil {
			return nil, fmt.Errorf("text: %w", err)
		}
		if !isText(b) {
			return nil, fmt.Errorf("%w: %s", ErrNotText, root)
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: %s is empty", ErrEmptyCorpus, root)
		}
		return []Doc{{Path: filepath.Base(root), Text: b}}, nil
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("text: %s is neither a regular file nor a directory", root)
	}
	var docs []Doc
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root {
			if name := d.Name(); strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || (d.IsDir() && name == "testdata") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if !d.Type().IsRegular() || (goOnly && !strings.HasSuffix(path, ".go")) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if len(b) == 0 || !isText(b) {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		docs = append(docs, Doc{Path: filepath.ToSlash(rel), Text: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("text: %w", err)
	}
	if len(docs) == 0 {
		what := "text files"
		if goOnly {
			what = ".go files"
		}
		return nil, fmt.Errorf("%w: no %s under %s", ErrEmptyCorpus, what, root)
	}
	return docs, nil
}

// isText reports whether b is valid UTF-8 without NUL bytes.
func isText(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0 && utf8.Valid(b)
}

// Split is the part of a corpus a document belongs to.
type Split int

// The splits, in the order SplitDocs cuts a single file.
const (
	Train Split = iota
	Validation
	Test
)

func (s Split) String() string {
	switch s {
	case Train:
		return "train"
	case Validation:
		return "validation"
	case Test:
		return "test"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}

// SplitOf is the split of the document at path. It depends on the path alone (the first 8
// bytes of its sha256, big-endian, modulo 1000: below 900 Train, below 950 Validation, else
// Test), so every peer, every run and every later version of the corpus agrees on it, and a
// file added to the tree does not move any other file between splits.
func SplitOf(path string) Split {
	sum := sha256.Sum256([]byte(path))
	switch h := binary.BigEndian.Uint64(sum[:8]) % 1000; {
	case h < 900:
		return Train
	case h < 950:
		return Validation
	}
	return Test
}

// SplitDocs partitions docs by SplitOf; every split is a key of the result, possibly with no
// docs. A single doc (a one-file corpus) cannot be split by path, so its text is cut by
// position instead: the first 90% of its bytes Train, the next 5% Validation, the last 5%
// Test, each a Doc with the same Path sharing the original's bytes. Cuts fall on byte
// boundaries and may split a UTF-8 sequence; tokenizers here work on bytes, so nothing breaks.
func SplitDocs(docs []Doc) map[Split][]Doc {
	out := map[Split][]Doc{Train: nil, Validation: nil, Test: nil}
	if len(docs) == 1 {
		d := docs[0]
		n := len(d.Text)
		cut1, cut2 := int(int64(n)*90/100), int(int64(n)*95/100)
		out[Train] = []Doc{{Path: d.Path, Text: d.Text[:cut1:cut1]}}
		out[Validation] = []Doc{{Path: d.Path, Text: d.Text[cut1:cut2:cut2]}}
		out[Test] = []Doc{{Path: d.Path, Text: d.Text[cut2:n:n]}}
		return out
	}
	for _, d := range docs {
		s := SplitOf(d.Path)
		out[s] = append(out[s], d)
	}
	return out
}
