package checkpoint

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

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

func TestDirStorePutGetListDelete(t *testing.T) {
	s, root := newDirStore(t)
	put := func(name, content string) {
		t.Helper()
		if err := s.Put(name, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	put("a/x", "1")
	put("a/y", "2")
	put("b/deep/z", "3")
	put("top", "4")
	put("a/x", "replaced")

	if got, err := s.Get("a/x"); err != nil || string(got) != "replaced" {
		t.Errorf("Get(a/x) = %q, %v", got, err)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a/x", "a/y", "b/deep/z", "top"}},
		{"a/", []string{"a/x", "a/y"}},
		{"b", []string{"b/deep/z"}},
		{"b/deep/z", []string{"b/deep/z"}},
		{"t", []string{"top"}},
		{"c", nil},
	} {
		if got, err := s.List(tc.prefix); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %v, %v; want %v", tc.prefix, got, err, tc.want)
		}
	}
	if got := tempFiles(t, root); len(got) > 0 {
		t.Errorf("temporary files left after successful puts: %v", got)
	}

	for _, name := range []string{"b/deep/z", "b/deep/z", "never/was"} {
		if err := s.Delete(name); err != nil {
			t.Errorf("Delete(%s): %v", name, err)
		}
	}
	if _, err := s.Get("b/deep/z"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(root, "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("emptied folder b still exists (stat err %v)", err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("store root removed: %v", err)
	}
}

func TestDirStoreRejectsBadNames(t *testing.T) {
	s, _ := newDirStore(t)
	for _, name := range []string{"", ".", "/abs", "../escape", "a/../b", "a//b", "a/", ".hidden", "a/.tmp-x-1"} {
		if err := s.Put(name, nil); !errors.Is(err, ErrBadName) {
			t.Errorf("Put(%q): err = %v, want ErrBadName", name, err)
		}
		if _, err := s.Get(name); !errors.Is(err, ErrBadName) {
			t.Errorf("Get(%q): err = %v, want ErrBadName", name, err)
		}
		if err := s.Delete(name); !errors.Is(err, ErrBadName) {
			t.Errorf("Delete(%q): err = %v, want ErrBadName", name, err)
		}
	}
}

// TestDirStoreIgnoresCrashedPut plants the temporary file a Put leaves when the process dies
// before its rename: readers must not see it, and deleting the folder's parts sweeps it.
func TestDirStoreIgnoresCrashedPut(t *testing.T) {
	s, root := newDirStore(t)
	if err := s.Put("ckpt/a", []byte("whole")); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(root, "ckpt", tempPrefix+"b-123456")
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
}
