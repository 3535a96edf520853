package sched

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// simulate drives a fleet through random churn chosen by rng, then heals it and
// checks that it converges on one world that trains. The fleet checks the
// safety invariants on every output; see fleet.
func simulate(t testing.TB, rng *rand.Rand, nodes, events int, dropRate float64) {
	f := newFleet(t, rng)
	f.minNodes = nodes
	f.spawn("n0", true)
	for i := 1; i < nodes; i++ {
		f.spawn(NodeID(fmt.Sprintf("n%d", i)), false)
	}
	f.deliver()
	f.dropRate = dropRate
	next := nodes
	fresh := func() NodeID { next++; return NodeID(fmt.Sprintf("n%d", next-1)) }
	pick := func() NodeID { a := f.alive(); return a[rng.IntN(len(a))] }
	for range events {
		switch r := rng.IntN(100); {
		case r < 10:
			f.spawn(fresh(), false)
		case r < 18:
			if id := pick(); f.survivable(id) {
				f.crash(id, r < 13)
			}
		case r < 22:
			// A member dies mid-step: only some members got the last chunk.
			if w, ok := f.trainable(); ok {
				if id := w.Members[rng.IntN(w.Size())]; f.survivable(id) {
					f.step(rng.IntN(w.Size()))
					f.crash(id, false)
				}
			}
		case r < 25:
			alive := f.alive()
			cut := slices.Clone(alive[:rng.IntN(len(alive))])
			f.partition([][]NodeID{cut})
		case r < 30:
			f.heal()
		case r < 60:
			f.tick(1 + rng.IntN(3))
		default:
			f.step(1 << 30)
		}
		f.deliver()
		f.replaceOut(fresh)
	}
	// Churn stops: heal, stop losing messages, and let the fleet settle.
	f.heal()
	f.dropRate = 0
	const bound = 400
	for i := range bound {
		f.tick(1)
		f.replaceOut(fresh)
		f.step(1 << 30)
		if f.settled() {
			before := f.steps
			f.step(1 << 30)
			if f.steps == before {
				t.Fatalf("settled world cannot train:\n%s", f.show())
			}
			f.checkHistory()
			t.Logf("%d nodes, %d events: settled at generation %d after %d ticks, %d steps", nodes, events, f.maxTrainedGen, i+1, f.steps)
			return
		}
	}
	t.Fatalf("no agreement %d ticks after churn stopped:\n%s", bound, f.show())
}

// survivable: crashing id leaves a quorum of the newest world alive. Losing
// more stalls the job by design (only a checkpoint restart helps), which is
// not what the liveness check is about.
func (f *fleet) survivable(id NodeID) bool {
	var newest uint64
	for g := range f.commits {
		newest = max(newest, g)
	}
	w := f.commits[newest]
	voters := map[NodeID]bool{}
	for _, m := range w.Members {
		if !f.dead[m] && m != id {
			voters[m] = true
		}
	}
	return len(f.alive()) > 2 && isQuorum(w, voters)
}

// replaceOut restarts every node left out of the world as a new node, as
// the shell does.
func (f *fleet) replaceOut(fresh func() NodeID) {
	for _, id := range f.alive() {
		if f.nodes[id].out {
			f.crash(id, true)
			f.spawn(fresh(), false)
		}
	}
}

// settled: every alive node is a member of one committed world, unpaused.
func (f *fleet) settled() bool {
	var gen uint64
	for _, id := range f.alive() {
		n := f.nodes[id]
		if n.paused() || (gen != 0 && n.committed.Generation != gen) {
			return false
		}
		gen = n.committed.Generation
	}
	w := f.commits[gen]
	return len(w.Members) == len(f.alive())
}

func TestSimulatedFleets(t *testing.T) {
	cases := []struct {
		nodes, events int
		drop          float64
	}{
		{5, 300, 0}, {30, 300, 0.02},
	}
	for _, c := range cases {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("nodes=%d/seed=%d", c.nodes, seed), func(t *testing.T) {
				simulate(t, rand.New(rand.NewPCG(seed, 1)), c.nodes, c.events, c.drop)
			})
		}
	}
}

var simLong = flag.Bool("sim.long", false, "run the long fleet simulation")

// TestSimulatedFleetsLong runs more seeds and events with -sim.long.
func TestSimulatedFleetsLong(t *testing.T) {
	if testing.Short() || !*simLong {
		t.Skip("pass -sim.long for the long simulation")
	}
	for seed := range uint64(50) {
		simulate(t, rand.New(rand.NewPCG(seed, 2)), 1000+int(seed), 1000, 0.02)
	}
}
