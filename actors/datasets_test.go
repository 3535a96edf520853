package actors

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/data"
	"github.com/troupe-ml/troupe/data/tabular"
)

// titanicJob is examples/titanic.yaml's job, with anonymize when given.
func titanicJob(t *testing.T, anonymize *tabular.Config, inputs int) Job {
	t.Helper()
	if _, err := tabular.FindTitanic(""); err != nil {
		if os.Getenv("TROUPE_REQUIRE_TITANIC") != "" {
			t.Fatal(err)
		}
		t.Skipf("the Titanic data set is not reachable (set TROUPE_REQUIRE_TITANIC=1 to make this fail): %v", err)
	}
	job := DefaultJob()
	job.Name, job.Seed = "titanic", 1
	job.Data = DataSpec{Dataset: DatasetTitanic, Anonymize: anonymize}
	job.Model = compute.MLP(inputs, []int{16}, 2)
	job.Optimizer.LR = 0.01
	job.Train = TrainSpec{Epochs: 30, BatchSize: 32}
	job.Checkpoint.Dir = ""
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	return job
}

// TestTitanicIsAnonymizedBeforeTraining trains on the raw table and on an anonymized release:
// the raw quasi-identifiers leave a passenger alone in a class (k = 1); merging two ports and
// suppressing the classes below 10 rows gives k >= 10 with a report of what went, and both
// models learn (survival is about 62% "no", so accuracy above 0.7 is learnt).
func TestTitanicIsAnonymizedBeforeTraining(t *testing.T) {
	raw := mustRun(t, context.Background(), titanicJob(t, nil, 8), Options{})
	anon := mustRun(t, context.Background(), titanicJob(t, &tabular.Config{K: 10, SuppressRows: true, Transforms: []tabular.Transform{
		{Column: "Embarked", Op: tabular.OpHierarchy, Parents: []map[string]string{{"0": "C|Q", "1": "C|Q", "2": "S"}}},
	}}, 7), Options{})
	if raw.Anonymity == nil || raw.Anonymity.K != 1 {
		t.Fatalf("raw table: anonymity %+v, want k = 1 reported", raw.Anonymity)
	}
	a := anon.Anonymity
	if a == nil || a.K < 10 || a.SuppressedRows == 0 || a.Rows+a.SuppressedRows != raw.Anonymity.Rows {
		t.Fatalf("anonymized: %+v, want k >= 10 and the suppressed rows counted", a)
	}
	for name, acc := range map[string]float64{"raw": raw.TestAccuracy, "anonymized": anon.TestAccuracy} {
		if acc < 0.7 {
			t.Errorf("%s: test accuracy %v", name, acc)
		}
	}
	t.Logf("raw: k=%d l=%d accuracy %.4f; anonymized: k=%d l=%d, %d rows suppressed, accuracy %.4f",
		raw.Anonymity.K, raw.Anonymity.L, raw.TestAccuracy, a.K, a.L, a.SuppressedRows, anon.TestAccuracy)
}

// TestSyntheticMNISTTrainsOnTheFittedModel trains the same job on real images and on samples
// of a Gaussian model fitted to them: the runs see different inputs (their losses differ from
// the first step), and the synthetic one still classifies the real test images far above
// chance.
func TestSyntheticMNISTTrainsOnTheFittedModel(t *testing.T) {
	job := smallJob(t)
	job.Checkpoint.Dir = ""
	real := mustRun(t, context.Background(), job, Options{})
	job.Data.Dataset = DatasetMNISTSynthetic
	job.Data.Synthetic = &SyntheticSpec{Rank: 10}
	synth := mustRun(t, context.Background(), job, Options{})
	if synth.Losses[0] == real.Losses[0] {
		t.Fatal("the synthetic run's first loss is the real run's: it trained on the real images")
	}
	if synth.TestAccuracy < 0.5 {
		t.Fatalf("trained on synthetic samples: test accuracy %v on real images", synth.TestAccuracy)
	}
	t.Logf("test accuracy on real images: trained on real %.4f, on synthetic %.4f", real.TestAccuracy, synth.TestAccuracy)
}

// The generated sets train like a data set read from files: the classes are learnt, the same
// seed gives the same run, and the training, validation and test samples are disjoint parts of
// one stream (a test sample gathered through the test set is the stream's sample after the
// training and validation ones).
func TestGeneratedSetsTrain(t *testing.T) {
	for _, tc := range []struct {
		dataset string
		input   int
		floor   float64
	}{{DatasetSyntheticImages, 784, 0.5}, {DatasetSyntheticTabular, 27, 0.45}} {
		t.Run(tc.dataset, func(t *testing.T) {
			job := smallJob(t)
			job.Checkpoint.Dir = ""
			job.Data.Dataset = tc.dataset
			job.Data.Validation = 300
			job.Data.TrainLimit = 5000
			job.Train.Epochs = 5
			job.Model = compute.MLP(tc.input, []int{64}, 10)
			if err := job.Validate(); err != nil {
				t.Fatal(err)
			}
			a := mustRun(t, context.Background(), job, Options{})
			t.Logf("%s: test accuracy %.4f", tc.dataset, a.TestAccuracy)
			if a.TestAccuracy < tc.floor {
				t.Fatalf("test accuracy %v on %s, chance is 0.1", a.TestAccuracy, tc.dataset)
			}
			if b := mustRun(t, context.Background(), job, Options{}); !sameBits(a.Losses, b.Losses) {
				t.Fatal("one seed gave two runs")
			}
			sets, err := loadData(job)
			if err != nil {
				t.Fatal(err)
			}
			if sets.train.Len() != 5000 || sets.val.Len() != 300 || sets.test.Len() != 500 {
				t.Fatalf("sets of %d, %d and %d samples, want 5000, 300 and 500", sets.train.Len(), sets.val.Len(), sets.test.Len())
			}
			size := sets.train.SampleSize()
			all := span(sets.train.(*spanned).s, 0, 5800)
			got, want := make([]float32, size), make([]float32, size)
			var gl, wl [1]int32
			for _, c := range []struct {
				set   samples
				i     int32
				first int32
			}{{sets.train, 7, 0}, {sets.val, 7, 5000}, {sets.test, 499, 5300}} {
				if err := c.set.Gather([]int32{c.i}, got, gl[:]); err != nil {
					t.Fatal(err)
				}
				if err := all.Gather([]int32{c.first + c.i}, want, wl[:]); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) || gl != wl {
					t.Fatalf("sample %d of a set is not sample %d of the stream", c.i, c.first+c.i)
				}
			}
			if err := sets.test.Gather([]int32{500}, got, gl[:]); !errors.Is(err, data.ErrIndexOutOfRange) {
				t.Fatalf("a sample past the test set: %v", err)
			}
		})
	}
}
