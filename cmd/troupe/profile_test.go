package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/troupe-ml/troupe/tensorboard"
)

// --cpu-profile and --mem-profile write pprof files (gzipped protobufs) for a run in one
// process and for a node alike.
func TestProfilesAreWritten(t *testing.T) {
	job := writePeerJob(t)
	for _, args := range [][]string{
		{"train", job, "--no-checkpoint"},
		{"node", "--job", job, "--bind", "127.0.0.1:0", "--no-checkpoint"},
	} {
		dir := t.TempDir()
		cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "heap.pprof")
		args = append(args, "--max-steps", "3", "--progress", "none", "--cpu-profile", cpu, "--mem-profile", mem)
		var out, errb syncBuffer
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("%s exited %d: %s", args[0], code, errb.String())
		}
		for _, path := range []string{cpu, mem} {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%s: %v", args[0], err)
			}
			if len(raw) < 64 || !bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
				t.Errorf("%s: %s holds %d bytes, not a gzipped profile", args[0], filepath.Base(path), len(raw))
			}
		}
	}
}

// --tensorboard writes an event file whose train/loss scalars are the loss log's losses, step
// for step (as float32s, TensorBoard's simple_value), and the finished epoch's figures.
func TestTensorBoardScalarsAreTheLossLog(t *testing.T) {
	job := writePeerJob(t)
	dir := t.TempDir()
	lossLog, tbDir := filepath.Join(dir, "loss.csv"), filepath.Join(dir, "tb")
	var out, errb syncBuffer
	if code := run(context.Background(), []string{"train", job, "--no-checkpoint", "--max-steps", "250", "--progress", "none",
		"--loss-log", lossLog, "--tensorboard", tbDir}, &out, &errb); code != 0 {
		t.Fatalf("train exited %d: %s", code, errb.String())
	}
	files, _ := filepath.Glob(filepath.Join(tbDir, "events.out.tfevents.*"))
	if len(files) != 1 {
		t.Fatalf("event files %v, want one", files)
	}
	events, err := tensorboard.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	losses := readLosses(t, lossLog)
	var got []float32
	var steps []int64
	epochs := 0
	for _, ev := range events {
		if v, ok := ev.Values["train/loss"]; ok {
			got, steps = append(got, v), append(steps, ev.Step)
		}
		if _, ok := ev.Values["epoch/train_loss"]; ok {
			epochs++
		}
	}
	if len(got) != len(losses) || len(got) != 250 {
		t.Fatalf("%d train/loss scalars, %d losses logged, want 250 of each", len(got), len(losses))
	}
	for i, l := range losses {
		if got[i] != float32(l) || steps[i] != int64(i) {
			t.Fatalf("scalar %d: step %d loss %v, the loss log says step %d loss %v", i, steps[i], got[i], i, float32(l))
		}
	}
	if events[0].FileVersion != tensorboard.FileVersion {
		t.Errorf("first event %+v, want the file version", events[0])
	}
	if epochs != 1 {
		t.Errorf("%d epoch summaries, want 1 (epochs of 200 steps, the run stopped at 250)", epochs)
	}
}
