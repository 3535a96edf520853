package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/checkpoint/s3store/s3test"
	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/cluster/notice"
	"github.com/troupe-ml/troupe/cluster/notice/noticetest"
)

// peerJob is a small MNIST MLP: long enough (1,200 steps) for a scenario of joins and
// departures to play out while it trains, short enough for CI.
const peerJob = `name: peers
seed: 7
data:
  train_limit: 12000
  test_limit: 2000
model:
  input: [784]
  layers:
    - {type: dense, units: 128, init: he}
    - {type: relu}
    - {type: dense, units: 10, init: xavier}
  loss: softmax_cross_entropy
optimizer:
  name: adam
  lr: 0.001
  schedule: {kind: cosine, min_lr: 0.00001}
train:
  epochs: 6
  batch_size: 60
  bucket_kib: 4  # the last layer's gradient goes ahead in a bucket of its own
`

// nodeProc is one `troupe node` process: its stderr is read line by line so that a test or a
// benchmark can wait for what the node says, and its stdout holds the --json summary.
type nodeProc struct {
	name string
	cmd  *exec.Cmd
	out  syncBuffer

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line and at exit
	exited  bool
	waitErr error
}

// awaitTimeout bounds every wait on a node: generous, since a loaded 2-core host under the
// race detector is slow.
const awaitTimeout = 2 * time.Minute

// startNode starts a node; it is killed at the end of the test whatever happened, and its
// last lines are shown (and its whole log kept) when the test failed.
func startNode(tb testing.TB, bin, name string, args ...string) *nodeProc {
	tb.Helper()
	p := &nodeProc{name: name, changed: make(chan struct{})}
	base := []string{"node", "--json", "--progress", "lines", "--log-every", "10"}
	if !slices.Contains(args, "--checkpoint") {
		base = append(base, "--no-checkpoint")
	}
	p.cmd = exec.Command(bin, append(base, args...)...)
	p.cmd.Stdout = &p.out
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(logDir(tb), name+".log"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		p.waitExit(tb, 10*time.Second)
		if tb.Failed() {
			tb.Logf("--- %s stderr (last lines; all of it in %s):\n%s", p.name, logDir(tb), p.tail(40))
		}
	})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		err := p.cmd.Wait()
		logFile.Close()
		p.mu.Lock()
		p.exited, p.waitErr = true, err
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}()
	return p
}

// logDir keeps the nodes' logs of a test; a failed test leaves them for a look.
func logDir(tb testing.TB) string {
	tb.Helper()
	logDirs.Lock()
	defer logDirs.Unlock()
	if d, ok := logDirs.m[tb.Name()]; ok {
		return d
	}
	d, err := os.MkdirTemp("", "troupe-nodes")
	if err != nil {
		tb.Fatal(err)
	}
	logDirs.m[tb.Name()] = d
	tb.Cleanup(func() {
		logDirs.Lock()
		delete(logDirs.m, tb.Name())
		logDirs.Unlock()
		if !tb.Failed() {
			os.RemoveAll(d)
		}
	})
	return d
}

var logDirs = struct {
	sync.Mutex
	m map[string]string
}{m: map[string]string{}}

func (p *nodeProc) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines[max(len(p.lines)-n, 0):], "\n")
}

// await waits for a line from index from on that matches re and ok (nil: any match), and
// returns its submatches and the index after it. It fails when the node exits or
// awaitTimeout passes first.
func (p *nodeProc) await(tb testing.TB, re *regexp.Regexp, ok func([]string) bool, from int) ([]string, int) {
	tb.Helper()
	deadline := time.After(awaitTimeout)
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if m := re.FindStringSubmatch(p.lines[i]); m != nil && (ok == nil || ok(m)) {
				p.mu.Unlock()
				return m, i + 1
			}
		}
		from = len(p.lines)
		exited, changed := p.exited, p.changed
		p.mu.Unlock()
		if exited {
			tb.Fatalf("%s exited before saying %q:\n%s", p.name, re, p.tail(30))
		}
		select {
		case <-changed:
		case <-deadline:
			tb.Fatalf("%s did not say %q within %s:\n%s", p.name, re, awaitTimeout, p.tail(30))
		}
	}
}

