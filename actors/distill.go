package actors

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/troupe-ml/troupe/checkpoint/safetensors"
	"github.com/troupe-ml/troupe/compute"
)

// DistillSpec trains the job's model as a student of a teacher: a model exported by
// `troupe export` (its safetensors file carries the teacher's spec and input normalization),
// run for inference inside the Worker on every batch the student trains on.
type DistillSpec struct {
	// Teacher is the path of the teacher's safetensors file, readable on every node.
	Teacher              string `yaml:"teacher" json:"teacher"`
	compute.Distillation `yaml:",inline"`
}

func (d *DistillSpec) validate() error {
	if d.Teacher == "" {
		return fmt.Errorf("teacher: the path of a safetensors file written by troupe export is needed")
	}
	return d.Distillation.Validate()
}

// maxTeacherBytes bounds the teacher file read into memory: 4 GiB of float32 weights.
const maxTeacherBytes = 4 << 30

// loadTeacher builds the teacher model of a job and checks that it fits the student: the same
// input size, the same outputs, and inputs normalized the same way (the teacher sees the
// student's batches).
func loadTeacher(job Job, student *compute.Model) (*compute.Model, error) {
	path := job.Distill.Teacher
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: distill.teacher %s: %s", ErrBadJob, path, fmt.Sprintf(format, args...))
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, bad("%v", err)
	}
	if st.Size() > maxTeacherBytes {
		return nil, bad("%d bytes, more than a teacher may have (%d)", st.Size(), int64(maxTeacherBytes))
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, bad("%v", err)
	}
	tensors, meta, err := safetensors.Decode(raw)
	if err != nil {
		return nil, bad("%v", err)
	}
	var spec compute.ModelSpec
	if err := json.Unmarshal([]byte(meta[safetensors.MetaModel]), &spec); err != nil {
		return nil, bad("no model spec in its %s metadata (export it with troupe export): %v", safetensors.MetaModel, err)
	}
	teacher, err := compute.NewModel(spec, 0)
	if err != nil {
		return nil, bad("%v", err)
	}
	named := make([]compute.NamedTensor, len(tensors))
	for i, t := range tensors {
		named[i] = compute.NamedTensor{Name: t.Name, Shape: t.Shape, Data: t.Data}
	}
	if err := teacher.SetTensors(named); err != nil {
		return nil, bad("%v", err)
	}
	if teacher.InputSize() != student.InputSize() || teacher.OutputSize() != student.OutputSize() {
		return nil, bad("the teacher maps %d inputs to %d outputs, the student %d to %d",
			teacher.InputSize(), teacher.OutputSize(), student.InputSize(), student.OutputSize())
	}
	for _, n := range []struct {
		key  string
		want float32
	}{{safetensors.MetaDataMean, job.Data.Mean}, {safetensors.MetaDataStd, job.Data.Std}} {
		got, err := strconv.ParseFloat(meta[n.key], 32)
		if err != nil || float32(got) != n.want {
			return nil, bad("it was trained on inputs with %s %q, this job's are %v: give both jobs the same data.mean and data.std", n.key, meta[n.key], n.want)
		}
	}
	if err := student.SetDistillation(&job.Distill.Distillation); err != nil {
		return nil, fmt.Errorf("%w: distill: %w", ErrBadJob, err)
	}
	return teacher, nil
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
