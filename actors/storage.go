package actors

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/troupe-ml/troupe/checkpoint"
)

// OpenStore opens the checkpoint store a job's checkpoint.dir names: a directory path,
// file:///PATH, or s3://BUCKET/PREFIX?endpoint=URL (S3-compatible object storage; credentials
// from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). A directory is created if missing.
func OpenStore(ctx context.Context, uri string) (checkpoint.Store, error) {
	dir, local, err := LocalDir(uri)
	switch {
	case err != nil:
		return nil, err
	case local:
		return checkpoint.NewDirStore(dir)
	case strings.HasPrefix(strings.ToLower(uri), "s3://"):
		return openS3(ctx, uri)
	}
	scheme, _, _ := strings.Cut(uri, "://")
	return nil, fmt.Errorf("%w: checkpoint store %q: unsupported scheme %q (a directory, file:///DIR or s3://BUCKET)", ErrBadJob, uri, scheme)
}

// LocalDir returns the directory a store location names: a bare path, or a file:// URI
// (file:///abs/dir or file://localhost/abs/dir). local is false for another scheme.
func LocalDir(uri string) (dir string, local bool, err error) {
	if uri == "" {
		return "", false, fmt.Errorf("%w: empty checkpoint location", ErrBadJob)
	}
	scheme, _, found := strings.Cut(uri, "://")
	if !found || !isScheme(scheme) {
		return uri, true, nil // a plain path, which may itself contain "://" further on
	}
	if !strings.EqualFold(scheme, "file") {
		return "", false, nil
	}
	u, err := url.Parse(uri)
	if err != nil || u.Path == "" || (u.Host != "" && u.Host != "localhost") {
		return "", false, fmt.Errorf("%w: checkpoint location %q: want file:///absolute/path or file://localhost/path", ErrBadJob, uri)
	}
	return u.Path, true, nil
}

// isScheme reports whether s is a URI scheme: a letter, then letters, digits, '+', '-', '.'.
func isScheme(s string) bool {
	for i, c := range s {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}
