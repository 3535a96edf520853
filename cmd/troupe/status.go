package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/sched"
)

// statusFlags are the settings of `troupe status`.
type statusFlags struct {
	clusterFlags
	timeout time.Duration
	json    bool
}

func newStatusCommand(stdout, stderr io.Writer) *cobra.Command {
	var f statusFlags
	cmd := &cobra.Command{
		Use:   "status --join HOST:PORT",
		Short: "Show the world a cluster trains in: members, step, loss, throughput",
		Long: `Join the cluster for a moment through any member's gossip address, ask every member
for its status, print what they say, and leave. The members never count it as one of
their own: it sends no join request, so no world ever includes it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.join) == 0 {
				return errors.New("give --join HOST:PORT: the gossip address of any member")
			}
			if f.timeout <= 0 {
				return fmt.Errorf("--timeout must be > 0, got %s", f.timeout)
			}
			return showStatus(cmd.Context(), f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	f.clusterFlags.define(fl, "127.0.0.1:0")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for the cluster and its answers")
	fl.BoolVar(&f.json, "json", false, "print one JSON object")
	return cmd
}

// statusReport is the --json output of `troupe status`.
type statusReport struct {
	Job        string         `json:"job"`
	Generation uint64         `json:"generation"`
	World      []string       `json:"world"` // members in rank order
	Step       int64          `json:"step"`  // the furthest member's
	TotalSteps int64          `json:"total_steps"`
	Loss       float64        `json:"loss"`
	Members    []memberReport `json:"members"`
}

type memberReport struct {
	ID               string  `json:"id"`
	Rank             int     `json:"rank"` // -1: not in the newest world
	Generation       uint64  `json:"generation"`
	Step             int64   `json:"step"`
	Epoch            int64   `json:"epoch"`
	Loss             float64 `json:"loss"`
	Accuracy         float64 `json:"accuracy"`
	SamplesPerSecond float64 `json:"samples_per_second"`
	State            string  `json:"state"` // training, waiting, finished
}

func showStatus(ctx context.Context, f statusFlags, stdout, stderr io.Writer) error {
	cfg, err := f.gossipConfig()
	if err != nil {
		return err
	}
	log := slog.New(cluster.Quiet(slog.NewTextHandler(stderr, nil), slog.LevelError))
	peer, err := actors.StartPeer(actors.PeerConfig{Gossip: cfg, Logger: log})
	if err != nil {
		return err
	}
	defer peer.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// Gossip brings the members within a round or two of the join.
	for len(peer.Members()) == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no member of a cluster answered at %s within %s (a wrong cluster key looks the same)", strings.Join(f.join, ","), f.timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(200 * time.Millisecond) // let the rest of the membership arrive
	answers := peer.Status(ctx)
	if len(answers) == 0 {
		return fmt.Errorf("%d members, none answered within %s", len(peer.Members()), f.timeout)
	}
	rep := newStatusReport(answers)
	return report(stdout, f.json, rep, printStatus)
}

func newStatusReport(answers []actors.MemberStatus) statusReport {
	newest := slices.MaxFunc(answers, func(a, b actors.MemberStatus) int {
		return cmp.Compare(a.World.Generation, b.World.Generation)
	})
	rep := statusReport{Job: newest.Job, Generation: newest.World.Generation, TotalSteps: newest.TotalSteps}
	for _, m := range newest.World.Members {
		rep.World = append(rep.World, string(m))
	}
	for _, a := range answers {
		state := "waiting"
		switch {
		case a.Finished:
			state = "finished"
		case a.Training:
			state = "training"
		}
		rep.Members = append(rep.Members, memberReport{ID: a.ID, Rank: newest.World.Rank(sched.NodeID(a.ID)),
			Generation: a.World.Generation, Step: a.Step, Epoch: a.Epoch, Loss: a.Loss, Accuracy: a.Accuracy,
			SamplesPerSecond: a.SamplesPerSecond, State: state})
		if a.Step > rep.Step {
			rep.Step, rep.Loss = a.Step, a.Loss
		}
	}
	slices.SortFunc(rep.Members, func(a, b memberReport) int { return strings.Compare(a.ID, b.ID) })
	return rep
}

func printStatus(w io.Writer, r statusReport) {
	fmt.Fprintf(w, "job %s: generation %d, %d members, step %d/%d, loss %.4f\n",
		r.Job, r.Generation, len(r.World), r.Step, r.TotalSteps, r.Loss)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tRANK\tGEN\tSTEP\tEPOCH\tLOSS\tACC\tSAMPLES/S\tSTATE")
	for _, m := range r.Members {
		rank := "-"
		if m.Rank >= 0 {
			rank = fmt.Sprint(m.Rank)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.4f\t%.3f\t%.0f\t%s\n", m.ID, rank, m.Generation, m.Step, m.Epoch+1,
			m.Loss, m.Accuracy, m.SamplesPerSecond, m.State)
	}
	tw.Flush()
}
