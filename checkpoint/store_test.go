package checkpoint_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/checkpoint/storetest"
)

func openDirStore(t *testing.T, dir string) *checkpoint.DirStore {
	t.Helper()
	s, err := checkpoint.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDirStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) checkpoint.Store {
		return openDirStore(t, filepath.Join(t.TempDir(), "store"))
	})
}

// The in-memory store stands in for a DirStore in fuzzing and benchmarks, so it must keep the
// same contract.
func TestMemStoreContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) checkpoint.Store { return checkpoint.NewMemStore() })
}

// TestDirStoreIgnoresCrashedPut plants the temporary file a Put leaves when the process dies
// before its rename: readers must not see it, and deleting the folder's parts sweeps it.
func TestDirStoreIgnoresCrashedPut(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	s := openDirStore(t, root)
	if err := s.Put("ckpt/a", []byte("whole")); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(root, "ckpt", checkpoint.TempPrefix+"b-123456")
	if err := os.WriteFile(crashed, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := s.List(""); err != nil || !slices.Equal(got, []string{"ckpt/a"}) {
		t.Errorf("List = %v, %v; want only ckpt/a", got, err)
	}
	if err := s.Delete("ckpt/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "ckpt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("folder holding only a stale temporary file was kept (stat err %v)", err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("store root removed: %v", err)
	}
}
