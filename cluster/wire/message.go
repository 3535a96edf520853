package wire

import "fmt"

// Header is what every message carries besides its body. The version and kind bytes that
// precede it on the wire are not fields: the version is this package's and the kind follows
// from the message's Go type, so neither can disagree with the body.
type Header struct {
	// Generation of the world the sender was in when it sent the message (its committed
	// generation). The data plane drops messages of an older generation; the world protocol
	// answers them with its Commit.
	Generation uint64
	// Step the message belongs to; never negative.
	Step int64
	// Incarnation of the sending process: a node restarted under the same name gets a new
	// one, so messages from its previous life can be told apart.
	Incarnation uint64
	// From is the sender's node id, at most MaxStringBytes long.
	From string
	// To is the node id the sender meant, at most MaxStringBytes long; empty when the sender
	// addresses whoever listens at the address. A receiver whose id differs can drop the
	// message: its address was reused by another node.
	To string
}

// Message is one of the types in this file. The set is closed: Encode and Decode know each
// kind, and a type outside the package cannot satisfy the interface.
type Message interface {
	// Kind is the kind byte the message travels under.
	Kind() Kind
	header() *Header
	validate() error
}

func (h *Header) header() *Header { return h }

// HeaderOf returns a copy of m's header.
func HeaderOf(m Message) Header { return *m.header() }

// SetHeader replaces m's header, which the sender fills in just before sending.
func SetHeader(m Message, h Header) { *m.header() = h }

// NoCursor is the cursor of a node that holds no training state (it waits for a state
// transfer), and the start step of a world none of whose members holds one (it restores the
// newest checkpoint). Every other cursor and start step is non-negative.
const NoCursor = -1

// World is a membership the world protocol decides: generation, members in rank order, the
// coordinator, and the step training starts from together with the member holding the state
// at that step. Wire checks the fields' shape and limits; what they mean (the coordinator is
// the first member, the source holds the start step) is the protocol's to check.
type World struct {
	Generation  uint64   `msgpack:"gen"`
	Members     []string `msgpack:"members"` // node ids in rank order; at most MaxMembers, none empty
	Coordinator string   `msgpack:"coord"`   // node id; empty for a world without members
	StartStep   int64    `msgpack:"start"`   // a cursor: NoCursor or non-negative
	Source      string   `msgpack:"source"`  // node id holding the state at StartStep; empty when none does
}

// Ballot orders the attempts at deciding one generation: by N, then by the proposer's id.
// The zero Ballot means "none".
type Ballot struct {
	N        uint64 `msgpack:"n"`
	Proposer string `msgpack:"by"` // node id, at most MaxStringBytes long
}

// Propose: coordinator -> every member of the proposed world. Asks them to accept World in a
// single round. The world protocol decides worlds in two phases (Prepare, Promise, Accept,
// Accepted, Commit) and sends no Propose.
type Propose struct {
	Header `msgpack:"-"`
	World  World `msgpack:"world"`
}

// Ack: member -> coordinator. The answer to a Propose.
type Ack struct {
	Header     `msgpack:"-"`
	Generation uint64 `msgpack:"gen"`    // the proposed generation this answers
	Accept     bool   `msgpack:"accept"` // false: the member refuses (it is leaving, or knows a newer world)
	Cursor     int64  `msgpack:"cursor"` // the next step the member would run: every step below it is applied
}

// Prepare: proposer -> members of world Gen-1. Phase 1 of deciding world Gen.
type Prepare struct {
	Header `msgpack:"-"`
	Gen    uint64 `msgpack:"gen"`
	Ballot Ballot `msgpack:"ballot"`
}

// Promise: member -> proposer. The member accepts nothing below Ballot for Gen and stopped
// training. Accepted is the world it last accepted for Gen, under AcceptedBallot, or nil.
type Promise struct {
	Header         `msgpack:"-"`
	Gen            uint64 `msgpack:"gen"`
	Ballot         Ballot `msgpack:"ballot"`
	Cursor         int64  `msgpack:"cursor"` // the next step the member would run, or NoCursor
	Accepted       *World `msgpack:"accepted"`
	AcceptedBallot Ballot `msgpack:"accepted_ballot"`
}

// Accept: proposer -> members of world Gen-1. Phase 2: accept World as world Gen.
type Accept struct {
	Header `msgpack:"-"`
	Gen    uint64 `msgpack:"gen"`
	Ballot Ballot `msgpack:"ballot"`
	World  World  `msgpack:"world"`
}