// waitExit waits for the process to end and returns its exit code (-1: killed by a signal).
func (p *nodeProc) waitExit(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		exited, err, changed := p.exited, p.waitErr, p.changed
		p.mu.Unlock()
		if exited {
			if exit, ok := err.(*exec.ExitError); ok {
				return exit.ExitCode()
			}
			if err != nil {
				tb.Fatalf("%s: %v", p.name, err)
			}
			return 0
		}
		select {
		case <-changed:
		case <-deadline:
			tb.Fatalf("%s still running after %s:\n%s", p.name, timeout, p.tail(30))
		}
	}
}

// summary decodes the node's --json output.
func (p *nodeProc) summary(tb testing.TB) nodeSummary {
	tb.Helper()
	var s nodeSummary
	if err := json.Unmarshal([]byte(p.out.String()), &s); err != nil {
		tb.Fatalf("%s: --json output: %v\n%s", p.name, err, p.out.String())
	}
	return s
}

// finish waits for a node that must complete the job and returns its summary.
func (p *nodeProc) finish(tb testing.TB) nodeSummary {
	tb.Helper()
	if code := p.waitExit(tb, 5*time.Minute); code != 0 {
		tb.Fatalf("%s exited %d, want 0", p.name, code)
	}
	return p.summary(tb)
}

var (
	gossipLine    = regexp.MustCompile(`msg="node up" id=(\S+) gossip=(\S+)`)
	worldLine     = regexp.MustCompile(`^time=(\S+) .*msg="training in a new world" generation=(\d+) rank=(\d+) members=(\d+)`)
	firstStepLine = regexp.MustCompile(`^time=(\S+) .*msg="first step in a new world" generation=(\d+) step=(\d+) since_entry_ms=(\d+)(?: stall_ms=(\d+))?`)
	stepLine      = regexp.MustCompile(`^step (\d+)/`)
	metricsLine   = regexp.MustCompile(`msg=metrics url=(\S+)`)
)

// gossipAddr waits for the node to say where it listens.
func (p *nodeProc) gossipAddr(tb testing.TB) string {
	m, _ := p.await(tb, gossipLine, nil, 0)
	return m[2]
}

// worldEntry is a node's "training in a new world" line.
type worldEntry struct {
	at                 time.Time
	gen, rank, members int
	next               int // the line index after it
}

// awaitWorld waits for the node to enter a world of generation gen or later.
func (p *nodeProc) awaitWorld(tb testing.TB, gen, from int) worldEntry {
	tb.Helper()
	m, next := p.await(tb, worldLine, func(m []string) bool { return atoi(m[2]) >= gen }, from)
	return worldEntry{at: logTime(tb, m[1]), gen: atoi(m[2]), rank: atoi(m[3]), members: atoi(m[4]), next: next}
}

// firstStep is a node's "first step in a new world" line; stall is -1 where the line has none
// (the node's first world).
type firstStep struct {
	at         time.Time
	step       int
	sinceEntry time.Duration
	stall      time.Duration
	next       int
}

// awaitFirstStep waits for the node's first step in world gen.
func (p *nodeProc) awaitFirstStep(tb testing.TB, gen, from int) firstStep {
	tb.Helper()
	m, next := p.await(tb, firstStepLine, func(m []string) bool { return atoi(m[2]) == gen }, from)
	f := firstStep{at: logTime(tb, m[1]), step: atoi(m[3]), sinceEntry: time.Duration(atoi(m[4])) * time.Millisecond, stall: -1, next: next}
	if m[5] != "" {
		f.stall = time.Duration(atoi(m[5])) * time.Millisecond
	}
	return f
}

// awaitSteps waits until the node has logged n more progress lines after index from.
func (p *nodeProc) awaitSteps(tb testing.TB, n int, from int) int {
	tb.Helper()
	for range n {
		_, from = p.await(tb, stepLine, nil, from)
	}
	return from
}

// atoi reads a number a pattern of \d+ matched.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(fmt.Sprintf("%q matched \\d+ but is not a number", s))
	}
	return n
}

// logTime reads a log line's timestamp (the nodes share the machine's clock with the test).
func logTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		tb.Fatalf("log timestamp %q: %v", s, err)
	}
	return at
}

