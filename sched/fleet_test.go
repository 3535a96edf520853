package sched

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// fleet is a simulated network of Nodes with the shell around them played by
// the test: membership events, message delivery, state transfers and training
// steps. It checks the protocol's invariants on every output. Without a rng it
// delivers in FIFO order and loses nothing, for scripted tests.
type fleet struct {
	t       testing.TB
	nodes   map[NodeID]*Node
	ids     []NodeID // creation order
	dead    map[NodeID]bool
	side    map[NodeID]int // partition side
	queue   []Message
	dirty   []NodeID // nodes stepped since their last Ready, in order
	isDirty map[NodeID]bool
	replica map[NodeID]*replica
	plan    SamplePlan

	rng      *rand.Rand
	dropRate float64
	// manual leaves every message in flight until deliverAt or dropAt picks
	// it, so that a fuzzer chooses the order, the losses and the duplicates.
	manual bool

	commits map[uint64]World // every world ever adopted, by generation
	// quorate holds the voter lists checkVoters found to be quorums, by
	// their first element's address: a Node shares one list among all its
	// copies of a Commit, and recounting it for each of a thousand receivers
	// was the simulator's largest cost.
	quorate       map[*NodeID]bool
	maxTrainedGen uint64
	steps         int // steps completed fleet-wide
	minNodes      int
	// departed holds the nodes whose departure was decided, with the ticks
	// they stay to answer (a shell lingers so that a lost Commit is repaired).
	departed map[NodeID]int
	finals   map[uint64]NodeID // the node told to save the state, per empty world
	went     []string          // what each departure decided, for scripts
}

// replica is the training state a node holds: the steps applied, in order.
// Applying or copying it is what the shell does; the Node only sees events.
type replica struct {
	cursor  int64
	gen     uint64  // world that applied the last step
	history []int64 // shared, never modified in place
}

func newFleet(t testing.TB, rng *rand.Rand) *fleet {
	return &fleet{
		t: t, nodes: map[NodeID]*Node{}, dead: map[NodeID]bool{}, side: map[NodeID]int{},
		replica: map[NodeID]*replica{}, isDirty: map[NodeID]bool{}, commits: map[uint64]World{}, rng: rng,
		quorate: map[*NodeID]bool{}, departed: map[NodeID]int{}, finals: map[uint64]NodeID{},
		plan: SamplePlan{Seed: 3, NumSamples: 10, GlobalBatch: 3},
	}
}

func (f *fleet) alive() []NodeID {
	var out []NodeID
	for _, id := range f.ids {
		if !f.dead[id] {
			out = append(out, id)
		}
	}
	return out
}

// spawn starts a node and introduces it to every alive node it can reach.
func (f *fleet) spawn(id NodeID, genesis bool) {
	if _, ok := f.nodes[id]; ok {
		f.t.Fatalf("node %s exists", id)
	}
	n, err := NewNode(Config{ID: id, Genesis: genesis, MinNodes: max(f.minNodes, 1), ProposeTimeoutTicks: 5, JoinRetryTicks: 5})
	if err != nil {
		f.t.Fatal(err)
	}
	f.nodes[id] = n
	f.markDirty(id) // a genesis node may have committed already
	f.ids = append(f.ids, id)
	f.replica[id] = &replica{}
	for _, other := range f.alive() {
		if other != id && f.connected(id, other) {
			f.stepNode(id, MemberJoined{ID: other})
			f.stepNode(other, MemberJoined{ID: id})
		}
	}
	if !genesis {
		f.stepNode(id, JoinerReady{ID: id})
	}
}

func (f *fleet) connected(a, b NodeID) bool {
	return !f.dead[a] && !f.dead[b] && f.side[a] == f.side[b]
}

// crash kills id; every node that could see it is told it failed (or left).
func (f *fleet) crash(id NodeID, leave bool) {
	if f.dead[id] {
		return
	}
	for _, other := range f.alive() {
		if other != id && f.connected(id, other) {
			if leave {
				f.stepNode(other, MemberLeft{ID: id})
			} else {
				f.stepNode(other, MemberFailed{ID: id})
			}
		}
	}
	f.dead[id] = true
}

