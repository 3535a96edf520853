package sched

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Worlds: the elastic protocol
//
// A world is the set of nodes that train together: a generation, the members in
// rank order (rank i is Members[i], which is also the ring order), its
// coordinator and the step it starts from. Every node runs one Node, a pure
// state machine; the shell feeds it events and carries out the Ready it
// returns.
//
// Generations form a chain: world g+1 is the successor of world g, and the
// members of world g decide it. Choosing the successor of a world is one
// instance of single-decree Paxos, run by the members of that world:
//
//   - The acting proposer is the first member of the committed world, in rank
//     order, that this node does not consider failed or gone. Only it starts a
//     change: when a member fails or leaves, or when ready joiners wait at a
//     step boundary.
//   - Phase 1: Prepare{Gen: g+1, Ballot}. A member of world g promises iff the
//     ballot is above every ballot it promised for g+1, and the proposer ranks
//     no lower than its own acting proposer (a node that wrongly believes the
//     lower ranks dead cannot disturb the others). The Promise carries the
//     node's cursor (the next step it would run) and the world it last accepted
//     for g+1, if any. A node that promised stops training in world g.
//   - Phase 2: with promises from a quorum of world g, the proposer sends
//     Accept{Gen: g+1, Ballot, World}. The world is the one accepted under the
//     highest ballot among the promises if there is one, or else a new one: the
//     members of g still alive in rank order, then the ready joiners sorted by
//     ID; StartStep is the highest cursor among the promisers, Source the lowest
//     ID holding it. A member accepts iff it promised no higher ballot.
//   - With acceptances from a quorum of world g, world g+1 is chosen: the
//     proposer broadcasts Commit. A node adopts any Commit above its own
//     generation; a former member not listed is out (it must rejoin as a new
//     node), a member whose cursor differs from StartStep needs the state from
//     Source before it trains.
//   - A quorum of world g is a strict majority of its members, or exactly half
//     of them when that half holds g's coordinator. Two quorums always share a
//     member, so two sides of a partition can never both decide; the minority
//     keeps retrying, stays paused, and learns the new world when the partition
//     heals (a node answers any message stamped with an older generation with
//     its Commit).
//   - A graceful departure (Depart) is not a failure: the departing member
//     sends Leaving to its world and keeps voting, and the acting proposer
//     decides a world without it. A new world starts from the state of a
//     member that stays, so phase 2 waits for one of them to promise even
//     when the promises already make a quorum (a departing coordinator's own
//     vote can be half of a world of two). When every member departs, the
//     world decided is the empty one: no world can follow it, joiners learn
//     that the job stopped, and its Source, the holder of the newest state,
//     saves it. Only when the world is committed may the departing node go.
//   - A proposal that gets no quorum within Config.ProposeTimeoutTicks is retried
//     with a higher ballot; when the acting proposer fails, the next member in
//     rank order takes over.
//
// Why two phases. A single round, where an ack both promises and accepts a
// world, is not safe: with world {A,B,C}, A may commit {A..G} (four joiners) on
// the acks of A and B while C, having lost A, commits {B,C} on the acks of B and
// C; A and the joiners, a majority of {A..G}, could then remove B and C and both
// lineages would train. Phase 1 makes the second proposer learn what the
// first may have chosen. For the same reason the generation names the world
// being decided (the Paxos instance) and the ballot counts the attempts, so
// that "one world per generation" is exactly Paxos' safety property.
//
// Genesis: generation 0 is the world made of the node started with the job
// (Config.Genesis) alone. Once Config.MinNodes nodes, itself included, are ready
// it decides generation 1 by itself, since it is the whole of world 0.
//
// Training: a node trains step s of world g only while g is its committed world
// and it has promised nothing for g+1. A step completes only when every member
// took part, and the shell reports it with StepDone{Gen, Step}; a StepDone of
// another generation is dropped. Because promisers stop training, a world
// cannot complete a step once any promise for its successor was made, except
// the step in flight: its update may reach some members and not others (the
// last chunk). The successor starts from the highest cursor among the
// promisers; a member ahead of it (it applied the step after promising, or did
// not promise) is brought back to StartStep by the state transfer, and the step
// is run again in the new world on the same samples, so the final history
// neither skips nor repeats a sample.

// NodeID names a node. It must be unique per process start (memberlist's node
// name), so a restarted process is a new node that joins as a joiner; this is
// what plays the role of an incarnation number.
type NodeID string

// World is one committed configuration of the training group.
type World struct {
	// Generation counts worlds from 1; 0 is the empty world before genesis.
	Generation uint64
	// Members in rank order, which is also the ring order. Survivors keep
	// their relative order from world to world, joiners come last.
	Members []NodeID
	// Coordinator is Members[0]: a function of the world, so no election.
	Coordinator NodeID
	// StartStep is the first step the world runs (a cursor: every step below
	// it is applied in the state Source holds).
	StartStep int64
	// Source is the member holding the state at StartStep.
	Source NodeID
}

