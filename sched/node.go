package sched

import (
	"fmt"
	"maps"
	"slices"
)

// Event is an input to Node.Step.
type Event interface{ isEvent() }

// MemberJoined: membership saw ID alive (a new node, or one back after a partition).
type MemberJoined struct{ ID NodeID }

// MemberFailed: membership declared ID dead.
type MemberFailed struct{ ID NodeID }

// MemberLeft: ID left gracefully.
type MemberLeft struct{ ID NodeID }

// JoinerReady: ID has the job and can join. For the node itself it starts
// announcing itself to the world; for another node it counts as its JoinRequest.
type JoinerReady struct{ ID NodeID }

// Depart: this node wants to leave gracefully. It stops training, asks the
// members of its world to decide a world without it, and keeps voting until
// one is committed (see Ready.Departed). A node that simply disappeared
// would count against every quorum until a world without it was decided; in
// a world of two that world could never be.
type Depart struct{}

// Tick: one unit of time passed.
type Tick struct{}

// StepDone: this node applied the update of Step in world Gen.
type StepDone struct {
	Gen  uint64
	Step int64
}

// StateLoaded: the shell installed the state at Step asked for by a
// StateTransfer of world Gen.
type StateLoaded struct {
	Gen  uint64
	Step int64
}

// Message is a protocol message between two Nodes. The Node that sends it fills
// in From and Gen (its committed generation); a received one is passed to Step.
//
// The slices a message carries (a World's Members, a Commit's Voters) are
// read-only: a Node shares one slice among every copy of a Commit it sends
// and with its own state, and keeps the slices of the messages it receives.
// Cloning a world of thousands of members into every Commit was most of the
// garbage a large fleet made; a shell that needs to change one copies it.
type Message struct {
	From, To NodeID
	Gen      uint64
	Body     any // Prepare, Promise, Accept, Accepted, Nack, Commit, JoinRequest or CatchUp
}

func (MemberJoined) isEvent() {}
func (MemberFailed) isEvent() {}
func (MemberLeft) isEvent()   {}
func (JoinerReady) isEvent()  {}
func (Depart) isEvent()       {}
func (Tick) isEvent()         {}
func (StepDone) isEvent()     {}
func (Message) isEvent()      {}
func (StateLoaded) isEvent()  {}

// Prepare: proposer -> members of world Gen-1. Phase 1 for world Gen.
type Prepare struct {
	Gen    uint64
	Ballot Ballot
}

// Promise: member -> proposer. The member will accept nothing below Ballot
// for Gen and stopped training. Accepted is the world it last accepted for Gen
// (under AcceptedBallot), if any.
type Promise struct {
	Gen            uint64
	Ballot         Ballot
	Cursor         int64
	Accepted       *World
	AcceptedBallot Ballot
}

// Accept: proposer -> members of world Gen-1. Phase 2: accept World.
type Accept struct {
	Gen    uint64
	Ballot Ballot
	World  World
}

// Accepted: member -> proposer. The member accepted the proposer's world.
type Accepted struct {
	Gen    uint64
	Ballot Ballot
}

// Nack: member -> proposer. The member promised Promised, above the proposal.
type Nack struct {
	Gen      uint64
	Promised Ballot
}

// Commit: proposer -> members of the old and new world; also the answer to a
// message stamped with an older generation. Voters are the acceptors whose
// quorum decided it.
type Commit struct {
	World  World
	Voters []NodeID
}

// JoinRequest: joiner -> members. The sender is ready to join.
type JoinRequest struct{}

// CatchUp: node -> a peer that sent it a newer generation: "send me your Commit".
type CatchUp struct{}

// Leaving: a departing member -> the members of its world. Decide a world
// without me; I vote until you do.
type Leaving struct{}

// StateTransfer tells the shell to fetch the state at Step from From before
// training in world Gen.
type StateTransfer struct {
	Gen  uint64
	From NodeID
	Step int64
}

