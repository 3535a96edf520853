package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"

	"github.com/troupe-ml/troupe/checkpoint/safetensors"
	"github.com/troupe-ml/troupe/compute"
)

// DistillSpec trains the job's model as a student of a teacher, run for inference inside the
// Worker on every batch the student trains on. The teacher is either a model exported by
// `troupe export` (its safetensors file carries the teacher's spec and input normalization) or
// another job's model restored from the newest checkpoint of that job, trained first when
// TrainTeacher says so.
type DistillSpec struct {
	// Teacher is the path of the teacher's safetensors file, readable on every node.
	Teacher string `yaml:"teacher,omitempty" json:"teacher,omitempty"`
	// TeacherJob is the path of the teacher's job file, instead of Teacher: the teacher is
	// that job's model from the newest valid checkpoint in its checkpoint.dir.
	TeacherJob string `yaml:"teacher_job,omitempty" json:"teacher_job,omitempty"`
	// TrainTeacher trains the teacher job to its end first (resuming its checkpoints) unless
	// they hold a finished run already.
	TrainTeacher         bool `yaml:"train_teacher,omitempty" json:"train_teacher,omitempty"`
	compute.Distillation `yaml:",inline"`
}

func (d *DistillSpec) validate() error {
	switch {
	case (d.Teacher == "") == (d.TeacherJob == ""):
		return fmt.Errorf("give the teacher as teacher (a safetensors file written by troupe export) or teacher_job (a job file whose checkpoints hold it), one of the two")
	case d.TrainTeacher && d.TeacherJob == "":
		return fmt.Errorf("train_teacher needs teacher_job: the job that trains the teacher")
	}
	return d.Distillation.Validate()
}

// teacherJob reads the teacher's job file and checks that it can be a teacher.
func (d *DistillSpec) teacherJob() (Job, error) {
	tj, err := LoadJob(d.TeacherJob)
	if err != nil {
		return Job{}, fmt.Errorf("%w: distill.teacher_job: %w", ErrBadJob, err)
	}
	switch {
	case tj.Checkpoint.Dir == "":
		return Job{}, fmt.Errorf("%w: distill.teacher_job %s sets no checkpoint.dir, where its model would be found", ErrBadJob, d.TeacherJob)
	case tj.Distill != nil && tj.Distill.TrainTeacher:
		return Job{}, fmt.Errorf("%w: distill.teacher_job %s trains a teacher of its own first: train it on its own", ErrBadJob, d.TeacherJob)
	}
	return tj, nil
}

// trainTeacher runs the teacher job to its end, resuming its checkpoints, unless the newest
// of them is a finished run's. It returns the teacher's test accuracy, NaN when nothing was
// trained.
func trainTeacher(ctx context.Context, d *DistillSpec, log *slog.Logger) (float64, error) {
	tj, err := d.teacherJob()
	if err != nil {
		return 0, err
	}
	trained, err := LoadTrained(ctx, tj, tj.Checkpoint.Dir)
	switch {
	case err == nil && trained.Final:
		log.Info("the teacher is trained already", "job", tj.Name, "checkpoint", trained.Checkpoint)
		return math.NaN(), nil
	case err != nil && !errors.Is(err, ErrNotTrained):
		return 0, fmt.Errorf("distill.teacher_job %s: %w", d.TeacherJob, err)
	}
	log.Info("training the teacher first", "job", tj.Name, "checkpoints", tj.Checkpoint.Dir)
	tj.Checkpoint.Resume = true
	tlog := log.With("teacher", tj.Name)
	res, err := Run(ctx, tj, Options{Logger: tlog, OnEpoch: func(e *EpochDone) {
		// The student's progress display has not started: these lines are the teacher's.
		tlog.Info("teacher epoch done", "epoch", e.Epoch+1, "of", tj.Train.Epochs, "train_loss", e.TrainLoss, "train_accuracy", e.TrainAccuracy)
	}})
	if err != nil {
		return 0, fmt.Errorf("training the teacher %s: %w", tj.Name, err)
	}
	if res.Interrupted {
		return 0, fmt.Errorf("training the teacher %s: interrupted at step %d: %w", tj.Name, res.Steps, context.Cause(ctx))
	}
	log.Info("teacher trained", "job", tj.Name, "test_accuracy", res.TestAccuracy)
	return res.TestAccuracy, nil
}

// maxTeacherBytes bounds the teacher file read into memory: 4 GiB of float32 weights.
const maxTeacherBytes = 4 << 30

