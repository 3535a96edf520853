package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
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

// `troupe status --http` stays joined and serves the whole cluster: every member's state, the
// world of two, and the furthest step as it advances; SIGTERM ends it cleanly.
func TestStatusServesTheClusterDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three processes")
	}
	bin := buildTroupe(t)
	job := writeJob(t, t.TempDir(), "endless.yaml", endlessPeerJob)
	n0 := startNode(t, bin, "node0", "--bind", "127.0.0.1:0", "--job", job, "--min-nodes", "2")
	startNode(t, bin, "node1", "--bind", "127.0.0.1:0", "--join", n0.gossipAddr(t))
	n0.awaitSteps(t, 3, n0.awaitWorld(t, 1, 0).next)
	st := exec.Command(bin, "status", "--join", n0.gossipAddr(t), "--http", "127.0.0.1:0", "--every", "200ms")
	stderr, err := st.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	defer st.Process.Kill()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := dashboardLine.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	var url string
	select {
	case url = <-urls:
	case <-time.After(30 * time.Second):
		t.Fatal("troupe status --http never said where its dashboard is")
	}
	var run dashboard.Run
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "api/run")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(raw, &run); err != nil {
			t.Fatal(err)
		}
		if len(run.Members) == 2 && len(run.Steps) >= 3 && len(run.Worlds) >= 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if run.Job != "peers" || len(run.Members) != 2 || len(run.Steps) < 3 || len(run.Worlds[0].Members) != 2 {
		t.Fatalf("the cluster's dashboard: job %q, members %+v, %d steps, worlds %+v", run.Job, run.Members, len(run.Steps), run.Worlds)
	}
	for i := 1; i < len(run.Steps); i++ {
		if run.Steps[i].Step <= run.Steps[i-1].Step {
			t.Fatalf("observed steps do not advance: %d then %d", run.Steps[i-1].Step, run.Steps[i].Step)
		}
	}
	for _, m := range run.Members {
		if m.State != "training" || m.Rank < 0 || m.Step <= 0 {
			t.Errorf("member %+v: want training, ranked, past step 0", m)
		}
	}
	st.Process.Signal(syscall.SIGTERM)
	if err := st.Wait(); err != nil {
		t.Errorf("troupe status --http after SIGTERM: %v", err)
	}
}