func writePeerJob(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "peers.yaml")
	if err := os.WriteFile(path, []byte(peerJob), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// longPeerJob is peerJob cut into six times as many, smaller steps (7,200): a scenario of
// many world changes must not outlast the job, however fast the steps are.
var longPeerJob = strings.Replace(peerJob, "batch_size: 60", "batch_size: 10", 1)

// endlessPeerJob is peerJob for 200 epochs: for scenarios that stop their nodes themselves.
var endlessPeerJob = strings.Replace(peerJob, "epochs: 6", "epochs: 200", 1)

// singleNode trains a job in one process, as the reference the peers are held to; each job
// is trained once per test binary.
func singleNode(jobText string) (summary, error) {
	once, _ := singleNodeRuns.LoadOrStore(jobText, sync.OnceValues(func() (summary, error) { return trainAlone(jobText) }))
	return once.(func() (summary, error))()
}

var singleNodeRuns sync.Map // job text -> func() (summary, error)

func trainAlone(jobText string) (summary, error) {
	dir, err := os.MkdirTemp("", "troupe-single")
	if err != nil {
		return summary{}, err
	}
	defer os.RemoveAll(dir)
	job := filepath.Join(dir, "peers.yaml")
	if err := os.WriteFile(job, []byte(jobText), 0o644); err != nil {
		return summary{}, err
	}
	var out, errb syncBuffer
	if code := run(context.Background(), []string{"train", job, "--json", "--no-checkpoint", "--progress", "none", "--loss-log", filepath.Join(dir, "loss.csv")}, &out, &errb); code != 0 {
		return summary{}, fmt.Errorf("train exited %d: %s", code, errb.String())
	}
	var s summary
	err = json.Unmarshal([]byte(out.String()), &s)
	return s, err
}

// The must-show scenario: three nodes start a job; a fourth joins; one leaves with SIGTERM, one
// is killed with SIGKILL, one is frozen with SIGSTOP past the failure timeout and resumed. The
// job completes, every node still there reports the same parameters, the frozen one came back
// as a new incarnation, and the accuracy holds the single-node bar.
func TestPeersSurviveJoinLeaveKillAndFreeze(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four node processes")
	}
	bin := buildTroupe(t)
	job := writeJob(t, t.TempDir(), "peers.yaml", longPeerJob)
	a := startNode(t, bin, "A", "--bind", "127.0.0.1:0", "--job", job, "--min-nodes", "3")
	seed := a.gossipAddr(t)
	b := startNode(t, bin, "B", "--bind", "127.0.0.1:0", "--join", seed)
	c := startNode(t, bin, "C", "--bind", "127.0.0.1:0", "--join", seed)

	w := a.awaitWorld(t, 1, 0)
	if w.members != 3 {
		t.Fatalf("first world has %d members, want the 3 --min-nodes asked for", w.members)
	}
	// change applies one change once the world has trained a little, and checks the size of
	// the world that follows it.
	change := func(what string, act func() error, members int) {
		t.Helper()
		at := a.awaitSteps(t, 2, w.next)
		if err := act(); err != nil {
			t.Fatal(err)
		}
		w = a.awaitWorld(t, w.gen+1, at)
		if w.members != members {
			t.Fatalf("generation %d has %d members after %s, want %d", w.gen, w.members, what, members)
		}
	}
	var d *nodeProc
	change("a join", func() error {
		d = startNode(t, bin, "D", "--bind", "127.0.0.1:0", "--join", b.gossipAddr(t)) // any member will do
		return nil
	}, 4)
	// Never fewer than two members until the end: a node alone trains so fast that it could
	// finish the job before the next change.
	change("a freeze", func() error { return d.cmd.Process.Signal(syscall.SIGSTOP) }, 3)
	change("the frozen node's return", func() error { return d.cmd.Process.Signal(syscall.SIGCONT) }, 4)
	change("a graceful leave", func() error { return b.cmd.Process.Signal(syscall.SIGTERM) }, 3)
	change("a kill", func() error { return c.cmd.Process.Kill() }, 2)

	sa, sb, sd := a.finish(t), b.finish(t), d.finish(t)
	if !sb.Left || sb.Steps >= sa.Steps {
		t.Errorf("B left=%v at step %d, want a graceful leave before the end (%d)", sb.Left, sb.Steps, sa.Steps)
	}
	if first, _ := d.await(t, gossipLine, nil, 0); sd.Incarnations != 2 || sd.NodeID == first[1] {
		t.Errorf("D ran %d incarnations (last id %s), want 2: frozen past the timeout, it must come back as a new node", sd.Incarnations, sd.NodeID)
	}
	if sa.ParamsSHA256 != sd.ParamsSHA256 || sa.Steps != sd.Steps {
		t.Errorf("A and D disagree: steps %d/%d, params %s/%s", sa.Steps, sd.Steps, sa.ParamsSHA256, sd.ParamsSHA256)
	}
	if sa.Generations < 6 || sa.Joins < 2 || sa.Departures < 3 {
		t.Errorf("A saw %d worlds, %d joins, %d departures; want at least 6, 2 and 3", sa.Generations, sa.Joins, sa.Departures)
	}
	// Each world change throws away at most the step in flight (and the step a member may
	// have applied after promising): a handful over five changes.
	if sa.StepsRedone > 10 {
		t.Errorf("A redid %d steps over %d world changes", sa.StepsRedone, sa.Generations-1)
	}
	ref, err := singleNode(longPeerJob)
	if err != nil {
		t.Fatal(err)
	}
	if sa.Steps != ref.Steps || sa.TestAccuracy < ref.TestAccuracy-0.01 {
		t.Errorf("peers: %d steps, test accuracy %.4f; one process: %d steps, %.4f (bar: within 0.01)",
			sa.Steps, sa.TestAccuracy, ref.Steps, ref.TestAccuracy)
	}
	t.Logf("one process %.4f; peers %.4f over %d worlds, %d steps redone on A", ref.TestAccuracy, sa.TestAccuracy, sa.Generations, sa.StepsRedone)
}

