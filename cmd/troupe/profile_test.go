package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
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
