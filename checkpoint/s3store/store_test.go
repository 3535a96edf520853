package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/checkpoint/s3store/s3test"
)

// open opens a store on uri with the server's keys and the given key prefix.
func open(t *testing.T, srv *s3test.Server, uri, prefix string) *Store {
	t.Helper()
	cfg, err := ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Prefix, cfg.AccessKey, cfg.SecretKey = prefix, srv.AccessKey, srv.SecretKey
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawPut writes an object behind the store's back.
func rawPut(t *testing.T, srv *s3test.Server, bucket, key string, data []byte) {
	t.Helper()
	_, err := srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// rawKeys lists every key in the bucket.
func rawKeys(t *testing.T, srv *s3test.Server, bucket string) []string {
	t.Helper()
	out, err := srv.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func TestPutGetListDelete(t *testing.T) {
	srv := s3test.Start(t)
	uri := srv.Bucket("ckpt")
	for _, prefix := range []string{"", "runs/one"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			s := open(t, srv, uri, prefix)
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
			put("empty", "")

			for name, want := range map[string]string{"a/x": "replaced", "b/deep/z": "3", "empty": ""} {
				if got, err := s.Get(name); err != nil || string(got) != want {
					t.Errorf("Get(%s) = %q, %v; want %q", name, got, err, want)
				}
			}
			for _, tc := range []struct {
				prefix string
				want   []string
			}{
				{"", []string{"a/x", "a/y", "b/deep/z", "empty", "top"}},
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

			for _, name := range []string{"b/deep/z", "b/deep/z", "never/was"} {
				if err := s.Delete(name); err != nil {
					t.Errorf("Delete(%s): %v", name, err)
				}
			}
			_, err := s.Get("b/deep/z")
			if !errors.Is(err, checkpoint.ErrNotFound) {
				t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
			}
			if wantKey := "ckpt/" + s.prefix + "b/deep/z"; err == nil || !strings.Contains(err.Error(), wantKey) {
				t.Errorf("Get after Delete: error %q does not name bucket and key %s", err, wantKey)
			}
			if got, err := s.List("b"); err != nil || len(got) != 0 {
				t.Errorf("List(b) after Delete = %v, %v", got, err)
			}
		})
	}
	// The two stores shared a bucket: each key lives under its own prefix.
	keys := rawKeys(t, srv, "ckpt")
	want := []string{"a/x", "a/y", "empty", "runs/one/a/x", "runs/one/a/y", "runs/one/empty", "runs/one/top", "top"}
	if !slices.Equal(keys, want) {
		t.Errorf("bucket holds %v, want %v", keys, want)
	}
}

func TestPrefixesDoNotOverlap(t *testing.T) {
	srv := s3test.Start(t)
	uri := srv.Bucket("shared")
	run1, run10 := open(t, srv, uri, "run1"), open(t, srv, uri, "run10")
	if err := run1.Put("ckpt-1/params.bin", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := run10.Put("ckpt-1/params.bin", []byte("ten")); err != nil {
		t.Fatal(err)
	}
	// versitygw keeps objects as files, so "run1" cannot be an object beside "run1/..." there.
	rawPut(t, srv, "shared", "run1-notes", []byte("a key that starts like the prefix"))
	for _, s := range []*Store{run1, run10} {
		if got, err := s.List(""); err != nil || !slices.Equal(got, []string{"ckpt-1/params.bin"}) {
			t.Errorf("store %q: List = %v, %v", s.prefix, got, err)
		}
	}
	if got, err := run1.Get("ckpt-1/params.bin"); err != nil || string(got) != "one" {
		t.Errorf("run1 Get = %q, %v", got, err)
	}
}

func TestListPaginates(t *testing.T) {
	srv := s3test.Start(t)
	uri := srv.Bucket("many")
	s := open(t, srv, uri, "p")
	var want []string
	for i := 6; i >= 0; i-- { // written out of order
		name := fmt.Sprintf("ckpt-%d/part", i)
		want = append(want, name)
		if err := s.Put(name, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)
	// The listing must span several pages for this test to mean anything.
	bucket := "many"
	page, err := srv.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket, MaxKeys: aws.Int32(2)})
	if err != nil || !aws.ToBool(page.IsTruncated) || len(page.Contents) != 2 {
		t.Fatalf("server does not paginate at 2 keys: truncated %v, %d keys, %v", page != nil && aws.ToBool(page.IsTruncated), len(page.Contents), err)
	}
	s.pageSize = 2
	if got, err := s.List(""); err != nil || !slices.Equal(got, want) {
		t.Errorf("List over pages of 2 = %v, %v; want %v", got, err, want)
	}
	if got, err := s.List("ckpt-3"); err != nil || !slices.Equal(got, []string{"ckpt-3/part"}) {
		t.Errorf("List(ckpt-3) = %v, %v", got, err)
	}
}

func TestRejectsBadNames(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Bucket("names"), "")
	for _, name := range []string{"", ".", "/abs", "../escape", "a/../b", "a//b", "a/", ".hidden", "a/.tmp-x-1"} {
		if err := s.Put(name, nil); !errors.Is(err, checkpoint.ErrBadName) {
			t.Errorf("Put(%q): err = %v, want ErrBadName", name, err)
		}
		if _, err := s.Get(name); !errors.Is(err, checkpoint.ErrBadName) {
			t.Errorf("Get(%q): err = %v, want ErrBadName", name, err)
		}
		if err := s.Delete(name); !errors.Is(err, checkpoint.ErrBadName) {
			t.Errorf("Delete(%q): err = %v, want ErrBadName", name, err)
		}
	}
	if keys := rawKeys(t, srv, "names"); len(keys) != 0 {
		t.Errorf("bad names reached the bucket: %v", keys)
	}
}

// TestListHidesKeysNoPutMakes plants keys that other tools write (a folder marker, a dot
// file): List must not show names that Get would refuse.
func TestListHidesKeysNoPutMakes(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Bucket("foreign"), "p")
	if err := s.Put("ckpt/a", []byte("whole")); err != nil {
		t.Fatal(err)
	}
	rawPut(t, srv, "foreign", "p/ckpt/.tmp-b-1", []byte("half"))
	rawPut(t, srv, "foreign", "p/marker/", nil)
	if keys := rawKeys(t, srv, "foreign"); !slices.Equal(keys, []string{"p/ckpt/.tmp-b-1", "p/ckpt/a", "p/marker/"}) {
		t.Fatalf("the bucket lists %v, not the planted keys", keys)
	}
	if got, err := s.List(""); err != nil || !slices.Equal(got, []string{"ckpt/a"}) {
		t.Errorf("List = %v, %v; want only ckpt/a", got, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Bucket("busy"), "")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range 5 {
				name := fmt.Sprintf("w%d/%d", w, i)
				data := bytes.Repeat([]byte{byte(w), byte(i)}, 1000)
				if err := s.Put(name, data); err != nil {
					errs <- err
					return
				}
				got, err := s.Get(name)
				if err == nil && !bytes.Equal(got, data) {
					err = fmt.Errorf("%s came back different", name)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, err := s.List(""); err != nil || len(got) != 40 {
		t.Errorf("List = %d names, %v; want 40", len(got), err)
	}
}

func TestOpenRefusesWrongSecret(t *testing.T) {
	srv := s3test.Start(t)
	cfg, err := ParseURI(srv.Bucket("locked"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.AccessKey, cfg.SecretKey = srv.AccessKey, srv.SecretKey+"x"
	_, err = Open(context.Background(), cfg)
	if !errors.Is(err, ErrAccessDenied) || !strings.Contains(err.Error(), `"locked"`) || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("Open with a wrong secret: err = %v; want ErrAccessDenied naming the bucket and the credentials", err)
	}
	if err != nil && strings.Contains(err.Error(), cfg.SecretKey) {
		t.Errorf("the error shows the secret key: %v", err)
	}
	cfg.AccessKey, cfg.SecretKey = "nosuchuser", srv.SecretKey
	if _, err := Open(context.Background(), cfg); !errors.Is(err, ErrAccessDenied) {
		t.Errorf("Open with an unknown access key: err = %v; want ErrAccessDenied", err)
	}
}

func TestOpenMissingBucket(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket("exists")
	cfg := Config{Bucket: "does-not-exist", Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	_, err := Open(context.Background(), cfg)
	if !errors.Is(err, ErrBucketNotFound) || !strings.Contains(err.Error(), `"does-not-exist"`) || !strings.Contains(err.Error(), srv.Endpoint) {
		t.Errorf("Open of a missing bucket: err = %v; want ErrBucketNotFound naming bucket and endpoint", err)
	}
}

func TestOpenCredentialsFromEnvironment(t *testing.T) {
	srv := s3test.Start(t)
	uri := srv.Bucket("env")
	cfg, err := ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	if _, err := Open(context.Background(), cfg); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("Open without credentials: err = %v; want ErrNoCredentials", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open with credentials from the environment: %v", err)
	}
	if err := s.Put("x", []byte("y")); err != nil {
		t.Fatal(err)
	}
}

// TestMissingBucketIsNotMissingObject deletes the bucket under an open store: reads must fail
// loudly, not report objects as absent (which the Manager would take for torn checkpoints).
func TestMissingBucketIsNotMissingObject(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Bucket("doomed"), "")
	bucket := "doomed"
	if _, err := srv.Client().DeleteBucket(context.Background(), &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("ckpt/a"); err == nil || errors.Is(err, checkpoint.ErrNotFound) {
		t.Errorf("Get in a deleted bucket: err = %v; want an error that is not ErrNotFound", err)
	}
	if _, err := s.List(""); err == nil {
		t.Error("List in a deleted bucket succeeded")
	}
	if err := s.Put("ckpt/a", nil); err == nil {
		t.Error("Put in a deleted bucket succeeded")
	}
}

// TestTimeout points a store at a server that accepts connections and never answers.
func TestTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn // touched by the accepting goroutine until it ends
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-accepting
		for _, c := range conns {
			c.Close()
		}
	})
	cfg := Config{Bucket: "silent", Endpoint: "http://" + l.Addr().String(), AccessKey: "a", SecretKey: "b", Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err = Open(context.Background(), cfg)
	if elapsed := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || elapsed > 5*time.Second {
		t.Errorf("Open of a silent server: err = %v after %v; want a deadline error after about %v", err, elapsed, cfg.Timeout)
	}
}