// Ready is what the shell must carry out after Step calls. Its worlds and
// messages share their slices with the Node (see Message): read-only.
type Ready struct {
	// Messages to send, in order; each send is gated on membership by the shell.
	Messages []Message
	// Commit is the newest world adopted since the last Ready, if any: the
	// one the shell acts on.
	Commit *World
	// Learned lists every committed world this node learned of since the
	// last Ready, oldest first: the ones it adopted (Commit is the last of
	// those), the one that left it Out, and for a joiner newer worlds it is
	// not part of yet. One event can adopt several (a node that alone is a
	// quorum of the world it just adopted decides the next at once); the
	// earlier ones never train, but a log or a checker sees each generation.
	Learned []World
	// NeedState is set when this node's state is not at the new world's start.
	NeedState *StateTransfer
	// Paused: the node must not train (no world, a change in progress, its
	// state not yet loaded, or out).
	Paused bool
	// Voting: the node promised its vote on the successor of its world. It
	// starts no further step of that world; unlike a pause for a state
	// transfer, only the next Commit ends it.
	Voting bool
	// Out: this node was left out of a world it belonged to; it stops and must
	// rejoin as a new node. A joiner is out when it learns the empty world:
	// every member departed and the job stopped (its state is in the last
	// checkpoint).
	Out bool
	// Departed: this node, departing, may go now: a committed world goes on
	// without it, or it never was in one. Set once.
	Departed bool
	// Final: with Departed, nobody stays (the world committed is empty) and
	// this node is its Source, the holder of the newest state: the one node
	// that should save it before going.
	Final bool
}

// Stats counts what a Node dropped.
type Stats struct {
	Stale   int // messages or StepDone of an older generation
	Ignored int // messages that did not apply (wrong proposer, wrong phase, while out)
}

// proposal is this node's attempt at deciding generation gen.
type proposal struct {
	gen      uint64
	ballot   Ballot
	accept   bool // in phase 2
	promises map[NodeID]Promise
	accepted map[NodeID]bool
	// promiseVotes and acceptVotes count the members of the committed world
	// among promises and accepted, so that each vote checks the quorum in
	// O(1) rather than recounting a world of thousands.
	promiseVotes, acceptVotes tally
	world                     World // the world of phase 2
	age                       int
}

// tally counts the votes of distinct members of a world.
type tally struct {
	count       int
	coordinator bool // the member of rank 0 voted
}

func (t *tally) add(rank int) {
	t.count++
	t.coordinator = t.coordinator || rank == 0
}

// Node is one node's view of the world protocol. It is not safe for
// concurrent use.
type Node struct {
	cfg        Config
	committed  World
	ranks      map[NodeID]int // rank of each member of committed
	actingFrom int            // every member ranked below it is gone
	cursor     int64          // -1 while waiting for a state transfer
	held       int64          // while waiting: the step of the older state the shell still holds
	needState  bool
	out        bool
	outBy      World           // the world that left this node out
	gone       map[NodeID]bool // failed or left, per membership
	// goneMembers counts the members of committed that are gone, so that
	// the acting proposer, which asks after every event whether a change is
	// needed, need not scan the world.
	goneMembers int
	leaving     map[NodeID]bool // members that asked to depart, until gone
	departing   bool            // this node asked to depart
	departed    bool            // and Ready said it may go
	alive       map[NodeID]bool // known alive peers
	joiners     map[NodeID]bool // ready joiners not in the world
	selfReady   bool
	lastSeen    World // the newest world seen while not a member (joiners)
	// acceptor state for generation committed.Generation+1
	promised       Ballot
	acceptedWorld  *World
	acceptedBallot Ballot
	// proposer state
	prop          *proposal
	highestN      uint64
	sinceStepDone int
	trained       bool // a step completed in the committed world
	joinAge       int
	gossipAge     int
	pending       Ready
	stats         Stats
}

// NewNode returns a node with the empty world; a Genesis node with
// MinNodes 1 commits generation 1 at once (see Ready).
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, cursor: cfg.StartStep, gone: map[NodeID]bool{}, alive: map[NodeID]bool{}, joiners: map[NodeID]bool{},
		leaving: map[NodeID]bool{}}
	n.maybeBootstrap()
	return n, nil
}

// World is the committed world; its Members belong to the caller.
func (n *Node) World() World { return n.committed.clone() }