// partition puts each group on its own side; nodes not named keep side 0.
func (f *fleet) partition(groups [][]NodeID) {
	f.heal()
	for i, g := range groups {
		for _, id := range g {
			f.side[id] = i + 1
		}
	}
	f.membershipAcross(func(id, other NodeID) { f.stepNode(id, MemberFailed{ID: other}) })
}

func (f *fleet) heal() {
	f.membershipAcross(func(id, other NodeID) { f.stepNode(id, MemberJoined{ID: other}) })
	clear(f.side)
}

// membershipAcross tells every alive node about every alive node on another side.
func (f *fleet) membershipAcross(tell func(id, other NodeID)) {
	alive := f.alive()
	bySide := map[int][]NodeID{}
	for _, id := range alive {
		bySide[f.side[id]] = append(bySide[f.side[id]], id)
	}
	if len(bySide) < 2 {
		return
	}
	for _, id := range alive {
		for s, group := range bySide {
			if s == f.side[id] {
				continue
			}
			for _, other := range group {
				tell(id, other)
			}
		}
	}
}

// stepNode feeds e to id and remembers to collect its Ready: sweeping every
// node after each message made a large fleet quadratic.
func (f *fleet) stepNode(id NodeID, e Event) {
	f.markDirty(id)
	f.nodes[id].Step(e)
}

func (f *fleet) markDirty(id NodeID) {
	if !f.isDirty[id] {
		f.isDirty[id] = true
		f.dirty = append(f.dirty, id)
	}
}

// collect gathers the Ready of every node stepped since the last collect,
// checks it and queues its messages.
func (f *fleet) collect() {
	for len(f.dirty) > 0 {
		id := f.dirty[0]
		f.dirty = f.dirty[1:]
		if len(f.dirty) == 0 {
			f.dirty = nil
		}
		delete(f.isDirty, id)
		if f.dead[id] {
			continue
		}
		rd := f.nodes[id].Ready()
		for _, w := range rd.Learned {
			f.checkCommit(w)
		}
		if rd.Commit != nil && !slices.ContainsFunc(rd.Learned, rd.Commit.Equal) {
			f.t.Fatalf("%s: Ready.Commit %v is not among the learned worlds %v", id, rd.Commit, rd.Learned)
		}
		if rd.NeedState != nil {
			f.transfer(id, *rd.NeedState)
		}
		if rd.Departed {
			f.checkDeparted(id, rd)
		}
		f.queue = append(f.queue, rd.Messages...)
	}
}

// depart starts id's graceful departure.
func (f *fleet) depart(id NodeID) { f.stepNode(id, Depart{}) }

// checkDeparted: a node may go only when it never was in a world or a
// committed world goes on without it, and at most one node saves the state
// the job stopped at.
func (f *fleet) checkDeparted(id NodeID, rd Ready) {
	n := f.nodes[id]
	if _, again := f.departed[id]; again || !n.departing {
		f.t.Fatalf("%s: departed twice, or without asking", id)
	}
	f.departed[id] = n.cfg.JoinRetryTicks + 1
	note := fmt.Sprintf("%s may go", id)
	if n.out && n.outBy.Rank(id) >= 0 || !n.out && n.member() && n.committed.Generation > 0 {
		f.t.Fatalf("%s departed while still a member of %v", id, n.committed)
	}
	if rd.Final {
		w := n.outBy
		if w.Size() != 0 || w.Source != id {
			f.t.Fatalf("%s told to save the final state of %v", id, w)
		}
		if other, ok := f.finals[w.Generation]; ok {
			f.t.Fatalf("%s and %s both save the final state of generation %d", other, id, w.Generation)
		}
		f.finals[w.Generation] = id
		note += fmt.Sprintf(" and saves the state at step %d", w.StartStep)
	}
	f.went = append(f.went, note)
}

