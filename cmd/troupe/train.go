package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/compute/prune"
)

// trainFlags are the command line's own settings; the flags that override the job file live
// in overrides, applied only when the user set them.
type trainFlags struct {
	noCheckpoint bool
	json         bool
	lossLog      string
	progress     string
	logEvery     int
	verbose      bool
	metricsAddr  string
	cpuProfile   string
	memProfile   string
	tensorboard  string
	httpAddr     string

	overrides map[string]func(*actors.Job) // flag name -> write its value into the job
}

// override defines a flag whose value, when the user sets it, replaces one field of the job.
func override[T any](f *trainFlags, define func(*T, string, T, string), name, usage string, field func(*actors.Job) *T) {
	var v T
	define(&v, name, v, usage)
	f.overrides[name] = func(j *actors.Job) { *field(j) = v }
}

func newTrainCommand(stdout, stderr io.Writer) *cobra.Command {
	var f trainFlags
	cmd := &cobra.Command{
		Use:   "train [JOB.yaml]",
		Short: "Train a job in this process (the MNIST MLP when no job file is given)",
		Long: `Train a job inside this process: a node with its shard reader, worker, aggregator
and checkpointer, a world of one. Without a job file it trains the default MNIST MLP
(784-512-512-10, Adam). Flags override the job file.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job := actors.DefaultJob()
			if len(args) == 1 {
				var err error
				if job, err = actors.LoadJob(args[0]); err != nil {
					return err
				}
			}
			if err := f.apply(cmd, &job); err != nil {
				return err
			}
			return train(cmd.Context(), job, f, stdout, stderr)
		},
	}
	f.defineJobFlags(cmd.Flags())
	f.defineOutputFlags(cmd.Flags())
	fl := cmd.Flags()
	fl.BoolVar(&f.noCheckpoint, "no-checkpoint", false, "write no checkpoints")
	return cmd
}

// defineJobFlags defines the flags that override fields of the job file.
func (f *trainFlags) defineJobFlags(fl *pflag.FlagSet) {
	f.overrides = map[string]func(*actors.Job){}
	override(f, fl.IntVar, "epochs", "number of epochs", func(j *actors.Job) *int { return &j.Train.Epochs })
	override(f, fl.IntVar, "batch-size", "global batch size (samples per step)", func(j *actors.Job) *int { return &j.Train.BatchSize })
	override(f, fl.Int64Var, "max-steps", "stop after this many steps in all (0: run every epoch)", func(j *actors.Job) *int64 { return &j.Train.MaxSteps })
	override(f, fl.Float64Var, "lr", "base learning rate", func(j *actors.Job) *float64 { return &j.Optimizer.LR })
	override(f, fl.Uint64Var, "seed", "seed of initialization, data order and dropout", func(j *actors.Job) *uint64 { return &j.Seed })
	override(f, fl.StringVar, "device", "where the model trains: cpu, or cuda / cuda:N in the build with -tags cuda", func(j *actors.Job) *string { return &j.Train.Device })
	override(f, fl.StringVar, "data-dir", "folder of the MNIST IDX files (default: $TROUPE_MNIST_DIR, then the Go module cache)", func(j *actors.Job) *string { return &j.Data.Dir })
	override(f, fl.IntVar, "train-limit", "train on the first N samples only", func(j *actors.Job) *int { return &j.Data.TrainLimit })
	override(f, fl.IntVar, "test-limit", "test on the first N samples only", func(j *actors.Job) *int { return &j.Data.TestLimit })
	override(f, fl.IntVar, "validation", "hold out the last N training samples for validation", func(j *actors.Job) *int { return &j.Data.Validation })
	override(f, fl.StringVar, "checkpoint", "checkpoint store: a directory, file:///path or s3://bucket/prefix?endpoint=URL", func(j *actors.Job) *string { return &j.Checkpoint.Dir })
	override(f, fl.StringVar, "checkpoint-dir", "checkpoint directory (the same as --checkpoint)", func(j *actors.Job) *string { return &j.Checkpoint.Dir })
	override(f, fl.IntVar, "keep-every", "besides the newest --keep, keep every checkpoint whose step is a multiple of this", func(j *actors.Job) *int { return &j.Checkpoint.KeepEvery })
	override(f, fl.IntVar, "checkpoint-every", "write a checkpoint every N steps", func(j *actors.Job) *int { return &j.Checkpoint.EverySteps })
	override(f, fl.IntVar, "keep", "committed checkpoints to keep", func(j *actors.Job) *int { return &j.Checkpoint.Keep })
	override(f, fl.BoolVar, "resume", "continue from the newest valid checkpoint", func(j *actors.Job) *bool { return &j.Checkpoint.Resume })
	override(f, fl.BoolVar, "overwrite", "start afresh even over the checkpoints of an unfinished run", func(j *actors.Job) *bool { return &j.Checkpoint.Overwrite })
}

// defineOutputFlags defines how a run shows its progress and results.
func (f *trainFlags) defineOutputFlags(fl *pflag.FlagSet) {
	fl.BoolVar(&f.json, "json", false, "print one JSON object with the results on stdout at the end")
	fl.StringVar(&f.lossLog, "loss-log", "", "write every step's loss to this file (step,loss)")
	fl.StringVar(&f.progress, "progress", "auto", "progress display: auto (a bar on a terminal, else lines), bar, lines, none")
	fl.IntVar(&f.logEvery, "log-every", 100, "steps between progress lines")
	fl.BoolVar(&f.verbose, "verbose", false, "log debug details")
	fl.StringVar(&f.metricsAddr, "metrics", "", "serve Prometheus metrics at http://HOST:PORT/metrics (port 0 picks one)")
	fl.StringVar(&f.cpuProfile, "cpu-profile", "", "write a CPU profile of the run to this file (go tool pprof reads it)")
	fl.StringVar(&f.httpAddr, "http", "", "serve a live dashboard of the run (curves, worlds, checkpoints) at http://HOST:PORT/ (port 0 picks one; the log says which)")
	fl.StringVar(&f.tensorboard, "tensorboard", "", "write TensorBoard scalars (loss, accuracy, learning rate, validation, world size) into an event file in this directory")
	fl.StringVar(&f.memProfile, "mem-profile", "", "write a heap profile to this file at the end of the run: what is live then, and every allocation made")
}

// profile starts the profiles the flags ask for; stop ends the CPU profile and writes the heap
// profile. The heap profile is taken after a collection, so its in-use figures are the memory
// the run still holds, and its allocation figures (alloc_space) every allocation it made.
func (f *trainFlags) profile() (stop func() error, err error) {
	var cpu *os.File
	if f.cpuProfile != "" {
		if cpu, err = os.Create(f.cpuProfile); err != nil {
			return nil, fmt.Errorf("--cpu-profile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("--cpu-profile: %w", err)
		}
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		if f.memProfile != "" {
			runtime.GC()
			heap, err := os.Create(f.memProfile)
			if err == nil {
				err = errors.Join(pprof.Lookup("heap").WriteTo(heap, 0), heap.Close())
			}
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		return nil
	}, nil
}

// apply writes the flags the user set over the job and validates the result.
func (f *trainFlags) apply(cmd *cobra.Command, job *actors.Job) error {
	for name, apply := range f.overrides {
		if cmd.Flags().Changed(name) {
			apply(job)
		}
	}
	if f.noCheckpoint {
		if job.Checkpoint.Resume {
			return errors.New("--resume and --no-checkpoint contradict each other")
		}
		job.Checkpoint.Dir = ""
	}
	switch f.progress {
	case "auto", "bar", "lines", "none":
	default:
		return fmt.Errorf("--progress must be auto, bar, lines or none, got %q", f.progress)
	}
	if f.logEvery <= 0 {
		return fmt.Errorf("--log-every must be > 0, got %d", f.logEvery)
	}
	return job.Validate()
}

// instrument serves the run's metrics when --metrics asks for them; stop ends the server.
func (f *trainFlags) instrument(opts *actors.Options, log *slog.Logger) (stop func(), err error) {
	if f.metricsAddr == "" {
		return func() {}, nil
	}
	m := newMetrics()
	m.hook(opts)
	return m.serve(f.metricsAddr, log)
}

// outputs builds the log and the progress display the flags ask for.
func (f *trainFlags) outputs(stderr io.Writer) (*slog.Logger, *progress) {
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	mode := f.progress
	if mode == "auto" {
		mode = "lines"
		if isTerminal(stderr) {
			mode = "bar"
		}
	}
	return log, newProgress(mode, stderr, f.logEvery)
}

// summary is the --json output.
type summary struct {
	Job              string   `json:"job"`
	TestAccuracy     float64  `json:"test_accuracy"`
	TestLoss         *float64 `json:"test_loss"` // null when not finite
	Epochs           int      `json:"epochs"`
	Steps            int64    `json:"steps"`
	StartStep        int64    `json:"start_step"`
	Samples          int64    `json:"samples"`
	SamplesPerSecond float64  `json:"samples_per_second"`
	TrainSeconds     float64  `json:"train_seconds"`
	WallSeconds      float64  `json:"wall_seconds"`
	PeakRSSBytes     int64    `json:"peak_rss_bytes"`
	// The optimizer state this process held at the end: all of it, or with
	// train.shard_optimizer its rank's slice.
	OptimizerStateBytes int64 `json:"optimizer_state_bytes"`
	Params              int   `json:"params"`
	Checkpoints         int   `json:"checkpoints_written"`
	CheckpointErrors    int   `json:"checkpoint_errors"`
	// Snapshots a newer one superseded while the store was busy, and what copying state for
	// every snapshot stalled training.
	CheckpointsSkipped  int            `json:"checkpoints_skipped"`
	SnapshotCopySeconds float64        `json:"snapshot_copy_seconds"`
	ResumedFrom         string         `json:"resumed_from,omitempty"`
	ResumedFromStep     int64          `json:"resumed_from_step"` // 0 for a fresh start
	SkippedBroken       []string       `json:"skipped_checkpoints,omitempty"`
	Restarts            map[string]int `json:"restarts"`
	Interrupted         bool           `json:"interrupted"`
	StoppedEarly        bool           `json:"stopped_early"`
	BestEpoch           int            `json:"best_epoch,omitempty"`
	ParamsSHA256        string         `json:"params_sha256"`
	// With pruning: the share of zero weights, over all pruned tensors and per tensor.
	Sparsity         *float64              `json:"sparsity,omitempty"`
	SparsityPerLayer []prune.LayerSparsity `json:"sparsity_per_layer,omitempty"`
	// For tabular data: k-anonymity and l-diversity over the quasi-identifiers of the table
	// trained on, and the rows suppressed to reach the job's k.
	Anonymity *anonymity `json:"anonymity,omitempty"`
	// With DP-SGD: the privacy spent, (epsilon, delta), and the samples clipping scaled down.
	Epsilon        *float64 `json:"epsilon,omitempty"`
	Delta          *float64 `json:"delta,omitempty"`
	SamplesClipped *int64   `json:"samples_clipped,omitempty"`
	// With distill.train_teacher: the test accuracy of the teacher this run trained first.
	TeacherTestAccuracy *float64 `json:"teacher_test_accuracy,omitempty"`
	// With data.validation: the last epoch's validation loss and accuracy.
	ValLoss     *float64 `json:"val_loss,omitempty"`
	ValAccuracy *float64 `json:"val_accuracy,omitempty"`
	// For a text job: the tokenizer, tokens per second and the losses in bits per byte.
	Text *actors.TextResult `json:"text,omitempty"`
}

// anonymity is the summary's share of a tabular data set's privacy report.
type anonymity struct {
	K                int      `json:"k"`
	L                int      `json:"l"`
	Classes          int      `json:"classes"`
	Rows             int      `json:"rows"`
	SuppressedRows   int      `json:"suppressed_rows"`
	QuasiIdentifiers []string `json:"quasi_identifiers"`
	Sensitive        string   `json:"sensitive,omitempty"`
}

// newSummary gathers what a run reports.
func newSummary(res *actors.Result, params int) summary {
	out := summary{
		Job: res.Job, TestAccuracy: res.TestAccuracy, Epochs: res.Epochs, Steps: res.Steps, StartStep: res.StartStep,
		Samples: res.Samples, SamplesPerSecond: res.SamplesPerSecond, TrainSeconds: res.TrainSeconds,
		WallSeconds: res.WallSeconds, PeakRSSBytes: peakRSS(), OptimizerStateBytes: res.OptimizerStateBytes, Params: params, Checkpoints: res.Checkpoints,
		CheckpointErrors: res.CheckpointErrors, CheckpointsSkipped: res.CheckpointsSkipped, SnapshotCopySeconds: res.SnapshotCopySeconds,
		ResumedFrom: res.ResumedFrom, Restarts: res.Restarts,
		Interrupted: res.Interrupted, StoppedEarly: res.StoppedEarly, BestEpoch: res.BestEpoch, ParamsSHA256: res.ParamsSHA256,
	}
	if !math.IsNaN(res.TestLoss) && !math.IsInf(res.TestLoss, 0) {
		out.TestLoss = &res.TestLoss
	}
	if !math.IsNaN(res.ValLoss) && !math.IsInf(res.ValLoss, 0) {
		out.ValLoss, out.ValAccuracy = &res.ValLoss, &res.ValAccuracy
	}
	out.Text = res.Text
	if res.ResumedFrom != "" {
		out.ResumedFromStep = res.StartStep
	}
	if res.SparsityPerLayer != nil {
		out.Sparsity, out.SparsityPerLayer = &res.Sparsity, res.SparsityPerLayer
	}
	if a := res.Anonymity; a != nil {
		out.Anonymity = &anonymity{K: a.K, L: a.L, Classes: a.Classes, Rows: a.Rows, SuppressedRows: a.SuppressedRows,
			QuasiIdentifiers: a.QuasiIdentifiers, Sensitive: a.Sensitive}
	}
	if res.Delta > 0 {
		out.Epsilon, out.Delta, out.SamplesClipped = &res.Epsilon, &res.Delta, &res.SamplesClipped
	}
	if !math.IsNaN(res.TeacherTestAccuracy) {
		out.TeacherTestAccuracy = &res.TeacherTestAccuracy
	}
	for _, s := range res.Skipped {
		out.SkippedBroken = append(out.SkippedBroken, s.Name+": "+s.Reason)
	}
	return out
}

// train runs the job with a progress display and reports the result.
func train(ctx context.Context, job actors.Job, f trainFlags, stdout, stderr io.Writer) error {
	log, display := f.outputs(stderr)
	var params int
	opts := actors.Options{
		Logger: log,
		OnStart: func(s actors.Start) {
			params = s.Params
			display.start(s)
		},
		OnStep:       display.step,
		OnEpoch:      display.epoch,
		OnCheckpoint: display.checkpoint,
	}
	stopMetrics, err := f.instrument(&opts, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	tb, err := openTensorBoard(f.tensorboard, log)
	if err != nil {
		return err
	}
	tb.hook(&opts)
	defer func() {
		if cerr := tb.close(); cerr != nil {
			log.Warn("closing the TensorBoard file", "err", cerr)
		}
	}()
	board, err := f.serveDashboard(log)
	if err != nil {
		return err
	}
	board.hook(&opts)
	defer board.close()
	stopProfile, err := f.profile()
	if err != nil {
		return err
	}
	res, err := actors.Run(ctx, job, opts)
	display.stop()
	if perr := stopProfile(); perr != nil && err == nil {
		err = perr
	}
	if err != nil && res == nil {
		return err
	}
	if werr := writeLossLog(f.lossLog, res); werr != nil && err == nil {
		err = werr
	}
	out := newSummary(res, params)
	if perr := report(stdout, f.json, out, printSummary); perr != nil && err == nil {
		err = perr
	}
	if err == nil && res.Interrupted {
		err = errInterrupted
	}
	return err
}

// report prints a summary: one JSON object, or lines for people.
func report[S any](w io.Writer, asJSON bool, s S, plain func(io.Writer, S)) error {
	if !asJSON {
		plain(w, s)
		return nil
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

var errInterrupted = errors.New("interrupted: the state at the last step boundary is checkpointed; --resume continues")

func printSummary(w io.Writer, s summary) {
	loss := "n/a"
	if s.TestLoss != nil {
		loss = strconv.FormatFloat(*s.TestLoss, 'f', 4, 64)
	}
	fmt.Fprintf(w, "%s: test accuracy %.4f, test loss %s after %d epochs (%d steps)\n", s.Job, s.TestAccuracy, loss, s.Epochs, s.Steps)
	fmt.Fprintf(w, "  %.0f samples/s over %.1f s of training; %.1f s wall; peak RSS %.0f MiB\n",
		s.SamplesPerSecond, s.TrainSeconds, s.WallSeconds, float64(s.PeakRSSBytes)/(1<<20))
	if s.ResumedFrom != "" {
		fmt.Fprintf(w, "  resumed from %s at step %d\n", s.ResumedFrom, s.StartStep)
	}
	if s.Checkpoints+s.CheckpointErrors+s.CheckpointsSkipped > 0 {
		fmt.Fprintf(w, "  checkpoints: %d written, %d failed, %d skipped (superseded while the store was busy)\n",
			s.Checkpoints, s.CheckpointErrors, s.CheckpointsSkipped)
	}
	for role, n := range s.Restarts {
		fmt.Fprintf(w, "  %s restarted %d times\n", role, n)
	}
	if s.StoppedEarly {
		fmt.Fprintf(w, "  stopped early; weights of epoch %d restored\n", s.BestEpoch+1)
	}
	if a := s.Anonymity; a != nil {
		fmt.Fprintf(w, "  anonymity over %s: k = %d, l = %d (%d classes, %d rows, %d suppressed)\n",
			strings.Join(a.QuasiIdentifiers, ", "), a.K, a.L, a.Classes, a.Rows, a.SuppressedRows)
	}
	if s.Epsilon != nil {
		fmt.Fprintf(w, "  DP-SGD: epsilon %.3f at delta %g; %d samples clipped\n", *s.Epsilon, *s.Delta, *s.SamplesClipped)
	}
	if s.Sparsity != nil {
		fmt.Fprintf(w, "  sparsity %.4f of the weights:", *s.Sparsity)
		for _, l := range s.SparsityPerLayer {
			fmt.Fprintf(w, " %s %.4f", l.Name, l.Sparsity)
		}
		fmt.Fprintln(w)
	}
}

// writeLossLog writes one "step,loss" line per step, with the loss's shortest exact decimal form,
// so two runs can be compared bit for bit.
func writeLossLog(path string, res *actors.Result) error {
	if path == "" {
		return nil
	}
	file, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("loss log: %w", err)
	}
	w := bufio.NewWriter(file)
	fmt.Fprintln(w, "step,loss")
	for i, l := range res.Losses {
		fmt.Fprintf(w, "%d,%s\n", res.StartStep+int64(i), strconv.FormatFloat(l, 'g', -1, 64))
	}
	if err := w.Flush(); err != nil {
		file.Close()
		return fmt.Errorf("loss log: %w", err)
	}
	return file.Close()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
