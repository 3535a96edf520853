package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/troupe-ml/troupe/data/tabular"
)

// generatedTeacherJob trains a teacher on generated images (no files needed); checkpoints go to
// the directory %s.
const generatedTeacherJob = `name: generated-teacher
seed: 5
data: {dataset: synthetic-images, train_limit: 6000, test_limit: 1000}
model:
  input: [784]
  layers: [{type: dense, units: 128}, {type: relu}, {type: dense, units: 10}]
optimizer: {name: adam, lr: 0.002}
train: {epochs: 3, batch_size: 100}
checkpoint: {dir: %s}
`

// generatedStudentJob is a small student of that teacher (job file %s) on the same images,
// trained first by the node that starts the job.
const generatedStudentJob = `name: generated-student
seed: 5
data: {dataset: synthetic-images, train_limit: 6000, test_limit: 1000}
model:
  input: [784]
  layers: [{type: dense, units: 16}, {type: relu}, {type: dense, units: 10}]
optimizer: {name: adam, lr: 0.002}
train: {epochs: 16, batch_size: 60}
distill: {teacher_job: %s, train_teacher: true, temperature: 2, alpha: 0.7}
`

var teacherTrainedLine = regexp.MustCompile(`teacher trained`)

// TestPeersDistillOnGeneratedDataAcrossAJoin starts a student job on a node that trains the
// teacher first, then has a second node join it and a third join their world while they train.
// The joiners take the teacher from the checkpoints the first node wrote (they do not train it
// again), every node generates the same images, and all three end with the same student.
func TestPeersDistillOnGeneratedDataAcrossAJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three node processes")
	}
	bin := buildTroupe(t)
	dir := t.TempDir()
	teacher := writeJob(t, dir, "teacher.yaml", fmt.Sprintf(generatedTeacherJob, filepath.Join(dir, "teacher-checkpoints")))
	job := writeJob(t, dir, "student.yaml", fmt.Sprintf(generatedStudentJob, teacher))
	a := startNode(t, bin, "A", "--bind", "127.0.0.1:0", "--job", job, "--min-nodes", "2", "--no-checkpoint")
	a.await(t, teacherTrainedLine, nil, 0)
	sums, joined := joinTwoMore(t, bin, a, 2)
	for name, s := range sums {
		if s.ParamsSHA256 != sums["A"].ParamsSHA256 || s.Steps != 1600 {
			t.Errorf("%s: %d steps, params %s; A's %s", name, s.Steps, s.ParamsSHA256, sums["A"].ParamsSHA256)
		}
		if trained := s.TeacherTestAccuracy != nil; trained != (name == "A") {
			t.Errorf("%s trained the teacher: %v (only A should)", name, trained)
		}
	}
	teacherAcc, acc := *sums["A"].TeacherTestAccuracy, sums["A"].TestAccuracy
	if teacherAcc < 0.8 || acc < 0.6 {
		t.Fatalf("teacher test accuracy %.4f, student %.4f", teacherAcc, acc)
	}
	t.Logf("teacher %.4f, student %.4f; C joined at step %d", teacherAcc, acc, joined)
}

// TestPeersTrainOnAnonymizedTitanic runs the anonymized Titanic example on two node processes:
// each node reads and anonymizes the table itself, and both report the same anonymity and end
// with the same parameters.
func TestPeersTrainOnAnonymizedTitanic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two node processes")
	}
	if _, err := tabular.FindTitanic(""); err != nil {
		t.Skip(err)
	}
	bin := buildTroupe(t)
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "titanic-anonymized.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	job := writeJob(t, t.TempDir(), "titanic.yaml", string(example))
	a := startNode(t, bin, "A", "--bind", "127.0.0.1:0", "--job", job, "--min-nodes", "2", "--no-checkpoint")
	b := startNode(t, bin, "B", "--bind", "127.0.0.1:0", "--join", a.gossipAddr(t), "--no-checkpoint")
	sa, sb := a.finish(t), b.finish(t)
	if sa.Anonymity == nil || sb.Anonymity == nil || sa.Anonymity.K != sb.Anonymity.K || sa.Anonymity.L != sb.Anonymity.L {
		t.Fatalf("anonymity reports %+v and %+v", sa.Anonymity, sb.Anonymity)
	}
	if sa.ParamsSHA256 != sb.ParamsSHA256 || sa.Steps != sb.Steps || sa.TestAccuracy < 0.7 {
		t.Fatalf("A: %d steps, accuracy %.4f, params %s; B: %d steps, params %s", sa.Steps, sa.TestAccuracy, sa.ParamsSHA256, sb.Steps, sb.ParamsSHA256)
	}
	t.Logf("k %d, l %d, %d rows suppressed; test accuracy %.4f", sa.Anonymity.K, sa.Anonymity.L, sa.Anonymity.SuppressedRows, sa.TestAccuracy)
}
