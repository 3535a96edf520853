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
	// mnist gathers from the loaded images; synthetic-images makes every sample as the reader
	// gathers it, so the two side by side show what generating data costs the step.
	for _, dataset := range []string{DatasetMNIST, DatasetSyntheticImages} {
		b.Run(dataset, func(b *testing.B) {
			job := DefaultJob()
			job.Checkpoint.Dir = ""
			job.Data.Dataset = dataset
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
		})
	}
}

// BenchmarkWorldOfTwoStepMLP measures steps of the default MLP on two ranks of one static world
// in this process (each rank its own actor system and ring endpoint on 127.0.0.1, both on the
// same cores), with the last layers' gradient sent ahead in a bucket while the backward pass
// goes on (buckets) and with the whole gradient reduced after it (whole). One op is one step;
// ns/op includes loading the data, so samples/s, the slower rank's own figure, is the one to
// compare.
func BenchmarkWorldOfTwoStepMLP(b *testing.B) {
	for _, c := range []struct {
		name      string
		bucketKiB int
	}{{"buckets", 0}, {"whole", -1}} {
		b.Run(c.name, func(b *testing.B) {
			job := DefaultJob()
			job.Checkpoint.Dir = ""
			job.Data.TestLimit = 1000
			job.Train.MaxSteps = int64(b.N)
			job.Train.BucketKiB = c.bucketKiB
			res := runWorld(b, job, 2, Options{})
			slowest := res[0].SamplesPerSecond
			for _, r := range res {
				if r.Steps != int64(b.N) {
					b.Fatalf("ran %d steps, want %d", r.Steps, b.N)
				}
				slowest = min(slowest, r.SamplesPerSecond)
			}
			b.ReportMetric(slowest, "samples/s")
		})
	}
}
