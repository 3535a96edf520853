package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/spf13/cobra"

	"github.com/troupe-ml/troupe/actors"
)

type generateFlags struct {
	checkpoint  string
	job         string
	prompt      string
	tokens      int
	temperature float64
	topK        int
	seed        uint64
}

func newGenerateCommand(stdout, stderr io.Writer) *cobra.Command {
	var f generateFlags
	cmd := &cobra.Command{
		Use:   "generate --checkpoint DIR [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed N]",
		Short: "Write text from a trained language model (a gpt job's checkpoint), streamed as it is sampled",
		Long: `Load the newest valid checkpoint of a text job (the job and its tokenizer travel in the
checkpoint, or --job names the job file) and continue the prompt token by token: each token is
drawn from the model's next-token distribution divided by the temperature and cut to the top-k
most likely tokens (temperature 0: always the most likely). The same seed gives the same text.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGenerate(cmd.Context(), f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.checkpoint, "checkpoint", "", "checkpoint directory, file://DIR or s3://bucket/prefix?endpoint=URL (default: the job's checkpoint.dir)")
	fl.StringVar(&f.job, "job", "", "the job file the checkpoint was trained with (default: the job the checkpoint carries)")
	fl.StringVar(&f.prompt, "prompt", "\n", "the text to continue")
	fl.IntVar(&f.tokens, "tokens", 200, "how many tokens to generate")
	fl.Float64Var(&f.temperature, "temperature", 0.8, "divides the logits: below 1 sharper, above 1 flatter, 0 the most likely token")
	fl.IntVar(&f.topK, "top-k", 40, "sample among the k most likely tokens only (0: all)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the sampling")
	return cmd
}

func runGenerate(ctx context.Context, f generateFlags, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if f.tokens < 0 {
		return fmt.Errorf("--tokens must be >= 0, got %d", f.tokens)
	}
	if f.checkpoint == "" && f.job == "" {
		return fmt.Errorf("give --checkpoint DIR (or --job JOB.yaml with a checkpoint.dir)")
	}
	var job actors.Job
	var err error
	if f.job != "" {
		if job, err = actors.LoadJob(f.job); err != nil {
			return err
		}
	}
	loc, err := checkpointLocation(f.checkpoint, job)
	if err != nil {
		return err
	}
	if f.job == "" {
		if job, err = actors.CheckpointJob(ctx, loc); err != nil {
			return err
		}
	}
	if job.Model.GPT == nil {
		return fmt.Errorf("job %q trains no language model (model.gpt): nothing to generate", job.Name)
	}
	trained, err := actors.LoadTrained(ctx, job, loc)
	if trained != nil {
		for _, s := range trained.Skipped {
			fmt.Fprintf(stderr, "troupe: skipped broken checkpoint %s\n", s)
		}
	}
	if err != nil {
		return err
	}
	tok, err := actors.TokenizerOf(trained.Meta)
	if err != nil {
		return err
	}
	ids := tok.Encode(nil, []byte(f.prompt))
	if len(ids) == 0 {
		return fmt.Errorf("the prompt is empty: give at least one character")
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	out.WriteString(f.prompt)
	rng := rand.New(rand.NewPCG(f.seed, 0x9e3779b97f4a7c15))
	var text []byte
	for range f.tokens {
		id, err := trained.Model.NextToken(ids, f.temperature, f.topK, rng)
		if err != nil {
			return err
		}
		ids = append(ids, id)
		if text, err = tok.Decode(text[:0], []int32{id}); err != nil {
			return err
		}
		out.Write(text)
		if err := out.Flush(); err != nil { // streamed: each token as it comes
			return err
		}
	}
	out.WriteString("\n")
	return nil
}
