// Package storetest checks that a checkpoint.Store keeps the contract written on that
// interface, so that every backend is held to it by the same tests rather than by copies that
// drift apart. What only one backend can check (its temporary files, its wire protocol)
// stays in that backend's own tests.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/troupe-ml/troupe/checkpoint"
)

// Run runs the contract's subtests against stores made by open, which must return a fresh,
// empty store on each call and may register cleanups on the t it is given.
func Run(t *testing.T, open func(t *testing.T) checkpoint.Store) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, checkpoint.Store)
	}{
		{"PutGet", testPutGet},
		{"PutReplaces", testPutReplaces},
		{"GetMissing", testGetMissing},
		{"CallerOwnsSlices", testCallerOwnsSlices},
		{"EmptyData", testEmptyData},
		{"LargeValue", testLargeValue},
		{"ListEmptyStore", testListEmptyStore},
		{"ListSortedByPrefix", testListSortedByPrefix},
		{"Delete", testDelete},
		{"DeleteMissing", testDeleteMissing},
		{"BadNames", testBadNames},
		{"DotsInsideNames", testDotsInsideNames},
		{"Concurrent", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			// A store that is not empty would make every expectation below wrong for a reason
			// that has nothing to do with the store under test.
			if names, err := s.List(""); err != nil || len(names) != 0 {
				t.Fatalf("open returned a store that is not fresh: List = %v, %v", names, err)
			}
			tc.test(t, s)
		})
	}
}

func put(t *testing.T, s checkpoint.Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(name, data); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

// wantGet checks that name holds exactly want.
func wantGet(t *testing.T, s checkpoint.Store, name string, want []byte) {
	t.Helper()
	got, err := s.Get(name)
	switch {
	case err != nil:
		t.Errorf("Get(%q): %v", name, err)
	case !bytes.Equal(got, want):
		t.Errorf("Get(%q) = %s; want %s", name, brief(got), brief(want))
	}
}

func wantNotFound(t *testing.T, s checkpoint.Store, name string) {
	t.Helper()
	if got, err := s.Get(name); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Errorf("Get(%q) = %s, %v; want an error wrapping ErrNotFound", name, brief(got), err)
	}
}

func wantList(t *testing.T, s checkpoint.Store, prefix string, want ...string) {
	t.Helper()
	got, err := s.List(prefix)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("List(%q) = %q, %v; want %q", prefix, got, err, want)
	}
}

// brief describes a value short enough for a failure message.
func brief(b []byte) string {
	if len(b) <= 32 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%d bytes starting %q", len(b), b[:32])
}

func testPutGet(t *testing.T, s checkpoint.Store) {
	files := map[string]string{
		"top":                              "top level",
		"ckpt-000000000100/params.bin":     "params",
		"ckpt-000000000100/manifest.json":  `{"step":100}`,
		"deep/er/and/deeper/than/that.bin": "deep",
	}
	for name, data := range files {
		put(t, s, name, []byte(data))
	}
	for name, data := range files {
		wantGet(t, s, name, []byte(data))
	}
}

func testPutReplaces(t *testing.T, s checkpoint.Store) {
	put(t, s, "a/x", []byte("first, and longer than what replaces it"))
	put(t, s, "a/x", []byte("second"))
	wantGet(t, s, "a/x", []byte("second"))
	put(t, s, "a/x", []byte("third, longer again than the second"))
	wantGet(t, s, "a/x", []byte("third, longer again than the second"))
	wantList(t, s, "", "a/x")
}

func testGetMissing(t *testing.T, s checkpoint.Store) {
	wantNotFound(t, s, "never/put")
	put(t, s, "top", []byte("1"))
	put(t, s, "dir/x", []byte("2"))
	// A name below a stored name, and a folder that holds names but is not one itself.
	wantNotFound(t, s, "top/below")
	wantNotFound(t, s, "dir")
	wantNotFound(t, s, "dir/y")
	wantNotFound(t, s, "di")
}

func testCallerOwnsSlices(t *testing.T, s checkpoint.Store) {
	data := []byte("original")
	put(t, s, "x", data)
	copy(data, "CHANGED!")
	wantGet(t, s, "x", []byte("original"))

	got, err := s.Get("x")
	if err != nil {
		t.Fatal(err)
	}
	// The caller owns the slice's spare capacity too.
	full := got[:cap(got)]
	for i := range full {
		full[i] = '!'
	}
	wantGet(t, s, "x", []byte("original"))

	// Two reads must not share memory either.
	a, errA := s.Get("x")
	b, errB := s.Get("x")
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	a[0] = 'O'
	if b[0] != 'o' {
		t.Errorf("two Gets returned the same memory: changing one changed the other to %q", b)
	}
}

