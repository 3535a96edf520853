package main

import (
	"strconv"
	"syscall"
	"testing"
	"time"
)

// What a change of world costs, measured on real node processes on loopback:
//
//	go test -run '^$' -bench Elastic -benchtime 1x -count 5 ./cmd/troupe
//
// Every figure comes from the nodes' own log timestamps (millisecond resolution), compared
// with the harness's clock: the processes share the machine's clock.

// elasticTrio starts the genesis node A (rank 0 of the first world: the coordinator) and two
// joiners, and waits until their world of three has logged a few progress lines. It returns
// the nodes and A's line index after those lines.
func elasticTrio(b *testing.B, bin, job string, maxSteps int) (a, bn, c *nodeProc, at int) {
	b.Helper()
	a = startNode(b, bin, "A", "--bind", "127.0.0.1:0", "--job", job, "--min-nodes", "3", "--max-steps", strconv.Itoa(maxSteps))
	seed := a.gossipAddr(b)
	bn = startNode(b, bin, "B", "--bind", "127.0.0.1:0", "--join", seed)
	c = startNode(b, bin, "C", "--bind", "127.0.0.1:0", "--join", seed)
	w := a.awaitWorld(b, 1, 0)
	if w.gen != 1 || w.rank != 0 || w.members != 3 {
		b.Fatalf("A entered generation %d as rank %d of %d, want generation 1, rank 0 (the coordinator), 3 members", w.gen, w.rank, w.members)
	}
	return a, bn, c, a.awaitSteps(b, 3, w.next)
}

// BenchmarkElasticKillToNextStep: a member of three dies (SIGKILL); how long until the
// coordinator applies a step in the world without it, and how many steps it redid.
func BenchmarkElasticKillToNextStep(b *testing.B) {
	bin := buildTroupe(b)
	job := writePeerJob(b)
	b.ResetTimer()
	var killToStep, redone float64
	for range b.N {
		a, bn, c, at := elasticTrio(b, bin, job, 400)
		killedAt := time.Now()
		if err := c.cmd.Process.Kill(); err != nil {
			b.Fatal(err)
		}
		w := a.awaitWorld(b, 2, at)
		if w.members != 2 {
			b.Fatalf("generation %d after the kill has %d members, want 2", w.gen, w.members)
		}
		first := a.awaitFirstStep(b, w.gen, w.next)
		killToStep += first.at.Sub(killedAt).Seconds()
		sa, sb := a.finish(b), bn.finish(b)
		if sa.ParamsSHA256 != sb.ParamsSHA256 || sa.Steps != sb.Steps {
			b.Fatalf("survivors disagree: steps %d/%d, params %s/%s", sa.Steps, sb.Steps, sa.ParamsSHA256, sb.ParamsSHA256)
		}
		redone += float64(sa.StepsRedone)
	}
	b.ReportMetric(killToStep/float64(b.N), "kill_to_step_s")
	b.ReportMetric(redone/float64(b.N), "steps_redone/failure")
}

// BenchmarkElasticJoinStall: a third node joins a world of two; how long the members pause
// for it, and how long the joiner takes from its start to its first step.
func BenchmarkElasticJoinStall(b *testing.B) {
	bin := buildTroupe(b)
	job := writePeerJob(b)
	b.ResetTimer()
	var stall, joinToStep float64
	for range b.N {
		// The whole job: the joiner's start (loading MNIST, gossip join) must fit in it.
		a := startNode(b, bin, "A", "--bind", "127.0.0.1:0", "--job", job, "--min-nodes", "2", "--max-steps", "1200")
		seed := a.gossipAddr(b)
		bn := startNode(b, bin, "B", "--bind", "127.0.0.1:0", "--join", seed)
		w := a.awaitWorld(b, 1, 0)
		if w.gen != 1 || w.rank != 0 || w.members != 2 {
			b.Fatalf("A entered generation %d as rank %d of %d, want generation 1, rank 0, 2 members", w.gen, w.rank, w.members)
		}
		at := a.awaitSteps(b, 3, w.next)
		started := time.Now()
		c := startNode(b, bin, "C", "--bind", "127.0.0.1:0", "--join", seed)
		cw := c.awaitWorld(b, 1, 0)
		if cw.members != 3 {
			b.Fatalf("the joiner entered generation %d with %d members, want 3", cw.gen, cw.members)
		}
		cFirst := c.awaitFirstStep(b, cw.gen, cw.next)
		aw := a.awaitWorld(b, cw.gen, at)
		if aw.gen != cw.gen {
			b.Fatalf("A entered generation %d, the joiner %d: a world in between", aw.gen, cw.gen)
		}
		aFirst := a.awaitFirstStep(b, cw.gen, aw.next)
		if aFirst.stall < 0 {
			b.Fatalf("A's first step in generation %d carries no stall_ms", cw.gen)
		}
		stall += float64(aFirst.stall.Milliseconds())
		joinToStep += cFirst.at.Sub(started).Seconds()
		sa, sb, sc := a.finish(b), bn.finish(b), c.finish(b)
		if sa.ParamsSHA256 != sb.ParamsSHA256 || sa.ParamsSHA256 != sc.ParamsSHA256 {
			b.Fatalf("nodes disagree on the final parameters: %s %s %s", sa.ParamsSHA256, sb.ParamsSHA256, sc.ParamsSHA256)
		}
	}
	b.ReportMetric(stall/float64(b.N), "join_stall_ms")
	b.ReportMetric(joinToStep/float64(b.N), "join_to_step_s")
}

// BenchmarkElasticGracefulLeave: a member of three leaves (SIGTERM); how long until the
// coordinator applies a step in the world without it. The leaver must exit 0.
func BenchmarkElasticGracefulLeave(b *testing.B) {
	bin := buildTroupe(b)
	job := writePeerJob(b)
	b.ResetTimer()
	var leaveToStep float64
	for range b.N {
		a, bn, c, at := elasticTrio(b, bin, job, 400)
		signalled := time.Now()
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		w := a.awaitWorld(b, 2, at)
		if w.members != 2 {
			b.Fatalf("generation %d after the leave has %d members, want 2", w.gen, w.members)
		}
		first := a.awaitFirstStep(b, w.gen, w.next)
		leaveToStep += first.at.Sub(signalled).Seconds()
		if code := c.waitExit(b, awaitTimeout); code != 0 {
			b.Fatalf("the leaver exited %d, want 0", code)
		}
		sa, sb := a.finish(b), bn.finish(b)
		if sa.ParamsSHA256 != sb.ParamsSHA256 {
			b.Fatalf("survivors disagree on the final parameters: %s %s", sa.ParamsSHA256, sb.ParamsSHA256)
		}
	}
	b.ReportMetric(leaveToStep/float64(b.N), "leave_to_step_s")
}