// Cursor is the next step this node would run.
func (n *Node) Cursor() int64 { return n.cursor }

// Stats reports what was dropped so far.
func (n *Node) Stats() Stats { return n.stats }

// Ready drains the outputs gathered since the last call.
func (n *Node) Ready() Ready {
	rd := n.pending
	n.pending = Ready{}
	rd.Paused = n.paused()
	rd.Voting = !n.promised.isZero()
	rd.Out = n.out
	return rd
}

func (n *Node) member() bool { return n.rank(n.cfg.ID) >= 0 }

// rank is id's rank in the committed world, or -1; O(1), since it runs for
// every message and a fleet's worlds have thousands of members.
func (n *Node) rank(id NodeID) int {
	if r, ok := n.ranks[id]; ok {
		return r
	}
	return -1
}

func (n *Node) paused() bool {
	return n.out || !n.member() || !n.promised.isZero() || n.needState || n.departing
}

// actingProposer is the first member of the committed world not gone. It
// runs after every event, so it resumes from actingFrom (every member ranked
// below it is gone) instead of rescanning the ranks a churned world lost.
func (n *Node) actingProposer() NodeID {
	for i := n.actingFrom; i < len(n.committed.Members); i++ {
		if m := n.committed.Members[i]; !n.gone[m] {
			n.actingFrom = i
			return m
		}
	}
	n.actingFrom = len(n.committed.Members)
	return ""
}

// Step applies one event.
func (n *Node) Step(e Event) {
	if n.out {
		if _, ok := e.(Depart); ok {
			n.departing = true
			n.markDeparted(false) // already left out: nothing to decide
			return
		}
		n.answerWhileOut(e)
		return
	}
	switch e := e.(type) {
	case MemberJoined:
		if e.ID == n.cfg.ID {
			return
		}
		n.setGone(e.ID, false)
		if r := n.rank(e.ID); r >= 0 {
			n.actingFrom = min(n.actingFrom, r)
		}
		n.alive[e.ID] = true
		if n.selfReady && !n.member() {
			n.send(e.ID, JoinRequest{})
		}
	case MemberFailed:
		n.forget(e.ID)
	case MemberLeft:
		n.forget(e.ID)
	case JoinerReady:
		if e.ID == n.cfg.ID {
			if !n.selfReady && !n.member() {
				n.selfReady = true
				n.announce(true)
			}
		} else if n.rank(e.ID) < 0 && !n.gone[e.ID] {
			n.joiners[e.ID] = true
		}
	case Depart:
		n.depart()
	case Tick:
		n.tick()
	case StepDone:
		if e.Gen != n.committed.Generation || !n.member() {
			n.stats.Stale++
			return
		}
		n.cursor = max(n.cursor, e.Step+1)
		n.sinceStepDone = 0
		n.trained = true
		n.maybePropose(true)
		return
	case StateLoaded:
		if e.Gen != n.committed.Generation || !n.needState {
			n.stats.Stale++
			return
		}
		n.cursor, n.needState = e.Step, false
	case Message:
		n.receive(e)
	default:
		panic(fmt.Sprintf("sched: unknown event %T", e))
	}
	n.maybeBootstrap()
	n.maybePropose(false)
}

// answerWhileOut keeps the world that left this node out alive until the
// shell stops it: a node that is out may be the only one that knows it (it
// proposed a world chosen without it, and its Commits were lost), so it
// answers messages from older generations with that Commit, as a member does.
func (n *Node) answerWhileOut(e Event) {
	n.stats.Ignored++
	if m, ok := e.(Message); ok && m.Gen < n.outBy.Generation {
		if _, isCommit := m.Body.(Commit); !isCommit {
			n.send(m.From, Commit{World: n.outBy})
		}
	}
}

// setGone records what membership says of id and keeps goneMembers.
func (n *Node) setGone(id NodeID, gone bool) {
	if n.gone[id] == gone {
		return
	}
	if n.rank(id) >= 0 {
		if gone {
			n.goneMembers++
		} else {
			n.goneMembers--
		}
	}
	if gone {
		n.gone[id] = true
	} else {
		delete(n.gone, id)
	}
}

