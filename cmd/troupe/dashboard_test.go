package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/dashboard"
)

var dashboardLine = regexp.MustCompile(`msg=dashboard url=(\S+)`)

// A node started with --http serves its page while it trains, and /api/run follows the run:
// its steps grow, and the world of one appears.
func TestNodeServesTheDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node process")
	}
	bin := buildTroupe(t)
	job := writePeerJob(t)
	p := startNode(t, bin, "node0", "--bind", "127.0.0.1:0", "--job", job, "--max-steps", "1200", "--http", "127.0.0.1:0")
	m, _ := p.await(t, dashboardLine, nil, 0)
	url := m[1]
	fetch := func(path string) string {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if page := fetch(""); !strings.Contains(page, `<canvas id="loss-chart"`) {
		t.Fatalf("the page at %s is not the dashboard:\n%.300s", url, page)
	}
	var seen []int
	deadline := time.Now().Add(time.Minute)
	for len(seen) < 2 && time.Now().Before(deadline) {
		var run dashboard.Run
		if err := json.Unmarshal([]byte(fetch("api/run")), &run); err != nil {
			t.Fatal(err)
		}
		if n := len(run.Steps); n > 0 && (len(seen) == 0 || n > seen[len(seen)-1]) && !run.Done {
			if run.Job != "peers" || run.TotalSteps != 1200 || len(run.Worlds) != 1 || len(run.Worlds[0].Members) != 1 {
				t.Fatalf("/api/run: job %q, %d steps in all, worlds %+v", run.Job, run.TotalSteps, run.Worlds)
			}
			seen = append(seen, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(seen) < 2 {
		t.Fatalf("the steps on /api/run did not grow while the node trained: %v", seen)
	}
	if code := p.waitExit(t, 2*time.Minute); code != 0 {
		t.Fatalf("node exited %d", code)
	}
}
