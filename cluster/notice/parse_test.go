package notice

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/cluster/notice/noticetest"
)

func TestParseAWSAction(t *testing.T) {
	for _, action := range []string{"terminate", "stop", "hibernate"} {
		n, err := parseAWSAction([]byte(`{"action": "` + action + `", "time": "2017-09-18T08:22:00Z"}`))
		if err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		want := time.Date(2017, 9, 18, 8, 22, 0, 0, time.UTC)
		if !n.Deadline.Equal(want) || n.Deadline.Location() != time.UTC || !strings.Contains(n.Detail, action) {
			t.Errorf("%s: %+v, want deadline %v", action, n, want)
		}
	}
	// An offset time is the same instant; sub-seconds are dropped.
	n, err := parseAWSAction([]byte(`{"time": "2017-09-18T10:22:00.75+02:00", "action": "stop"}`))
	if err != nil || !n.Deadline.Equal(time.Date(2017, 9, 18, 8, 22, 0, 0, time.UTC)) || n.Deadline.Location() != time.UTC {
		t.Errorf("offset time: %+v, %v", n, err)
	}
	for _, body := range []string{
		`{"action": "", "time": "2017-09-18T08:22:00Z"}`,
		`{"action": "reboot", "time": "2017-09-18T08:22:00Z"}`,
		`{"action": "terminate", "time": ""}`,
		`{"action": "terminate", "time": "Mon, 18 Sep 2017 08:22:00 GMT"}`,
		`{"action": "terminate", "time": "2017-09-18T08:22:00Z"`,
	} {
		if n, err := parseAWSAction([]byte(body)); err == nil {
			t.Errorf("%s: parsed as %+v", body, n)
		}
	}
}

func TestParseAWSToken(t *testing.T) {
	if tok, err := parseAWSToken([]byte("AQAEAKtoken==\n")); tok != "AQAEAKtoken==" || err != nil {
		t.Errorf("token = %q, %v", tok, err)
	}
	for _, body := range []string{"", " ", "a b", "tok\r\nX-Evil: 1", "\x7f", strings.Repeat("a", maxAWSToken+1)} {
		if tok, err := parseAWSToken([]byte(body)); err == nil {
			t.Errorf("%q accepted as %q", body, tok)
		}
	}
}

func TestParseGCPPreempted(t *testing.T) {
	for body, want := range map[string]bool{"TRUE": true, "FALSE": false, "TRUE\n": true, " FALSE ": false} {
		if got, err := parseGCPPreempted([]byte(body)); got != want || err != nil {
			t.Errorf("%q = %v, %v; want %v", body, got, err, want)
		}
	}
	for _, body := range []string{"", "true", "True", "1", "TRUEFALSE"} {
		if got, err := parseGCPPreempted([]byte(body)); err == nil {
			t.Errorf("%q accepted as %v", body, got)
		}
	}
}

// azureDoc is the documented example with the given events spliced in.
func azureDoc(events ...string) []byte {
	return []byte(`{"DocumentIncarnation": 3, "Events": [` + strings.Join(events, ",") + `]}`)
}

func azureEventJSON(id, typ, notBefore string, resources ...string) string {
	return `{"EventId": "` + id + `", "EventType": "` + typ + `", "ResourceType": "VirtualMachine",` +
		` "Resources": ["` + strings.Join(resources, `","`) + `"], "EventStatus": "Scheduled",` +
		` "NotBefore": "` + notBefore + `", "Description": "", "EventSource": "Platform", "DurationInSeconds": -1}`
}

