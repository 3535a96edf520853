package s3store

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/troupe-ml/troupe/checkpoint"
)

// Defaults of Config.
const (
	DefaultRegion  = "us-east-1"
	DefaultTimeout = 10 * time.Minute
)

// Config says where a Store keeps its objects and how it reaches them.
type Config struct {
	Bucket string
	// Prefix is joined before every name with "/"; empty keeps names at the bucket's root.
	// It follows the naming rules of checkpoint.Store.
	Prefix string
	// Endpoint is the server's base URL, such as "http://127.0.0.1:9000"; empty means AWS.
	Endpoint string
	// Region signs the requests; empty means DefaultRegion.
	Region string
	// AccessKey and SecretKey go together. When both are empty, Open reads
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, and nothing else.
	AccessKey, SecretKey string
	// PathStyle puts the bucket in the URL path rather than the host name, which servers
	// without wildcard DNS need. Nil means path style with an Endpoint, virtual hosts without.
	PathStyle *bool
	// Timeout bounds each request, the SDK's retries included; zero means DefaultTimeout.
	Timeout time.Duration
}

// ErrBadConfig wraps every malformed URI or Config.
var ErrBadConfig = errors.New("s3store: invalid configuration")

func badConfig(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
}

// URI query parameters that ParseURI understands.
const (
	paramEndpoint  = "endpoint"
	paramRegion    = "region"
	paramPathStyle = "path_style"
	paramTimeout   = "timeout"
)

// ParseURI reads s3://bucket/prefix?endpoint=URL&region=NAME&path_style=BOOL&timeout=DURATION,
// every parameter optional. Credentials are never part of a URI: a URI with user information
// is refused rather than echoed in an error.
func ParseURI(uri string) (Config, error) {
	u, err := url.Parse(uri)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the whole URI
		}
		return Config{}, badConfig("URI: %v", err)
	}
	if u.User != nil {
		return Config{}, badConfig("URI holds user information; pass credentials in Config or the environment")
	}
	if u.Scheme != "s3" || u.Opaque != "" {
		return Config{}, badConfig("URI %q: want s3://bucket/prefix", uri)
	}
	if u.Fragment != "" || strings.Contains(uri, "#") {
		return Config{}, badConfig("URI %q: a fragment has no meaning here", uri)
	}
	c := Config{Bucket: u.Host}
	if err := checkBucket(c.Bucket); err != nil {
		return Config{}, err
	}
	c.Prefix = strings.TrimSuffix(strings.TrimPrefix(u.Path, "/"), "/")
	if err := checkPrefix(c.Prefix); err != nil {
		return Config{}, err
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Config{}, badConfig("URI query: %v", err)
	}
	for key, values := range query {
		if len(values) != 1 {
			return Config{}, badConfig("URI parameter %q given %d times", key, len(values))
		}
		v := values[0]
		switch key {
		case paramEndpoint:
			if c.Endpoint, err = cleanEndpoint(v); err != nil {
				return Config{}, err
			}
		case paramRegion:
			if err := checkRegion(v); err != nil {
				return Config{}, err
			}
			c.Region = v
		case paramPathStyle:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Config{}, badConfig("%s=%q: want true or false", paramPathStyle, v)
			}
			c.PathStyle = &b
		case paramTimeout:
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return Config{}, badConfig("%s=%q: want a positive duration such as 30s", paramTimeout, v)
			}
			c.Timeout = d
		default:
			return Config{}, badConfig("unknown URI parameter %q (known: %s, %s, %s, %s)", key,
				paramEndpoint, paramRegion, paramPathStyle, paramTimeout)
		}
	}
	return c, nil
}

// URI spells c the way ParseURI reads it, leaving the credentials out.
func (c Config) URI() string {
	u := url.URL{Scheme: "s3", Host: c.Bucket}
	if c.Prefix != "" {
		u.Path = "/" + c.Prefix
	}
	q := url.Values{}
	if c.Endpoint != "" {
		q.Set(paramEndpoint, c.Endpoint)
	}
	if c.Region != "" {
		q.Set(paramRegion, c.Region)
	}
	if c.PathStyle != nil {
		q.Set(paramPathStyle, strconv.FormatBool(*c.PathStyle))
	}
	if c.Timeout != 0 {
		q.Set(paramTimeout, c.Timeout.String())
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// validate checks a Config built by hand as ParseURI checks a URI.
func (c Config) validate() error {
	if err := checkBucket(c.Bucket); err != nil {
		return err
	}
	if err := checkPrefix(c.Prefix); err != nil {
		return err
	}
	if c.Endpoint != "" {
		if _, err := cleanEndpoint(c.Endpoint); err != nil {
			return err
		}
	}
	if c.Region != "" {
		if err := checkRegion(c.Region); err != nil {
			return err
		}
	}
	if c.Timeout < 0 {
		return badConfig("negative timeout %v", c.Timeout)
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return badConfig("AccessKey and SecretKey must be given together")
	}
	return nil
}

// checkBucket applies the bucket naming rules of AWS, which S3-compatible servers accept too.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return badConfig("bucket name %q: want 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && c != '-' && c != '.' || !alnum && (i == 0 || i == len(b)-1) {
			return badConfig("bucket name %q: want lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", b)
		}
	}
	return nil
}

func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	if err := checkpoint.CheckName(p); err != nil {
		return badConfig("prefix: %v", err)
	}
	return nil
}

func checkRegion(r string) error {
	if r == "" || len(r) > 64 {
		return badConfig("region %q: want 1 to 64 characters", r)
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return badConfig("region %q: want letters, digits, '-', '_' and '.'", r)
		}
	}
	return nil
}

// cleanEndpoint accepts an http or https base URL without path, query or credentials and
// returns it without a trailing slash.
func cleanEndpoint(e string) (string, error) {
	u, err := url.Parse(e)
	if strings.Contains(e, "@") || err == nil && u.User != nil {
		return "", badConfig("endpoint holds user information; pass credentials in Config or the environment")
	}
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return "", badConfig("endpoint %q: want http://host:port or https://host", e)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(e, "#") || u.Path != "" && u.Path != "/" {
		return "", badConfig("endpoint %q: want only scheme, host and port", e)
	}
	if _, err := strconv.ParseUint(u.Port(), 10, 16); u.Port() != "" && err != nil || strings.HasSuffix(u.Host, ":") {
		return "", badConfig("endpoint %q: bad port", e)
	}
	return u.Scheme + "://" + u.Host, nil
}
