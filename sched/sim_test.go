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
		case r < 13:
			if id := pick(); len(f.alive())-len(f.departed) > 3 && !f.nodes[id].departing {
				f.depart(id) // votes until a world without it is decided: no quorum is lost
			}
		case r < 18:
			if id := pick(); f.survivable(id) {
				f.crash(id, r < 15) // some shells leave without a departure decided
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

// survivable: crashing id leaves a quorum alive in every world that is or may
// become the newest: the newest committed one, and any world an alive node
// accepted for the generation after it. Such a world may already be chosen
// (a quorum accepted it but its Commit was lost); Paxos then makes every later
// proposer commit it, dead members and all, and only its own quorum can
// decide the next one. Losing more stalls the job by design (only a
// checkpoint restart helps), which is not what the liveness check is about.
// So does losing every member that adopted the newest world while the others
// never heard of it (its Commits were lost): nobody alive can tell them.
func (f *fleet) survivable(id NodeID) bool {
	if len(f.alive()) <= 2 {
		return false
	}
	var newest uint64
	for g := range f.commits {
		newest = max(newest, g)
	}
	keepsQuorum := func(w World) bool {
		voters := map[NodeID]bool{}
		for _, m := range w.Members {
			if !f.dead[m] && m != id {
				voters[m] = true
			}
		}
		return isQuorum(w, voters)
	}
	w := f.commits[newest]
	if !keepsQuorum(w) || !f.adoptedByAliveMember(w, id) {
		return false
	}
	for _, other := range f.alive() {
		if w := f.nodes[other].acceptedWorld; w != nil && w.Generation == newest+1 && !keepsQuorum(*w) {
			return false
		}
	}
	return true
}

// replaceOut restarts every node left out of the world as a new node, as
// the shell does; but not while the world that left it out has no alive
// member that adopted it (its Commits were lost): until then only the out
// node can tell the members (see Node.answerWhileOut).
func (f *fleet) replaceOut(fresh func() NodeID) {
	for _, id := range f.alive() {
		n := f.nodes[id]
		if n.out && !n.departing && f.adoptedByAliveMember(n.outBy, "") {
			f.crash(id, true)
			f.spawn(fresh(), false)
		}
	}
}

// adoptedByAliveMember: some alive member of w other than except adopted w
// or a later world.
func (f *fleet) adoptedByAliveMember(w World, except NodeID) bool {
	return slices.ContainsFunc(w.Members, func(m NodeID) bool {
		return m != except && !f.dead[m] && f.nodes[m].committed.Generation >= w.Generation
	})
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
		// Seed 0 of this case once never settled: a world chosen but never
		// committed (its Commits lost) later had to be committed with three
		// of its five members dead, because the crash guard only looked at
		// committed worlds; and a world whose coordinator died right after
		// committing left its next acting proposer in the older world.
		{7, 300, 0.05},
	}
	for _, c := range cases {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("nodes=%d/seed=%d", c.nodes, seed), func(t *testing.T) {
				simulate(t, rand.New(rand.NewPCG(seed, 1)), c.nodes, c.events, c.drop)
			})
		}
	}
}

// TestSimulatedLargeFleet runs by default at the scale the design asks the
// simulator for: a thousand nodes through heavy churn (joins, crashes,
// leaves, members dying mid-step, partitions, lost and reordered messages),
// with every invariant the fleet checks. It exists so that a change that
// makes the protocol or the harness quadratic again shows up as a slow test
// rather than in the long run nobody starts.
func TestSimulatedLargeFleet(t *testing.T) {
	simulate(t, rand.New(rand.NewPCG(0, 3)), 1000, largeFleetEvents, 0.02)
}

// largeFleetEvents keeps TestSimulatedLargeFleet within about fifteen seconds
// under -race on a small machine.
const largeFleetEvents = 100

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

