package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/checkpoint"
)

// What churn costs a job as a whole, on real node processes on loopback, and what a checkpoint
// costs a step:
//
//	go test -run '^$' -bench 'FleetChurn|WholeFleetResume|CheckpointStall' -benchtime 1x -count 3 ./cmd/troupe
//
// bench/churn.sh runs them and prints the median of every metric.

const (
	// The churn job: the peer job stretched to 30 epochs (6,000 steps), so that a fleet of
	// three on a 2-core host trains for 20 to 35 s: long enough for a few preemptions and their
	// replacements to play out.
	churnEpochs = 30
	churnSteps  = 6000
	churnFleet  = 3
	// churnSeed seeds the preemption schedules: the k-th run of BenchmarkFleetChurn in a process
	// draws its schedule from PCG(churnSeed, k*churnStride), so -count N replays the same N
	// schedules. The stride keeps the streams' states far apart: neighbouring PCG seeds start
	// out alike.
	churnSeed   = 0x5eedc4a2
	churnStride = 0x9e3779b97f4a7c15
	// replacementDelay: a new spot machine appears this long after one is preempted.
	replacementDelay = time.Second
)

// fleetNode is a node of a fleet the churn driver watches without blocking: it reads the
// harness's lines as they come and notes what the node said and when it exited.
type fleetNode struct {
	p         *nodeProc
	scanned   int    // lines read so far
	gossip    string // its gossip address, once said
	inWorld   bool   // it entered a world
	lastStep  int    // its last progress line's step
	signalled bool   // preempted, or sent away because it came after the job ended
	late      bool   // sent away: it never entered a world before the job ended
	exitAt    time.Time
}

// observe reads the node's new lines and notes its exit (at the driver's resolution).
func (n *fleetNode) observe(now time.Time) {
	p := n.p
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, line := range p.lines[n.scanned:] {
		if m := stepLine.FindStringSubmatch(line); m != nil {
			n.lastStep = atoi(m[1])
		} else if m := gossipLine.FindStringSubmatch(line); m != nil {
			n.gossip = m[2]
		} else if worldLine.MatchString(line) {
			n.inWorld = true
		}
	}
	n.scanned = len(p.lines)
	if p.exited && n.exitAt.IsZero() {
		n.exitAt = now
	}
}

func (n *fleetNode) running() bool { return !n.signalled && n.exitAt.IsZero() }

// preemption is one arrival of the schedule: at offset at from the fleet's first world, the
// machine in slot (of churnFleet) is preempted, when there is one there.
type preemption struct {
	at   time.Duration
	slot int
}

// churnSchedule draws preemptions as a Poisson process of rate one per node per 10 minutes,
// with time scaled so that expected (the run's expected length) stands for those 10 minutes:
// each node is expected to be preempted about once per run. Arrivals come at the rate of a
// full fleet, each on a uniformly drawn slot; an arrival on a slot without a live machine is
// dropped, which thins the process to one arrival per live machine per expected.
func churnSchedule(rng *rand.Rand, expected time.Duration) []preemption {
	var out []preemption
	mean := float64(expected) / churnFleet
	for t := 0.0; t < float64(20*expected); {
		t += rng.ExpFloat64() * mean
		out = append(out, preemption{at: time.Duration(t), slot: rng.IntN(churnFleet)})
	}
	return out
}

// fleetRun is what one run of the churn job came to.
type fleetRun struct {
	wall        time.Duration // the genesis node's first world to the last survivor's exit
	preemptions int           // SIGTERMs sent
	thinned     int           // arrivals on a slot without a live machine
	spared      int           // arrivals on the only node in a world: a fleet is never emptied
	late        int           // replacements that came after the job ended
	redone      int64         // steps_redone summed over every node's summary
	nodes       int
	params      string
}

