package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/dashboard"
	"github.com/troupe-ml/troupe/sched"
)

// statusFlags are the settings of `troupe status`.
type statusFlags struct {
	clusterFlags
	timeout  time.Duration
	json     bool
	httpAddr string
	every    time.Duration
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
			if f.every <= 0 {
				return fmt.Errorf("--every must be > 0, got %s", f.every)
			}
			return showStatus(cmd.Context(), f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	f.clusterFlags.define(fl, "127.0.0.1:0")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for the cluster and its answers")
	fl.BoolVar(&f.json, "json", false, "print one JSON object")
	fl.StringVar(&f.httpAddr, "http", "", "stay, and serve a live dashboard of the whole cluster at http://HOST:PORT/ (port 0 picks one; the log says which) until interrupted")
	fl.DurationVar(&f.every, "every", time.Second, "with --http: how often to ask the members")
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
	joinCtx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// Gossip brings the members within a round or two of the join.
	for len(peer.Members()) == 0 {
		select {
		case <-joinCtx.Done():
			return fmt.Errorf("no member of a cluster answered at %s within %s (a wrong cluster key looks the same)", strings.Join(f.join, ","), f.timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(200 * time.Millisecond) // let the rest of the membership arrive
	if f.httpAddr != "" {
		return watchStatus(ctx, f, peer, stderr)
	}
	answers := peer.Status(joinCtx)
	if len(answers) == 0 {
		return fmt.Errorf("%d members, none answered within %s", len(peer.Members()), f.timeout)
	}
	rep := newStatusReport(answers)
	return report(stdout, f.json, rep, printStatus)
}

// watchStatus serves a dashboard of the whole cluster, asking its members every f.every, until
// ctx ends: the furthest member's loss by step, the sum of the members' samples per second,
// each new generation as a world, and every member's state.
func watchStatus(ctx context.Context, f statusFlags, peer *actors.Peer, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	b := dashboard.New()
	url, stop, err := dashboard.Serve(f.httpAddr, b, log)
	if err != nil {
		return err
	}
	defer stop()
	log.Info("dashboard", "url", url)
	var gen uint64
	last, started := int64(-1), false
	tick := time.NewTicker(f.every)
	defer tick.Stop()
	for {
		ask, cancel := context.WithTimeout(ctx, f.timeout)
		answers := peer.Status(ask)
		cancel()
		if len(answers) > 0 {
			rep := newStatusReport(answers)
			if !started {
				b.Start(rep.Job, 0, 0, rep.TotalSteps)
				started = true
			}
			if rep.Generation != gen {
				gen = rep.Generation
				b.AddWorld(actors.WorldInfo{Generation: gen, Members: rep.World, Rank: -1, StartStep: rep.Step})
			}
			var rate float64
			members := make([]dashboard.Member, len(rep.Members))
			for i, m := range rep.Members {
				rate += m.SamplesPerSecond
				members[i] = dashboard.Member{ID: m.ID, Rank: m.Rank, Generation: m.Generation, Step: m.Step,
					Loss: dashboard.Num(m.Loss), Accuracy: dashboard.Num(m.Accuracy), SamplesPerSec: dashboard.Num(m.SamplesPerSecond), State: m.State}
			}
			if applied := rep.Step - 1; applied > last { // a member's step is the next one it runs
				b.Observe(dashboard.Step{Step: applied, Loss: dashboard.Num(rep.Loss), Accuracy: dashboard.Num(math.NaN()), SamplesPerSec: dashboard.Num(rate)})
				last = applied
			}
			b.SetMembers(members)
		}
		select {
		case <-ctx.Done():
			b.Done()
			return nil
		case <-tick.C:
		}
	}
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