// Rank is id's rank in the world, or -1 when it is not a member.
func (w World) Rank(id NodeID) int { return slices.Index(w.Members, id) }

// Size is the number of members.
func (w World) Size() int { return len(w.Members) }

// Equal reports whether two worlds are the same in every field.
func (w World) Equal(o World) bool {
	return w.Generation == o.Generation && slices.Equal(w.Members, o.Members) &&
		w.Coordinator == o.Coordinator && w.StartStep == o.StartStep && w.Source == o.Source
}

func (w World) String() string {
	ids := make([]string, len(w.Members))
	for i, m := range w.Members {
		ids[i] = string(m)
	}
	return fmt.Sprintf("gen %d [%s] coord %s start %d src %s", w.Generation, strings.Join(ids, " "), w.Coordinator, w.StartStep, w.Source)
}

func (w World) clone() World {
	w.Members = slices.Clone(w.Members)
	return w
}

// newWorld builds a world with its coordinator filled in.
func newWorld(gen uint64, members []NodeID, start int64, source NodeID) World {
	w := World{Generation: gen, Members: members, StartStep: start, Source: source}
	if len(members) > 0 {
		w.Coordinator = members[0]
	}
	return w
}

// isQuorum reports whether voters decide for world w: a strict majority of its
// members, or exactly half of them including the coordinator. Voters that are
// not members do not count. Any two quorums of one world share a member.
func isQuorum(w World, voters map[NodeID]bool) bool {
	var t tally
	for i, m := range w.Members {
		if voters[m] {
			t.add(i)
		}
	}
	return decides(w.Size(), t)
}

// decides is isQuorum for votes already counted among a world of size members.
func decides(size int, votes tally) bool {
	return 2*votes.count > size || (2*votes.count == size && votes.count > 0 && votes.coordinator)
}

// Ballot orders the attempts at deciding one generation: by N, then by the
// proposer's ID so that two proposers never share a ballot.
type Ballot struct {
	N        uint64
	Proposer NodeID
}

// Less orders ballots.
func (b Ballot) Less(o Ballot) bool {
	return b.N < o.N || (b.N == o.N && b.Proposer < o.Proposer)
}

func (b Ballot) isZero() bool { return b == Ballot{} }

// ErrInvalidConfig is wrapped by every error NewNode returns for a bad Config.
var ErrInvalidConfig = errors.New("sched: invalid config")

// Config sets up one Node.
type Config struct {
	// ID is this node's name; required.
	ID NodeID
	// Genesis marks the node started with the job: it creates generation 1.
	Genesis bool
	// MinNodes is how many ready nodes, the genesis node included, generation 1
	// waits for. Default 1: a world of one starts at once.
	MinNodes int
	// StartStep is where generation 1 starts (a resumed checkpoint's cursor).
	StartStep int64
	// ProposeTimeoutTicks is how long a proposal may wait for a quorum before
	// it is retried with a higher ballot. Default 10.
	ProposeTimeoutTicks int
	// JoinRetryTicks is how often a joiner announces itself again. Default 10.
	JoinRetryTicks int
	// JoinStallTicks is how long ready joiners wait for a step boundary before
	// the proposer takes them anyway (a world that does not train has no
	// boundaries). Default 2*ProposeTimeoutTicks.
	JoinStallTicks int
}

// validate fills in defaults and names the first field out of range.
func (c *Config) validate() error {
	if c.ID == "" {
		return fmt.Errorf("%w: id is empty", ErrInvalidConfig)
	}
	if c.MinNodes == 0 {
		c.MinNodes = 1
	}
	if c.ProposeTimeoutTicks == 0 {
		c.ProposeTimeoutTicks = 10
	}
	if c.JoinRetryTicks == 0 {
		c.JoinRetryTicks = 10
	}
	if c.JoinStallTicks == 0 {
		c.JoinStallTicks = 2 * c.ProposeTimeoutTicks
	}
	for _, f := range []struct {
		name  string
		value int
	}{
		{"min_nodes", c.MinNodes}, {"propose_timeout_ticks", c.ProposeTimeoutTicks},
		{"join_retry_ticks", c.JoinRetryTicks}, {"join_stall_ticks", c.JoinStallTicks},
	} {
		if f.value < 1 {
			return fmt.Errorf("%w: %s must be at least 1, got %d", ErrInvalidConfig, f.name, f.value)
		}
	}
	if c.StartStep < 0 {
		return fmt.Errorf("%w: start_step must not be negative, got %d", ErrInvalidConfig, c.StartStep)
	}
	return nil
}
