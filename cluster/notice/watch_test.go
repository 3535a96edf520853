package notice_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/cluster/notice"
	"github.com/troupe-ml/troupe/cluster/notice/noticetest"
	"go.uber.org/goleak"
)

const tick = 10 * time.Millisecond

var providers = []string{notice.AWS, notice.GCP, notice.Azure}

// levels is a slog handler counting records per level.
type levels struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *levels) WithGroup(string) slog.Handler            { return l }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[slog.Level]int{}
	}
	l.n[r.Level]++
	return nil
}

func (l *levels) count(lv slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[lv]
}

type run struct {
	ch     <-chan notice.Notice
	cancel context.CancelFunc
	logs   *levels
}

// start watches srv with a short interval; the watcher is cancelled and the
// server closed when the test ends.
func start(t *testing.T, srv *noticetest.Server, edit func(*notice.Config)) run {
	t.Helper()
	logs := &levels{}
	cfg := notice.Config{
		Provider: srv.Provider(),
		BaseURL:  srv.URL,
		Interval: tick,
		Logger:   slog.New(logs),
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := notice.Watch(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		for range ch {
		}
		srv.Close()
	})
	return run{ch, cancel, logs}
}

// waitFor polls cond until it holds, failing the test after a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// pollsPass waits for n more polls of srv.
func pollsPass(t *testing.T, srv *noticetest.Server, n int) {
	t.Helper()
	target := srv.Polls() + n
	waitFor(t, "polls", func() bool { return srv.Polls() >= target })
}

func expectNone(t *testing.T, r run) {
	t.Helper()
	select {
	case n, ok := <-r.ch:
		if ok {
			t.Fatalf("unexpected notice %+v", n)
		}
		t.Fatal("watcher ended before its context")
	default:
	}
}

func expectNotice(t *testing.T, r run) notice.Notice {
	t.Helper()
	select {
	case n, ok := <-r.ch:
		if !ok {
			t.Fatal("channel closed without a notice")
		}
		select {
		case extra, ok := <-r.ch:
			if ok {
				t.Fatalf("second notice %+v", extra)
			}
		case <-time.After(time.Second):
			t.Fatal("channel not closed after the notice")
		}
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no notice")
	}
	panic("unreachable")
}

func TestNoticeOnlyOnceAnnounced(t *testing.T) {
	for _, p := range providers {
		t.Run(p, func(t *testing.T) {
			srv := noticetest.NewServer(p)
			r := start(t, srv, nil)
			pollsPass(t, srv, 5)
			expectNone(t, r)

			deadline := time.Now().Add(90 * time.Second)
			srv.Announce(deadline)
			n := expectNotice(t, r)
			if n.Provider != p {
				t.Errorf("Provider = %q, want %q", n.Provider, p)
			}
			want := deadline.UTC().Truncate(time.Second)
			if p == notice.GCP {
				want = time.Time{} // GCP gives no time
			}
			if !n.Deadline.Equal(want) || n.Deadline.Location() != time.UTC {
				t.Errorf("Deadline = %v, want %v in UTC", n.Deadline, want)
			}
			if n.Detail == "" {
				t.Error("empty Detail")
			}
			if got := srv.Refused(); got != 0 {
				t.Errorf("server refused %d requests: headers or token wrong", got)
			}
			if got := r.logs.count(slog.LevelWarn); got != 0 {
				t.Errorf("%d warnings on a healthy service", got)
			}
		})
	}
}

func TestAzureStartedEventHasNoDeadline(t *testing.T) {
	srv := noticetest.NewServer(notice.Azure)
	r := start(t, srv, nil)
	pollsPass(t, srv, 2)
	srv.Announce(time.Time{}) // blank NotBefore: already started
	if n := expectNotice(t, r); !n.Deadline.IsZero() || !strings.Contains(n.Detail, "started") {
		t.Fatalf("notice %+v, want zero deadline, started", n)
	}
}

func TestAWSTokenRenewedOn401(t *testing.T) {
	srv := noticetest.NewServer(notice.AWS)
	r := start(t, srv, nil)
	pollsPass(t, srv, 5)
	if got := srv.TokenRequests(); got != 1 {
		t.Fatalf("%d token requests over 5 polls, want 1 (tokens are reused)", got)
	}
	srv.ExpireTokens()
	pollsPass(t, srv, 5)
	if got := srv.TokenRequests(); got != 2 {
		t.Fatalf("%d token requests after expiry, want 2", got)
	}
	if got := srv.Refused(); got != 1 {
		t.Fatalf("%d refused requests, want the one 401", got)
	}
	expectNone(t, r)
	if got := r.logs.count(slog.LevelWarn) + r.logs.count(slog.LevelDebug); got != 0 {
		t.Errorf("%d log records: a renewed token is not a failed poll", got)
	}
	deadline := time.Now().Add(time.Minute)
	srv.Announce(deadline)
	if n := expectNotice(t, r); !n.Deadline.Equal(deadline.Truncate(time.Second)) {
		t.Fatalf("Deadline %v, want %v", n.Deadline, deadline)
	}
}