// loadTeacher builds the teacher model of a job and checks that it fits the student: the same
// input size, the same outputs, and inputs normalized the same way (the teacher sees the
// student's batches).
func loadTeacher(job Job, student *compute.Model) (*compute.Model, error) {
	var teacher *compute.Model
	var mean, std string
	var err error
	path := job.Distill.Teacher
	if job.Distill.TeacherJob != "" {
		path = job.Distill.TeacherJob
		teacher, mean, std, err = teacherFromJob(job.Distill)
	} else {
		teacher, mean, std, err = teacherFromFile(path)
	}
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: distill: teacher %s: %s", ErrBadJob, path, fmt.Sprintf(format, args...))
	}
	if teacher.InputSize() != student.InputSize() || teacher.OutputSize() != student.OutputSize() {
		return nil, bad("the teacher maps %d inputs to %d outputs, the student %d to %d",
			teacher.InputSize(), teacher.OutputSize(), student.InputSize(), student.OutputSize())
	}
	for _, n := range []struct {
		key, got string
		want     float32
	}{{"mean", mean, job.Data.Mean}, {"std", std, job.Data.Std}} {
		got, err := strconv.ParseFloat(n.got, 32)
		if err != nil || float32(got) != n.want {
			return nil, bad("it was trained on inputs with data.%s %q, this job's is %v: give both jobs the same data.mean and data.std", n.key, n.got, n.want)
		}
	}
	if err := student.SetDistillation(&job.Distill.Distillation); err != nil {
		return nil, fmt.Errorf("%w: distill: %w", ErrBadJob, err)
	}
	return teacher, nil
}

// teacherFromFile reads a teacher exported by troupe export, and the input normalization its
// metadata records.
func teacherFromFile(path string) (teacher *compute.Model, mean, std string, err error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: distill.teacher %s: %s", ErrBadJob, path, fmt.Sprintf(format, args...))
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", "", bad("%v", err)
	}
	if st.Size() > maxTeacherBytes {
		return nil, "", "", bad("%d bytes, more than a teacher may have (%d)", st.Size(), int64(maxTeacherBytes))
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, "", "", bad("%v", err)
	}
	tensors, meta, err := safetensors.Decode(raw)
	if err != nil {
		return nil, "", "", bad("%v", err)
	}
	var spec compute.ModelSpec
	if err := json.Unmarshal([]byte(meta[safetensors.MetaModel]), &spec); err != nil {
		return nil, "", "", bad("no model spec in its %s metadata (export it with troupe export): %v", safetensors.MetaModel, err)
	}
	if teacher, err = compute.NewModel(spec, 0); err != nil {
		return nil, "", "", bad("%v", err)
	}
	named := make([]compute.NamedTensor, len(tensors))
	for i, t := range tensors {
		named[i] = compute.NamedTensor{Name: t.Name, Shape: t.Shape, Data: t.Data}
	}
	if err := teacher.SetTensors(named); err != nil {
		return nil, "", "", bad("%v", err)
	}
	return teacher, meta[safetensors.MetaDataMean], meta[safetensors.MetaDataStd], nil
}

// teacherFromJob restores the teacher job's model from its newest checkpoint.
func teacherFromJob(d *DistillSpec) (teacher *compute.Model, mean, std string, err error) {
	tj, err := d.teacherJob()
	if err != nil {
		return nil, "", "", err
	}
	trained, err := LoadTrained(context.Background(), tj, tj.Checkpoint.Dir)
	if errors.Is(err, ErrNotTrained) {
		return nil, "", "", fmt.Errorf("%w: distill.teacher_job %s: %w: train it first, or set distill.train_teacher", ErrBadJob, d.TeacherJob, err)
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("%w: distill.teacher_job %s: %w", ErrBadJob, d.TeacherJob, err)
	}
	f := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	return trained.Model, f(tj.Data.Mean), f(tj.Data.Std), nil
}

// maxCachedTeacherValues bounds the teacher's logits kept for the whole training set (256 MiB):
// beyond it the teacher runs on every batch instead.
const maxCachedTeacherValues = 1 << 26

// teacherCache runs the teacher once over the whole training set and keeps its logits, row i
// for sample i: the teacher is frozen and a sample's inputs are the same every epoch, so the
// soft targets are too, and a teacher much larger than its student (a CNN teaching an MLP)
// then costs one inference pass instead of one per epoch. nil when they would not fit.
func teacherCache(teacher *compute.Model, train samples) ([]float32, error) {
	n, out := train.Len(), teacher.OutputSize()
	if n*out > maxCachedTeacherValues {
		return nil, nil
	}
	const chunk = 1000
	cache := make([]float32, n*out)
	idx := make([]int32, 0, chunk)
	x := make([]float32, chunk*train.SampleSize())
	labels := make([]int32, chunk)
	for first := 0; first < n; first += chunk {
		m := min(chunk, n-first)
		idx = idx[:0]
		for i := range m {
			idx = append(idx, int32(first+i))
		}
		if err := train.Gather(idx, x[:m*train.SampleSize()], labels[:m]); err != nil {
			return nil, err
		}
		copy(cache[first*out:], teacher.Predict(x[:m*train.SampleSize()], m).Data)
	}
	return cache, nil
}

// teacherLogits returns the teacher's logits for a batch: rows of the cache by sample index,
// or a pass of the teacher over the batch's inputs.
func (r *replica) teacherLogits(b *BatchReady) []float32 {
	if r.teacherCache == nil {
		return r.teacher.Predict(b.Batch.X, b.Batch.N).Data
	}
	out := r.teacher.OutputSize()
	r.teacherBatch = growFloats(r.teacherBatch, len(b.Indices)*out)
	for k, i := range b.Indices {
		copy(r.teacherBatch[k*out:(k+1)*out], r.teacherCache[int(i)*out:(int(i)+1)*out])
	}
	return r.teacherBatch
}

func growFloats(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