// Accepted: member -> proposer. The member accepted the world proposed under Ballot.
type Accepted struct {
	Header `msgpack:"-"`
	Gen    uint64 `msgpack:"gen"`
	Ballot Ballot `msgpack:"ballot"`
}

// Nack: member -> proposer. The member already promised Promised, above the proposal's ballot.
type Nack struct {
	Header   `msgpack:"-"`
	Gen      uint64 `msgpack:"gen"`
	Promised Ballot `msgpack:"promised"`
}

// Commit: proposer -> members of the old and the new world; also the answer to a message
// stamped with an older generation. World is now the current world; Voters are the acceptors
// whose quorum decided it (nil when the sender repeats a Commit it did not decide).
type Commit struct {
	Header `msgpack:"-"`
	World  World    `msgpack:"world"`
	Voters []string `msgpack:"voters"` // node ids; at most MaxMembers, none empty
}

// JoinRequest: joiner -> members. The sender has the job and is ready to join the next world.
type JoinRequest struct {
	Header  `msgpack:"-"`
	Address string `msgpack:"addr"`   // where the joiner's remote listens; empty when membership carries it
	Cursor  int64  `msgpack:"cursor"` // the next step whose state the joiner holds; 0 for none
}

// CatchUp: node -> a peer that sent it a newer generation. Asks for the peer's Commit.
type CatchUp struct {
	Header `msgpack:"-"`
}

// StepDone: member -> coordinator. The member applied Header.Step.
type StepDone struct {
	Header  `msgpack:"-"`
	Rank    int     `msgpack:"rank"`
	LossSum float64 `msgpack:"loss"`
	Correct int     `msgpack:"correct"`
	Samples int     `msgpack:"samples"`
}

// ReduceChunk: aggregator -> next aggregator on the ring. One chunk of a vector being reduced.
type ReduceChunk struct {
	Header     `msgpack:"-"`
	Op         Op     `msgpack:"op"`
	Round      int    `msgpack:"round"` // ring round within Op, from 0
	ChunkIndex int    `msgpack:"chunk"` // which of the vector's chunks this is
	Offset     int    `msgpack:"off"`   // index of Data[0] in the whole vector
	Data       Floats `msgpack:"data"`
}

// StateChunk: a member that holds the state -> a member behind it. One chunk of one part of
// the training state. For PartCursor, Data, Offset and Total are empty and Cursor holds the
// step; float32 cannot carry a step count exactly.
type StateChunk struct {
	Header `msgpack:"-"`
	Part   Part   `msgpack:"part"`
	Buffer int    `msgpack:"buf"`    // optimizer buffer index for PartOptimizer, else 0
	Offset int    `msgpack:"off"`    // index of Data[0] in the part
	Total  int    `msgpack:"total"`  // length of the whole part, in floats
	Cursor int64  `msgpack:"cursor"` // for PartCursor: the next step to run
	Data   Floats `msgpack:"data"`
}

// JobRequest: joiner -> any member. Asks for the job the world trains; the answer is a JobSpec.
type JobRequest struct {
	Header `msgpack:"-"`
}

// JobSpec: any member -> joiner. The job file the world trains, as written, and the job's
// fingerprint, so the joiner can check that the file it parses is the job the world runs and
// that a checkpoint it holds belongs to it.
type JobSpec struct {
	Header      `msgpack:"-"`
	YAML        []byte `msgpack:"yaml"`
	Fingerprint string `msgpack:"fp"` // at most MaxStringBytes long
}

// Leaving: a member -> the coordinator (and its peers). The sender leaves gracefully: it
// finishes or abandons the step in flight, hands off and is gone by Deadline.
type Leaving struct {
	Header `msgpack:"-"`
	// Deadline is when the sender will be gone, in wall-clock Unix nanoseconds
	// (time.Unix(0, Deadline)); 0 when it has none. An absolute time, because a relative one
	// would grow stale while the message waits in a send queue; the clocks of a fleet agree far
	// better than the seconds a notice gives.
	Deadline int64 `msgpack:"deadline"`
}

// StatusRequest: anyone in the cluster -> a member. Asks for the member's view of the job.
type StatusRequest struct {
	Header `msgpack:"-"`
}

// Status: member -> the asker. The member's view: the world it trains in, how far the job is
// (Header.Step is its cursor) and how it goes.
type Status struct {
	Header           `msgpack:"-"`
	Job              string  `msgpack:"job"` // at most MaxStringBytes long
	World            World   `msgpack:"world"`
	TotalSteps       int64   `msgpack:"total"`
	Epoch            int64   `msgpack:"epoch"`
	Loss             float64 `msgpack:"loss"` // of the last step applied
	Accuracy         float64 `msgpack:"acc"`
	SamplesPerSecond float64 `msgpack:"sps"` // over the last steps
	Training         bool    `msgpack:"training"`
	Finished         bool    `msgpack:"finished"`
}