func TestAzureIgnoresOtherEvents(t *testing.T) {
	srv := noticetest.NewServer(notice.Azure)
	r := start(t, srv, func(c *notice.Config) { c.AzureResource = noticetest.VMName })
	soon := time.Now().Add(time.Minute)
	for _, typ := range []string{"Freeze", "Reboot", "Redeploy"} {
		srv.AddAzureEvent(typ, soon, noticetest.VMName)
	}
	srv.AddAzureEvent("Preempt", soon, "another-vm") // a neighbour in the scale set
	srv.AddAzureEvent("Terminate", time.Time{}, "another-vm")
	pollsPass(t, srv, 5)
	expectNone(t, r)

	deadline := time.Now().Add(10 * time.Minute)
	srv.AddAzureEvent("Terminate", deadline, "other", strings.ToUpper(noticetest.VMName))
	n := expectNotice(t, r)
	if !n.Deadline.Equal(deadline.Truncate(time.Second)) || !strings.Contains(n.Detail, "Terminate") {
		t.Fatalf("notice %+v, want Terminate at %v", n, deadline)
	}
}

func TestAzureWithoutResourceCountsEveryVM(t *testing.T) {
	srv := noticetest.NewServer(notice.Azure)
	r := start(t, srv, nil)
	srv.AddAzureEvent("Freeze", time.Now().Add(time.Hour), noticetest.VMName)
	pollsPass(t, srv, 3)
	expectNone(t, r)
	deadline := time.Now().Add(time.Minute)
	srv.AddAzureEvent("Preempt", deadline, "another-vm")
	if n := expectNotice(t, r); !n.Deadline.Equal(deadline.Truncate(time.Second)) {
		t.Fatalf("notice %+v, want deadline %v", n, deadline)
	}
}

// garbage holds bodies each provider must not read as a notice.
var garbage = map[string][]string{
	notice.AWS: {
		"", "{", "null", "[]", `"terminate"`, "\x00\xff\xfe",
		`{"action": "terminate"}`,
		`{"action": "terminate", "time": "soon"}`,
		`{"action": "explode", "time": "2017-09-18T08:22:00Z"}`,
		`{"action": "terminate", "time": 1505722920}`,
		"<html>404 - Not Found</html>",
		strings.Repeat("x", notice.MaxBody+1),
		`{"action": "terminate", "time": "2017-09-18T08:22:00Z"}` + strings.Repeat(" ", notice.MaxBody),
	},
	notice.GCP: {
		"", "true", "yes", "TRUE FALSE", "1", "\x00", "<html></html>",
		"TRUE" + strings.Repeat(" ", notice.MaxBody),
	},
	notice.Azure: {
		"", "{", "null", "{}", "[]", `{"Events": null}`, `{"Events": {}}`,
		`{"Events": [{"EventType": "Preempt", "NotBefore": "tomorrow"}]}`,
		`{"Events": [{"EventType": "Preempt", "NotBefore": "2016-09-19T18:29:47Z"}]}`,
		`{"Events": [{"EventType": "Preempt", "NotBefore": 5}]}`,
		`{"Events": [{"EventType": ["Preempt"]}]}`,
		strings.Repeat("[", notice.MaxBody+1),
	},
}

func TestGarbageIsNoNotice(t *testing.T) {
	for _, p := range providers {
		t.Run(p, func(t *testing.T) {
			srv := noticetest.NewServer(p)
			r := start(t, srv, nil)
			for _, body := range garbage[p] {
				srv.Garble([]byte(body))
				pollsPass(t, srv, 2)
				expectNone(t, r)
			}
			// Each kind of garbage is one warning, not one per poll.
			warns := r.logs.count(slog.LevelWarn)
			if warns == 0 || warns > len(garbage[p]) {
				t.Errorf("%d warnings for %d kinds of garbage", warns, len(garbage[p]))
			}
			srv.Garble(nil)
			srv.Announce(time.Now().Add(time.Minute))
			expectNotice(t, r)
		})
	}
}

func TestTransientFailuresAreDebugOnly(t *testing.T) {
	for _, p := range providers {
		t.Run(p, func(t *testing.T) {
			srv := noticetest.NewServer(p)
			srv.Announce(time.Now().Add(time.Minute))
			srv.Fail(http.StatusServiceUnavailable)
			r := start(t, srv, nil)
			pollsPass(t, srv, 5)
			srv.Fail(http.StatusInternalServerError)
			pollsPass(t, srv, 5)
			expectNone(t, r)
			if got := r.logs.count(slog.LevelWarn); got != 0 {
				t.Errorf("%d warnings for 5xx answers", got)
			}
			if got := r.logs.count(slog.LevelDebug); got < 8 {
				t.Errorf("%d debug records for 10 failed polls", got)
			}
			srv.Fail(0)
			expectNotice(t, r)
		})
	}
}

