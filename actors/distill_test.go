package actors

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/troupe-ml/troupe/checkpoint/safetensors"
	"github.com/troupe-ml/troupe/compute"
)

// writeTeacher writes a freshly initialized model of spec as troupe export does, with the
// input normalization mean and std in its metadata.
func writeTeacher(t *testing.T, spec compute.ModelSpec, mean, std float32) string {
	t.Helper()
	model, err := compute.NewModel(spec, 99)
	if err != nil {
		t.Fatal(err)
	}
	specJSON, _ := json.Marshal(model.Spec())
	named := model.Tensors()
	tensors := make([]safetensors.Tensor, len(named))
	for i, nt := range named {
		tensors[i] = safetensors.Tensor{Name: nt.Name, Shape: nt.Shape, Data: nt.Data}
	}
	raw, err := safetensors.Encode(tensors, map[string]string{
		safetensors.MetaModel:    string(specJSON),
		safetensors.MetaDataMean: strconv.FormatFloat(float64(mean), 'g', -1, 32),
		safetensors.MetaDataStd:  strconv.FormatFloat(float64(std), 'g', -1, 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "teacher.safetensors")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStudentFollowsItsTeacher teaches a student with an untrained teacher: with all the weight
// on the soft targets (alpha 1) it learns the teacher's arbitrary answers and scores near
// chance on the test set, with all of it on the labels (alpha 0) it learns MNIST. So the
// teacher's logits do reach the loss, and alpha mixes the two terms.
func TestStudentFollowsItsTeacher(t *testing.T) {
	job := smallJob(t)
	job.Checkpoint.Dir = ""
	teacher := writeTeacher(t, compute.MLP(784, []int{16}, 10), job.Data.Mean, job.Data.Std)
	accuracy := func(alpha float64) float64 {
		j := job
		j.Distill = &DistillSpec{Teacher: teacher, Distillation: compute.Distillation{Temperature: 2, Alpha: alpha}}
		if err := j.Validate(); err != nil {
			t.Fatal(err)
		}
		return mustRun(t, context.Background(), j, Options{}).TestAccuracy
	}
	soft, hard := accuracy(1), accuracy(0)
	if soft > 0.3 || hard < 0.5 {
		t.Fatalf("test accuracy %v taught by an untrained teacher alone, %v by the labels alone: want near chance and learnt", soft, hard)
	}
}

func TestBadTeachersAreRefused(t *testing.T) {
	job := smallJob(t)
	job.Checkpoint.Dir = ""
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(t.TempDir(), "none.safetensors"), "no such file"},
		{"other outputs", writeTeacher(t, compute.MLP(784, []int{4}, 7), job.Data.Mean, job.Data.Std), "outputs"},
		{"other normalization", writeTeacher(t, compute.MLP(784, []int{4}, 10), job.Data.Mean+0.5, job.Data.Std), "data.mean"},
		{"not safetensors", writeFile(t, "garbage"), "distill.teacher"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := job
			j.Distill = &DistillSpec{Teacher: tc.path, Distillation: compute.Distillation{Temperature: 2, Alpha: 0.5}}
			_, err := Run(context.Background(), j, Options{})
			if !errors.Is(err, ErrBadJob) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrBadJob mentioning %q", err, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, text string) string {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTeacherCacheHoldsWhatTheTeacherSays compares the cached logits of every training sample
// with a pass of the teacher over the same samples gathered as a batch, in another order.
func TestTeacherCacheHoldsWhatTheTeacherSays(t *testing.T) {
	job := smallJob(t)
	sets, err := loadData(job)
	if err != nil {
		t.Fatal(err)
	}
	teacher, err := compute.NewModel(compute.MLP(784, []int{8}, 10), 5)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := teacherCache(teacher, sets.train)
	if err != nil {
		t.Fatal(err)
	}
	idx := []int32{1199, 0, 500, 42, 1001}
	x := make([]float32, len(idx)*784)
	if err := sets.train.Gather(idx, x, make([]int32, len(idx))); err != nil {
		t.Fatal(err)
	}
	want := teacher.Predict(x, len(idx)).Data
	r := &replica{teacher: teacher, teacherCache: cache}
	got := r.teacherLogits(&BatchReady{Indices: idx})
	if !slices.Equal(got, want) {
		t.Fatalf("cached rows %v, the teacher says %v", got, want)
	}
}

// writeJob writes job as a YAML job file.
func writeJob(t *testing.T, job Job) string {
	t.Helper()
	raw, err := yaml.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), job.Name+".yaml")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A teacher named by its job file is trained first when its checkpoints hold no finished run,
// and restored from them otherwise: the second student, taught by the restored teacher, follows
// the first bit for bit, and neither learns from an untrained teacher (alpha 1 puts the whole
// loss on the teacher's answers, so the student's accuracy is the teacher's knowledge).
func TestTeacherTrainedFirstThenRestoredFromItsCheckpoints(t *testing.T) {
	teacherJob := smallJob(t)
	teacherJob.Name = "teacher"
	teacherJob.Model = compute.MLP(784, []int{64}, 10)
	teacherJob.Checkpoint = CheckpointSpec{Dir: t.TempDir(), EverySteps: 20, Keep: 2}
	teacherJob.Train.Epochs = 6
	job := smallJob(t)
	job.Checkpoint.Dir = ""
	job.Model = compute.MLP(784, []int{16}, 10)
	job.Train.Epochs = 6
	job.Distill = &DistillSpec{TeacherJob: writeJob(t, teacherJob), TrainTeacher: true,
		Distillation: compute.Distillation{Temperature: 2, Alpha: 1}}
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	first := mustRun(t, context.Background(), job, Options{})
	t.Logf("teacher %.3f, its student %.3f", first.TeacherTestAccuracy, first.TestAccuracy)
	if !(first.TeacherTestAccuracy > 0.7) || first.TestAccuracy < 0.5 {
		t.Fatalf("teacher trained to %v, student taught by it alone %v: want both learnt", first.TeacherTestAccuracy, first.TestAccuracy)
	}
	trained, err := LoadTrained(context.Background(), teacherJob, teacherJob.Checkpoint.Dir)
	if err != nil || !trained.Final {
		t.Fatalf("the teacher's checkpoints: %+v, %v; want a finished run", trained, err)
	}
	second := mustRun(t, context.Background(), job, Options{})
	if !math.IsNaN(second.TeacherTestAccuracy) {
		t.Fatalf("the teacher was trained again (test accuracy %v)", second.TeacherTestAccuracy)
	}
	if !sameBits(first.Losses, second.Losses) || second.ParamsSHA256 != first.ParamsSHA256 {
		t.Fatal("the student taught by the restored teacher differs from the one taught by the teacher just trained")
	}
	// Without train_teacher the same job restores the teacher too.
	job.Distill.TrainTeacher = false
	if third := mustRun(t, context.Background(), job, Options{}); third.ParamsSHA256 != first.ParamsSHA256 {
		t.Fatal("teacher_job without train_teacher taught another student")
	}
}

func TestBadTeacherJobsAreRefused(t *testing.T) {
	untrained := smallJob(t)
	untrained.Name = "untrained"
	otherNorm := untrained
	otherNorm.Name = "other-normalization"
	otherNorm.Data.Mean += 0.25
	base := compute.Distillation{Temperature: 2, Alpha: 0.5}
	for _, tc := range []struct {
		name string
		spec DistillSpec
		want string
	}{
		{"both teachers", DistillSpec{Teacher: "t.safetensors", TeacherJob: "t.yaml", Distillation: base}, "one of the two"},
		{"no teacher", DistillSpec{Distillation: base}, "one of the two"},
		{"train without a job", DistillSpec{Teacher: "t.safetensors", TrainTeacher: true, Distillation: base}, "train_teacher needs teacher_job"},
		{"not trained", DistillSpec{TeacherJob: writeJob(t, untrained), Distillation: base}, "train it first"},
		{"no checkpoint dir", DistillSpec{TeacherJob: writeFile(t, "name: t\ncheckpoint: {dir: \"\"}\n"), TrainTeacher: true, Distillation: base}, "sets no checkpoint.dir"},
		{"missing job file", DistillSpec{TeacherJob: filepath.Join(t.TempDir(), "none.yaml"), Distillation: base}, "no such file"},
		{"other normalization", DistillSpec{TeacherJob: writeJob(t, otherNorm), TrainTeacher: true, Distillation: base}, "data.mean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := smallJob(t)
			j.Checkpoint.Dir = ""
			j.Train.MaxSteps = 5
			spec := tc.spec
			j.Distill = &spec
			_, err := Run(context.Background(), j, Options{})
			if !errors.Is(err, ErrBadJob) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrBadJob mentioning %q", err, tc.want)
			}
		})
	}
}