func (*Propose) Kind() Kind       { return KindPropose }
func (*Ack) Kind() Kind           { return KindAck }
func (*Commit) Kind() Kind        { return KindCommit }
func (*JoinRequest) Kind() Kind   { return KindJoinRequest }
func (*StepDone) Kind() Kind      { return KindStepDone }
func (*ReduceChunk) Kind() Kind   { return KindReduceChunk }
func (*StateChunk) Kind() Kind    { return KindStateChunk }
func (*JobSpec) Kind() Kind       { return KindJobSpec }
func (*Prepare) Kind() Kind       { return KindPrepare }
func (*Promise) Kind() Kind       { return KindPromise }
func (*Accept) Kind() Kind        { return KindAccept }
func (*Accepted) Kind() Kind      { return KindAccepted }
func (*Nack) Kind() Kind          { return KindNack }
func (*CatchUp) Kind() Kind       { return KindCatchUp }
func (*JobRequest) Kind() Kind    { return KindJobRequest }
func (*Leaving) Kind() Kind       { return KindLeaving }
func (*StatusRequest) Kind() Kind { return KindStatusRequest }
func (*Status) Kind() Kind        { return KindStatus }

// registry maps each kind to a constructor of its Go type.
var registry = [...]func() Message{
	KindPropose:       func() Message { return new(Propose) },
	KindAck:           func() Message { return new(Ack) },
	KindCommit:        func() Message { return new(Commit) },
	KindJoinRequest:   func() Message { return new(JoinRequest) },
	KindStepDone:      func() Message { return new(StepDone) },
	KindReduceChunk:   func() Message { return new(ReduceChunk) },
	KindStateChunk:    func() Message { return new(StateChunk) },
	KindJobSpec:       func() Message { return new(JobSpec) },
	KindPrepare:       func() Message { return new(Prepare) },
	KindPromise:       func() Message { return new(Promise) },
	KindAccept:        func() Message { return new(Accept) },
	KindAccepted:      func() Message { return new(Accepted) },
	KindNack:          func() Message { return new(Nack) },
	KindCatchUp:       func() Message { return new(CatchUp) },
	KindJobRequest:    func() Message { return new(JobRequest) },
	KindLeaving:       func() Message { return new(Leaving) },
	KindStatusRequest: func() Message { return new(StatusRequest) },
	KindStatus:        func() Message { return new(Status) },
}

// newMessage returns a zero message of kind k, or nil for a kind without a type.
func newMessage(k Kind) Message {
	if int(k) >= len(registry) || registry[k] == nil {
		return nil
	}
	return registry[k]()
}

// The validate methods hold the rules a message must satisfy on both sides of the wire:
// Encode refuses to send what Decode would reject.

func (h *Header) validate() error {
	if h.Step < 0 {
		return fmt.Errorf("%w: negative step %d", ErrMalformed, h.Step)
	}
	return firstError(checkString("from", h.From), checkString("to", h.To))
}

func (w *World) validate() error {
	return firstError(checkCursor("start step", w.StartStep), checkIDs("member", w.Members),
		checkString("coordinator", w.Coordinator), checkString("source", w.Source))
}

func (b *Ballot) validate() error { return checkString("proposer", b.Proposer) }

func (m *Propose) validate() error { return firstError(m.Header.validate(), m.World.validate()) }

func (m *Ack) validate() error {
	return firstError(m.Header.validate(), checkNonNegative("cursor", m.Cursor))
}

func (m *Prepare) validate() error  { return firstError(m.Header.validate(), m.Ballot.validate()) }
func (m *Accepted) validate() error { return firstError(m.Header.validate(), m.Ballot.validate()) }
func (m *Nack) validate() error     { return firstError(m.Header.validate(), m.Promised.validate()) }

func (m *Promise) validate() error {
	err := firstError(m.Header.validate(), m.Ballot.validate(), checkCursor("cursor", m.Cursor),
		m.AcceptedBallot.validate())
	if err == nil && m.Accepted != nil {
		err = m.Accepted.validate()
	}
	return err
}

func (m *Accept) validate() error {
	return firstError(m.Header.validate(), m.Ballot.validate(), m.World.validate())
}

func (m *Commit) validate() error {
	return firstError(m.Header.validate(), m.World.validate(), checkIDs("voter", m.Voters))
}