func (n *Node) forget(id NodeID) {
	if id == n.cfg.ID {
		return
	}
	n.setGone(id, true)
	delete(n.alive, id)
	delete(n.joiners, id)
	delete(n.leaving, id)
}

// depart starts this node's graceful departure: a node in no world may go at
// once; a member tells its world and waits for a world without it.
func (n *Node) depart() {
	if n.departing {
		return
	}
	n.departing = true
	n.selfReady = false
	delete(n.joiners, n.cfg.ID)
	if !n.member() || n.committed.Generation == 0 {
		for _, id := range slices.Sorted(maps.Keys(n.alive)) {
			n.send(id, Leaving{}) // no longer ready to join
		}
		n.markDeparted(false)
		return
	}
	n.leaving[n.cfg.ID] = true
	n.tellLeaving()
}

// tellLeaving asks every member of the committed world, this node included,
// to decide a world without it.
func (n *Node) tellLeaving() {
	for _, m := range n.committed.Members {
		if !n.gone[m] {
			n.send(m, Leaving{})
		}
	}
}

// markDeparted reports, once, that a departing node may go.
func (n *Node) markDeparted(final bool) {
	if n.departed {
		return
	}
	n.departed = true
	n.pending.Departed, n.pending.Final = true, final
}

func (n *Node) tick() {
	n.sinceStepDone++
	if n.selfReady && !n.member() {
		n.joinAge++
		if n.joinAge >= n.cfg.JoinRetryTicks {
			n.joinAge = 0
			n.announce(false)
		}
	}
	n.pokeProposer()
	if n.departing && n.member() && n.sinceStepDone%n.cfg.JoinRetryTicks == 0 {
		n.tellLeaving() // a Leaving may have been lost, or sent to a proposer that since failed
	}
	if n.member() && n.committed.Coordinator == n.cfg.ID {
		n.gossipAge++
		if n.gossipAge >= n.cfg.JoinRetryTicks {
			n.gossipAge = 0
			n.resendCommit()
		}
	}
	if p := n.prop; p != nil {
		p.age++
		if p.age >= n.cfg.ProposeTimeoutTicks {
			n.prop = nil
			if n.actingProposer() == n.cfg.ID {
				n.propose()
			}
		}
	}
}

// pokeProposer repairs a lost Commit that only the coordinator could have
// resent: a member whose world has not completed a step for JoinRetryTicks
// sends CatchUp, stamped with its generation, to its acting proposer, and
// again every JoinRetryTicks. If either of the two is behind, the other
// answers with its Commit (see receive); if both agree it costs one dropped
// message. Without it, a world whose coordinator died right after committing
// could leave its next acting proposer in the older world, proposing to
// voters that are gone, while the members that adopted the new world wait
// for that proposer forever. A world that trains sends nothing.
func (n *Node) pokeProposer() {
	if !n.member() || n.sinceStepDone%n.cfg.JoinRetryTicks != 0 {
		return
	}
	if p := n.actingProposer(); p != n.cfg.ID {
		n.send(p, CatchUp{})
	}
}

// resendCommit repairs lost Commits: the coordinator sends its world to
// every alive peer outside it (removed nodes learn they are out, joiners
// where to knock), and to its members until a step shows they all have it.
func (n *Node) resendCommit() {
	for _, id := range slices.Sorted(maps.Keys(n.alive)) {
		if !n.trained || n.rank(id) < 0 {
			n.send(id, Commit{World: n.committed})
		}
	}
}

// announce sends a JoinRequest to every known peer, or on a retry to the
// coordinator of the newest world seen when there is one.
func (n *Node) announce(all bool) {
	if !all && n.lastSeen.Size() > 0 && !n.gone[n.lastSeen.Coordinator] {
		n.send(n.lastSeen.Coordinator, JoinRequest{})
		return
	}
	for _, id := range slices.Sorted(maps.Keys(n.alive)) {
		n.send(id, JoinRequest{})
	}
}