// Three nodes without churn follow the one-process run step for step: the global batch is the
// same, only the order of the float additions in the all-reduce differs.
func TestPeersFollowTheOneProcessRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three node processes")
	}
	bin := buildTroupe(t)
	job := writePeerJob(t)
	dir := t.TempDir()
	logs := make([]string, 3)
	procs := make([]*nodeProc, 3)
	for i := range procs {
		logs[i] = filepath.Join(dir, fmt.Sprintf("loss%d.csv", i))
		// LAN timings: this test wants one world of three from start to end, and loopback's
		// sub-second failure detection takes a starved node for a dead one on a busy host.
		args := []string{"--bind", "127.0.0.1:0", "--gossip", "lan", "--loss-log", logs[i]}
		if i == 0 {
			args = append(args, "--job", job, "--min-nodes", "3", "--max-steps", "300", "--metrics", "127.0.0.1:0")
		} else {
			args = append(args, "--join", procs[0].gossipAddr(t))
		}
		procs[i] = startNode(t, bin, fmt.Sprintf("node%d", i), args...)
	}
	// While they train, `troupe status` sees the world of three from outside it.
	procs[0].awaitSteps(t, 1, procs[0].awaitWorld(t, 1, 0).next)
	status := exec.Command(bin, "status", "--join", procs[2].gossipAddr(t), "--gossip", "lan", "--json", "--timeout", "20s")
	var statusErr bytes.Buffer
	status.Stderr = &statusErr
	raw, err := status.Output()
	if err != nil {
		t.Fatalf("status: %v\n%s\n%s", err, raw, statusErr.String())
	}
	var rep statusReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, raw)
	}
	if rep.Job != "peers" || rep.Generation != 1 || len(rep.World) != 3 || len(rep.Members) != 3 || rep.Step < 1 || rep.TotalSteps != 300 {
		t.Fatalf("status: %+v; want job peers, generation 1, a world of 3 members past step 0 of 300", rep)
	}
	for _, m := range rep.Members {
		if m.Rank < 0 || (m.State != "training" && m.State != "finished") {
			t.Fatalf("status of %s: rank %d, %s", m.ID, m.Rank, m.State)
		}
	}
	// And its metrics say the same.
	m, _ := procs[0].await(t, metricsLine, nil, 0)
	scrape := scrapeMetrics(t, m[1])
	for name, ok := range map[string]func(float64) bool{
		"troupe_generation":                     func(v float64) bool { return v == 1 },
		"troupe_world_members":                  func(v float64) bool { return v == 3 },
		"troupe_steps_total":                    func(v float64) bool { return v >= 1 },
		"troupe_allreduce_bytes_total":          func(v float64) bool { return v >= 4*101770 },
		"troupe_allreduce_bus_bytes_per_second": func(v float64) bool { return v > 0 },
	} {
		if v, found := scrape[name]; !found || !ok(v) {
			t.Errorf("metric %s = %v (present: %v)", name, v, found)
		}
	}
	sums := make([]nodeSummary, 3)
	for i, p := range procs {
		if code := p.waitExit(t, 5*time.Minute); code != 0 {
			t.Fatalf("%s exited %d", p.name, code)
		}
		sums[i] = p.summary(t)
		if sums[i].ParamsSHA256 != sums[0].ParamsSHA256 || sums[i].Generations != 1 || sums[i].WorldSize != 3 {
			t.Fatalf("%s: params %s (node0 %s), %d worlds of %d: want one world of 3 and equal parameters",
				p.name, sums[i].ParamsSHA256, sums[0].ParamsSHA256, sums[i].Generations, sums[i].WorldSize)
		}
	}
	// The reference: one process, the same job, the same 300 steps.
	refLog := filepath.Join(dir, "ref.csv")
	var out, errb syncBuffer
	if code := run(context.Background(), []string{"train", job, "--max-steps", "300", "--no-checkpoint", "--progress", "none", "--loss-log", refLog}, &out, &errb); code != 0 {
		t.Fatalf("train exited %d: %s", code, errb.String())
	}
	ref, peer := readLosses(t, refLog), readLosses(t, logs[1])
	if len(ref) != 300 || len(peer) != 300 {
		t.Fatalf("%d and %d losses, want 300 each", len(ref), len(peer))
	}
	// Tolerance: float32 sums in another order differ in the last bits; Adam amplifies that
	// slowly over 300 steps. 1e-3 relative is far below any change of the learning dynamics
	// (a different batch split or a lost sample moves the loss by percents).
	worst := 0.0
	for i := range ref {
		worst = max(worst, math.Abs(peer[i]-ref[i])/math.Abs(ref[i]))
	}
	if worst > 1e-3 {
		t.Fatalf("per-step loss of the peers differs from one process by up to %.3g (relative), want <= 1e-3", worst)
	}
	t.Logf("per-step loss: largest relative difference %.3g over 300 steps", worst)
}