// runFleet trains the churn job on a fleet of three (the genesis node and two joiners) and
// preempts its nodes on schedule (none: a run without churn). A preempted node gets SIGTERM;
// replacementDelay later a new node joins through the nodes in the world. Any node may be
// preempted, the genesis node too: it coordinates only while it lives. The last node in a
// world is never preempted, or the job would be lost. Every node that entered a world must
// exit 0, and every survivor must report the whole job and the same parameters.
func runFleet(b *testing.B, bin, job, label string, schedule []preemption) fleetRun {
	b.Helper()
	var nodes []*fleetNode
	spawn := func(args ...string) *fleetNode {
		name := fmt.Sprintf("%s-n%d", label, len(nodes))
		n := &fleetNode{p: startNode(b, bin, name, append([]string{"--bind", "127.0.0.1:0"}, args...)...)}
		nodes = append(nodes, n)
		return n
	}
	genesis := spawn("--job", job, "--min-nodes", strconv.Itoa(churnFleet),
		"--epochs", strconv.Itoa(churnEpochs), "--max-steps", strconv.Itoa(churnSteps))
	seed := genesis.p.gossipAddr(b)
	for range churnFleet - 1 {
		spawn("--join", seed)
	}
	w := genesis.p.awaitWorld(b, 1, 0)
	if w.gen != 1 || w.members != churnFleet {
		b.Fatalf("%s: the genesis node entered generation %d with %d members, want 1 with %d", label, w.gen, w.members, churnFleet)
	}
	t0 := w.at

	var res fleetRun
	var replacements []time.Time
	next := 0
	deadline := time.Now().Add(10 * time.Minute)
	best, progressAt := 0, time.Now() // the furthest step any node logged, and when
	for {
		now := time.Now()
		ended := false // the job's last step is done: churn stops, the run winds down
		for _, n := range nodes {
			n.observe(now)
			ended = ended || n.lastStep >= churnSteps || (!n.signalled && !n.exitAt.IsZero())
			if n.lastStep > best {
				best, progressAt = n.lastStep, now
			}
		}
		if !ended && now.Sub(progressAt) > awaitTimeout {
			b.Fatalf("%s: the job is stuck at step %d: no node logged progress for %s", label, best, awaitTimeout)
		}
		for next < len(schedule) && now.Sub(t0) >= schedule[next].at {
			arrival := schedule[next]
			next++
			if ended {
				continue
			}
			var live, training []*fleetNode
			for _, n := range nodes {
				if n.running() {
					live = append(live, n)
					if n.inWorld {
						training = append(training, n)
					}
				}
			}
			switch {
			case arrival.slot >= len(live):
				res.thinned++
			case live[arrival.slot].inWorld && len(training) < 2:
				res.spared++
			default:
				v := live[arrival.slot]
				if err := v.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					b.Fatal(err)
				}
				v.signalled = true
				res.preemptions++
				replacements = append(replacements, now.Add(replacementDelay))
				b.Logf("%s: %.1fs: preempted %s (in a world: %v; %d of %d live nodes training)",
					label, now.Sub(t0).Seconds(), v.p.name, v.inWorld, len(training), len(live))
			}
		}
		for len(replacements) > 0 && !now.Before(replacements[0]) {
			replacements = replacements[1:]
			if ended {
				continue
			}
			var seeds []string
			for _, n := range nodes {
				if n.running() && n.inWorld && n.gossip != "" {
					seeds = append(seeds, n.gossip)
				}
			}
			if len(seeds) == 0 {
				b.Fatalf("%s: no node in a world to join through", label)
			}
			spawn("--join", strings.Join(seeds, ","))
		}
		if ended {
			waiting := false
			for _, n := range nodes {
				waiting = waiting || (n.running() && n.inWorld)
			}
			if !waiting {
				// A replacement that never reached a world would wait for a cluster that is
				// gone: it is sent away and counts for nothing.
				for _, n := range nodes {
					if n.running() {
						_ = n.p.cmd.Process.Signal(syscall.SIGTERM)
						n.signalled, n.late = true, true
						res.late++
					}
				}
				break
			}
		}
		if now.After(deadline) {
			b.Fatalf("%s: the job has not ended after %s", label, time.Since(t0))
		}
		time.Sleep(20 * time.Millisecond)
	}

	last := t0
	for _, n := range nodes {
		code := n.p.waitExit(b, awaitTimeout)
		n.observe(time.Now())
		if n.late {
			continue
		}
		if code != 0 && n.signalled && !n.inWorld {
			// Preempted while it was still joining: it has no summary to give.
			b.Logf("%s: %s, preempted before it entered a world, exited %d", label, n.p.name, code)
			continue
		}
		if code != 0 {
			b.Fatalf("%s: %s exited %d, want 0 (preempted: %v)", label, n.p.name, code, n.signalled)
		}
		s := n.p.summary(b)
		res.redone += s.StepsRedone
		res.nodes++
		if n.signalled {
			continue
		}
		if s.Left || s.Steps != churnSteps {
			b.Fatalf("%s: survivor %s left=%v after %d steps, want the whole job (%d)", label, n.p.name, s.Left, s.Steps, churnSteps)
		}
		if res.params == "" {
			res.params = s.ParamsSHA256
		} else if s.ParamsSHA256 != res.params {
			b.Fatalf("%s: survivors disagree on the final parameters: %s has %s, another %s", label, n.p.name, s.ParamsSHA256, res.params)
		}
		if n.exitAt.After(last) {
			last = n.exitAt
		}
	}
	if res.params == "" {
		b.Fatalf("%s: no node completed the job", label)
	}
	res.wall = last.Sub(t0)
	return res
}