func (n *Node) send(to NodeID, body any) {
	m := Message{From: n.cfg.ID, To: to, Gen: n.committed.Generation, Body: body}
	if to == n.cfg.ID {
		n.receive(m)
		return
	}
	n.pending.Messages = append(n.pending.Messages, m)
}

// maybeBootstrap decides generation 1 on the genesis node once enough nodes
// are ready: world 0 is {itself}, so its own vote is a quorum.
func (n *Node) maybeBootstrap() {
	if !n.cfg.Genesis || n.committed.Generation != 0 || n.out || 1+len(n.joiners) < n.cfg.MinNodes {
		return
	}
	members := append([]NodeID{n.cfg.ID}, slices.Sorted(maps.Keys(n.joiners))...)
	w := newWorld(1, members, n.cursor, n.cfg.ID)
	n.commit(w, []NodeID{n.cfg.ID}, nil)
}

// leavingMembers reports whether a member of the committed world asked to
// depart. Departures are few, so the set is small and scanning it is cheap.
func (n *Node) leavingMembers() bool {
	for id := range n.leaving {
		if n.rank(id) >= 0 {
			return true
		}
	}
	return false
}

// needsChange reports whether the acting proposer should start a proposal.
func (n *Node) needsChange(atBoundary bool) bool {
	if n.goneMembers > 0 || n.leavingMembers() {
		return true
	}
	return len(n.joiners) > 0 && (atBoundary || n.sinceStepDone >= n.cfg.JoinStallTicks)
}

func (n *Node) maybePropose(atBoundary bool) {
	if n.prop != nil || !n.member() || n.committed.Generation == 0 || n.actingProposer() != n.cfg.ID {
		return
	}
	if n.needsChange(atBoundary) {
		n.propose()
	}
}

func (n *Node) propose() {
	n.highestN = max(n.highestN, n.promised.N) + 1
	p := &proposal{
		gen:      n.committed.Generation + 1,
		ballot:   Ballot{N: n.highestN, Proposer: n.cfg.ID},
		promises: map[NodeID]Promise{},
		accepted: map[NodeID]bool{},
	}
	n.prop = p
	n.toVoters(Prepare{Gen: p.gen, Ballot: p.ballot})
}

// toVoters sends body to every member of the committed world not gone, itself last.
func (n *Node) toVoters(body any) {
	for _, m := range n.committed.Members {
		if m != n.cfg.ID && !n.gone[m] {
			n.send(m, body)
		}
	}
	n.send(n.cfg.ID, body)
}

func (n *Node) receive(m Message) {
	if c, ok := m.Body.(Commit); ok {
		if c.World.Generation > n.committed.Generation {
			n.adopt(c.World)
		} else {
			n.stats.Stale++
		}
		return
	}
	if _, ok := m.Body.(Leaving); ok {
		n.onLeaving(m)
		return
	}
	if _, ok := m.Body.(JoinRequest); ok {
		switch {
		case n.rank(m.From) >= 0:
			if m.Gen < n.committed.Generation {
				n.send(m.From, Commit{World: n.committed}) // it missed its Commit
			}
		case !n.gone[m.From]:
			n.joiners[m.From] = true
		}
		return
	}
	switch {
	case m.Gen < n.committed.Generation:
		n.stats.Stale++
		n.send(m.From, Commit{World: n.committed})
		return
	case m.Gen > n.committed.Generation:
		// Answered even when it is a CatchUp (a poke from a member ahead):
		// the sender, being ahead, answers with its Commit, never with
		// another CatchUp, so this cannot ping-pong.
		n.send(m.From, CatchUp{})
		return
	}
	switch b := m.Body.(type) {
	case CatchUp:
	case Prepare:
		n.onPrepare(m.From, b)
	case Accept:
		n.onAccept(m.From, b)
	case Promise:
		n.onPromise(m.From, b)
	case Accepted:
		n.onAccepted(m.From, b)
	case Nack:
		if b.Promised.N > n.highestN {
			n.highestN = b.Promised.N
		}
	default:
		panic(fmt.Sprintf("sched: unknown message body %T", m.Body))
	}
}