// goDeparted removes the departed nodes whose lingering is over (all of them
// when now is set), as a shell that leaves the cluster.
func (f *fleet) goDeparted(now bool) {
	for _, id := range slices.Sorted(maps.Keys(f.departed)) {
		if f.dead[id] {
			continue
		}
		f.departed[id]--
		if now || f.departed[id] <= 0 {
			f.crash(id, true)
		}
	}
}

func (f *fleet) checkCommit(w World) {
	if prev, ok := f.commits[w.Generation]; ok && !prev.Equal(w) {
		f.t.Fatalf("two worlds for generation %d: %v and %v", w.Generation, prev, w)
	}
	f.commits[w.Generation] = w.clone()
}

// transfer copies the source's state when it holds the step asked for.
func (f *fleet) transfer(id NodeID, st StateTransfer) {
	src, ok := f.replica[st.From]
	if !ok || f.dead[st.From] || !f.connected(id, st.From) || src.cursor != st.Step {
		return // the shell cannot load it; the node stays paused
	}
	*f.replica[id] = *src
	f.stepNode(id, StateLoaded{Gen: st.Gen, Step: st.Step})
}

// deliver runs the network until no message is in flight (in manual mode it
// only gathers the outputs).
func (f *fleet) deliver() {
	if f.manual {
		f.collect()
		return
	}
	// A fleet's start sends every joiner's JoinRequest to every node: a
	// thousand nodes put a million messages in flight before anything else.
	if !f.deliverSome(100_000_000) {
		kinds := map[string]int{}
		for _, m := range f.queue {
			kinds[fmt.Sprintf("%T", m.Body)]++
		}
		sample := f.queue[:min(len(f.queue), 6)]
		f.t.Fatalf("network never went quiet: %d in flight %v, e.g. %+v", len(f.queue), kinds, sample)
	}
}

// deliverSome delivers (or loses) at most limit messages and reports whether
// the network went quiet.
func (f *fleet) deliverSome(limit int) bool {
	for range limit {
		f.collect()
		if len(f.queue) == 0 {
			return true
		}
		i := 0
		if f.rng != nil {
			i = f.rng.IntN(len(f.queue)) // reordering
		}
		f.deliverAt(i, f.rng != nil && f.rng.Float64() < f.dropRate)
	}
	f.collect()
	return len(f.queue) == 0
}

// deliverAt takes message i off the network and hands it to its receiver
// unless lost is set or the two are cut off.
func (f *fleet) deliverAt(i int, lost bool) {
	f.deliverCopy(i, lost)
	if f.rng != nil || f.manual {
		// The order is random anyway: swap the last message in, O(1).
		last := len(f.queue) - 1
		f.queue[i] = f.queue[last]
		f.queue = f.queue[:last]
	} else if i == 0 {
		f.queue = f.queue[1:] // FIFO: O(1), where Delete would shift the whole queue
	} else {
		f.queue = slices.Delete(f.queue, i, i+1)
	}
}

// deliverCopy hands message i to its receiver and leaves it in flight: the
// network duplicated it.
func (f *fleet) deliverCopy(i int, lost bool) {
	m := f.queue[i]
	if c, ok := m.Body.(Commit); ok && len(c.Voters) > 0 && !f.quorate[&c.Voters[0]] {
		f.checkVoters(c)
		f.quorate[&c.Voters[0]] = true
	}
	if lost || !f.connected(m.From, m.To) {
		return
	}
	f.stepNode(m.To, m)
}

// checkVoters: the acceptors behind a Commit form a quorum of the previous world.
func (f *fleet) checkVoters(c Commit) {
	if c.World.Generation == 1 {
		return
	}
	prev, ok := f.commits[c.World.Generation-1]
	if !ok {
		f.t.Fatalf("generation %d committed without generation %d", c.World.Generation, c.World.Generation-1)
	}
	voters := map[NodeID]bool{}
	for _, v := range c.Voters {
		voters[v] = true
	}
	if !isQuorum(prev, voters) {
		f.t.Fatalf("generation %d committed by %v, not a quorum of %v", c.World.Generation, c.Voters, prev)
	}
}

