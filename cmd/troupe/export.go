package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/checkpoint/safetensors"
	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/optim"
)

const formatSafetensors = "safetensors"

// jobOrDefault loads a job file, or returns the built-in job when path is empty.
func jobOrDefault(path string) (actors.Job, error) {
	if path == "" {
		return actors.DefaultJob(), nil
	}
	return actors.LoadJob(path)
}

// checkpointLocation picks the --checkpoint flag, else the job's checkpoint.dir.
func checkpointLocation(flag string, job actors.Job) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if job.Checkpoint.Dir == "" {
		return "", errors.New("no checkpoint location: pass --checkpoint DIR (the job sets no checkpoint.dir)")
	}
	return job.Checkpoint.Dir, nil
}

type exportFlags struct {
	checkpoint string
	job        string
	format     string
}

func newExportCommand(stdout, stderr io.Writer) *cobra.Command {
	var f exportFlags
	cmd := &cobra.Command{
		Use:   "export [--checkpoint DIR] [--job JOB.yaml] [--format safetensors] OUT",
		Short: "Write the weights of the newest valid checkpoint as a safetensors file for PyTorch",
		Long: `Write the parameters of the newest valid checkpoint to OUT as safetensors, named and
shaped as in the torch.nn.Sequential built from the job's layers ("0.weight", "0.bias", ...;
Linear [out, in], Conv2d [out, in, kh, kw]). The file's metadata holds the job name, the step,
the job fingerprint, the model spec as JSON and the input normalization.

The job (--job, default: the built-in MNIST MLP job) must be the one that wrote the
checkpoint, with the same flags: its fingerprint is checked.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExport(f, args[0], stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.checkpoint, "checkpoint", "", "checkpoint directory, or file://DIR (default: the job's checkpoint.dir)")
	fl.StringVar(&f.job, "job", "", "the job file the checkpoint was trained with (default: the built-in MNIST MLP job)")
	fl.StringVar(&f.format, "format", formatSafetensors, "output format: safetensors")
	return cmd
}

func runExport(f exportFlags, out string, stdout, stderr io.Writer) error {
	if f.format != formatSafetensors {
		return fmt.Errorf("--format must be %s, got %q", formatSafetensors, f.format)
	}
	job, err := jobOrDefault(f.job)
	if err != nil {
		return err
	}
	loc, err := checkpointLocation(f.checkpoint, job)
	if err != nil {
		return err
	}
	if dir, local, err := actors.LocalDir(loc); err == nil && local {
		// Opening a store creates its directory: a mistyped one must not be made and
		// reported empty.
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("checkpoint directory: %w", err)
		}
	}
	trained, err := actors.LoadTrained(context.Background(), job, loc)
	if trained != nil {
		for _, s := range trained.Skipped {
			fmt.Fprintf(stderr, "troupe: skipped broken checkpoint %s\n", s)
		}
	}
	if err != nil {
		return err
	}
	model, name := trained.Model, trained.Checkpoint
	specJSON, err := json.Marshal(model.Spec())
	if err != nil {
		return err
	}
	meta := map[string]string{
		safetensors.MetaFormat:      "pt",
		safetensors.MetaJob:         job.Name,
		safetensors.MetaStep:        strconv.FormatInt(trained.Step, 10),
		safetensors.MetaCheckpoint:  name,
		safetensors.MetaFinished:    strconv.FormatBool(trained.Final),
		safetensors.MetaFingerprint: trained.Fingerprint,
		safetensors.MetaModel:       string(specJSON),
		safetensors.MetaDataset:     job.Data.Dataset,
		safetensors.MetaDataMean:    strconv.FormatFloat(float64(job.Data.Mean), 'g', -1, 32),
		safetensors.MetaDataStd:     strconv.FormatFloat(float64(job.Data.Std), 'g', -1, 32),
	}
	named := model.Tensors()
	tensors := make([]safetensors.Tensor, len(named))
	for i, t := range named {
		tensors[i] = safetensors.Tensor{Name: t.Name, Shape: t.Shape, Data: t.Data}
	}
	raw, err := safetensors.Encode(tensors, meta)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(out, raw); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exported %s (step %d) of job %q to %s: %d tensors, %d parameters\n",
		name, trained.Step, job.Name, out, len(tensors), model.NumParams())
	if job.Prune != nil {
		reportSparsity(stdout, named)
	}
	return nil
}

// reportSparsity says how many zeros each weight tensor of a pruned model holds, by the names
// the exported file gives them: the tensors are written dense, zeros included.
func reportSparsity(w io.Writer, named []compute.NamedTensor) {
	var lines []string
	zeros, total := 0, 0
	for _, t := range named {
		if !strings.HasSuffix(t.Name, ".weight") {
			continue
		}
		z := 0
		for _, v := range t.Data {
			if v == 0 {
				z++
			}
		}
		lines = append(lines, fmt.Sprintf("  %s: %d of %d zero (%.4f)", t.Name, z, len(t.Data), float64(z)/float64(max(len(t.Data), 1))))
		zeros += z
		total += len(t.Data)
	}
	fmt.Fprintf(w, "sparsity %.4f of the weights\n%s\n", float64(zeros)/float64(max(total, 1)), strings.Join(lines, "\n"))
}

// writeFileAtomic writes data to a temporary file next to path and renames it into place, so
// that an interrupted export never leaves a truncated file under the final name.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

type importFlags struct {
	checkpoint string
	job        string
	overwrite  bool
}

func newImportCommand(stdout, stderr io.Writer) *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "import --job JOB.yaml [--checkpoint DIR] IN.safetensors",
		Short: "Turn a safetensors file of weights into a step-0 checkpoint of a job, to fine-tune from",
		Long: `Load IN (tensors named and shaped as troupe export writes them: "0.weight", "0.bias", ...
of the equivalent torch.nn.Sequential) into a fresh model of the job, and write it as the
checkpoint of step 0 with a fresh optimizer state. Then

  troupe train JOB.yaml --checkpoint-dir DIR --resume

trains the job starting from those weights. Every tensor of the model must be in IN with its
exact shape, and nothing else. A directory that already holds checkpoints is refused unless
--overwrite deletes them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImport(f, args[0], stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.job, "job", "", "the job to fine-tune (required)")
	fl.StringVar(&f.checkpoint, "checkpoint", "", "checkpoint directory to write, or file://DIR (default: the job's checkpoint.dir)")
	fl.BoolVar(&f.overwrite, "overwrite", false, "delete the checkpoints already in the directory")
	_ = cmd.MarkFlagRequired("job") // the flag exists: this cannot fail
	return cmd
}

func runImport(f importFlags, in string, stdout, stderr io.Writer) error {
	job, err := actors.LoadJob(f.job)
	if err != nil {
		return err
	}
	loc, err := checkpointLocation(f.checkpoint, job)
	if err != nil {
		return err
	}
	model, err := compute.NewModel(job.Model, job.Seed)
	if err != nil {
		return err
	}
	st, err := os.Stat(in)
	if err != nil {
		return err
	}
	// A file of this model's tensors cannot be larger than its header limit and its values:
	// refuse a bigger one before reading it into memory.
	if limit := int64(8+safetensors.MaxHeaderSize) + 4*int64(model.NumParams()); st.Size() > limit {
		return fmt.Errorf("%s is %d bytes, more than a file of this model's %d parameters can be", in, st.Size(), model.NumParams())
	}
	raw, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	tensors, meta, err := safetensors.Decode(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	named := make([]compute.NamedTensor, len(tensors))
	for i, t := range tensors {
		named[i] = compute.NamedTensor{Name: t.Name, Shape: t.Shape, Data: t.Data}
	}
	if err := model.SetTensors(named); err != nil {
		return fmt.Errorf("%s does not fit the model of job %q: %w", in, job.Name, err)
	}
	warnOtherModel(meta[safetensors.MetaModel], model.Spec(), in, stderr)

	opt, err := optim.New(job.Optimizer, model.NumParams(), model.NoDecay()...)
	if err != nil {
		return err
	}
	ost := opt.State()
	snap := &checkpoint.Snapshot{
		Step:      0,
		Epoch:     0,
		Seed:      job.Seed,
		Meta:      map[string]string{"job": job.Name, "fingerprint": job.Fingerprint(), "imported_from": filepath.Base(in)},
		Params:    model.Params(),
		Optimizer: checkpoint.OptimizerState{Name: ost.Name, Step: ost.Step, Buffers: ost.Buffers},
	}
	store, err := actors.OpenStore(context.Background(), loc)
	if err != nil {
		return err
	}
	manager := checkpoint.NewManager(store, job.Checkpoint.Keep)
	existing, err := manager.List()
	if err != nil {
		return err
	}
	if len(existing) > 0 {
		if !f.overwrite {
			return fmt.Errorf("%s already holds checkpoints (newest %s): --overwrite deletes them, or pick another --checkpoint directory",
				loc, existing[len(existing)-1].Name)
		}
		if err := manager.Clear(); err != nil {
			return err
		}
	}
	name, err := manager.Save(snap, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d tensors from %s into %s of job %q in %s; `troupe train %s --checkpoint-dir %s --resume` fine-tunes from them\n",
		len(tensors), in, name, job.Name, loc, f.job, loc)
	return nil
}

// warnOtherModel notes on stderr when the file says it came from a model with other layers:
// the shapes fit (SetTensors checked them), but, say, an activation may differ.
func warnOtherModel(fileSpec string, spec compute.ModelSpec, in string, stderr io.Writer) {
	if fileSpec == "" {
		return
	}
	var theirs compute.ModelSpec
	if err := json.Unmarshal([]byte(fileSpec), &theirs); err != nil {
		fmt.Fprintf(stderr, "troupe: note: %s: unreadable %s metadata: %v\n", in, safetensors.MetaModel, err)
		return
	}
	a, _ := json.Marshal(theirs) // plain structs always marshal
	b, _ := json.Marshal(spec)
	if string(a) != string(b) {
		fmt.Fprintf(stderr, "troupe: note: %s was exported from another model (%s); its tensors fit this job's model (%s), which takes them\n", in, a, b)
	}
}
