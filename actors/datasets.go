package actors

import (
	"fmt"

	"github.com/troupe-ml/troupe/data"
	"github.com/troupe-ml/troupe/data/synthetic"
	"github.com/troupe-ml/troupe/data/tabular"
)

// The data sets a job names in data.dataset.
const (
	DatasetMNIST = "mnist"
	// DatasetMNISTSynthetic trains on samples drawn from a per-class Gaussian model fitted to
	// the MNIST training images, and tests on the real test images: train on synthetic, test
	// on real.
	DatasetMNISTSynthetic = "mnist-synthetic"
	// DatasetTitanic is the Titanic passenger table, anonymized as data.anonymize says before
	// any row becomes a feature vector; a fifth of it, drawn by the job's seed, is the test set.
	DatasetTitanic = "titanic"
)

// titanicTestFraction is the share of the Titanic rows held out for testing.
const titanicTestFraction = 0.2

// samples is a labelled data set as training reads it: every sample SampleSize values,
// normalized as the job says, and a class. Gather has data.Dataset.Gather's contract: indices
// and buffer lengths checked first, only x and labels written, nothing allocated.
type samples interface {
	Len() int
	SampleSize() int
	Gather(idx []int32, x []float32, labels []int32) error
}

// normalized is a source of 8-bit samples that normalizes them as it gathers.
type normalized struct {
	src interface {
		Len() int
		SampleSize() int
		Gather(idx []int32, x []float32, labels []int32, norm data.Normalize) error
	}
	norm data.Normalize
}

func (s normalized) Len() int        { return s.src.Len() }
func (s normalized) SampleSize() int { return s.src.SampleSize() }
func (s normalized) Gather(idx []int32, x []float32, labels []int32) error {
	return s.src.Gather(idx, x, labels, s.norm)
}

// dataSets are what a job trains, validates and tests on.
type dataSets struct {
	train, val, test samples // val is nil without data.validation
	// anonymity is, for tabular data, the k-anonymity and l-diversity of the table the
	// features came from (after data.anonymize when the job has it).
	anonymity *tabular.PrivacyReport
}

// loadData reads the job's data set and cuts it as the job says.
func loadData(job Job) (dataSets, error) {
	var sets dataSets
	var err error
	switch job.Data.Dataset {
	case DatasetTitanic:
		sets, err = loadTitanic(job)
	default:
		sets, err = loadMNIST(job)
	}
	if err != nil {
		return dataSets{}, err
	}
	if got, want := sets.train.SampleSize(), jobInputSize(job); got != want {
		return dataSets{}, fmt.Errorf("%w: model.input holds %d values per sample, the data set %d", ErrBadJob, want, got)
	}
	return sets, nil
}

func loadMNIST(job Job) (dataSets, error) {
	dir, err := data.FindMNIST(job.Data.Dir)
	if err != nil {
		return dataSets{}, err
	}
	train, test, err := data.LoadMNIST(dir)
	if err != nil {
		return dataSets{}, err
	}
	if job.Data.TrainLimit > 0 && job.Data.TrainLimit < train.Len() {
		train = train.Subset(job.Data.TrainLimit)
	}
	if job.Data.TestLimit > 0 && job.Data.TestLimit < test.Len() {
		test = test.Subset(job.Data.TestLimit)
	}
	norm := data.Normalize{Mean: job.Data.Mean, Std: job.Data.Std}
	var sets dataSets
	if job.Data.Validation > 0 {
		if job.Data.Validation >= train.Len() {
			return dataSets{}, fmt.Errorf("%w: data.validation (%d) must be smaller than the training set (%d)", ErrBadJob, job.Data.Validation, train.Len())
		}
		var val *data.Dataset
		train, val = train.Split(job.Data.Validation)
		sets.val = normalized{val, norm}
	}
	sets.train, sets.test = normalized{train, norm}, normalized{test, norm}
	if job.Data.Dataset == DatasetMNISTSynthetic {
		// Fitted to the real training images; every sample drawn from it by the job's seed.
		model, err := synthetic.Fit(train, synthetic.FitConfig{Rank: job.Data.Synthetic.rank(), Components: job.Data.Synthetic.components(),
			Seed: job.Seed, Len: train.Len()})
		if err != nil {
			return dataSets{}, fmt.Errorf("fitting the synthetic model: %w", err)
		}
		sets.train = normalized{model, norm}
	}
	return sets, nil
}

func loadTitanic(job Job) (dataSets, error) {
	path, err := tabular.FindTitanic(job.Data.Dir)
	if err != nil {
		return dataSets{}, err
	}
	table, _, err := tabular.ReadTitanic(path)
	if err != nil {
		return dataSets{}, err
	}
	var report *tabular.PrivacyReport
	if a := job.Data.Anonymize; a != nil {
		var key []byte
		if a.NeedsKey() {
			if key, err = a.Key(); err != nil {
				return dataSets{}, fmt.Errorf("%w: data.anonymize: %w", ErrBadJob, err)
			}
		}
		if table, report, err = tabular.Anonymize(table, *a, key); err != nil {
			return dataSets{}, fmt.Errorf("%w: data.anonymize: %w", ErrBadJob, err)
		}
	} else if report, err = tabular.Measure(table, tabular.PrivacyOptions{}); err != nil {
		return dataSets{}, err
	}
	train, test, _, err := tabular.EncodeSplit(table, titanicTestFraction, job.Seed)
	if err != nil {
		return dataSets{}, err
	}
	return dataSets{train: train, test: test, anonymity: report}, nil
}