func TestParseAzureEvents(t *testing.T) {
	const (
		early = "Mon, 19 Sep 2016 18:29:47 GMT"
		late  = "Mon, 19 Sep 2016 18:45:00 GMT"
	)
	earlyT := time.Date(2016, 9, 19, 18, 29, 47, 0, time.UTC)
	lateT := time.Date(2016, 9, 19, 18, 45, 0, 0, time.UTC)
	for _, c := range []struct {
		name     string
		body     []byte
		resource string
		ok       bool
		deadline time.Time
		id       string
	}{
		{name: "empty", body: azureDoc()},
		{name: "documented preempt", body: azureDoc(azureEventJSON("p", "Preempt", early, "vm0")), ok: true, deadline: earlyT, id: "p"},
		{name: "terminate", body: azureDoc(azureEventJSON("t", "Terminate", late, "vm0")), ok: true, deadline: lateT, id: "t"},
		{name: "ignored kinds", body: azureDoc(
			azureEventJSON("f", "Freeze", early, "vm0"),
			azureEventJSON("r", "Reboot", early, "vm0"),
			azureEventJSON("d", "Redeploy", early, "vm0"),
			azureEventJSON("x", "preempt", early, "vm0"), // types are case-exact
		)},
		{name: "earliest wins", body: azureDoc(
			azureEventJSON("a", "Terminate", late, "vm0"),
			azureEventJSON("b", "Preempt", early, "vm0"),
		), ok: true, deadline: earlyT, id: "b"},
		{name: "started beats scheduled", body: azureDoc(
			azureEventJSON("a", "Preempt", early, "vm0"),
			azureEventJSON("b", "Terminate", "", "vm0"),
			azureEventJSON("c", "Preempt", early, "vm0"),
		), ok: true, id: "b"},
		{name: "other vm", body: azureDoc(azureEventJSON("p", "Preempt", early, "vm1", "vm2")), resource: "vm0"},
		{name: "this vm among others", body: azureDoc(
			azureEventJSON("a", "Preempt", early, "vm1"),
			azureEventJSON("b", "Preempt", late, "vm1", "VM0"),
		), resource: "vm0", ok: true, deadline: lateT, id: "b"},
		{name: "garbled time of an ignored event", body: azureDoc(azureEventJSON("f", "Freeze", "soon", "vm0"))},
	} {
		n, ok, err := parseAzureEvents(c.body, c.resource)
		if err != nil || ok != c.ok || !n.Deadline.Equal(c.deadline) || (ok && !strings.Contains(n.Detail, `"`+c.id+`"`)) {
			t.Errorf("%s: %+v, %v, %v; want ok %v, deadline %v, event %s", c.name, n, ok, err, c.ok, c.deadline, c.id)
		}
	}
	for _, body := range []string{`{}`, `null`, `{"Events": null}`, `[]`,
		string(azureDoc(azureEventJSON("p", "Preempt", "2016-09-19T18:29:47Z", "vm0"))),
		string(azureDoc(azureEventJSON("p", "Preempt", "Mon, 19 Sep 2016 18:29:47 PST", "vm0"))),
	} {
		if n, ok, err := parseAzureEvents([]byte(body), ""); err == nil || ok {
			t.Errorf("%s: %+v, %v, %v; want an error", body, n, ok, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	for p, base := range map[string]string{AWS: "http://169.254.169.254", GCP: "http://metadata.google.internal", Azure: "http://169.254.169.254"} {
		w, err := New(Config{Provider: p})
		if err != nil {
			t.Fatal(err)
		}
		if w.base != base || w.interval != DefaultInterval || w.tokenTTL != DefaultAWSTokenTTL || !w.ownClient {
			t.Errorf("%s: base %q, interval %v, ttl %v, own client %v", p, w.base, w.interval, w.tokenTTL, w.ownClient)
		}
		tr := w.client.Transport.(*http.Transport)
		if tr.Proxy != nil || w.client.Timeout != DefaultTimeout {
			t.Errorf("%s: default client proxies or has timeout %v", p, w.client.Timeout)
		}
	}
	w, err := New(Config{Provider: AWS, BaseURL: "http://127.0.0.1:9/prefix/"})
	if err != nil || w.base != "http://127.0.0.1:9/prefix" {
		t.Errorf("base %q, %v", w.base, err)
	}
}

// fakeClock is a settable clock for token renewal.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestAWSTokenRenewedBeforeExpiry(t *testing.T) {
	srv := noticetest.NewServer(AWS)
	defer srv.Close()
	w, err := New(Config{Provider: AWS, BaseURL: srv.URL, AWSTokenTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer w.client.CloseIdleConnections()
	clock := &fakeClock{now: time.Now()}
	w.now = clock.Now
	check := func(wantPuts int) {
		t.Helper()
		if _, ok, err := w.Check(context.Background()); ok || err != nil {
			t.Fatalf("Check = %v, %v", ok, err)
		}
		if got := srv.TokenRequests(); got != wantPuts {
			t.Fatalf("%d token requests, want %d", got, wantPuts)
		}
	}
	check(1)
	check(1)
	clock.Advance(53 * time.Second) // before 90% of the minute
	check(1)
	clock.Advance(2 * time.Second) // past it
	check(2)
	check(2)
	if got := srv.Refused(); got != 0 {
		t.Errorf("%d refused requests: renewal should come before any 401", got)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc(gcpPreemptedPath, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("TRUE")) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	w, err := New(Config{Provider: GCP, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer w.client.CloseIdleConnections()
	if n, ok, err := w.Check(context.Background()); ok || err == nil {
		t.Fatalf("Check = %+v, %v, %v; want an unexpected-status error", n, ok, err)
	}
}

// A finished Run must not leave keep-alive connections (and their
// goroutines) behind in its own client.
func TestRunClosesItsConnections(t *testing.T) {
	var (
		mu   sync.Mutex
		open int
		seen int
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("FALSE"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open++
			seen++
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	srv.Start()
	defer srv.Close()
	w, err := New(Config{Provider: GCP, BaseURL: srv.URL, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := w.Run(ctx); err == nil {
		t.Fatal("Run found a notice")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		o, s := open, seen
		mu.Unlock()
		if s == 0 {
			t.Fatal("no connection made")
		}
		if o == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after Run", o)
		}
		time.Sleep(time.Millisecond)
	}
}
