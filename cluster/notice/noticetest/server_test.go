package noticetest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// call sends one request and returns its status and body.
func call(t *testing.T, method, url string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	req.Close = true // no idle connections left for the leak check to wait on
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestListensOnLoopback(t *testing.T) {
	for _, p := range []string{"aws", "gcp", "azure"} {
		s := NewServer(p)
		s.Close()
		if !strings.HasPrefix(s.URL, "http://127.0.0.1:") || s.Provider() != p {
			t.Errorf("%s: URL %q, provider %q", p, s.URL, s.Provider())
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("NewServer accepted an unknown provider")
		}
	}()
	NewServer("auto")
}

func TestAWSProtocol(t *testing.T) {
	s := NewServer("aws")
	defer s.Close()
	put := func(h map[string]string) (int, string) { return call(t, "PUT", s.URL+AWSTokenPath, h) }
	get := func(tok string) (int, string) {
		h := map[string]string{}
		if tok != "" {
			h["X-aws-ec2-metadata-token"] = tok
		}
		return call(t, "GET", s.URL+AWSActionPath, h)
	}
	ttl := "X-aws-ec2-metadata-token-ttl-seconds"
	for _, h := range []map[string]string{{}, {ttl: "0"}, {ttl: "21601"}, {ttl: "six hours"}} {
		if code, _ := put(h); code != http.StatusBadRequest {
			t.Errorf("PUT with %v: %d, want 400", h, code)
		}
	}
	if code, _ := put(map[string]string{ttl: "60", "X-Forwarded-For": "10.0.0.1"}); code != http.StatusForbidden {
		t.Errorf("forwarded PUT: %d, want 403", code)
	}
	if code, _ := call(t, "GET", s.URL+AWSTokenPath, map[string]string{ttl: "60"}); code == http.StatusOK {
		t.Error("token handed out on GET")
	}
	for _, tok := range []string{"", "made-up"} {
		if code, _ := get(tok); code != http.StatusUnauthorized {
			t.Errorf("GET with token %q: %d, want 401", tok, code)
		}
	}
	code, tok := put(map[string]string{ttl: "21600"})
	if code != http.StatusOK || tok == "" {
		t.Fatalf("PUT: %d %q", code, tok)
	}
	if code, _ := get(tok); code != http.StatusNotFound {
		t.Errorf("GET before Announce: %d, want 404", code)
	}
	deadline := time.Date(2017, 9, 18, 8, 22, 0, 0, time.UTC)
	s.Announce(deadline)
	code, body := get(tok)
	var a struct{ Action, Time string }
	if err := json.Unmarshal([]byte(body), &a); code != http.StatusOK || err != nil || a.Action != "terminate" || a.Time != "2017-09-18T08:22:00Z" {
		t.Errorf("GET after Announce: %d %q (%v)", code, body, err)
	}
	s.ExpireTokens()
	if code, _ := get(tok); code != http.StatusUnauthorized {
		t.Errorf("GET with an expired token: %d, want 401", code)
	}
	if s.Refused() != 9 || s.TokenRequests() != 7 || s.Polls() != 5 {
		t.Errorf("counters: refused %d, token requests %d, polls %d", s.Refused(), s.TokenRequests(), s.Polls())
	}
}

func TestGCPProtocol(t *testing.T) {
	s := NewServer("gcp")
	defer s.Close()
	url := s.URL + GCPPreemptedPath
	if code, _ := call(t, "GET", url, nil); code != http.StatusForbidden {
		t.Errorf("without Metadata-Flavor: %d, want 403", code)
	}
	if code, _ := call(t, "GET", url, map[string]string{"Metadata-Flavor": "google"}); code != http.StatusForbidden {
		t.Errorf("with a wrong Metadata-Flavor: %d, want 403", code)
	}
	h := map[string]string{"Metadata-Flavor": "Google"}
	if code, body := call(t, "GET", url, h); code != http.StatusOK || body != "FALSE" {
		t.Errorf("before Announce: %d %q", code, body)
	}
	s.Announce(time.Time{})
	if code, body := call(t, "GET", url, h); code != http.StatusOK || body != "TRUE" {
		t.Errorf("after Announce: %d %q", code, body)
	}
	s.Fail(http.StatusServiceUnavailable)
	if code, _ := call(t, "GET", url, h); code != http.StatusServiceUnavailable {
		t.Errorf("Fail: %d", code)
	}
	s.Fail(0)
	s.Garble([]byte{})
	if code, body := call(t, "GET", url, h); code != http.StatusOK || body != "" {
		t.Errorf("Garble(empty): %d %q", code, body)
	}
	s.Garble(nil)
	s.Clear()
	if code, body := call(t, "GET", url, h); code != http.StatusOK || body != "FALSE" {
		t.Errorf("after Clear: %d %q", code, body)
	}
}

func TestAzureProtocol(t *testing.T) {
	s := NewServer("azure")
	defer s.Close()
	url := s.URL + AzureEventsPath + "?api-version=2020-07-01"
	if code, _ := call(t, "GET", url, nil); code != http.StatusBadRequest {
		t.Errorf("without Metadata: %d, want 400", code)
	}
	h := map[string]string{"Metadata": "true"}
	if code, _ := call(t, "GET", s.URL+AzureEventsPath, h); code != http.StatusBadRequest {
		t.Errorf("without api-version: %d, want 400", code)
	}
	type doc struct {
		DocumentIncarnation int
		Events              []struct {
			EventId, EventType, ResourceType, EventStatus, NotBefore string
			Resources                                                []string
		}
	}
	read := func() doc {
		t.Helper()
		code, body := call(t, "GET", url, h)
		var d doc
		if err := json.Unmarshal([]byte(body), &d); code != http.StatusOK || err != nil || !strings.Contains(body, `"Events":[`) {
			t.Fatalf("%d %q (%v)", code, body, err)
		}
		return d
	}
	first := read()
	if len(first.Events) != 0 {
		t.Fatalf("events before Announce: %+v", first)
	}
	s.AddAzureEvent("Freeze", time.Date(2016, 9, 19, 18, 29, 47, 0, time.UTC), "a", "b")
	s.Announce(time.Time{})
	d := read()
	if d.DocumentIncarnation <= first.DocumentIncarnation || len(d.Events) != 2 {
		t.Fatalf("after two events: %+v", d)
	}
	f, p := d.Events[0], d.Events[1]
	if f.EventType != "Freeze" || f.NotBefore != "Mon, 19 Sep 2016 18:29:47 GMT" || f.EventStatus != "Scheduled" || len(f.Resources) != 2 {
		t.Errorf("freeze event %+v", f)
	}
	if p.EventType != "Preempt" || p.NotBefore != "" || p.EventStatus != "Started" || p.Resources[0] != VMName || len(p.EventId) != 36 {
		t.Errorf("preempt event %+v", p)
	}
	s.Clear()
	if d := read(); len(d.Events) != 0 {
		t.Errorf("after Clear: %+v", d)
	}
}
