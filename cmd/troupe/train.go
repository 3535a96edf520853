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
	"strconv"

	"github.com/spf13/cobra"

	"github.com/troupe-ml/troupe/actors"
)

// trainFlags are the command-line overrides of a job file. A flag the user did not set leaves
// the job's value alone.
type trainFlags struct {
	epochs          int
	batchSize       int
	maxSteps        int64
	lr              float64
	seed            uint64
	dataDir         string
	trainLimit      int
	testLimit       int
	validation      int
	checkpointDir   string
	checkpointEvery int
	keep            int
	noCheckpoint    bool
	resume          bool

	json     bool
	lossLog  string
	progress string
	logEvery int
	verbose  bool
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
	fl := cmd.Flags()
	fl.IntVar(&f.epochs, "epochs", 0, "number of epochs")
	fl.IntVar(&f.batchSize, "batch-size", 0, "global batch size (samples per step)")
	fl.Int64Var(&f.maxSteps, "max-steps", 0, "stop after this many steps in all (0: run every epoch)")
	fl.Float64Var(&f.lr, "lr", 0, "base learning rate")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of initialization, data order and dropout")
	fl.StringVar(&f.dataDir, "data-dir", "", "folder of the MNIST IDX files (default: $TROUPE_MNIST_DIR, then the Go module cache)")
	fl.IntVar(&f.trainLimit, "train-limit", 0, "train on the first N samples only")
	fl.IntVar(&f.testLimit, "test-limit", 0, "test on the first N samples only")
	fl.IntVar(&f.validation, "validation", 0, "hold out the last N training samples for validation")
	fl.StringVar(&f.checkpointDir, "checkpoint-dir", "", "checkpoint directory")
	fl.IntVar(&f.checkpointEvery, "checkpoint-every", 0, "write a checkpoint every N steps")
	fl.IntVar(&f.keep, "keep", 0, "committed checkpoints to keep")
	fl.BoolVar(&f.noCheckpoint, "no-checkpoint", false, "write no checkpoints")
	fl.BoolVar(&f.resume, "resume", false, "continue from the newest valid checkpoint")
	fl.BoolVar(&f.json, "json", false, "print one JSON object with the results on stdout at the end")
	fl.StringVar(&f.lossLog, "loss-log", "", "write every step's loss to this file (step,loss)")
	fl.StringVar(&f.progress, "progress", "auto", "progress display: auto (a bar on a terminal, else lines), bar, lines, none")
	fl.IntVar(&f.logEvery, "log-every", 100, "steps between progress lines")
	fl.BoolVar(&f.verbose, "verbose", false, "log debug details")
	return cmd
}

// apply writes the flags the user set over the job and validates the result.
func (f *trainFlags) apply(cmd *cobra.Command, job *actors.Job) error {
	set := cmd.Flags().Changed
	if set("epochs") {
		job.Train.Epochs = f.epochs
	}
	if set("batch-size") {
		job.Train.BatchSize = f.batchSize
	}
	if set("max-steps") {
		job.Train.MaxSteps = f.maxSteps
	}
	if set("lr") {
		job.Optimizer.LR = f.lr
	}
	if set("seed") {
		job.Seed = f.seed
	}
	if set("data-dir") {
		job.Data.Dir = f.dataDir
	}
	if set("train-limit") {
		job.Data.TrainLimit = f.trainLimit
	}
	if set("test-limit") {
		job.Data.TestLimit = f.testLimit
	}
	if set("validation") {
		job.Data.Validation = f.validation
	}
	if set("checkpoint-dir") {
		job.Checkpoint.Dir = f.checkpointDir
	}
	if set("checkpoint-every") {
		job.Checkpoint.EverySteps = f.checkpointEvery
	}
	if set("keep") {
		job.Checkpoint.Keep = f.keep
	}
	if f.noCheckpoint {
		if f.resume {
			return errors.New("--resume and --no-checkpoint contradict each other")
		}
		job.Checkpoint.Dir = ""
	}
	if set("resume") {
		job.Checkpoint.Resume = f.resume
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

// summary is the --json output.
type summary struct {
	Job              string         `json:"job"`
	TestAccuracy     float64        `json:"test_accuracy"`
	TestLoss         *float64       `json:"test_loss"` // null when not finite
	Epochs           int            `json:"epochs"`
	Steps            int64          `json:"steps"`
	StartStep        int64          `json:"start_step"`
	Samples          int64          `json:"samples"`
	SamplesPerSecond float64        `json:"samples_per_second"`
	TrainSeconds     float64        `json:"train_seconds"`
	WallSeconds      float64        `json:"wall_seconds"`
	PeakRSSBytes     int64          `json:"peak_rss_bytes"`
	Params           int            `json:"params"`
	Checkpoints      int            `json:"checkpoints"`
	CheckpointErrors int            `json:"checkpoint_errors"`
	ResumedFrom      string         `json:"resumed_from,omitempty"`
	SkippedBroken    []string       `json:"skipped_checkpoints,omitempty"`
	Restarts         map[string]int `json:"restarts"`
	Interrupted      bool           `json:"interrupted"`
	StoppedEarly     bool           `json:"stopped_early"`
	BestEpoch        int            `json:"best_epoch,omitempty"`
}

// train runs the job with a progress display and reports the result.
func train(ctx context.Context, job actors.Job, f trainFlags, stdout, stderr io.Writer) error {
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
	display := newProgress(mode, stderr, f.logEvery)
	var params int
	res, err := actors.Run(ctx, job, actors.Options{
		Logger: log,
		OnStart: func(s actors.Start) {
			params = s.Params
			display.start(s)
		},
		OnStep:       display.step,
		OnEpoch:      display.epoch,
		OnCheckpoint: display.checkpoint,
	})
	display.stop()
	if err != nil && res == nil {
		return err
	}
	if werr := writeLossLog(f.lossLog, res); werr != nil && err == nil {
		err = werr
	}
	out := summary{
		Job: res.Job, TestAccuracy: res.TestAccuracy, Epochs: res.Epochs, Steps: res.Steps, StartStep: res.StartStep,
		Samples: res.Samples, SamplesPerSecond: res.SamplesPerSecond, TrainSeconds: res.TrainSeconds,
		WallSeconds: res.WallSeconds, PeakRSSBytes: peakRSS(), Params: params, Checkpoints: res.Checkpoints,
		CheckpointErrors: res.CheckpointErrors, ResumedFrom: res.ResumedFrom, Restarts: res.Restarts,
		Interrupted: res.Interrupted, StoppedEarly: res.StoppedEarly, BestEpoch: res.BestEpoch,
	}
	if !math.IsNaN(res.TestLoss) && !math.IsInf(res.TestLoss, 0) {
		out.TestLoss = &res.TestLoss
	}
	for _, s := range res.Skipped {
		out.SkippedBroken = append(out.SkippedBroken, s.Name+": "+s.Reason)
	}
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(out); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		printSummary(stdout, out)
	}
	if err == nil && res.Interrupted {
		err = errInterrupted
	}
	return err
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
	if s.Checkpoints+s.CheckpointErrors > 0 {
		fmt.Fprintf(w, "  checkpoints: %d written, %d failed\n", s.Checkpoints, s.CheckpointErrors)
	}
	for role, n := range s.Restarts {
		fmt.Fprintf(w, "  %s restarted %d times\n", role, n)
	}
	if s.StoppedEarly {
		fmt.Fprintf(w, "  stopped early; weights of epoch %d restored\n", s.BestEpoch+1)
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