func readLosses(t *testing.T, path string) []float64 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n")[1:] {
		_, v, _ := strings.Cut(line, ",")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		out = append(out, f)
	}
	return out
}

// The README's path: a bare `troupe train`, then a node started with examples/mnist-mlp.yaml
// (the default job written out) in the same folder, checkpoints on. They are one job, so the
// node resumes the run in checkpoints/mnist-mlp instead of refusing "a checkpoint of another
// job".
func TestNodeResumesTheBareTrainRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two processes")
	}
	bin := buildTroupe(t)
	dir := t.TempDir()
	job, err := filepath.Abs("../../examples/mnist-mlp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	train := exec.Command(bin, "train", "--max-steps", "20", "--progress", "none")
	train.Dir = dir
	if out, err := train.CombinedOutput(); err != nil {
		t.Fatalf("troupe train: %v\n%s", err, out)
	}
	node := exec.Command(bin, "node", "--bind", "127.0.0.1:0", "--job", job, "--max-steps", "30", "--progress", "none", "--json")
	node.Dir = dir
	var stderr bytes.Buffer
	node.Stderr = &stderr
	out, err := node.Output()
	if err != nil {
		t.Fatalf("troupe node --job examples/mnist-mlp.yaml after troupe train: %v\n%s", err, stderr.String())
	}
	var sum nodeSummary
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if sum.ResumedFromStep != 20 || sum.Steps != 30 {
		t.Fatalf("the node resumed from step %d and ended at %d, want 20 and 30", sum.ResumedFromStep, sum.Steps)
	}
}

// A joiner whose seed never answers says every few seconds what it waits for, and gives up
// with a clear error and exit status 1 when --join-timeout passes (by default after minutes,
// not never).
func TestJoinerOfADeadSeedGivesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node process")
	}
	bin := buildTroupe(t)
	// A port nothing listens on: taken, then let go.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	p := startNode(t, bin, "joiner", "--bind", "127.0.0.1:0", "--join", dead, "--join-timeout", "7s")
	began := time.Now()
	if code := p.waitExit(t, time.Minute); code != 1 {
		t.Fatalf("exit status %d, want 1", code)
	}
	if waited := time.Since(began); waited > 30*time.Second {
		t.Errorf("gave up after %s, want about 7s", waited)
	}
	log := p.tail(40)
	for _, want := range []string{"still waiting for a member to hand over the job", "within --join-timeout 7s", dead} {
		if !strings.Contains(log, want) {
			t.Errorf("the joiner's log lacks %q:\n%s", want, log)
		}
	}
	if def := newNodeCommand(&syncBuffer{}, &syncBuffer{}).Flags().Lookup("join-timeout").DefValue; def != defaultJoinWait.String() || defaultJoinWait <= 0 {
		t.Errorf("--join-timeout defaults to %s: a joiner of a dead seed must not wait for ever", def)
	}
}

