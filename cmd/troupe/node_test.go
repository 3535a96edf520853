package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/cluster"
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
`

// nodeProc is one `troupe node` process: its stderr is read line by line so that a test can
// wait for what the node says, and its stdout holds the --json summary.
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

func startNode(t *testing.T, bin, name string, args ...string) *nodeProc {
	t.Helper()
	p := &nodeProc{name: name, changed: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"node", "--json", "--progress", "lines", "--log-every", "10", "--no-checkpoint", "--verbose"}, args...)...)
	p.cmd.Stdout = &p.out
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(logDir(t), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		p.waitExit(t, 10*time.Second)
		if t.Failed() {
			t.Logf("--- %s stderr (last lines; all of it in %s):\n%s", p.name, logDir(t), p.tail(40))
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
func logDir(t *testing.T) string {
	t.Helper()
	logDirs.Lock()
	defer logDirs.Unlock()
	if d, ok := logDirs.m[t.Name()]; ok {
		return d
	}
	d, err := os.MkdirTemp("", "troupe-nodes")
	if err != nil {
		t.Fatal(err)
	}
	logDirs.m[t.Name()] = d
	t.Cleanup(func() {
		logDirs.Lock()
		delete(logDirs.m, t.Name())
		logDirs.Unlock()
		if !t.Failed() {
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

// await waits until a line from index from on matches re and returns its submatches and the
// index after it. It fails the test when the node exits or the timeout passes first.
func (p *nodeProc) await(t *testing.T, re *regexp.Regexp, from int, timeout time.Duration) ([]string, int) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if m := re.FindStringSubmatch(p.lines[i]); m != nil {
				p.mu.Unlock()
				return m, i + 1
			}
		}
		from = len(p.lines)
		exited, changed := p.exited, p.changed
		p.mu.Unlock()
		if exited {
			t.Fatalf("%s exited before saying %q:\n%s", p.name, re, p.tail(30))
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s did not say %q within %s:\n%s", p.name, re, timeout, p.tail(30))
		}
	}
}

// waitExit waits for the process to end and returns its exit code (-1: killed by a signal).
func (p *nodeProc) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
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
				t.Fatalf("%s: %v", p.name, err)
			}
			return 0
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s still running after %s:\n%s", p.name, timeout, p.tail(30))
		}
	}
}

// summary decodes the node's --json output.
func (p *nodeProc) summary(t *testing.T) nodeSummary {
	t.Helper()
	var s nodeSummary
	if err := json.Unmarshal([]byte(p.out.String()), &s); err != nil {
		t.Fatalf("%s: --json output: %v\n%s", p.name, err, p.out.String())
	}
	return s
}

var (
	gossipLine = regexp.MustCompile(`msg="node up" .*gossip=(\S+)`)
	worldLine  = regexp.MustCompile(`msg="training in a new world" generation=(\d+) rank=\d+ members=(\d+)`)
	stepLine   = regexp.MustCompile(`^step (\d+)/`)
)

// gossipAddr waits for the node to say where it listens.
func (p *nodeProc) gossipAddr(t *testing.T) string {
	m, _ := p.await(t, gossipLine, 0, time.Minute)
	return m[1]
}

// awaitWorld waits for the node to enter a world of generation gen or later and returns the
// generation, its size and the line index after it.
func (p *nodeProc) awaitWorld(t *testing.T, gen int, from int) (int, int, int) {
	t.Helper()
	for {
		m, next := p.await(t, worldLine, from, 2*time.Minute)
		g, _ := strconv.Atoi(m[1])
		size, _ := strconv.Atoi(m[2])
		if g >= gen {
			return g, size, next
		}
		from = next
	}
}

// awaitSteps waits until the node has logged n more progress lines after index from.
func (p *nodeProc) awaitSteps(t *testing.T, n int, from int) int {
	t.Helper()
	for range n {
		_, from = p.await(t, stepLine, from, 2*time.Minute)
	}
	return from
}

func writePeerJob(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peers.yaml")
	if err := os.WriteFile(path, []byte(peerJob), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// singleNode trains the peer job in one process, as the reference the peers are held to.
var singleNode = sync.OnceValues(func() (summary, error) {
	dir, err := os.MkdirTemp("", "troupe-single")
	if err != nil {
		return summary{}, err
	}
	defer os.RemoveAll(dir)
	job := filepath.Join(dir, "peers.yaml")
	if err := os.WriteFile(job, []byte(peerJob), 0o644); err != nil {
		return summary{}, err
	}
	var out, errb syncBuffer
	if code := run(context.Background(), []string{"train", job, "--json", "--no-checkpoint", "--progress", "none", "--loss-log", filepath.Join(dir, "loss.csv")}, &out, &errb); code != 0 {
		return summary{}, fmt.Errorf("train exited %d: %s", code, errb.String())
	}
	var s summary
	err = json.Unmarshal([]byte(out.String()), &s)
	return s, err
})

// The must-show scenario: three nodes start a job; a fourth joins; one leaves with SIGTERM, one
// is killed with SIGKILL, one is frozen with SIGSTOP past the failure timeout and resumed. The
// job completes, every node still there reports the same parameters, the frozen one came back
// as a new incarnation, and the accuracy holds the single-node bar.
func TestPeersSurviveJoinLeaveKillAndFreeze(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four node processes")
	}
	bin := buildTroupe(t)
	job := writePeerJob(t)
	a := startNode(t, bin, "A", "--bind", "127.0.0.1:0", "--job", job, "--min-nodes", "3")
	seed := a.gossipAddr(t)
	b := startNode(t, bin, "B", "--bind", "127.0.0.1:0", "--join", seed)
	c := startNode(t, bin, "C", "--bind", "127.0.0.1:0", "--join", seed)

	_, size, at := a.awaitWorld(t, 1, 0)
	if size != 3 {
		t.Fatalf("first world has %d members, want the 3 --min-nodes asked for", size)
	}
	at = a.awaitSteps(t, 3, at)
	d := startNode(t, bin, "D", "--bind", "127.0.0.1:0", "--join", b.gossipAddr(t)) // any member will do
	gen, size, at := a.awaitWorld(t, 2, at)
	if size != 4 {
		t.Fatalf("generation %d has %d members after a join, want 4", gen, size)
	}
	at = a.awaitSteps(t, 2, at)
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	gen, size, at = a.awaitWorld(t, gen+1, at)
	if size != 3 {
		t.Fatalf("generation %d has %d members after a leave, want 3", gen, size)
	}
	at = a.awaitSteps(t, 2, at)
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	gen, size, at = a.awaitWorld(t, gen+1, at)
	if size != 2 {
		t.Fatalf("generation %d has %d members after a kill, want 2", gen, size)
	}
	at = a.awaitSteps(t, 2, at)
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	gen, size, at = a.awaitWorld(t, gen+1, at)
	if size != 1 {
		t.Fatalf("generation %d has %d members with D frozen, want 1", gen, size)
	}
	at = a.awaitSteps(t, 2, at) // A trains alone: a world of one with the coordinator is a quorum of two
	if err := d.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	gen, size, _ = a.awaitWorld(t, gen+1, at)
	if size != 2 {
		t.Fatalf("generation %d has %d members after D came back, want 2", gen, size)
	}

	for _, p := range []*nodeProc{a, b, d} {
		if code := p.waitExit(t, 5*time.Minute); code != 0 {
			t.Fatalf("%s exited %d, want 0", p.name, code)
		}
	}
	sa, sb, sd := a.summary(t), b.summary(t), d.summary(t)
	if !sb.Left || sb.Steps >= sa.Steps {
		t.Errorf("B left=%v at step %d, want a graceful leave before the end (%d)", sb.Left, sb.Steps, sa.Steps)
	}
	if sd.Incarnations != 2 || sd.NodeID == d.summaryIDOfFirst(t) {
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
	ref, err := singleNode()
	if err != nil {
		t.Fatal(err)
	}
	if sa.Steps != ref.Steps || sa.TestAccuracy < ref.TestAccuracy-0.01 {
		t.Errorf("peers: %d steps, test accuracy %.4f; one process: %d steps, %.4f (bar: within 0.01)",
			sa.Steps, sa.TestAccuracy, ref.Steps, ref.TestAccuracy)
	}
	t.Logf("one process %.4f; peers %.4f over %d worlds, %d steps redone on A", ref.TestAccuracy, sa.TestAccuracy, sa.Generations, sa.StepsRedone)
}

// summaryIDOfFirst is the id the node had before it was left out: the first "node up" line.
func (p *nodeProc) summaryIDOfFirst(t *testing.T) string {
	m, _ := p.await(t, regexp.MustCompile(`msg="node up" id=(\S+)`), 0, time.Second)
	return m[1]
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
		args := []string{"--bind", "127.0.0.1:0", "--loss-log", logs[i]}
		if i == 0 {
			args = append(args, "--job", job, "--min-nodes", "3", "--max-steps", "300")
		} else {
			args = append(args, "--join", procs[0].gossipAddr(t))
		}
		procs[i] = startNode(t, bin, fmt.Sprintf("node%d", i), args...)
	}
	// While they train, `troupe status` sees the world of three from outside it.
	_, _, at := procs[0].awaitWorld(t, 1, 0)
	procs[0].awaitSteps(t, 1, at)
	status := exec.Command(bin, "status", "--join", procs[2].gossipAddr(t), "--json", "--timeout", "20s")
	raw, err := status.Output()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, raw)
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
	a := startNode(t, bin, "A", "--bind", "127.0.0.1:0", "--key-file", right, "--job", job)
	seed := a.gossipAddr(t)
	_, _, at := a.awaitWorld(t, 1, 0)
	intruder := startNode(t, bin, "intruder", "--bind", "127.0.0.1:0", "--key-file", wrong, "--join", seed, "--join-timeout", "4s")
	friend := startNode(t, bin, "friend", "--bind", "127.0.0.1:0", "--key-file", right, "--join", seed)
	if code := intruder.waitExit(t, time.Minute); code == 0 {
		t.Fatal("a node with another key joined")
	}
	if !strings.Contains(intruder.tail(5), "no member handed over the job") {
		t.Fatalf("the refused node should say why:\n%s", intruder.tail(5))
	}
	if _, size, _ := a.awaitWorld(t, 2, at); size != 2 {
		t.Fatalf("the world has %d members after a node with the key joined, want 2", size)
	}
	for _, p := range []*nodeProc{a, friend} {
		if code := p.waitExit(t, 5*time.Minute); code != 0 {
			t.Fatalf("%s exited %d", p.name, code)
		}
	}
	sa, sf := a.summary(t), friend.summary(t)
	if sa.Generations != 2 || sa.Joins != 1 || sa.ParamsSHA256 != sf.ParamsSHA256 {
		t.Fatalf("A: %d worlds, %d joins, params %s; friend %s: want 2 worlds, the friend's join only, equal parameters",
			sa.Generations, sa.Joins, sa.ParamsSHA256, sf.ParamsSHA256)
	}
	if sa.MalformedFrames != 0 {
		t.Fatalf("A decoded %d malformed frames; the intruder should not have reached the decoder at all", sa.MalformedFrames)
	}
}
