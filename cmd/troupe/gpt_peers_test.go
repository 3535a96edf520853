package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/data/text"
)

// TestPeersTrainTheGPT: three node processes train a small GPT on Go source with the optimizer
// state sharded (train.shard_optimizer); a fourth joins, one is killed with SIGKILL (its slice is
// lost and filled) and one leaves with SIGTERM (it hands its slice over). The two that stay end
// with one parameter digest, at the validation loss of one process training the same job, and
// the last checkpoint holds the whole optimizer state. A node whose corpus differs (another
// folder, as another Go release would be) is refused before it trains.
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
	shardJob(t, jobPath)
	start := func(name string, args ...string) *nodeProc {
		// Each node checkpoints to a folder of its own: whichever is rank 0 gathers and writes.
		return startNode(t, bin, name, append([]string{"--bind", "127.0.0.1:0", "--data-dir", corpus,
			"--checkpoint", filepath.Join(dir, "ckpt-"+name), "--checkpoint-every", "50"}, args...)...)
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
	for _, p := range []*nodeProc{a, d} {
		for _, line := range recutLine.FindAllString(p.tail(1<<20), -1) {
			t.Logf("%s: %s", p.name, line)
		}
	}
	n := 0
	for _, name := range []string{"A", "D"} {
		m := checkpoint.NewManager(mustOpenStore(t, filepath.Join(dir, "ckpt-"+name)), 3)
		snap, _, _, err := m.LoadLatest()
		if err != nil || snap.Step != 300 {
			continue // this node never wrote the final state as rank 0
		}
		n++
		for i, b := range snap.Optimizer.Buffers {
			if len(b) != len(snap.Params) {
				t.Errorf("%s's final checkpoint holds %d values of optimizer buffer %d, the model %d", name, len(b), i, len(snap.Params))
			}
		}
		if len(snap.Optimizer.Buffers) != 2 || snap.Optimizer.Step != 300 {
			t.Errorf("%s's final checkpoint: %d optimizer buffers at step %d, want adamw's 2 at 300", name, len(snap.Optimizer.Buffers), snap.Optimizer.Step)
		}
	}
	if n == 0 {
		t.Error("no node wrote the final checkpoint")
	}
	if sa.OptimizerStateBytes <= 0 || sa.OptimizerStateBytes > 4*2*int64(sa.Params)/2+64 {
		t.Errorf("A holds %d bytes of optimizer state in a world of two, want about half of %d", sa.OptimizerStateBytes, 4*2*sa.Params)
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

var recutLine = regexp.MustCompile(`msg="optimizer state re-cut for the world".*`)

// shardJob turns on train.shard_optimizer in the job file at path.
func shardJob(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sharded := strings.Replace(string(b), "batch_size: 16}", "batch_size: 16, shard_optimizer: true}", 1)
	if sharded == string(b) {
		t.Fatal("the job has no train line to shard")
	}
	if err := os.WriteFile(path, []byte(sharded), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustOpenStore(t *testing.T, dir string) checkpoint.Store {
	t.Helper()
	s, err := actors.OpenStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
