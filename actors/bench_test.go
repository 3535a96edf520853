package actors

import (
	"context"
	"testing"
)

// BenchmarkTrainingStepMLP measures whole training steps of the default MLP (784-512-512-10,
// Adam, batch 128) through the actors: the ShardReader's gathering and prefetching, the Worker's
// forward, backward and update, the Aggregator's round trip. One op is one step. Data loading
// is outside the timer; the closing evaluation of 1,000 test samples is inside it (about the
// cost of three steps). samples/s is the run's own figure, which excludes that evaluation.
func BenchmarkTrainingStepMLP(b *testing.B) {
	job := DefaultJob()
	job.Checkpoint.Dir = ""
	job.Data.TestLimit = 1000
	job.Train.MaxSteps = int64(b.N)
	res, err := Run(context.Background(), job, Options{OnStart: func(Start) { b.ResetTimer() }})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if res.Steps != int64(b.N) {
		b.Fatalf("ran %d steps, want %d", res.Steps, b.N)
	}
	b.ReportMetric(res.SamplesPerSecond, "samples/s")
}
