package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
)

// Store is where checkpoint parts live: a local directory today, object storage later.
// Names are slash-separated relative paths such as "ckpt-000000000100/params.bin"; no element
// may be empty, "." or "..", or start with a dot (dot names are reserved for temporary files).
type Store interface {
	// Put stores data under name, replacing any previous content, atomically: a reader sees
	// the old content or the new, never part of it. Put does not keep data.
	Put(name string, data []byte) error
	// Get returns the content stored under name, or an error wrapping ErrNotFound. The caller
	// owns the returned slice.
	Get(name string) ([]byte, error)
	// List returns, sorted, the names that start with prefix. It never lists the temporary
	// files of an unfinished or crashed Put.
	List(prefix string) ([]string, error)
	// Delete removes name. Deleting a name that does not exist is not an error.
	Delete(name string) error
}

// Errors of stores.
var (
	ErrNotFound = errors.New("checkpoint: not found")
	ErrBadName  = errors.New("checkpoint: invalid name")
)

// tempPrefix starts the names of files being written; List hides them and Delete sweeps them.
const tempPrefix = ".tmp-"

// DirStore keeps each name as a file under a root directory. Put writes a temporary file next
// to the target, syncs it, renames it into place and syncs the directory, so a crash leaves
// either the old file, the new one, or an ignored temporary file.
type DirStore struct {
	root string
}

var _ Store = (*DirStore)(nil)

// NewDirStore returns a store rooted at dir, creating dir if needed.
func NewDirStore(dir string) (*DirStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint: store directory: %w", err)
	}
	return &DirStore{root: dir}, nil
}

// CheckName reports whether name follows the naming rules of Store, with an error wrapping
// ErrBadName if not, so that other Store implementations enforce the same rules.
func CheckName(name string) error { return checkName(name) }

// checkName enforces the naming rules of Store.
func checkName(name string) error {
	if !fs.ValidPath(name) || name == "." {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	for elem := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(elem, ".") {
			return fmt.Errorf("%w: %q: elements may not start with a dot", ErrBadName, name)
		}
	}
	return nil
}

func (s *DirStore) path(name string) string { return filepath.Join(s.root, filepath.FromSlash(name)) }

// Put implements Store.
func (s *DirStore) Put(name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	target := s.path(name)
	dir := filepath.Dir(target)
	if err := s.mkdirDurable(dir); err != nil {
		return fmt.Errorf("checkpoint: put %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(target)+"-*")
	if err != nil {
		return fmt.Errorf("checkpoint: put %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(f.Name(), target)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("checkpoint: put %s: %w", name, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("checkpoint: put %s: sync directory: %w", name, err)
	}
	return nil
}

// mkdirDurable creates dir and any missing parents, syncing each new entry's parent so the
// directories survive a crash together with the files put into them.
func (s *DirStore) mkdirDurable(dir string) error {
	var missing []string
	for d := dir; d != s.root && d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range missing {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir makes renames and creations in dir durable. Windows cannot sync a directory and
// does not need to.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	return err
}

// Get implements Store.
func (s *DirStore) Get(name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	p := s.path(name)
	b, err := os.ReadFile(p)
	if err != nil && absent(p, err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: get %s: %w", name, err)
	}
	return b, nil
}

// List implements Store.
func (s *DirStore) List(prefix string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(s.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == s.root {
			return nil
		}
		if strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if e.IsDir() {
			// Skip folders that cannot hold a match.
			if !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list %q: %w", prefix, err)
	}
	slices.Sort(names)
	return names, nil
}

// Delete implements Store. It also removes folders left empty, together with temporary
// files a crashed Put left in them, so deleting every part of a checkpoint leaves no trace.
func (s *DirStore) Delete(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	p := s.path(name)
	if err := os.Remove(p); err != nil && !absent(p, err) {
		return fmt.Errorf("checkpoint: delete %s: %w", name, err)
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if !s.removeIfOnlyTemp(s.path(dir)) {
			break
		}
	}
	return nil
}

// absent reports whether err, from reading or removing the file at p, means that no name is
// stored there: the path is missing, runs through the file of another name, or is a folder.
func absent(p string, err error) bool {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return true
	}
	fi, statErr := os.Stat(p)
	return statErr == nil && fi.IsDir()
}

// removeIfOnlyTemp removes dir if it holds nothing but temporary files, and reports whether
// it did.
func (s *DirStore) removeIfOnlyTemp(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), tempPrefix) {
			return false
		}
	}
	for _, e := range entries {
		os.Remove(filepath.Join(dir, e.Name()))
	}
	return os.Remove(dir) == nil
}
