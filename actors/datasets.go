package actors

import (
	"fmt"
	"sync"

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
	// DatasetSyntheticImages is a stream of MNIST-shaped images of ten classes drawn from
	// stroke prototypes (synthetic.DefaultImages), and DatasetSyntheticTabular one of rows of
	// a ten-class Gaussian mixture with categorical columns (synthetic.DefaultTabular): data
	// of any size, generated sample by sample as batches need it, never stored. The training
	// set is data.train_limit samples (default syntheticTrain), the validation set the
	// data.validation after them and the test set the data.test_limit after those (default
	// syntheticTest): disjoint samples of the same classes.
	DatasetSyntheticImages  = "synthetic-images"
	DatasetSyntheticTabular = "synthetic-tabular"
)

// datasets lists the data sets a job may name.
var datasets = []string{DatasetMNIST, DatasetMNISTSynthetic, DatasetTitanic, DatasetSyntheticImages, DatasetSyntheticTabular, DatasetText}

// The default sizes of a generated data set.
const (
	syntheticTrain = 60000
	syntheticTest  = 10000
)

// titanicTestFraction is the share of the Titanic rows held out for testing.
const titanicTestFraction = 0.2

// samples is a labelled data set as training reads it: every sample SampleSize values,
// normalized as the job says, and a class (a text window has one per position: see
// labelsPerSample). Gather has data.Dataset.Gather's contract: indices
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
	corpus    *corpus // text only
}

// loadData reads the job's data set and cuts it as the job says.
func loadData(job Job) (dataSets, error) {
	var sets dataSets
	var err error
	switch job.Data.Dataset {
	case DatasetTitanic:
		sets, err = loadTitanic(job)
	case DatasetSyntheticImages, DatasetSyntheticTabular:
		sets, err = loadGenerated(job)
	case DatasetText:
		sets, err = loadText(job)
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

// loadGenerated cuts a generated stream into the job's training, validation and test sets.
func loadGenerated(job Job) (dataSets, error) {
	train, test := job.Data.TrainLimit, job.Data.TestLimit
	if train == 0 {
		train = syntheticTrain
	}
	if test == 0 {
		test = syntheticTest
	}
	seed := job.Seed
	if s := job.Data.Synthetic; s != nil && s.Seed != 0 {
		seed = s.Seed
	}
	n := train + job.Data.Validation + test
	var src interface {
		Len() int
		SampleSize() int
		Gather(idx []int32, x []float32, labels []int32, norm data.Normalize) error
	}
	var err error
	if job.Data.Dataset == DatasetSyntheticImages {
		src, err = synthetic.NewImages(synthetic.DefaultImages(seed, n))
	} else {
		src, err = synthetic.NewTabular(synthetic.DefaultTabular(seed, n))
	}
	if err != nil {
		return dataSets{}, fmt.Errorf("%w: data: %w", ErrBadJob, err)
	}
	all := normalized{src, data.Normalize{Mean: job.Data.Mean, Std: job.Data.Std}}
	sets := dataSets{train: span(all, 0, train), test: span(all, train+job.Data.Validation, test)}
	if job.Data.Validation > 0 {
		sets.val = span(all, train, job.Data.Validation)
	}
	return sets, nil
}

// span is samples [first, first+n) of a set; the whole set when that is all of it.
func span(s samples, first, n int) samples {
	if first == 0 && n == s.Len() {
		return s
	}
	return &spanned{s: s, first: first, n: n}
}

// spanned is a contiguous part of a set. Gather shifts the indices into a buffer of its own,
// kept from call to call so that it allocates nothing once grown.
type spanned struct {
	s        samples
	first, n int
	mu       sync.Mutex
	idx      []int32
}

func (p *spanned) Len() int        { return p.n }
func (p *spanned) SampleSize() int { return p.s.SampleSize() }
func (p *spanned) Gather(idx []int32, x []float32, labels []int32) error {
	for _, i := range idx {
		if i < 0 || int(i) >= p.n {
			return fmt.Errorf("%w: sample %d of %d", data.ErrIndexOutOfRange, i, p.n)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cap(p.idx) < len(idx) {
		p.idx = make([]int32, len(idx))
	}
	shifted := p.idx[:len(idx)]
	for k, i := range idx {
		shifted[k] = i + int32(p.first)
	}
	return p.s.Gather(shifted, x, labels)
}
