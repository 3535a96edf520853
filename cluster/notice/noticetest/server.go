// Package noticetest plays a cloud's instance metadata service on 127.0.0.1,
// so that tests can preempt a node at a moment of their choosing.
//
// Start a Server for one provider, point the node's notice.Config.BaseURL
// (for a process, its flag) at Server.URL, and Announce when the test wants
// the machine gone:
//
//	srv := noticetest.NewServer("aws")
//	defer srv.Close()
//	node := startNode(t, "--preemption=aws", "--metadata-url="+srv.URL)
//	waitTrained(t, node, 3)
//	srv.Announce(time.Now().Add(20 * time.Second))
//	// the node drains and exits before the deadline
//
// The server answers as the providers document it, refusals included, so a
// client that passes here speaks the real protocol:
//
//   - aws: IMDSv2 only. PUT /latest/api/token needs
//     X-aws-ec2-metadata-token-ttl-seconds from 1 to 21600 (else 400) and no
//     X-Forwarded-For (else 403); GET /latest/meta-data/spot/instance-action
//     needs a live X-aws-ec2-metadata-token (else 401) and answers 404 until
//     Announce, then {"action":"terminate","time":...}.
//   - gcp: GET /computeMetadata/v1/instance/preempted needs
//     Metadata-Flavor: Google (else 403) and answers FALSE, then TRUE.
//   - azure: GET /metadata/scheduledevents needs Metadata: true and an
//     api-version (else 400) and answers a Scheduled Events document whose
//     Events are empty until Announce adds a Preempt event for VMName.
//
// Times travel at whole seconds, as on the real services. Fail, Garble and
// ExpireTokens inject the faults a watcher must survive. All methods are safe
// for concurrent use.
package noticetest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"
)

// VMName is the resource Azure events added by Announce name.
const VMName = "troupe-vm-0"

// Paths of the endpoints served.
const (
	AWSTokenPath     = "/latest/api/token"
	AWSActionPath    = "/latest/meta-data/spot/instance-action"
	GCPPreemptedPath = "/computeMetadata/v1/instance/preempted"
	AzureEventsPath  = "/metadata/scheduledevents"
)

// awsNotice is the lead time AWS gives before a spot interruption, used when
// Announce is given no deadline.
const awsNotice = 2 * time.Minute

// Server is a fake metadata service for one provider.
type Server struct {
	// URL is the base URL to configure, "http://127.0.0.1:port".
	URL string

	provider string
	srv      *httptest.Server

	mu          sync.Mutex
	announced   bool
	deadline    time.Time
	events      []azureEvent
	incarnation int
	tokens      map[string]time.Time // AWS token => expiry
	fault       int
	garbage     []byte
	polls       int
	tokenPuts   int
	refused     int
}

type azureEvent struct {
	EventId           string
	EventType         string
	ResourceType      string
	Resources         []string
	EventStatus       string
	NotBefore         string
	Description       string
	EventSource       string
	DurationInSeconds int
}

// NewServer starts a server playing provider ("aws", "gcp" or "azure") on
// 127.0.0.1. It panics on any other provider, as a test cannot go on.
func NewServer(provider string) *Server {
	s := &Server{provider: provider, tokens: map[string]time.Time{}, incarnation: 1}
	var h http.HandlerFunc
	switch provider {
	case "aws":
		h = s.serveAWS
	case "gcp":
		h = s.serveGCP
	case "azure":
		h = s.serveAzure
	default:
		panic(fmt.Sprintf("noticetest: unknown provider %q (want aws, gcp or azure)", provider))
	}
	s.srv = httptest.NewServer(h) // listens on 127.0.0.1
	s.URL = s.srv.URL
	return s
}

// Close stops the server and ends its connections.
func (s *Server) Close() { s.srv.Close() }

// Provider returns the provider played.
func (s *Server) Provider() string { return s.provider }

// Announce makes the service announce the end of the machine at deadline,
// from the next request on. A zero deadline means: AWS, two minutes from
// now; Azure, an event already started (blank NotBefore). GCP gives no time
// and ignores it.
func (s *Server) Announce(deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if deadline.IsZero() && s.provider == "aws" {
		deadline = time.Now().Add(awsNotice)
	}
	s.announced, s.deadline = true, deadline
	if s.provider == "azure" {
		s.addEventLocked("Preempt", deadline, VMName)
	}
}

// AddAzureEvent adds a Scheduled Event of any type (Freeze, Reboot,
// Redeploy, Preempt, Terminate) for the given resources. A zero notBefore
// makes an event already started.
func (s *Server) AddAzureEvent(eventType string, notBefore time.Time, resources ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addEventLocked(eventType, notBefore, resources...)
}