func testEmptyData(t *testing.T, s checkpoint.Store) {
	put(t, s, "nil", nil)
	put(t, s, "empty", []byte{})
	put(t, s, "emptied", []byte("something"))
	put(t, s, "emptied", nil)
	for _, name := range []string{"nil", "empty", "emptied"} {
		if got, err := s.Get(name); err != nil || len(got) != 0 {
			t.Errorf("Get(%q) = %s, %v; want no bytes and no error", name, brief(got), err)
		}
	}
	wantList(t, s, "", "emptied", "empty", "nil")
}

func testLargeValue(t *testing.T, s checkpoint.Store) {
	// Random bytes of an odd length, so that a dropped, repeated or shifted block shows.
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 4<<20+12345)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	put(t, s, "big/params.bin", big)
	wantGet(t, s, "big/params.bin", big)
	wantList(t, s, "big/", "big/params.bin")
}

func testListEmptyStore(t *testing.T, s checkpoint.Store) {
	for _, prefix := range []string{"", "a", "a/", "ckpt-000000000100/"} {
		wantList(t, s, prefix)
	}
}

func testListSortedByPrefix(t *testing.T, s checkpoint.Store) {
	// Put out of order, with names whose byte order differs from a walk that goes folder by
	// folder: '-' and '.' sort before '/', '0' after it.
	names := []string{"top", "b/deep/z", "a0", "a/y", "a.b", "a-b/x", "a/x", "ckpt-10/m", "ckpt-1/m", "ckpt-2/m"}
	for _, name := range names {
		put(t, s, name, []byte(name))
	}
	all := slices.Sorted(slices.Values(names))
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"a", []string{"a-b/x", "a.b", "a/x", "a/y", "a0"}},
		{"a/", []string{"a/x", "a/y"}},
		{"a/x", []string{"a/x"}},
		{"b", []string{"b/deep/z"}},
		{"b/de", []string{"b/deep/z"}},
		{"b/deep/z", []string{"b/deep/z"}},
		{"b/deep/z/", nil},
		{"ckpt-1", []string{"ckpt-1/m", "ckpt-10/m"}},
		{"ckpt-1/", []string{"ckpt-1/m"}},
		{"t", []string{"top"}},
		{"c", []string{"ckpt-1/m", "ckpt-10/m", "ckpt-2/m"}},
		{"nothing", nil},
		{"top/", nil},
	} {
		wantList(t, s, tc.prefix, tc.want...)
	}
}

func testDelete(t *testing.T, s checkpoint.Store) {
	put(t, s, "a/x", []byte("1"))
	put(t, s, "a/y", []byte("2"))
	put(t, s, "b/deep/z", []byte("3"))
	if err := s.Delete("a/x"); err != nil {
		t.Fatalf("Delete(a/x): %v", err)
	}
	wantNotFound(t, s, "a/x")
	wantGet(t, s, "a/y", []byte("2"))
	wantList(t, s, "", "a/y", "b/deep/z")

	// Emptying a folder and writing into it again.
	for _, name := range []string{"a/y", "b/deep/z"} {
		if err := s.Delete(name); err != nil {
			t.Fatalf("Delete(%q): %v", name, err)
		}
	}
	wantList(t, s, "")
	put(t, s, "b/deep/z", []byte("again"))
	wantGet(t, s, "b/deep/z", []byte("again"))
	wantList(t, s, "", "b/deep/z")
}

func testDeleteMissing(t *testing.T, s checkpoint.Store) {
	put(t, s, "top", []byte("1"))
	put(t, s, "dir/x", []byte("2"))
	// Never put; below a stored name; a folder of names; deleted twice.
	for _, name := range []string{"never/was", "top/below", "dir", "dir/x", "dir/x"} {
		if err := s.Delete(name); err != nil {
			t.Errorf("Delete(%q): %v; want no error", name, err)
		}
	}
	wantGet(t, s, "top", []byte("1"))
	wantList(t, s, "", "top")
}