// A node holding another cluster key can neither join nor get the job: gossip, the control
// plane and the data plane all refuse it. A node with the right key joins the same cluster.
func TestWrongKeyNodeIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three node processes")
	}
	bin := buildTroupe(t)
	job := writePeerJob(t)
	dir := t.TempDir()
	keyFile := func(name string) string {
		key, err := cluster.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(cluster.EncodeKey(key)), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	right, wrong := keyFile("cluster.key"), keyFile("other.key")
	// A waits for a second node before its first step, so that it cannot finish the job alone
	// before the others have tried: the intruder must not be that node, the friend is.
	// LAN timings, as this test wants one world of A and the friend (see TestPeersFollowTheOneProcessRun).
	a := startNode(t, bin, "A", "--bind", "127.0.0.1:0", "--gossip", "lan", "--key-file", right, "--job", job, "--min-nodes", "2")
	seed := a.gossipAddr(t)
	intruder := startNode(t, bin, "intruder", "--bind", "127.0.0.1:0", "--key-file", wrong, "--join", seed, "--join-timeout", "4s")
	if code := intruder.waitExit(t, time.Minute); code == 0 {
		t.Fatal("a node with another key joined")
	}
	if !strings.Contains(intruder.tail(5), "no member handed over the job") {
		t.Fatalf("the refused node should say why:\n%s", intruder.tail(5))
	}
	friend := startNode(t, bin, "friend", "--bind", "127.0.0.1:0", "--gossip", "lan", "--key-file", right, "--join", seed)
	if w := a.awaitWorld(t, 1, 0); w.members != 2 {
		t.Fatalf("the first world has %d members, want A and the node with the key", w.members)
	}
	sa, sf := a.finish(t), friend.finish(t)
	if sa.Generations != 1 || sa.ParamsSHA256 != sf.ParamsSHA256 {
		t.Fatalf("A: %d worlds, params %s; friend %s: want one world of the two, equal parameters",
			sa.Generations, sa.ParamsSHA256, sf.ParamsSHA256)
	}
	if sa.MalformedFrames != 0 {
		t.Fatalf("A decoded %d malformed frames; the intruder should not have reached the decoder at all", sa.MalformedFrames)
	}
}

// scrapeMetrics reads a Prometheus text page into name -> value, for metrics without labels.
func scrapeMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// fleetRestart: every node of a 3-node run is killed with SIGKILL; the newest checkpoint then
// has one byte flipped; two new nodes started with the same job and store resume from the
// checkpoint before it and complete the job at the single-process accuracy bar.
func fleetRestart(t *testing.T, store string) {
	bin := buildTroupe(t)
	job := writePeerJob(t)
	ckpt := []string{"--checkpoint", store, "--checkpoint-every", "50", "--keep", "3"}
	start := func(name string, args ...string) *nodeProc {
		return startNode(t, bin, name, append(append([]string{"--bind", "127.0.0.1:0"}, args...), ckpt...)...)
	}
	const steps = "600" // of the job's 1,200: the run stops there, the schedule spans them all
	a := start("A", "--job", job, "--min-nodes", "3", "--max-steps", steps)
	seed := a.gossipAddr(t)
	b, c := start("B", "--join", seed), start("C", "--join", seed)
	w := a.awaitWorld(t, 1, 0)
	a.awaitSteps(t, 30, w.next) // past step 300: several checkpoints written
	for _, p := range []*nodeProc{a, b, c} {
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		p.waitExit(t, time.Minute)
	}

	s, err := actors.OpenStore(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := checkpoint.NewManager(s, 0).List()
	if err != nil {
		t.Fatal(err)
	}
	var committed []int64
	for _, info := range infos {
		if info.Committed {
			committed = append(committed, info.Step)
		}
	}
	if len(committed) < 2 {
		t.Fatalf("committed checkpoints %v: want at least two after 300 steps at one every 50", committed)
	}
	newest, previous := committed[len(committed)-1], committed[len(committed)-2]
	part := checkpoint.Name(newest) + "/params.bin"
	raw, err := s.Get(part)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x01
	if err := s.Put(part, raw); err != nil {
		t.Fatal(err)
	}

	a2 := start("A2", "--job", job, "--min-nodes", "2", "--max-steps", steps)
	b2 := start("B2", "--join", a2.gossipAddr(t))
	if m, _ := a2.await(t, regexp.MustCompile(`msg="skipping a broken checkpoint" checkpoint=(\S+) reason="([^"]*)"`), nil, 0); m[1] != checkpoint.Name(newest) || !strings.Contains(m[2], "params.bin") {
		t.Fatalf("skipped %s (%s), want %s's params.bin", m[1], m[2], checkpoint.Name(newest))
	}
	sa, sb := a2.finish(t), b2.finish(t)
	if sa.ResumedFromStep != previous || sa.StartStep != previous {
		t.Fatalf("resumed from step %d (start %d), want %d: the checkpoint before the corrupt %d", sa.ResumedFromStep, sa.StartStep, previous, newest)
	}
	var out, errb syncBuffer
	if code := run(context.Background(), []string{"train", job, "--max-steps", steps, "--json", "--no-checkpoint", "--progress", "none"}, &out, &errb); code != 0 {
		t.Fatalf("train exited %d: %s", code, errb.String())
	}
	var ref summary
	if err := json.Unmarshal([]byte(out.String()), &ref); err != nil {
		t.Fatal(err)
	}
	if sa.Steps != ref.Steps || sa.ParamsSHA256 != sb.ParamsSHA256 || sa.TestAccuracy < ref.TestAccuracy-0.01 {
		t.Fatalf("after the restart: %d steps, accuracy %.4f, params %s/%s; one process: %d steps, %.4f",
			sa.Steps, sa.TestAccuracy, sa.ParamsSHA256, sb.ParamsSHA256, ref.Steps, ref.TestAccuracy)
	}
	if sa.Checkpoints == 0 {
		t.Fatal("the restarted fleet wrote no checkpoint")
	}
	t.Logf("killed past step 300; newest checkpoint %d corrupted; resumed from %d; accuracy %.4f (one process %.4f); %d checkpoints written after the restart",
		newest, previous, sa.TestAccuracy, ref.TestAccuracy, sa.Checkpoints)
}

func TestFleetRestartsFromADirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five node processes")
	}
	fleetRestart(t, t.TempDir())
}