var fleetChurnRuns atomic.Uint64

// BenchmarkFleetChurn: each iteration trains the churn job three times in a row: without
// churn, with spot preemptions, and without churn again. The runs without churn bracket the
// one with it, so that a drift of the machine's speed (a 2-core host shared with other work)
// hits the baseline as much as the churned run; the baseline is their mean, and the first of
// them gives the expected run length the preemption rate is scaled to. Goodput is the job's
// steps over the time from the genesis node's first world to the exit of the last node that
// completed it. steps_redone sums steps_redone over every node's summary, preempted nodes
// included: it counts node-steps of work thrown away, so one step in flight lost by a world
// of three counts up to three.
func BenchmarkFleetChurn(b *testing.B) {
	bin := buildTroupe(b)
	job := writePeerJob(b)
	b.ResetTimer()
	var ratio, calm, spread, churned, preemptions, redone, redonePer float64
	perPreemption := 0
	for range b.N {
		k := fleetChurnRuns.Add(1) - 1
		before := runFleet(b, bin, job, fmt.Sprintf("calm%da", k), nil)
		schedule := churnSchedule(rand.New(rand.NewPCG(churnSeed, k*churnStride)), before.wall)
		var shown []string
		for _, p := range schedule {
			if p.at > 2*before.wall {
				break
			}
			shown = append(shown, fmt.Sprintf("%.1fs@%d", p.at.Seconds(), p.slot))
		}
		b.Logf("schedule PCG(%#x, %#x), %s standing for 10 minutes, arrival@slot: %s ...", churnSeed, k*churnStride, before.wall.Round(time.Millisecond), strings.Join(shown, " "))
		run := runFleet(b, bin, job, fmt.Sprintf("churn%d", k), schedule)
		after := runFleet(b, bin, job, fmt.Sprintf("calm%db", k), nil)
		base := (before.wall + after.wall).Seconds() / 2
		calmGoodput, churnGoodput := churnSteps/base, churnSteps/run.wall.Seconds()
		b.Logf("without churn %.2fs and %.2fs (%.0f steps/s, %d and %d steps redone); with churn %.2fs (%.0f steps/s): %d preemptions (%d arrivals thinned, %d spared, %d late replacements), %d nodes, %d steps redone",
			before.wall.Seconds(), after.wall.Seconds(), calmGoodput, before.redone, after.redone, run.wall.Seconds(), churnGoodput,
			run.preemptions, run.thinned, run.spared, run.late, run.nodes, run.redone)
		ratio += churnGoodput / calmGoodput
		calm += base
		spread += math.Abs((after.wall - before.wall).Seconds()) / base
		churned += run.wall.Seconds()
		preemptions += float64(run.preemptions)
		redone += float64(run.redone)
		if run.preemptions > 0 {
			redonePer += float64(run.redone) / float64(run.preemptions)
			perPreemption++
		}
	}
	n := float64(b.N)
	b.ReportMetric(ratio/n, "goodput_ratio")
	b.ReportMetric(calm/n, "calm_s")
	b.ReportMetric(spread/n, "calm_spread") // how far the two runs without churn differ, relative
	b.ReportMetric(churned/n, "churn_s")
	b.ReportMetric(preemptions/n, "preemptions")
	b.ReportMetric(redone/n, "steps_redone")
	if perPreemption > 0 {
		b.ReportMetric(redonePer/float64(perPreemption), "steps_redone/preemption")
	}
}