func testBadNames(t *testing.T, s checkpoint.Store) {
	put(t, s, "a/b", []byte("kept"))
	for _, name := range []string{
		"", ".", "..", "/abs", "../escape", "a/..", "a/../b", "a/./b", "a//b", "a/", "/",
		".hidden", "a/.tmp-x-1", "a/.b/c",
	} {
		if err := s.Put(name, []byte("bad")); !errors.Is(err, checkpoint.ErrBadName) {
			t.Errorf("Put(%q): err = %v; want ErrBadName", name, err)
		}
		if got, err := s.Get(name); !errors.Is(err, checkpoint.ErrBadName) {
			t.Errorf("Get(%q) = %s, %v; want ErrBadName", name, brief(got), err)
		}
		if err := s.Delete(name); !errors.Is(err, checkpoint.ErrBadName) {
			t.Errorf("Delete(%q): err = %v; want ErrBadName", name, err)
		}
	}
	// Nothing bad was stored, and "a/../b" or "a//b" did not reach "a/b" or "b".
	wantList(t, s, "", "a/b")
	wantGet(t, s, "a/b", []byte("kept"))
}

func testDotsInsideNames(t *testing.T, s checkpoint.Store) {
	// Only a leading dot is reserved.
	names := []string{"a..b", "v1.2/params.bin", "x_y-z~1/p.q.r"}
	for _, name := range names {
		put(t, s, name, []byte(name))
	}
	for _, name := range names {
		wantGet(t, s, name, []byte(name))
	}
	wantList(t, s, "", names...)
}

// testConcurrent has workers each write, read, list and delete names of their own while all
// of them overwrite one shared name. Reads of the shared name must find one writer's value
// whole; every worker must see its own writes; the end state must be exactly what was left.
func testConcurrent(t *testing.T, s checkpoint.Store) {
	const (
		workers = 6
		rounds  = 5
		shared  = "shared/value"
	)
	// Each writer's value of the shared name: one byte repeated, its length tied to the byte.
	sharedValue := func(w int) []byte { return bytes.Repeat([]byte{byte('A' + w)}, 4096+w) }
	wholeShared := func(b []byte) bool {
		return len(b) > 0 && bytes.Equal(b, sharedValue(int(b[0]-'A')))
	}
	mine := func(w, i int) string { return fmt.Sprintf("w%d/%02d", w, i) }
	valueOf := func(w, i int) []byte { return bytes.Repeat([]byte{byte(w), byte(i)}, 1000+i) }

	var wg sync.WaitGroup
	errs := make(chan error, workers*(rounds*4+1))
	for w := range workers {
		wg.Go(func() {
			var written []string
			for i := range rounds {
				name := mine(w, i)
				if err := s.Put(name, valueOf(w, i)); err != nil {
					errs <- err
					return
				}
				written = append(written, name)
				if err := s.Put(shared, sharedValue(w)); err != nil {
					errs <- err
					return
				}
				if got, err := s.Get(name); err != nil || !bytes.Equal(got, valueOf(w, i)) {
					errs <- fmt.Errorf("worker %d: Get(%q) = %s, %v right after its Put", w, name, brief(got), err)
				}
				if got, err := s.Get(shared); err != nil || !wholeShared(got) {
					errs <- fmt.Errorf("worker %d: Get(%q) = %s, %v: not one writer's whole value", w, shared, brief(got), err)
				}
				if got, err := s.List(fmt.Sprintf("w%d/", w)); err != nil || !slices.Equal(got, written) {
					errs <- fmt.Errorf("worker %d: List of its own names = %q, %v; want %q", w, got, err, written)
				}
				if got, err := s.List(""); err != nil || !slices.IsSorted(got) || !slices.Contains(got, name) {
					errs <- fmt.Errorf("worker %d: List(\"\") = %q, %v: unsorted or without %q", w, got, err, name)
				}
			}
			// Every worker deletes its first name, in its own folder.
			if err := s.Delete(mine(w, 0)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	want := []string{shared}
	for w := range workers {
		for i := 1; i < rounds; i++ {
			want = append(want, mine(w, i))
			wantGet(t, s, mine(w, i), valueOf(w, i))
		}
		wantNotFound(t, s, mine(w, 0))
	}
	slices.Sort(want)
	wantList(t, s, "", want...)
	if got, err := s.Get(shared); err != nil || !wholeShared(got) {
		t.Errorf("Get(%q) = %s, %v after all writers: not one writer's whole value", shared, brief(got), err)
	}
}
