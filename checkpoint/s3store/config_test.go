package s3store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want Config
	}{
		{"s3://bucket", Config{Bucket: "bucket"}},
		{"s3://bucket/", Config{Bucket: "bucket"}},
		{"s3://my.bucket-1/runs/mnist/", Config{Bucket: "my.bucket-1", Prefix: "runs/mnist"}},
		{"S3://bucket/p", Config{Bucket: "bucket", Prefix: "p"}},
		{"s3://bucket/p?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true&timeout=30s",
			Config{Bucket: "bucket", Prefix: "p", Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", PathStyle: new(true), Timeout: 30 * time.Second}},
		{"s3://bucket?endpoint=https%3A%2F%2Fs3.example.test%2F&path_style=0",
			Config{Bucket: "bucket", Endpoint: "https://s3.example.test", PathStyle: new(false)}},
	} {
		got, err := ParseURI(tc.uri)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseURI(%q) = %+v, %v; want %+v", tc.uri, got, err, tc.want)
		}
	}
}

func TestParseURIRejects(t *testing.T) {
	for _, tc := range []struct{ uri, says string }{
		{"", "want s3://bucket/prefix"},
		{"bucket/prefix", "want s3://bucket/prefix"},
		{"gs://bucket", "want s3://bucket/prefix"},
		{"s3:bucket", "want s3://bucket/prefix"},
		{"s3://", "bucket name"},
		{"s3://ab", "bucket name"},
		{"s3://Bucket", "bucket name"},
		{"s3://-bucket", "bucket name"},
		{"s3://bucket-", "bucket name"},
		{"s3://bu_cket", "bucket name"},
		{"s3://bucket:9000/p", "bucket name"},
		{"s3://" + strings.Repeat("a", 64), "bucket name"},
		{"s3://bucket/a//b", "prefix"},
		{"s3://bucket/a/../b", "prefix"},
		{"s3://bucket/.hidden", "prefix"},
		{"s3://bucket/p#frag", "fragment"},
		{"s3://key:secret@bucket/p", "user information"},
		{"s3://bucket?endpoint=http://key:secret@host:9000", "user information"},
		{"s3://bucket?endpoint=ftp://host", "endpoint"},
		{"s3://bucket?endpoint=127.0.0.1:9000", "endpoint"},
		{"s3://bucket?endpoint=http://host:9000/path", "endpoint"},
		{"s3://bucket?endpoint=http://host:99999", "port"},
		{"s3://bucket?endpoint=http://host:", "port"},
		{"s3://bucket?region=", "region"},
		{"s3://bucket?region=us%20east", "region"},
		{"s3://bucket?path_style=maybe", "path_style"},
		{"s3://bucket?timeout=-1s", "timeout"},
		{"s3://bucket?timeout=10", "timeout"},
		{"s3://bucket?region=a&region=b", "given 2 times"},
		{"s3://bucket?endpiont=http://h:1", "unknown URI parameter"},
		{"s3://bucket?x=%zz", "query"},
		{"s3://bucket/%zz", "URI"},
	} {
		_, err := ParseURI(tc.uri)
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseURI(%q): err = %v; want ErrBadConfig saying %q", tc.uri, err, tc.says)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURI(%q): error repeats the credentials: %v", tc.uri, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Bucket: "bucket", AccessKey: "a", SecretKey: "b"}
	if err := good.validate(); err != nil {
		t.Fatalf("validate(%+v) = %v", good, err)
	}
	for _, mod := range []func(*Config){
		func(c *Config) { c.Bucket = "" },
		func(c *Config) { c.Prefix = "a/" },
		func(c *Config) { c.Endpoint = "localhost:9000" },
		func(c *Config) { c.Region = "us east" },
		func(c *Config) { c.Timeout = -time.Second },
		func(c *Config) { c.SecretKey = "" },
		func(c *Config) { c.AccessKey = "" },
	} {
		c := good
		mod(&c)
		if err := c.validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("validate(%+v) = %v, want ErrBadConfig", c, err)
		}
	}
}

// FuzzParseURI checks that no input panics, that every Config it accepts is valid, and that
// URI spells it so that it parses back the same.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true&timeout=1m30s",
		"s3://b.c-d/x/y/z/",
		"s3://bucket?endpoint=https://[::1]:443",
		"s3://u:p@bucket",
		"s3://bucket/%2e%2e/x",
		"s3://bucket?timeout=1ns&path_style=F",
		"s3:///x", "s3:opaque", "s3://bucket/a#b", "s3://bucket?&&=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		c, err := ParseURI(uri)
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("ParseURI(%q): error %v does not wrap ErrBadConfig", uri, err)
			}
			return
		}
		if err := c.validate(); err != nil {
			t.Fatalf("ParseURI(%q) accepted %+v, which does not validate: %v", uri, c, err)
		}
		again, err := ParseURI(c.URI())
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("ParseURI(%q) = %+v, spelled %q, parses back as %+v, %v", uri, c, c.URI(), again, err)
		}
	})
}