// onLeaving records a departure whatever the sender's generation: a member
// of this node's world leaves the next one; a joiner is no longer ready.
func (n *Node) onLeaving(m Message) {
	switch {
	case n.rank(m.From) >= 0:
		n.leaving[m.From] = true
		if m.Gen < n.committed.Generation {
			n.send(m.From, Commit{World: n.committed}) // it asks again once it has it
		}
	case m.From != n.cfg.ID:
		delete(n.joiners, m.From)
	}
}

// mayVote reports whether this node votes on from's proposal for gen: it is a
// member, the proposal is for the successor of its world, and from ranks no
// lower than its acting proposer.
func (n *Node) mayVote(from NodeID, gen uint64) bool {
	if !n.member() || gen != n.committed.Generation+1 {
		return false
	}
	r := n.rank(from)
	return r >= 0 && r <= n.rank(n.actingProposer())
}

func (n *Node) onPrepare(from NodeID, p Prepare) {
	if !n.mayVote(from, p.Gen) {
		n.stats.Ignored++
		return
	}
	if !n.promised.Less(p.Ballot) {
		n.send(from, Nack{Gen: p.Gen, Promised: n.promised})
		return
	}
	n.promised = p.Ballot
	if n.prop != nil && n.prop.ballot.Less(p.Ballot) {
		n.prop = nil // a proposer ranked no lower took over
	}
	cursor := n.cursor
	if n.needState {
		// The shell keeps its older state until the transfer completes, so
		// the node can still offer it: if every holder of the newer state is
		// gone, the next world resumes from the best state left rather than
		// from none.
		cursor = n.held
	}
	pr := Promise{Gen: p.Gen, Ballot: p.Ballot, Cursor: cursor, AcceptedBallot: n.acceptedBallot}
	if n.acceptedWorld != nil {
		w := *n.acceptedWorld
		pr.Accepted = &w
	}
	n.send(from, pr)
}

func (n *Node) onAccept(from NodeID, a Accept) {
	if !n.mayVote(from, a.Gen) {
		n.stats.Ignored++
		return
	}
	if a.Ballot.Less(n.promised) {
		n.send(from, Nack{Gen: a.Gen, Promised: n.promised})
		return
	}
	n.promised = a.Ballot
	w := a.World
	n.acceptedWorld, n.acceptedBallot = &w, a.Ballot
	n.send(from, Accepted{Gen: a.Gen, Ballot: a.Ballot})
}

func (n *Node) onPromise(from NodeID, pr Promise) {
	p := n.prop
	if p == nil || p.accept || pr.Gen != p.gen || pr.Ballot != p.ballot {
		n.stats.Ignored++
		return
	}
	if _, again := p.promises[from]; !again {
		if r := n.rank(from); r >= 0 {
			p.promiseVotes.add(r)
		}
	}
	p.promises[from] = pr
	if !decides(n.committed.Size(), p.promiseVotes) {
		return
	}
	w, ok := n.chooseWorld(p.gen, p.promises)
	if !ok {
		return
	}
	p.accept, p.world = true, w
	n.toVoters(Accept{Gen: p.gen, Ballot: p.ballot, World: p.world})
}

// chooseWorld is the world phase 2 proposes: the one accepted under the
// highest ballot among the promises, or a new one. ok is false while the
// promises cannot choose yet: a new world must start from the state of a
// member that stays, so it waits for one of them to promise (a departing
// proposer's own vote can make a quorum on its own).
func (n *Node) chooseWorld(gen uint64, promises map[NodeID]Promise) (w World, ok bool) {
	var best *World
	var bestBallot Ballot
	for _, pr := range promises {
		if pr.Accepted != nil && bestBallot.Less(pr.AcceptedBallot) {
			best, bestBallot = pr.Accepted, pr.AcceptedBallot
		}
	}
	if best != nil {
		return *best, true
	}
	var stay []NodeID
	for _, m := range n.committed.Members {
		if !n.gone[m] && !n.leaving[m] {
			stay = append(stay, m)
		}
	}
	if len(stay) == 0 {
		// Every member departs: the job stops here, in the empty world.
		// Joiners hold no state to go on from; its Source, the holder of
		// the newest state, saves it (Ready.Final).
		start, source := startAndSource(slices.Sorted(maps.Keys(promises)), promises)
		return newWorld(gen, nil, start, source), true
	}
	start, source := startAndSource(stay, promises)
	if source == "" {
		return World{}, false
	}
	members := append(stay, slices.Sorted(maps.Keys(n.joiners))...)
	return newWorld(gen, members, start, source), true
}