// worldEvents drives a small fleet through the events that data spells, two
// bytes each (an operation and its argument), with every message in flight
// until an event delivers, loses or duplicates it. The fleet checks its
// invariants on every output (one world per generation, commits backed by a
// quorum of the previous world, no older world training after a newer one,
// each state transfer and step consistent), and the sample history after
// every event. Crashes are not guarded: this is about safety, not liveness.
func worldEvents(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	f := newFleet(t, nil)
	f.minNodes = 5 + int(data[0])%3
	f.spawn("n0", true)
	for i := 1; i < f.minNodes; i++ {
		f.spawn(NodeID(fmt.Sprintf("n%d", i)), false)
	}
	f.deliver()
	f.manual = true
	next := f.minNodes
	for i := 1; i+1 < len(data); i += 2 {
		op, arg := data[i]%12, int(data[i+1])
		alive := f.alive()
		nth := func() NodeID { return alive[arg%len(alive)] }
		inFlight := func() int { return arg % len(f.queue) }
		switch {
		case op == 0 && len(f.ids) < 40:
			f.spawn(NodeID(fmt.Sprintf("n%d", next)), false)
			next++
		case op == 1 && len(alive) > 1:
			f.crash(nth(), false)
		case op == 2 && len(alive) > 1:
			f.crash(nth(), true)
		case op == 3:
			var cut []NodeID
			for j, id := range alive {
				if arg>>(j%8)&1 == 1 {
					cut = append(cut, id)
				}
			}
			f.partition([][]NodeID{cut})
		case op == 4:
			f.heal()
		case op == 5 && len(f.queue) > 0:
			f.deliverAt(inFlight(), true)
		case op == 6 && len(f.queue) > 0:
			f.deliverAt(inFlight(), false)
		case op == 7 && len(f.queue) > 0:
			f.deliverCopy(inFlight(), false)
		case op == 8:
			f.tick(1 + arg%3)
		case op == 9:
			f.step(arg % 8)
		case op == 11 && len(alive) > 1:
			f.depart(nth())
		case op == 10:
			for range 1 + arg%32 {
				if len(f.queue) == 0 {
					break
				}
				f.deliverAt(0, false)
			}
		}
		f.collect()
		f.checkHistory()
		f.checkGoneCounts()
	}
	f.manual = false
	f.heal()
	f.deliver()
	f.checkHistory()
}

// checkGoneCounts: every node's count of gone members, kept up to date
// event by event, matches a recount of its world. O(nodes x members): for
// small fleets only.
func (f *fleet) checkGoneCounts() {
	for _, id := range f.alive() {
		n, count := f.nodes[id], 0
		for _, m := range n.committed.Members {
			if n.gone[m] {
				count++
			}
		}
		if n.goneMembers != count {
			f.t.Fatalf("%s counts %d gone members of %v, recount says %d", id, n.goneMembers, n.committed, count)
		}
	}
}

func FuzzWorldEvents(f *testing.F) {
	// op: 0 join, 1 fail, 2 leave without a departure, 3 partition, 4 heal,
	// 5 drop, 6 deliver, 7 duplicate, 8 tick, 9 step, 10 deliver in order,
	// 11 depart.
	f.Add([]byte{0, 9, 7, 10, 32, 1, 2, 10, 32, 8, 0, 10, 32, 9, 7})
	f.Add([]byte{1, 3, 3, 10, 32, 8, 2, 10, 32, 4, 0, 10, 32, 8, 2, 10, 32, 9, 7})
	f.Add([]byte{2, 9, 7, 0, 0, 8, 2, 6, 3, 6, 1, 7, 2, 5, 0, 6, 9, 10, 32, 9, 3, 1, 0, 10, 32})
	f.Add([]byte{0, 1, 0, 8, 0, 6, 0, 6, 1, 7, 0, 1, 1, 10, 32, 8, 1, 10, 32, 9, 7, 8, 2, 10, 32})
	f.Fuzz(worldEvents)
}
