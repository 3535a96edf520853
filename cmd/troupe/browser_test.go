package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/dashboard"
)

// chromium returns Debian's headless browser, skipping the test without one unless
// $TROUPE_REQUIRE_BROWSER is set (.ci/run installs it and sets it).
func chromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("TROUPE_REQUIRE_BROWSER") != "" {
			t.Fatalf("no chromium: %v", err)
		}
		t.Skip("no chromium (apt-get install chromium); set TROUPE_REQUIRE_BROWSER to make this fail")
	}
	return bin
}

// browse shows the dashboard at url in headless chromium until release is closed and returns
// the dashboard's DOM at that moment (with shot set, it leaves a screenshot there instead) and
// the console messages. Chromium dumps a page when it has loaded, and the dashboard loads at
// once and then lives on events, so the browser opens a harness instead: the dashboard in a
// frame of the same origin (the harness proxies it), and a script the harness answers only
// once released, which copies the frame's DOM into the page before its load ends. It may run
// on another goroutine than the test's: it returns its failures.
func browse(bin, url string, release <-chan struct{}, shot string) (dom string, console []string, err error) {
	target, err := neturl.Parse(url)
	if err != nil {
		return "", nil, err
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // the event stream, as it comes
	mux := http.NewServeMux()
	mux.Handle("/dash/", http.StripPrefix("/dash", proxy))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<!doctype html><html><body style="margin:0"><iframe id="f" src="/dash/" `+
			`style="border:0;width:1000px;height:1250px"></iframe><script src="/hold.js"></script></body></html>`)
	})
	mux.HandleFunc("/hold.js", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(3 * time.Minute):
		}
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, `const pre = document.createElement("pre"); pre.id = "dump"; pre.hidden = true;
pre.textContent = document.getElementById("f").contentDocument.documentElement.outerHTML;
document.body.appendChild(pre);`)
	})
	harness := httptest.NewServer(mux)
	defer harness.Close()
	action := "--dump-dom"
	if shot != "" {
		action = "--screenshot=" + shot
	}
	dir, err := os.MkdirTemp("", "chromium")
	if err != nil {
		return "", nil, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,1250",
		"--enable-logging=stderr", "--v=0", "--user-data-dir="+dir, action, harness.URL+"/")
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("chromium %s: %v\n%s", action, err, stderr.String())
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, ":CONSOLE") {
			console = append(console, line)
		}
	}
	if shot != "" {
		return "", console, nil
	}
	m := regexp.MustCompile(`(?s)<pre id="dump" hidden="">(.*?)</pre>`).FindStringSubmatch(string(raw))
	if m == nil {
		return "", console, fmt.Errorf("the harness did not copy the dashboard's DOM:\n%.2000s\n%s", raw, stderr.String())
	}
	return html.UnescapeString(m[1]), console, nil
}

// viewers is how many pages the dashboard at url has open on its event stream.
func viewers(url string) int {
	resp, err := http.Get(url + "api/run")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var run dashboard.Run
	if json.NewDecoder(resp.Body).Decode(&run) != nil {
		return 0
	}
	return run.Viewers
}

var (
	domPoints  = regexp.MustCompile(`<canvas id="loss-chart"[^>]*data-points="(\d+)"`)
	domStep    = regexp.MustCompile(`<b id="step">(\d+)</b>`)
	domWorld   = regexp.MustCompile(`<tr data-generation="(\d+)"(?: data-delay-ms="(-?\d+)")?>`)
	domMembers = regexp.MustCompile(`<ul id="members">(.*?)</ul>`)
)

// The dashboard in a real browser during a cluster's run: the page loads without a console
// message, its loss curve has a point for every step it shows, and a node that joins appears
// as a member within a second of the world starting. A screenshot after a kill is left in
// $TROUPE_ARTIFACTS (or the test's log folder).
func TestDashboardInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three node processes and a browser")
	}
	browser := chromium(t)
	bin := buildTroupe(t)
	job := writeJob(t, t.TempDir(), "endless.yaml", endlessPeerJob)
	n0 := startNode(t, bin, "node0", "--bind", "127.0.0.1:0", "--job", job, "--min-nodes", "2", "--http", "127.0.0.1:0")
	m, _ := n0.await(t, dashboardLine, nil, 0)
	url := m[1]
	n1 := startNode(t, bin, "node1", "--bind", "127.0.0.1:0", "--join", n0.gossipAddr(t))
	n0.awaitSteps(t, 5, n0.awaitWorld(t, 1, 0).next)

	// The page stays open while a third node joins, from when it has connected until a moment
	// after the world with the joiner has started.
	release := make(chan struct{})
	type page struct {
		dom     string
		console []string
		err     error
	}
	opened := make(chan page, 1)
	go func() {
		dom, console, err := browse(browser, url, release, "")
		opened <- page{dom, console, err}
	}()
	for deadline := time.Now().Add(time.Minute); viewers(url) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("the browser never opened the dashboard's event stream")
		}
	}
	from := n0.awaitSteps(t, 1, 0)
	startNode(t, bin, "node2", "--bind", "127.0.0.1:0", "--join", n0.gossipAddr(t))
	n0.awaitWorld(t, 2, from)
	time.Sleep(1500 * time.Millisecond) // the bar: the join is on the page within a second
	close(release)
	pg := <-opened
	if pg.err != nil {
		t.Fatal(pg.err)
	}
	dom, console := pg.dom, pg.console
	if len(console) > 0 {
		t.Errorf("the page wrote to the console:\n%s", strings.Join(console, "\n"))
	}
	pts, step := domPoints.FindStringSubmatch(dom), domStep.FindStringSubmatch(dom)
	if pts == nil || step == nil {
		t.Fatalf("no loss chart or step counter in the page:\n%.2000s", dom)
	}
	if pts[1] != step[1] || atoi(step[1]) < 5 {
		t.Errorf("the loss curve has %s points, the page shows step %s: want one point per step, at least 5", pts[1], step[1])
	}
	t.Logf("the page showed step %s with %s points on its loss curve", step[1], pts[1])
	live := false
	for _, w := range domWorld.FindAllStringSubmatch(dom, -1) {
		if w[2] == "" {
			continue // in the snapshot the page started from
		}
		live = true
		t.Logf("world %s reached the page %s ms after the node entered it", w[1], w[2])
		if delay := atoi(w[2]); delay > 1000 {
			t.Errorf("world %s reached the page %d ms after the node entered it, want under a second", w[1], delay)
		}
	}
	members := domMembers.FindStringSubmatch(dom)
	if !live || members == nil || strings.Count(members[1], "<li>") != 3 {
		t.Fatalf("the join did not reach the page while it was open (a live world: %v; members %v)", live, members)
	}

	// A kill, then a screenshot of the page showing both worlds' changes.
	if err := n1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n0.awaitWorld(t, 3, 0)
	dir := os.Getenv("TROUPE_ARTIFACTS")
	if dir == "" {
		dir = logDir(t)
	}
	shot := filepath.Join(dir, "dashboard.png")
	later := make(chan struct{})
	time.AfterFunc(3*time.Second, func() { close(later) })
	_, console, err := browse(browser, url, later, shot)
	if err != nil {
		t.Fatal(err)
	}
	if len(console) > 0 {
		t.Errorf("the page wrote to the console:\n%s", strings.Join(console, "\n"))
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
