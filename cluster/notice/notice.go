// Package notice tells a node that its cloud is about to take the machine
// away, so that it can drain (finish its step, leave the cluster, checkpoint
// if it is the last member) before the deadline.
//
// It polls the instance metadata service of one provider and reports the
// first announced preemption or termination:
//
//	ch, err := notice.Watch(ctx, notice.Config{Provider: "aws"})
//	...
//	if n, ok := <-ch; ok {
//		// drain before n.Deadline (zero: the provider gave none)
//	}
//
// The channel carries at most one Notice and is closed after it, or when
// ctx ends. Watcher.Run is the blocking form and Watcher.Check one poll.
//
// What each provider is asked:
//
//   - aws: IMDSv2. A session token from PUT /latest/api/token, then
//     GET /latest/meta-data/spot/instance-action: 404 while nothing is
//     planned, a JSON {"action", "time"} once a stop, terminate or hibernate
//     is. The token is renewed before it expires and after a 401.
//   - gcp: GET /computeMetadata/v1/instance/preempted with Metadata-Flavor:
//     Google: "TRUE" or "FALSE". GCP gives about 30 s and no time, so the
//     Deadline is zero.
//   - azure: GET /metadata/scheduledevents?api-version=2020-07-01 with
//     Metadata: true. Preempt and Terminate events count; Freeze, Reboot and
//     Redeploy leave the machine to us and are ignored. NotBefore is the
//     deadline; it is blank once an event has started (Deadline zero). Events
//     are not approved (StartRequests): approving lets Azure start early,
//     which only shortens the time to drain. Azure turns the service on at
//     the first query, which may take up to two minutes to answer: polls
//     time out meanwhile and are retried.
//
// Errors never become notices. Unreachable services, timeouts and 5xx
// answers are logged at debug and retried on the next tick; an unexpected
// status or a body that does not parse is logged at warn (repeats at debug)
// and also retried. Bodies are read up to MaxBody bytes.
package notice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Providers.
const (
	AWS   = "aws"
	GCP   = "gcp"
	Azure = "azure"
)

// Defaults for Config's zero fields.
const (
	DefaultInterval    = 5 * time.Second // AWS advises checking every 5 s
	DefaultTimeout     = 2 * time.Second // link-local services answer in ms
	DefaultAWSTokenTTL = 6 * time.Hour   // IMDSv2's maximum
	// MaxBody bounds what is read of any answer: a metadata document is a few
	// hundred bytes, so more is garbage or hostile.
	MaxBody = 256 << 10
)

// Azure's Scheduled Events version: the first with every field this package reads.
const azureAPIVersion = "2020-07-01"

// ErrInvalidConfig wraps every error New returns for a bad Config.
var ErrInvalidConfig = errors.New("notice: invalid config")

// Notice is an announced end of the machine.
type Notice struct {
	Provider string
	// Deadline is when the machine goes away, at whole-second precision, in
	// UTC. Zero when the provider gives no time (GCP, an Azure event already
	// started): the caller then uses its own default.
	Deadline time.Time
	// Detail says what was announced, for logs.
	Detail string
}

// Config says which service to poll and how.
type Config struct {
	// Provider is "aws", "gcp" or "azure" (see ParseProvider).
	Provider string
	// BaseURL replaces the provider's address (tests, proxies): scheme and
	// host, optionally a path prefix. Default: http://169.254.169.254 for aws
	// and azure, http://metadata.google.internal for gcp.
	BaseURL string
	// Interval is the poll period. Default DefaultInterval.
	Interval time.Duration
	// Client makes the requests. Default: a client with DefaultTimeout that
	// ignores proxy settings (a link-local address must not be proxied) and
	// does not follow redirects.
	Client *http.Client
	// Logger receives poll failures. Default: discard.
	Logger *slog.Logger
	// AzureResource, when set, is this VM's name: Azure delivers the events of
	// a whole availability set or scale-set placement group to each of its
	// VMs, and only events whose Resources name it then count. When empty,
	// every Preempt or Terminate event counts.
	AzureResource string
	// AWSTokenTTL is the lifetime asked for IMDSv2 tokens, whole seconds from
	// 1 s to 6 h. Default DefaultAWSTokenTTL.
	AWSTokenTTL time.Duration
}

// ParseProvider returns the canonical name of a provider ("aws", "gcp" or
// "azure"), accepting any case and surrounding spaces.
func ParseProvider(s string) (string, error) {
	p := strings.ToLower(strings.TrimSpace(s))
	switch p {
	case AWS, GCP, Azure:
		return p, nil
	case "":
		return "", errors.New("notice: no provider given (want aws, gcp or azure)")
	}
	return "", fmt.Errorf("notice: unknown provider %q (want aws, gcp or azure)", s)
}

