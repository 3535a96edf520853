package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/troupe-ml/troupe/checkpoint"
)

// Errors of Open, besides ErrBadConfig.
var (
	ErrNoCredentials  = errors.New("s3store: no credentials")
	ErrBucketNotFound = errors.New("s3store: bucket does not exist")
	ErrAccessDenied   = errors.New("s3store: access denied")
)

// Store keeps each name as one object. It is safe for concurrent use.
type Store struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or ending in "/"
	timeout  time.Duration
	pageSize int32 // keys per List request; 0 leaves it to the server (tests lower it)
}

var _ checkpoint.Store = (*Store)(nil)

// Open connects to cfg's bucket and checks that it exists and that the credentials are
// accepted, so a misconfigured run stops before training rather than at its first save. ctx
// bounds that check only.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ak, sk, token := cfg.AccessKey, cfg.SecretKey, ""
	if ak == "" {
		ak, sk, token = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")
		if ak == "" || sk == "" {
			return nil, fmt.Errorf("%w: set Config.AccessKey and SecretKey, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", ErrNoCredentials)
		}
	}
	opts := s3.Options{
		Region:       orDefault(cfg.Region, DefaultRegion),
		Credentials:  credentials.NewStaticCredentialsProvider(ak, sk, token),
		UsePathStyle: cfg.Endpoint != "",
	}
	if cfg.PathStyle != nil {
		opts.UsePathStyle = *cfg.PathStyle
	}
	if cfg.Endpoint != "" {
		ep, _ := cleanEndpoint(cfg.Endpoint) // validate checked it
		opts.BaseEndpoint = aws.String(ep)
	}
	s := &Store{client: s3.New(opts), bucket: cfg.Bucket, timeout: cfg.Timeout}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if cfg.Prefix != "" {
		s.prefix = cfg.Prefix + "/"
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return s, nil
	}
	where := "AWS"
	if cfg.Endpoint != "" {
		where = aws.ToString(opts.BaseEndpoint)
	}
	code, status := errorCode(err)
	if status >= 400 && status < 500 {
		// A HEAD answer has no body, so no error code: versitygw, for one, says 404 both for
		// a missing bucket and an unknown access key. A listing's answer tells them apart.
		in := &s3.ListObjectsV2Input{Bucket: &s.bucket, MaxKeys: aws.Int32(1)}
		if _, listErr := s.client.ListObjectsV2(ctx, in); listErr != nil {
			if c, _ := errorCode(listErr); c != "" {
				code, err = c, listErr
			}
		}
	}
	switch {
	case isAuthCode(code):
		return nil, s.denied(where, ak, err)
	case code == "NoSuchBucket" || status == http.StatusNotFound:
		return nil, fmt.Errorf("%w: %q at %s: %w", ErrBucketNotFound, s.bucket, where, err)
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return nil, s.denied(where, ak, err)
	case status == http.StatusMovedPermanently || code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed":
		return nil, fmt.Errorf("s3store: bucket %q at %s is in another region than %q: %w", s.bucket, where, opts.Region, err)
	}
	return nil, fmt.Errorf("s3store: open bucket %q at %s: %w", s.bucket, where, err)
}

// Put implements checkpoint.Store with one PutObject: S3 replaces an object atomically.
// AWS takes at most 5 GiB in one PutObject.
func (s *Store) Put(name string, data []byte) error {
	if err := checkpoint.CheckName(name); err != nil {
		return err
	}
	key := s.prefix + name
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return s.fail("put", key, err)
	}
	return nil
}

// Get implements checkpoint.Store.
func (s *Store) Get(name string) ([]byte, error) {
	if err := checkpoint.CheckName(name); err != nil {
		return nil, err
	}
	key := s.prefix + name
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %s: %w", checkpoint.ErrNotFound, s.url(key), err)
		}
		return nil, s.fail("get", key, err)
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 && n <= 1<<30 { // a hint, not trusted further
		buf.Grow(int(n))
	}
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, s.fail("get", key, err)
	}
	if n := out.ContentLength; n != nil && *n >= 0 && *n != int64(buf.Len()) {
		return nil, s.fail("get", key, fmt.Errorf("read %d bytes, the server announced %d", buf.Len(), *n))
	}
	return buf.Bytes(), nil
}

// List implements checkpoint.Store. Keys under the prefix that are not valid names (folder
// markers ending in "/", dot files) are not shown, as no Put could have made them.
func (s *Store) List(prefix string) ([]string, error) {
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)}
	if s.pageSize > 0 {
		in.MaxKeys = aws.Int32(s.pageSize)
	}
	var names []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		out, err := s.client.ListObjectsV2(ctx, in)
		cancel()
		if err != nil {
			return nil, s.fail("list", *in.Prefix, err)
		}
		for _, o := range out.Contents {
			name, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			if ok && strings.HasPrefix(name, prefix) && checkpoint.CheckName(name) == nil {
				names = append(names, name)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		// A server that says "more" without a new token would make this loop forever or end
		// it early without saying so.
		next := aws.ToString(out.NextContinuationToken)
		if next == "" || next == aws.ToString(in.ContinuationToken) {
			return nil, s.fail("list", *in.Prefix, errors.New("truncated listing without a new continuation token"))
		}
		in.ContinuationToken = &next
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Delete implements checkpoint.Store.
func (s *Store) Delete(name string) error {
	if err := checkpoint.CheckName(name); err != nil {
		return err
	}
	key := s.prefix + name
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil && !isNotFound(err) {
		return s.fail("delete", key, err)
	}
	return nil
}

func (s *Store) denied(where, accessKey string, err error) error {
	return fmt.Errorf("%w: bucket %q at %s refused the credentials (access key %q); check the key pair and the bucket's policy: %w",
		ErrAccessDenied, s.bucket, where, accessKey, err)
}

func (s *Store) url(key string) string { return "s3://" + s.bucket + "/" + key }

func (s *Store) fail(op, key string, err error) error {
	return fmt.Errorf("s3store: %s %s: %w", op, s.url(key), err)
}

// errorCode returns the S3 error code and HTTP status of err, each empty or zero if unknown.
func errorCode(err error) (code string, status int) {
	var api smithy.APIError
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		status = resp.HTTPStatusCode()
	}
	return code, status
}

// isNotFound tells a missing object from a missing bucket, which must not pass for an
// object that was never written.
func isNotFound(err error) bool {
	code, status := errorCode(err)
	switch code {
	case "NoSuchKey", "NotFound":
		return true
	case "", "404":
		return status == http.StatusNotFound
	}
	return false
}

func isAuthCode(code string) bool {
	switch code {
	case "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
		"XAdminUserNotFound": // versitygw's answer to an unknown access key
		return true
	}
	return false
}

func orDefault(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