func (m *JoinRequest) validate() error {
	return firstError(m.Header.validate(), checkString("address", m.Address),
		checkNonNegative("cursor", m.Cursor))
}

func (m *CatchUp) validate() error    { return m.Header.validate() }
func (m *JobRequest) validate() error { return m.Header.validate() }

func (m *StepDone) validate() error {
	return firstError(m.Header.validate(), checkNonNegative("rank", int64(m.Rank)),
		checkNonNegative("correct", int64(m.Correct)), checkNonNegative("samples", int64(m.Samples)))
}

func (m *ReduceChunk) validate() error {
	if err := firstError(m.Header.validate(), checkNonNegative("round", int64(m.Round)),
		checkNonNegative("chunk index", int64(m.ChunkIndex)), checkNonNegative("offset", int64(m.Offset)),
		checkFloats(m.Data)); err != nil {
		return err
	}
	if m.Op != OpReduceScatter && m.Op != OpAllGather {
		return fmt.Errorf("%w: reduce op %v", ErrMalformed, m.Op)
	}
	return nil
}

func (m *StateChunk) validate() error {
	if err := firstError(m.Header.validate(), checkNonNegative("offset", int64(m.Offset)),
		checkNonNegative("total", int64(m.Total)), checkNonNegative("buffer", int64(m.Buffer)),
		checkNonNegative("cursor", m.Cursor), checkFloats(m.Data)); err != nil {
		return err
	}
	switch m.Part {
	case PartParams, PartOptimizer:
		if m.Part == PartParams && m.Buffer != 0 {
			return fmt.Errorf("%w: buffer %d given for %v", ErrMalformed, m.Buffer, m.Part)
		}
		if m.Cursor != 0 {
			return fmt.Errorf("%w: cursor %d given for %v", ErrMalformed, m.Cursor, m.Part)
		}
		// Written so that it cannot overflow: Offset, Total and len(Data) are non-negative.
		if m.Offset > m.Total || len(m.Data) > m.Total-m.Offset {
			return fmt.Errorf("%w: %d floats at offset %d run past total %d", ErrMalformed, len(m.Data), m.Offset, m.Total)
		}
	case PartCursor:
		if len(m.Data) != 0 || m.Offset != 0 || m.Total != 0 || m.Buffer != 0 {
			return fmt.Errorf("%w: cursor chunk carries floats, offset, total or buffer", ErrMalformed)
		}
	default:
		return fmt.Errorf("%w: state part %v", ErrMalformed, m.Part)
	}
	return nil
}

func (m *JobSpec) validate() error {
	return firstError(m.Header.validate(), checkString("fingerprint", m.Fingerprint))
}

func (m *Leaving) validate() error {
	return firstError(m.Header.validate(), checkNonNegative("deadline", m.Deadline))
}

func (m *StatusRequest) validate() error { return m.Header.validate() }

func (m *Status) validate() error {
	return firstError(m.Header.validate(), checkString("job", m.Job), m.World.validate(),
		checkNonNegative("total steps", m.TotalSteps), checkNonNegative("epoch", m.Epoch))
}

// checkIDs checks a list of node ids: at most MaxMembers of them, none empty or too long.
func checkIDs(what string, ids []string) error {
	if len(ids) > MaxMembers {
		return fmt.Errorf("%w: %d %ss, at most %d", ErrTooLarge, len(ids), what, MaxMembers)
	}
	for i, id := range ids {
		if id == "" {
			return fmt.Errorf("%w: %s %d has an empty id", ErrMalformed, what, i)
		}
		if err := checkString(what, id); err != nil {
			return err
		}
	}
	return nil
}

// checkCursor allows what a cursor may hold: a step, or NoCursor.
func checkCursor(field string, v int64) error {
	if v < NoCursor {
		return fmt.Errorf("%w: %s %d, want %d or a step", ErrMalformed, field, v, NoCursor)
	}
	return nil
}

func checkString(field, s string) error {
	if len(s) > MaxStringBytes {
		return fmt.Errorf("%w: %s of %d bytes, at most %d", ErrTooLarge, field, len(s), MaxStringBytes)
	}
	return nil
}

func checkNonNegative(field string, v int64) error {
	if v < 0 {
		return fmt.Errorf("%w: negative %s %d", ErrMalformed, field, v)
	}
	return nil
}

func checkFloats(f Floats) error {
	if len(f) > MaxFloats {
		return fmt.Errorf("%w: %d floats, at most %d", ErrTooLarge, len(f), MaxFloats)
	}
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
