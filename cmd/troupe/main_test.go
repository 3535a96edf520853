package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/checkpoint"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestBadInvocationsFailClearly(t *testing.T) {
	dir := t.TempDir()
	badJob := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badJob, []byte("train:\n  epochz: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--epochs", "-1"}, "train.epochs"},
		{[]string{"train", "--batch-size", "0"}, "train.batch_size"},
		{[]string{"train", "--lr", "-3"}, "lr"},
		{[]string{"train", "--progress", "fancy"}, "--progress"},
		{[]string{"train", "--no-such-flag"}, "no-such-flag"},
		{[]string{"train", "--epochs", "two"}, "epochs"},
		{[]string{"train", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		{[]string{"train", badJob}, "epochz"},
		{[]string{"train", "a.yaml", "b.yaml"}, "arg"},
		{[]string{"train", "--resume", "--no-checkpoint"}, "contradict"},
		{[]string{"fly"}, "unknown command"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want non-zero and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// quickArgs train the default MLP on a sliver of MNIST: seconds, even under -race.
var quickArgs = []string{"train", "--train-limit", "600", "--test-limit", "300", "--epochs", "1", "--batch-size", "50", "--no-checkpoint"}

func TestJSONSummaryAndPlainProgressLines(t *testing.T) {
	code, stdout, stderr := runCLI(t, append(quickArgs, "--json", "--progress", "lines", "--log-every", "4")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	for _, k := range []string{"test_accuracy", "test_loss", "epochs", "steps", "samples_per_second", "wall_seconds", "peak_rss_bytes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("--json lacks %q", k)
		}
	}
	if got["steps"].(float64) != 12 || got["epochs"].(float64) != 1 {
		t.Errorf("steps %v epochs %v, want 12 and 1", got["steps"], got["epochs"])
	}
	if acc := got["test_accuracy"].(float64); acc < 0.5 || acc > 1 {
		t.Errorf("test accuracy %v after an epoch of 600 samples", acc)
	}
	if got["samples_per_second"].(float64) <= 0 || got["peak_rss_bytes"].(float64) <= 0 {
		t.Errorf("throughput %v, peak RSS %v", got["samples_per_second"], got["peak_rss_bytes"])
	}
	for _, line := range []string{"step 4/12 ", "step 8/12 ", "step 12/12 ", "epoch 1/1: train loss"} {
		if !strings.Contains(stderr, line) {
			t.Errorf("progress lines lack %q:\n%s", line, stderr)
		}
	}
	if strings.Contains(stderr, "\r") {
		t.Error("progress lines hold a carriage return")
	}
}

func TestLossLogIsBitIdenticalForOneSeed(t *testing.T) {
	dir := t.TempDir()
	var logs [2][]byte
	for i := range logs {
		path := filepath.Join(dir, "loss"+string(rune('a'+i))+".csv")
		if code, _, stderr := runCLI(t, append(quickArgs, "--progress", "none", "--loss-log", path)...); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var err error
		if logs[i], err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	if lines := strings.Count(string(logs[0]), "\n"); lines != 13 {
		t.Fatalf("loss log has %d lines, want a header and 12 steps", lines)
	}
	if !bytes.Equal(logs[0], logs[1]) {
		t.Fatalf("two runs of one seed logged different losses:\n%s\n%s", logs[0], logs[1])
	}
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// buildTroupe compiles the command, with the race detector when the tests have it.
func buildTroupe(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "troupe")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race") // the children's data races fail their exit status
	}
	build := exec.Command("go", append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// newestStep is the step of the newest committed checkpoint in dir, or -1.
func newestStep(t *testing.T, dir string) int64 {
	t.Helper()
	store, err := checkpoint.NewDirStore(dir)
	if err != nil {
		return -1
	}
	infos, err := checkpoint.NewManager(store, 1000).List()
	if err != nil {
		return -1
	}
	newest := int64(-1)
	for _, info := range infos {
		if info.Committed {
			newest = max(newest, info.Step)
		}
	}
	return newest
}

// A node killed with SIGKILL loses only the steps after its last checkpoint: --resume goes on
// from that step with the data cursor it recorded, and the run meets its accuracy bar.
func TestKillNineThenResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and trains a real process")
	}
	bin := buildTroupe(t)
	ckpt := t.TempDir()
	args := []string{"train", "--train-limit", "6000", "--test-limit", "2000", "--epochs", "3", "--batch-size", "100",
		"--checkpoint-dir", ckpt, "--checkpoint-every", "10", "--progress", "lines", "--log-every", "20"}
	var firstErr syncBuffer
	first := exec.Command(bin, args...)
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for newestStep(t, ckpt) < 50 {
		if time.Now().After(deadline) {
			first.Process.Kill()
			t.Fatalf("no checkpoint at step 50 within 3 minutes:\n%s", firstErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killedAt := newestStep(t, ckpt)
	if killedAt >= 180 {
		t.Fatalf("the run finished (step %d) before the kill", killedAt)
	}

	var out, errb bytes.Buffer
	second := exec.Command(bin, append(args, "--resume", "--json")...)
	second.Stdout, second.Stderr = &out, &errb
	if err := second.Run(); err != nil {
		t.Fatalf("resume: %v\n%s", err, errb.String())
	}
	var res struct {
		StartStep    int64   `json:"start_step"`
		Steps        int64   `json:"steps"`
		Epochs       int     `json:"epochs"`
		ResumedFrom  string  `json:"resumed_from"`
		TestAccuracy float64 `json:"test_accuracy"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.StartStep != killedAt || res.ResumedFrom == "" {
		t.Fatalf("resumed at step %d from %q; the newest checkpoint was at step %d", res.StartStep, res.ResumedFrom, killedAt)
	}
	if res.Steps != 180 || res.Epochs != 3 {
		t.Fatalf("resumed run ended at step %d after %d epochs, want 180 and 3", res.Steps, res.Epochs)
	}
	// 6,000 training samples for 3 epochs: the bar for this subset (the full run reaches 0.98).
	if res.TestAccuracy < 0.90 {
		t.Fatalf("test accuracy %.4f after resume, want >= 0.90", res.TestAccuracy)
	}
	t.Logf("killed with the newest checkpoint at step %d; resumed and reached %.4f", killedAt, res.TestAccuracy)
}

// SIGINT stops at a step boundary, checkpoints there and exits 130.
func TestInterruptCheckpointsAndExits130(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and trains a real process")
	}
	bin := buildTroupe(t)
	ckpt := t.TempDir()
	var errb syncBuffer
	cmd := exec.Command(bin, "train", "--train-limit", "6000", "--epochs", "5", "--batch-size", "100",
		"--checkpoint-dir", ckpt, "--checkpoint-every", "1000", "--progress", "lines", "--log-every", "5")
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(errb.String(), "step 10/") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no progress within 2 minutes:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 130 {
		t.Fatalf("exit %v, want status 130\n%s", err, errb.String())
	}
	if step := newestStep(t, ckpt); step < 10 || step >= 300 {
		t.Fatalf("checkpoint at step %d after an interrupt past step 10", step)
	}
}