// startAndSource picks the highest cursor among the promisers that are
// candidates, and the lowest ID holding it; -1 and no source when no
// candidate promised.
func startAndSource(members []NodeID, promises map[NodeID]Promise) (int64, NodeID) {
	start, source := int64(-1), NodeID("")
	for _, id := range members {
		pr, ok := promises[id]
		if !ok {
			continue
		}
		if pr.Cursor > start || (pr.Cursor == start && id < source) {
			start, source = pr.Cursor, id
		}
	}
	return start, source
}

func (n *Node) onAccepted(from NodeID, a Accepted) {
	p := n.prop
	if p == nil || !p.accept || a.Gen != p.gen || a.Ballot != p.ballot {
		n.stats.Ignored++
		return
	}
	if !p.accepted[from] {
		if r := n.rank(from); r >= 0 {
			p.acceptVotes.add(r)
		}
	}
	p.accepted[from] = true
	if !decides(n.committed.Size(), p.acceptVotes) {
		return
	}
	n.commit(p.world, slices.Sorted(maps.Keys(p.accepted)), n.committed.Members)
}

// commit broadcasts a decided world to its members and to the members of the
// world it replaces, then adopts it.
func (n *Node) commit(w World, voters []NodeID, previous []NodeID) {
	c := Commit{World: w, Voters: voters}
	sent := map[NodeID]bool{n.cfg.ID: true}
	to := slices.Concat(w.Members, previous)
	if w.Size() == 0 {
		to = append(to, slices.Sorted(maps.Keys(n.joiners))...) // there is nothing left to join
	}
	for _, id := range to {
		if !sent[id] && !n.gone[id] {
			sent[id] = true
			n.send(id, c) // every copy shares w's Members and the voters (read-only)
		}
	}
	n.adopt(w)
}

func (n *Node) adopt(w World) {
	if w.Rank(n.cfg.ID) < 0 {
		if n.member() {
			n.out, n.outBy = true, w
			n.prop = nil
			n.pending.Learned = append(n.pending.Learned, w)
			if n.departing {
				n.markDeparted(w.Size() == 0 && w.Source == n.cfg.ID)
			}
		} else if w.Generation > n.lastSeen.Generation {
			n.lastSeen = w
			n.pending.Learned = append(n.pending.Learned, w)
			if w.Size() == 0 {
				// Every member departed: there is no world left to join.
				n.out, n.outBy = true, w
			}
		}
		return
	}
	n.committed = w
	n.actingFrom = 0
	n.ranks = make(map[NodeID]int, len(w.Members))
	n.goneMembers = 0
	for i, m := range w.Members {
		n.ranks[m] = i
		if n.gone[m] {
			n.goneMembers++
		}
	}
	n.promised, n.acceptedWorld, n.acceptedBallot = Ballot{}, nil, Ballot{}
	n.prop = nil
	n.selfReady = false
	n.sinceStepDone = 0
	n.trained, n.gossipAge = false, 0
	for j := range n.joiners { // fewer than the members, in a large world
		if n.rank(j) >= 0 {
			delete(n.joiners, j)
		}
	}
	n.pending.Commit = &w
	n.pending.Learned = append(n.pending.Learned, w)
	if n.departing {
		n.tellLeaving() // a proposer that missed the departure chose this world: ask again
	}
	n.pending.NeedState = nil
	if n.cursor >= 0 {
		n.held = n.cursor
	}
	n.needState = n.cursor != w.StartStep || w.StartStep < 0
	if n.needState {
		// Until StateLoaded this node's cursor names no state it could train
		// from; Promise offers the older one it still holds.
		n.pending.NeedState = &StateTransfer{Gen: w.Generation, From: w.Source, Step: w.StartStep}
		n.cursor = -1
	}
}