var resumingLine = regexp.MustCompile(`msg="?resuming"? checkpoint=(\S+) step=(\d+)`)

// BenchmarkWholeFleetResume: a fleet of three writing a checkpoint every 50 steps is killed
// whole (SIGKILL) past step 330, mid-way between two checkpoints (one killed right at a
// checkpoint's step loses that checkpoint too: it is still being written); two new nodes
// resume from the store. resume_s runs from the
// first new process's start to the new genesis node's first step; steps_lost is the step the
// old fleet had reached (its last progress line: up to 9 steps short) less the step resumed from.
func BenchmarkWholeFleetResume(b *testing.B) {
	bin := buildTroupe(b)
	job := writePeerJob(b)
	const steps = "600"
	b.ResetTimer()
	var resume, lost float64
	for i := range b.N {
		store := b.TempDir()
		start := func(name string, args ...string) *nodeProc {
			args = append([]string{"--bind", "127.0.0.1:0", "--checkpoint", store, "--checkpoint-every", "50"}, args...)
			return startNode(b, bin, fmt.Sprintf("%s-%d", name, i), args...)
		}
		old := []*nodeProc{start("A", "--job", job, "--min-nodes", "3", "--max-steps", steps)}
		seed := old[0].gossipAddr(b)
		old = append(old, start("B", "--join", seed), start("C", "--join", seed))
		w := old[0].awaitWorld(b, 1, 0)
		old[0].awaitSteps(b, 33, w.next) // past step 330: six checkpoints, the next 20 steps away
		for _, p := range old {
			if err := p.cmd.Process.Kill(); err != nil {
				b.Fatal(err)
			}
		}
		reached := 0
		for _, p := range old {
			p.waitExit(b, time.Minute)
			n := &fleetNode{p: p}
			n.observe(time.Now())
			reached = max(reached, n.lastStep)
		}

		var committed []int64 // what the store holds at the kill, for the log
		if ds, err := checkpoint.NewDirStore(store); err == nil {
			infos, _ := checkpoint.NewManager(ds, 0).List()
			for _, info := range infos {
				if info.Committed {
					committed = append(committed, info.Step)
				}
			}
		}

		started := time.Now()
		a := start("A2", "--job", job, "--min-nodes", "2", "--max-steps", steps)
		bn := start("B2", "--join", a.gossipAddr(b))
		m, _ := a.await(b, resumingLine, nil, 0)
		from := atoi(m[2])
		w = a.awaitWorld(b, 1, 0)
		first := a.awaitFirstStep(b, w.gen, w.next)
		if first.step != from {
			b.Fatalf("resumed from step %d (%s) but the first step is %d", from, m[1], first.step)
		}
		sa, sb := a.finish(b), bn.finish(b)
		if sa.ResumedFromStep != int64(from) || sa.ParamsSHA256 != sb.ParamsSHA256 || sa.Steps != sb.Steps {
			b.Fatalf("after the resume: from %d (log %d), steps %d/%d, params %s/%s", sa.ResumedFromStep, from, sa.Steps, sb.Steps, sa.ParamsSHA256, sb.ParamsSHA256)
		}
		if from == 0 || from > reached+9 {
			b.Fatalf("resumed from step %d, the killed fleet's last progress line said %d", from, reached)
		}
		b.Logf("killed at step %d or a little past, checkpoints committed then %v; resumed from %s (step %d, broken ones skipped: %v), first step %.2fs after the first new process started",
			reached, committed, m[1], from, sa.SkippedBroken, first.at.Sub(started).Seconds())
		resume += first.at.Sub(started).Seconds()
		lost += float64(reached - from)
	}
	b.ReportMetric(resume/float64(b.N), "resume_s")
	b.ReportMetric(lost/float64(b.N), "steps_lost")
}