// A preemption notice from the (local) metadata service drains a node inside the notice's
// deadline: it finishes its step in flight, leaves, exits 0, and the world goes on from the
// step it reached, so no applied step is lost. The last member, told to go as well, writes a
// checkpoint of the step it reached before it leaves.
func TestPreemptionNoticeDrainsANode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two node processes")
	}
	bin := buildTroupe(t)
	job := writeJob(t, t.TempDir(), "peers.yaml", endlessPeerJob) // A is told to go before the end
	imds := noticetest.NewServer(notice.AWS)
	defer imds.Close()
	ckpt := t.TempDir()
	a := startNode(t, bin, "A", "--bind", "127.0.0.1:0", "--job", job, "--min-nodes", "2",
		"--checkpoint", ckpt, "--checkpoint-every", "10000")
	b := startNode(t, bin, "B", "--bind", "127.0.0.1:0", "--join", a.gossipAddr(t),
		"--preemption", "aws", "--metadata-url", imds.URL, "--notice-interval", "100ms")
	w := a.awaitWorld(t, 1, 0)
	at := a.awaitSteps(t, 3, w.next)
	deadline := time.Now().Add(10 * time.Second) // spot instances get two minutes; a test, less
	imds.Announce(deadline)
	if code := b.waitExit(t, time.Minute); code != 0 {
		t.Fatalf("the preempted node exited %d, want 0", code)
	}
	exited := time.Now()
	sb := b.summary(t)
	if !sb.Preempted || !sb.Left || exited.After(deadline) {
		t.Fatalf("preempted=%v left=%v, exited %s after the deadline: want a drain inside it", sb.Preempted, sb.Left, exited.Sub(deadline))
	}
	// The world's start step is the cursor A promised, which can be a step behind the state it
	// holds (its last step may complete after its promise); the state broadcast at the start of
	// every world is what counts, so the step trained first is the one to check.
	w = a.awaitWorld(t, 2, at)
	first := a.awaitFirstStep(t, 2, w.next)
	if w.members != 1 || int64(first.step) != sb.Steps {
		t.Fatalf("the world after the drain has %d members and trains step %d first; the drained node reached %d: want 1 member, no step lost",
			w.members, first.step, sb.Steps)
	}
	// A is now the last member: told to go too, it checkpoints the step it reached first.
	a.awaitSteps(t, 2, w.next)
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sa := a.finish(t)
	if !sa.Left || newestStep(t, ckpt) != sa.Steps || sa.Checkpoints != 1 {
		t.Fatalf("the last member left at step %d (left=%v) with %d checkpoints written, the newest at step %d: want one, at the step it reached",
			sa.Steps, sa.Left, sa.Checkpoints, newestStep(t, ckpt))
	}
	t.Logf("notice -> exit in %s (deadline %s later); the world went on from step %d", exited.Sub(deadline.Add(-10*time.Second)).Round(time.Millisecond), deadline.Sub(exited).Round(time.Millisecond), sb.Steps)
}

