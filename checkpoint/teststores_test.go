package checkpoint

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The stores that the tests inside this package use. The contract tests of these stores live
// in store_test.go, outside the package, because checkpoint/storetest imports this package.

// memStore is a Store in memory, for fuzzing and for timing Save without a disk.
type memStore struct {
	mu    sync.Mutex
	files map[string][]byte
}

func newMemStore() *memStore { return &memStore{files: map[string][]byte{}} }

func (s *memStore) Put(name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[name] = slices.Clone(data)
	return nil
}

func (s *memStore) Get(name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return slices.Clone(b), nil
}

func (s *memStore) List(prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.files {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (s *memStore) Delete(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, name)
	return nil
}

func newDirStore(t testing.TB) (*DirStore, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

// tempFiles lists the temporary files under root.
func tempFiles(t testing.TB, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(e.Name(), tempPrefix) {
			found = append(found, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// What store_test.go needs from inside the package.
var (
	NewMemStore = func() Store { return newMemStore() }
	TempPrefix  = tempPrefix
)