var checkpointStallRuns atomic.Uint64

// BenchmarkCheckpointStall: the default MLP (670k parameters: an 8 MB snapshot with Adam's
// moments) trained 200 steps in this process with a checkpoint every 10 steps, and without
// checkpoints. Both runs are in every iteration, in an order that alternates from one
// iteration (and -count) to the next, so that neither always runs first.
//
//   - stall_fraction: what one snapshot stalls the training loop (the Worker copying its
//     state, timed around the copy) over the time of a step without checkpoints. This is
//     the stall a snapshot costs by design: the write happens in the background.
//   - cost_fraction: the whole extra training time per snapshot over a step, the background
//     write's competition for the cores included; on a machine whose cores all train it is
//     what checkpointing really costs.
//   - drain_s: the extra time after the training loop the checkpointed run spends finishing
//     its writes.
func BenchmarkCheckpointStall(b *testing.B) {
	const every = 10
	b.ResetTimer()
	var copyMS, plain, stall, cost, drain float64
	for range b.N {
		k := checkpointStallRuns.Add(1) - 1
		var c, p summary
		if k%2 == 0 {
			c, p = stallRun(b, b.TempDir(), every), stallRun(b, "", every)
		} else {
			p, c = stallRun(b, "", every), stallRun(b, b.TempDir(), every)
		}
		snapshots := c.Checkpoints + c.CheckpointErrors + c.CheckpointsSkipped
		if c.Steps != p.Steps || snapshots != int(c.Steps-1)/every+1 || c.CheckpointErrors > 0 {
			b.Fatalf("%d and %d steps, %d snapshots (%d failed): want equal steps and one every %d steps and at the end", c.Steps, p.Steps, snapshots, c.CheckpointErrors, every)
		}
		cms, pms := 1000*c.TrainSeconds/float64(c.Steps), 1000*p.TrainSeconds/float64(p.Steps)
		per := 1000 * c.SnapshotCopySeconds / float64(snapshots)
		extra := (cms - pms) * float64(c.Steps) / float64(snapshots)
		d := (c.WallSeconds - c.TrainSeconds) - (p.WallSeconds - p.TrainSeconds)
		b.Logf("checkpointed first: %v; %.2f ms/step with %d snapshots (%d written, %d skipped), %.2f without; copy %.2f ms per snapshot; drain %.2fs",
			k%2 == 0, cms, snapshots, c.Checkpoints, c.CheckpointsSkipped, pms, per, d)
		copyMS += per
		plain += pms
		stall += per / pms
		cost += extra / pms
		drain += d
	}
	n := float64(b.N)
	b.ReportMetric(copyMS/n, "copy_ms")
	b.ReportMetric(plain/n, "ms_per_step_plain")
	b.ReportMetric(stall/n, "stall_fraction")
	b.ReportMetric(cost/n, "cost_fraction")
	b.ReportMetric(drain/n, "drain_s")
}

// stallRun trains the default MLP for 200 steps of batch 128 with a checkpoint every so many
// steps in dir; dir "" writes no checkpoints.
func stallRun(b *testing.B, dir string, every int) summary {
	b.Helper()
	args := []string{"train", "--train-limit", "12000", "--test-limit", "1000", "--max-steps", "200", "--batch-size", "128", "--json", "--progress", "none"}
	if dir == "" {
		args = append(args, "--no-checkpoint")
	} else {
		args = append(args, "--checkpoint", dir, "--checkpoint-every", strconv.Itoa(every))
	}
	var out, errb syncBuffer
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		b.Fatalf("train exited %d: %s", code, errb.String())
	}
	var s summary
	if err := json.Unmarshal([]byte(out.String()), &s); err != nil {
		b.Fatalf("train --json: %v\n%s", err, out.String())
	}
	return s
}