func (f *fleet) tick(n int) {
	for range n {
		for _, id := range f.alive() {
			f.stepNode(id, Tick{})
		}
		f.deliver()
		f.goDeparted(false)
	}
}

// trainable returns the world that can run a step now: all its members alive,
// connected, committed to it, not paused and holding the same state.
func (f *fleet) trainable() (World, bool) {
	for _, gen := range slices.Backward(slices.Sorted(maps.Keys(f.commits))) {
		w := f.commits[gen]
		ok := len(w.Members) > 0
		for _, m := range w.Members {
			n, exists := f.nodes[m]
			if !exists || !f.connected(w.Members[0], m) || n.committed.Generation != gen || n.paused() ||
				f.replica[m].cursor != f.replica[w.Members[0]].cursor || f.replica[m].gen != f.replica[w.Members[0]].gen {
				ok = false
				break
			}
		}
		if ok {
			return w, true
		}
	}
	return World{}, false
}

// step runs one training step of the trainable world, if any. With applied
// < the world size only that many members apply it (the last chunk reached
// them before a member died); it returns whether a step ran.
func (f *fleet) step(applied int) bool {
	w, ok := f.trainable()
	if !ok {
		return false
	}
	if w.Generation < f.maxTrainedGen {
		f.t.Fatalf("world %v trains after generation %d trained: split brain", w, f.maxTrainedGen)
	}
	f.maxTrainedGen = w.Generation
	s := f.replica[w.Members[0]].cursor
	for _, m := range w.Members[:min(applied, len(w.Members))] {
		r := f.replica[m]
		if r.cursor != s || f.nodes[m].Cursor() != s {
			f.t.Fatalf("%s trains step %d at cursor %d (node says %d)", m, s, r.cursor, f.nodes[m].Cursor())
		}
		*r = replica{cursor: s + 1, gen: w.Generation, history: append(slices.Clip(r.history), s)}
		f.stepNode(m, StepDone{Gen: w.Generation, Step: s})
	}
	f.steps++
	f.deliver()
	return true
}

// checkHistory: every alive node's state applied each step once, in order,
// from the first step, and so each epoch's samples exactly once.
func (f *fleet) checkHistory() {
	for _, id := range f.alive() {
		r := f.replica[id]
		if int64(len(r.history)) != r.cursor {
			f.t.Fatalf("%s: cursor %d after %d steps", id, r.cursor, len(r.history))
		}
		seen := map[int][]int{} // epoch -> times each sample was applied
		for i, s := range r.history {
			if s != int64(i) {
				f.t.Fatalf("%s: history %v skips or repeats a step", id, r.history)
			}
			epoch, _ := f.plan.EpochOf(s)
			if seen[epoch] == nil {
				seen[epoch] = make([]int, f.plan.NumSamples)
			}
			for _, sample := range f.plan.BatchIndices(f.plan.Order(epoch), s) {
				seen[epoch][sample]++
			}
		}
		for epoch, counts := range seen {
			complete := int64(epoch+1)*int64(f.plan.StepsPerEpoch()) <= r.cursor
			for sample, c := range counts {
				if c > 1 || (complete && c != 1) {
					f.t.Fatalf("%s: epoch %d sample %d applied %d times", id, epoch, sample, c)
				}
			}
		}
	}
}

// show prints every node's view, one line each.
func (f *fleet) show() string {
	var b strings.Builder
	for _, id := range f.ids {
		n := f.nodes[id]
		fmt.Fprintf(&b, "%s: ", id)
		if f.dead[id] {
			b.WriteString("dead\n")
			continue
		}
		if n.committed.Generation == 0 {
			b.WriteString("no world")
		} else {
			b.WriteString(n.committed.String())
		}
		fmt.Fprintf(&b, " cursor %d", f.replica[id].cursor)
		switch {
		case n.departed:
			b.WriteString(" departed")
		case n.out:
			b.WriteString(" out")
		case n.paused():
			b.WriteString(" paused")
		}
		b.WriteString("\n")
	}
	return b.String()
}
