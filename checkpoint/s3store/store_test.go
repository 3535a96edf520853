package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/checkpoint/s3store/s3test"
	"github.com/troupe-ml/troupe/checkpoint/storetest"
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

// TestStoreContract runs the shared Store tests twice: each store in a bucket of its own, and
// each under its own prefix of one shared bucket.
func TestStoreContract(t *testing.T) {
	srv := s3test.Start(t)
	buckets := 0
	t.Run("bucket", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) checkpoint.Store {
			buckets++
			return open(t, srv, srv.Bucket(fmt.Sprintf("contract-%d", buckets)), "")
		})
	})
	shared := srv.Bucket("shared")
	prefixes := 0
	t.Run("prefix", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) checkpoint.Store {
			prefixes++
			return open(t, srv, shared, fmt.Sprintf("runs/%d", prefixes))
		})
	})
	// List hides keys that are not names, so look at the bucket itself: every key must lie
	// under one store's prefix and be a valid name there. A bad name let through, or a store
	// writing outside its prefix, shows here.
	for _, key := range rawKeys(t, srv, "shared") {
		n, name, _ := strings.Cut(strings.TrimPrefix(key, "runs/"), "/")
		i, err := strconv.Atoi(n)
		if err != nil || strconv.Itoa(i) != n || i < 1 || i > prefixes || checkpoint.CheckName(name) != nil {
			t.Errorf("key %q is not a valid name under one store's prefix", key)
		}
	}
}

// TestNotFoundNamesKey checks that a missing object's error says where the store looked.
func TestNotFoundNamesKey(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Bucket("ckpt"), "runs/one")
	_, err := s.Get("b/deep/z")
	if wantKey := "ckpt/runs/one/b/deep/z"; !errors.Is(err, checkpoint.ErrNotFound) || !strings.Contains(err.Error(), wantKey) {
		t.Errorf("Get of a missing name: err = %v; want ErrNotFound naming bucket and key %s", err, wantKey)
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
