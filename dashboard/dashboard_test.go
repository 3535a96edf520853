package dashboard_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/dashboard"
)

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(body)
}

// sse reads server-sent events from a stream.
type sse struct{ r *bufio.Reader }

func (s sse) next(t *testing.T) (kind, data string) {
	t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && kind != "":
			return kind, data
		}
	}
}

// The page and its assets come from the binary; the event stream starts with a snapshot of
// the run so far and then carries each event as it happens; /api/run is the snapshot as JSON.
func TestBoardServesThePageAndStreamsTheRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := dashboard.New()
	url, stop, err := dashboard.Serve("127.0.0.1:0", b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for path, want := range map[string]string{"": "<canvas", "app.js": "EventSource", "style.css": "canvas"} {
		if body := get(t, url+path); !strings.Contains(body, want) {
			t.Errorf("GET /%s lacks %q", path, want)
		}
	}
	b.Start("peers", 1234, 0, 100)
	b.AddStep(&actors.StepDone{Stamp: actors.Stamp{Step: 0}, Loss: 2.5, Accuracy: 0.1, LR: 1e-3, Samples: 60})
	b.AddWorld(actors.WorldInfo{Generation: 1, Members: []string{"a", "b"}, StartStep: 0})

	resp, err := http.Get(url + "api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := sse{bufio.NewReader(resp.Body)}
	kind, data := events.next(t)
	var snap dashboard.Run
	if err := json.Unmarshal([]byte(data), &snap); kind != "snapshot" || err != nil {
		t.Fatalf("first event %s %v: %s", kind, err, data)
	}
	if snap.Job != "peers" || snap.TotalSteps != 100 || len(snap.Steps) != 1 || snap.Steps[0].Loss != 2.5 || len(snap.Worlds) != 1 {
		t.Fatalf("snapshot %+v", snap)
	}
	time.Sleep(600 * time.Millisecond) // over a quarter of the rate's window: a rate is known
	b.AddStep(&actors.StepDone{Stamp: actors.Stamp{Step: 1}, Loss: math.NaN(), Samples: 60})
	kind, data = events.next(t)
	var step dashboard.Step
	if err := json.Unmarshal([]byte(data), &step); kind != "step" || err != nil || step.Step != 1 || !strings.Contains(data, `"loss":null`) {
		t.Fatalf("second event %s %v: %s (a NaN loss goes as null)", kind, err, data)
	}
	// 60 samples in about 0.6 s (the first step's count is where the window starts).
	if step.SamplesPerSec < 20 || step.SamplesPerSec > 100 {
		t.Errorf("the second step's samples/s is %v, want about 100", step.SamplesPerSec)
	}
	b.AddWorld(actors.WorldInfo{Generation: 2, Members: []string{"a", "b", "c"}, StartStep: 1, Joins: 1})
	if kind, data = events.next(t); kind != "world" || !strings.Contains(data, `"generation":2`) {
		t.Fatalf("third event %s: %s", kind, data)
	}
	var run dashboard.Run
	if err := json.Unmarshal([]byte(get(t, url+"api/run")), &run); err != nil || len(run.Steps) != 2 || len(run.Worlds) != 2 {
		t.Fatalf("/api/run: %v %+v", err, run)
	}
}

// A page that stops reading is dropped, not waited for: the board never blocks training.
func TestBoardDropsALaggingPage(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := dashboard.New()
	url, stop, err := dashboard.Serve("127.0.0.1:0", b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get(url + "api/events") // never read past the headers
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200_000 {
			b.AddStep(&actors.StepDone{Stamp: actors.Stamp{Step: int64(i)}, Loss: 1})
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("adding steps blocked on a page that does not read")
	}
}