func (s *Server) addEventLocked(eventType string, notBefore time.Time, resources ...string) {
	e := azureEvent{
		EventId:           eventID(),
		EventType:         eventType,
		ResourceType:      "VirtualMachine",
		Resources:         append([]string{}, resources...),
		EventStatus:       "Started",
		EventSource:       "Platform",
		DurationInSeconds: -1,
	}
	if !notBefore.IsZero() {
		e.EventStatus = "Scheduled"
		e.NotBefore = notBefore.UTC().Format(http.TimeFormat)
	}
	s.events = append(s.events, e)
	s.incarnation++
}

// Clear withdraws every announcement and event: nothing is scheduled.
func (s *Server) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.announced, s.deadline = false, time.Time{}
	if len(s.events) > 0 {
		s.events = nil
		s.incarnation++
	}
}

// Fail makes the notice endpoint answer status (a 503, say) with an empty
// body until Fail(0). Header checks still come first.
func (s *Server) Fail(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = status
}

// Garble makes the notice endpoint answer 200 with body, whatever is
// scheduled, until Garble(nil).
func (s *Server) Garble(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.garbage = bytes.Clone(body) // nil stays nil, empty stays a body
}

// ExpireTokens invalidates every AWS token issued so far: their next use
// gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Polls counts requests to the notice endpoint, refused ones included.
func (s *Server) Polls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polls
}

// TokenRequests counts AWS token requests, refused ones included.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenPuts
}

// Refused counts requests refused for a missing or wrong header, method,
// parameter or token.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// refuse answers a protocol error; the caller holds s.mu.
func (s *Server) refuse(w http.ResponseWriter, status int) {
	s.refused++
	http.Error(w, http.StatusText(status), status)
}

// faultLocked answers an injected failure or garbage, if any.
func (s *Server) faultLocked(w http.ResponseWriter) bool {
	switch {
	case s.fault != 0:
		w.WriteHeader(s.fault)
	case s.garbage != nil:
		w.WriteHeader(http.StatusOK)
		w.Write(s.garbage)
	default:
		return false
	}
	return true
}

func (s *Server) serveAWS(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.URL.Path {
	case AWSTokenPath:
		s.tokenPuts++
		if r.Method != http.MethodPut {
			s.refuse(w, http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("X-Forwarded-For") != "" {
			s.refuse(w, http.StatusForbidden)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			s.refuse(w, http.StatusBadRequest)
			return
		}
		tok := randomID() + randomID()
		s.tokens[tok] = time.Now().Add(time.Duration(ttl) * time.Second)
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, tok)
	case AWSActionPath:
		s.polls++
		if r.Method != http.MethodGet {
			s.refuse(w, http.StatusMethodNotAllowed)
			return
		}
		exp, ok := s.tokens[r.Header.Get("X-aws-ec2-metadata-token")]
		if !ok || !time.Now().Before(exp) {
			s.refuse(w, http.StatusUnauthorized)
			return
		}
		if s.faultLocked(w) {
			return
		}
		if !s.announced {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, `{"action": "terminate", "time": %q}`, s.deadline.UTC().Format("2006-01-02T15:04:05Z"))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveGCP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path != GCPPreemptedPath {
		http.NotFound(w, r)
		return
	}
	s.polls++
	if r.Header.Get("Metadata-Flavor") != "Google" {
		s.refuse(w, http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet {
		s.refuse(w, http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Metadata-Flavor", "Google")
	if s.faultLocked(w) {
		return
	}
	w.Header().Set("Content-Type", "application/text")
	if s.announced {
		fmt.Fprint(w, "TRUE")
	} else {
		fmt.Fprint(w, "FALSE")
	}
}

func (s *Server) serveAzure(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path != AzureEventsPath {
		http.NotFound(w, r)
		return
	}
	s.polls++
	if r.Header.Get("Metadata") != "true" || r.URL.Query().Get("api-version") == "" {
		s.refuse(w, http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodGet {
		s.refuse(w, http.StatusMethodNotAllowed)
		return
	}
	if s.faultLocked(w) {
		return
	}
	events := s.events
	if events == nil {
		events = []azureEvent{}
	}
	body, err := json.Marshal(struct {
		DocumentIncarnation int
		Events              []azureEvent
	}{s.incarnation, events})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(body)
}

// eventID returns a random GUID, the form of Azure's EventId.
func eventID() string {
	var b [16]byte
	rand.Read(b[:])
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