func TestFleetRestartsFromS3(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five node processes and an S3 server")
	}
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey) // the nodes inherit the credentials
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	fleetRestart(t, strings.Replace(srv.Bucket("fleet"), "?", "/run1?", 1))
}

// A node told to go while it still waits for the job leaves as asked, with status 0.
func TestSignalBeforeJoiningExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node process")
	}
	bin := buildTroupe(t)
	p := startNode(t, bin, "lonely", "--bind", "127.0.0.1:0", "--join", "127.0.0.1:1")
	p.await(t, regexp.MustCompile(`msg="asking the cluster for its job"`), nil, 0)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.waitExit(t, time.Minute); code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, p.tail(5))
	}
}

// The coordinator of a world of two leaves with SIGTERM. Its vote alone is half the world with
// the coordinator, so it decides the world of the other on its way out; had it simply vanished,
// the other, half the world without the coordinator, could never decide anything. The other
// goes on from the step the leaver reached and finishes the job.
func TestCoordinatorLeavesAWorldOfTwo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two node processes")
	}
	bin := buildTroupe(t)
	job := writePeerJob(t)
	a := startNode(t, bin, "A", "--bind", "127.0.0.1:0", "--job", job, "--min-nodes", "2", "--max-steps", "120")
	b := startNode(t, bin, "B", "--bind", "127.0.0.1:0", "--join", a.gossipAddr(t))
	w := a.awaitWorld(t, 1, 0)
	if w.rank != 0 {
		t.Fatalf("the genesis node has rank %d in the first world, want 0 (the coordinator)", w.rank)
	}
	a.awaitSteps(t, 3, w.next)
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sa := a.finish(t)
	sb := b.finish(t)
	alone := b.awaitWorld(t, 2, 0)
	first := b.awaitFirstStep(t, 2, alone.next)
	if !sa.Left || sb.Left || sb.Steps != 120 || alone.members != 1 || int64(first.step) != sa.Steps {
		t.Fatalf("leaver: left=%v at step %d; survivor: left=%v, %d steps, world 2 of %d trained step %d first: want the survivor to finish alone from the leaver's step",
			sa.Left, sa.Steps, sb.Left, sb.Steps, alone.members, first.step)
	}
	if sb.StepsRedone > 1 {
		t.Fatalf("the survivor redid %d steps, want at most the one in flight", sb.StepsRedone)
	}
	t.Logf("the leaver stopped at step %d; the survivor redid %d and finished at %.4f", sa.Steps, sb.StepsRedone, sb.TestAccuracy)
}

// Every node of a fleet is told to go at once, as when a whole fleet is reclaimed. The worlds
// decided on the way out end with the empty one, whose source, the holder of the newest state,
// writes one final checkpoint at the step the fleet reached: exactly one, whichever node it is.
func TestFleetToldToGoAtOnceSavesOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three node processes")
	}
	bin := buildTroupe(t)
	job := writePeerJob(t)
	ckpt := t.TempDir()
	common := []string{"--bind", "127.0.0.1:0", "--checkpoint", ckpt, "--checkpoint-every", "1000"}
	a := startNode(t, bin, "A", append(common, "--job", job, "--min-nodes", "3", "--max-steps", "400")...)
	nodes := []*nodeProc{a}
	for _, name := range []string{"B", "C"} {
		nodes = append(nodes, startNode(t, bin, name, append(common, "--join", a.gossipAddr(t))...))
	}
	w := a.awaitWorld(t, 1, 0)
	if w.members != 3 {
		t.Fatalf("first world of %d members, want 3", w.members)
	}
	a.awaitSteps(t, 3, w.next)
	for _, p := range nodes {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	written, reached := 0, int64(0)
	for _, p := range nodes {
		s := p.finish(t)
		if !s.Left {
			t.Fatalf("%s did not report leaving", p.name)
		}
		written += s.Checkpoints
		reached = max(reached, s.Steps)
	}
	if newest := newestStep(t, ckpt); written != 1 || newest != reached {
		t.Fatalf("%d checkpoints written, the newest at step %d; the fleet reached step %d: want one, at that step", written, newest, reached)
	}
	t.Logf("the fleet went at step %d; one final checkpoint there", reached)
}