func defaultBaseURL(provider string) string {
	if provider == GCP {
		return "http://metadata.google.internal"
	}
	return "http://169.254.169.254"
}

// Watcher polls one metadata service. Its methods are safe for concurrent
// use; polls are serialised.
type Watcher struct {
	provider  string
	base      string
	interval  time.Duration
	client    *http.Client
	ownClient bool
	log       *slog.Logger
	resource  string
	tokenTTL  time.Duration
	now       func() time.Time // the clock for token renewal; tests replace it

	mu       sync.Mutex
	token    string
	renewAt  time.Time
	lastWarn string
}

// New checks cfg, fills its defaults and returns a Watcher.
func New(cfg Config) (*Watcher, error) {
	p, err := ParseProvider(cfg.Provider)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	base := cfg.BaseURL
	if base == "" {
		base = defaultBaseURL(p)
	}
	u, err := url.Parse(base)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: BaseURL: %w", ErrInvalidConfig, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: BaseURL %q: scheme must be http or https", ErrInvalidConfig, base)
	case u.Host == "":
		return nil, fmt.Errorf("%w: BaseURL %q has no host", ErrInvalidConfig, base)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, fmt.Errorf("%w: BaseURL %q: want scheme, host and path only", ErrInvalidConfig, base)
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("%w: Interval %v is negative", ErrInvalidConfig, cfg.Interval)
	}
	ttl := cfg.AWSTokenTTL
	if ttl == 0 {
		ttl = DefaultAWSTokenTTL
	}
	if ttl < time.Second || ttl > DefaultAWSTokenTTL || ttl%time.Second != 0 {
		return nil, fmt.Errorf("%w: AWSTokenTTL %v: want whole seconds from 1s to 6h", ErrInvalidConfig, cfg.AWSTokenTTL)
	}
	w := &Watcher{
		provider: p,
		base:     strings.TrimRight(base, "/"),
		interval: cfg.Interval,
		client:   cfg.Client,
		log:      cfg.Logger,
		resource: cfg.AzureResource,
		tokenTTL: ttl,
		now:      time.Now,
	}
	if w.interval == 0 {
		w.interval = DefaultInterval
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.With("provider", p)
	if w.client == nil {
		w.client, w.ownClient = defaultClient(), true
	}
	return w, nil
}

func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return &http.Client{
		Transport: t,
		Timeout:   DefaultTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Watch polls until a notice comes or ctx ends. The channel receives at most
// one Notice and is closed after it or when ctx ends; its goroutine never
// blocks, so the caller need not drain it.
func Watch(ctx context.Context, cfg Config) (<-chan Notice, error) {
	w, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ch := make(chan Notice, 1)
	go func() {
		defer close(ch)
		if n, err := w.Run(ctx); err == nil {
			ch <- n
		}
	}()
	return ch, nil
}

// Run polls at once and then every Interval until a notice comes, which it
// returns, or ctx ends, when it returns ctx's error.
func (w *Watcher) Run(ctx context.Context) (Notice, error) {
	if w.ownClient {
		// Idle keep-alive connections hold goroutines; a finished watcher
		// should leave none behind.
		defer w.client.CloseIdleConnections()
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return Notice{}, ctx.Err()
		case <-t.C:
		}
		n, ok, err := w.Check(ctx)
		if ok {
			return n, nil
		}
		if err != nil && ctx.Err() == nil {
			w.report(err)
		}
		t.Reset(w.interval)
	}
}

// Check polls once. It reports a notice with ok, nothing scheduled with
// neither ok nor error, and a failed poll with the error (wrapping
// ErrTransient when a later poll may well succeed).
func (w *Watcher) Check(ctx context.Context) (n Notice, ok bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch w.provider {
	case AWS:
		n, ok, err = w.checkAWS(ctx)
	case GCP:
		n, ok, err = w.checkGCP(ctx)
	default:
		n, ok, err = w.checkAzure(ctx)
	}
	if ok {
		n.Provider = w.provider
	}
	return n, ok, err
}

// report logs a failed poll: transient failures at debug, others at warn
// unless they repeat the previous warning, so a broken service does not
// flood the log every Interval.
func (w *Watcher) report(err error) {
	if errors.Is(err, ErrTransient) {
		w.log.Debug("metadata poll failed; retrying", "err", err)
		return
	}
	w.mu.Lock()
	repeat := err.Error() == w.lastWarn
	w.lastWarn = err.Error()
	w.mu.Unlock()
	if repeat {
		w.log.Debug("metadata poll failed again", "err", err)
		return
	}
	w.log.Warn("metadata poll failed; retrying", "err", err)
}
