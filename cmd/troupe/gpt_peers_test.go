package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/troupe-ml/troupe/data/text"
)

// TestPeersTrainTheGPT: three node processes train a small GPT on Go source; a fourth joins,
// one is killed with SIGKILL and one leaves with SIGTERM. The two that stay end with one
// parameter digest, at the validation loss of one process training the same job. A node whose
// corpus differs (another folder, as another Go release would be) is refused before it trains.
func TestPeersTrainTheGPT(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five node processes")
	}
	src, err := text.GoSourceDir()
	if err != nil {
		t.Skipf("no Go source tree: %v", err)
	}
	corpus := filepath.Join(src, "encoding")
	bin := buildTroupe(t)
	dir := t.TempDir()
	jobPath := tinyGPTJob(t, dir, "gpt-peers", 4800) // 300 steps of 16 windows
	start := func(name string, args ...string) *nodeProc {
		return startNode(t, bin, name, append([]string{"--bind", "127.0.0.1:0", "--data-dir", corpus}, args...)...)
	}
	a := start("A", "--job", jobPath, "--min-nodes", "3")
	seed := a.gossipAddr(t)
	b := start("B", "--join", seed)
	c := start("C", "--join", seed)
	w := a.awaitWorld(t, 1, 0)
	if w.members != 3 {
		t.Fatalf("first world has %d members, want 3", w.members)
	}
	change := func(what string, act func(), members int) {
		t.Helper()
		at := a.awaitSteps(t, 2, w.next)
		act()
		w = a.awaitWorld(t, w.gen+1, at)
		if w.members != members {
			t.Fatalf("generation %d has %d members after %s, want %d", w.gen, w.members, what, members)
		}
	}
	var d *nodeProc
	change("a join", func() { d = start("D", "--join", b.gossipAddr(t)) }, 4)
	change("a kill", func() { _ = c.cmd.Process.Kill() }, 3)
	change("a graceful leave", func() { _ = b.cmd.Process.Signal(syscall.SIGTERM) }, 2)

	// Another corpus: refused with the two digests named, while the world goes on.
	e := startNode(t, bin, "E", "--bind", "127.0.0.1:0", "--data-dir", filepath.Join(src, "go"), "--join", seed)
	if code := e.waitExit(t, awaitTimeout); code == 0 {
		t.Errorf("a node with another corpus exited 0")
	}
	if refused := regexp.MustCompile(`tokenizes to digest [0-9a-f]{64}, the job \(or the world joined\) trains on [0-9a-f]{64}`); !refused.MatchString(e.tail(40)) {
		t.Errorf("the refused node's log does not name the two digests:\n%s", e.tail(10))
	}

	sa, sd := a.finish(t), d.finish(t)
	if sa.ParamsSHA256 != sd.ParamsSHA256 || sa.Steps != 300 || sd.Steps != 300 {
		t.Fatalf("A and D end at steps %d/%d with parameters %s/%s, want step 300 and one digest", sa.Steps, sd.Steps, sa.ParamsSHA256, sd.ParamsSHA256)
	}
	var out, errb syncBuffer
	if code := run(t.Context(), []string{"train", jobPath, "--json", "--no-checkpoint", "--progress", "none"}, &out, &errb); code != 0 {
		t.Fatalf("train exited %d: %s", code, errb.String())
	}
	var ref summary
	if err := json.Unmarshal([]byte(out.String()), &ref); err != nil {
		t.Fatalf("train --json: %v", err)
	}
	if ref.ValLoss == nil || sa.ValLoss == nil {
		t.Fatalf("no validation loss: one process %v, peers %v", ref.ValLoss, sa.ValLoss)
	}
	rel := math.Abs(*sa.ValLoss-*ref.ValLoss) / *ref.ValLoss
	t.Logf("validation loss: peers %.4f over %d worlds (%d steps redone), one process %.4f: %.2f%% apart",
		*sa.ValLoss, sa.Generations, sa.StepsRedone, *ref.ValLoss, 100*rel)
	if rel > 0.01 {
		t.Errorf("the peers' validation loss %.4f is %.2f%% from one process's %.4f, want within 1%%", *sa.ValLoss, 100*rel, *ref.ValLoss)
	}
}
