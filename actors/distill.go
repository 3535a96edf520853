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