func TestUnreachableServiceIsRetried(t *testing.T) {
	srv := noticetest.NewServer(notice.GCP)
	url := srv.URL
	srv.Close() // connection refused from now on
	logs := &levels{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := notice.Watch(ctx, notice.Config{Provider: notice.GCP, BaseURL: url, Interval: tick, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retries", func() bool { return logs.count(slog.LevelDebug) >= 5 })
	if got := logs.count(slog.LevelWarn); got != 0 {
		t.Errorf("%d warnings for a refused connection", got)
	}
	cancel()
	if n, ok := <-ch; ok {
		t.Fatalf("notice %+v from an unreachable service", n)
	}
}

func TestCancelEndsWatcherWithoutLeaks(t *testing.T) {
	for _, p := range providers {
		t.Run(p, func(t *testing.T) {
			srv := noticetest.NewServer(p)
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			ch, err := notice.Watch(ctx, notice.Config{Provider: p, BaseURL: srv.URL, Interval: tick})
			if err != nil {
				t.Fatal(err)
			}
			pollsPass(t, srv, 3)
			cancel()
			select {
			case n, ok := <-ch:
				if ok {
					t.Fatalf("notice %+v after cancel", n)
				}
			case <-time.After(time.Second):
				t.Fatal("watcher still running a second after cancel")
			}
			srv.Close()
			goleak.VerifyNone(t)
		})
	}
}

func TestRunReturnsContextError(t *testing.T) {
	srv := noticetest.NewServer(notice.AWS)
	defer srv.Close()
	w, err := notice.New(notice.Config{Provider: "AWS", BaseURL: srv.URL, Interval: tick})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := w.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want deadline exceeded", err)
	}
	if srv.Polls() < 2 {
		t.Fatalf("%d polls in 100 ms at a 10 ms interval", srv.Polls())
	}
}

func TestCheckReportsTransientErrors(t *testing.T) {
	srv := noticetest.NewServer(notice.Azure)
	defer srv.Close()
	w, err := notice.New(notice.Config{Provider: notice.Azure, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, ok, err := w.Check(ctx); ok || err != nil {
		t.Fatalf("Check = %v, %v on an empty schedule", ok, err)
	}
	srv.Fail(http.StatusBadGateway)
	if _, ok, err := w.Check(ctx); ok || !errors.Is(err, notice.ErrTransient) {
		t.Fatalf("Check = %v, %v on a 502, want ErrTransient", ok, err)
	}
	srv.Fail(http.StatusNotFound)
	if _, ok, err := w.Check(ctx); ok || err == nil || errors.Is(err, notice.ErrTransient) {
		t.Fatalf("Check = %v, %v on a 404, want a lasting error", ok, err)
	}
	srv.Fail(0)
	srv.Garble([]byte("{"))
	if _, ok, err := w.Check(ctx); ok || err == nil || errors.Is(err, notice.ErrTransient) {
		t.Fatalf("Check = %v, %v on garbage, want a lasting error", ok, err)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]notice.Config{
		"no provider":      {},
		"bad provider":     {Provider: "oracle"},
		"auto":             {Provider: "auto"},
		"relative url":     {Provider: "aws", BaseURL: "169.254.169.254"},
		"ftp url":          {Provider: "aws", BaseURL: "ftp://169.254.169.254"},
		"url with query":   {Provider: "azure", BaseURL: "http://127.0.0.1:1/?x=1"},
		"negative":         {Provider: "gcp", Interval: -time.Second},
		"ttl fraction":     {Provider: "aws", AWSTokenTTL: 1500 * time.Millisecond},
		"ttl over 6h":      {Provider: "aws", AWSTokenTTL: 6*time.Hour + time.Second},
		"ttl below 1s":     {Provider: "aws", AWSTokenTTL: time.Millisecond},
		"unparsable url":   {Provider: "gcp", BaseURL: "http://[::1"},
		"url without host": {Provider: "gcp", BaseURL: "http:///path"},
	} {
		if _, err := notice.New(cfg); !errors.Is(err, notice.ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
		if _, err := notice.Watch(context.Background(), cfg); !errors.Is(err, notice.ErrInvalidConfig) {
			t.Errorf("%s: Watch = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestParseProvider(t *testing.T) {
	for in, want := range map[string]string{"aws": "aws", " GCP ": "gcp", "Azure": "azure"} {
		if got, err := notice.ParseProvider(in); got != want || err != nil {
			t.Errorf("ParseProvider(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "  ", "auto", "ec2", "aws,gcp"} {
		got, err := notice.ParseProvider(in)
		if err == nil || got != "" {
			t.Errorf("ParseProvider(%q) = %q, %v; want an error", in, got, err)
			continue
		}
		if !strings.Contains(err.Error(), "aws, gcp or azure") {
			t.Errorf("ParseProvider(%q): error %q does not list the choices", in, err)
		}
	}
}
