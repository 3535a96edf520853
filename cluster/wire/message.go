package wire

import "fmt"

// Header is what every message carries besides its body. The version and kind bytes that
// precede it on the wire are not fields: the version is this package's and the kind follows
// from the message's Go type, so neither can disagree with the body.
type Header struct {
	// Generation of the world the sender was in when it sent the message. Receivers drop
	// messages of an older generation.
	Generation uint64
	// Step the message belongs to; never negative.
	Step int64
	// Incarnation of the sending process: a node restarted under the same name gets a new
	// one, so messages from its previous life can be told apart.
	Incarnation uint64
	// From is the sender's node id, at most MaxStringBytes long.
	From string
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

// World is a membership the coordinator proposes or commits: generation, members in rank
// order, and the step training starts from.
type World struct {
	Generation uint64   `msgpack:"gen"`
	Members    []string `msgpack:"members"` // node ids in rank order; at most MaxMembers
	StartStep  int64    `msgpack:"start"`
}

// Propose: coordinator -> every member of the proposed world. Asks them to accept World.
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

// Commit: coordinator -> every member. World is now the current world.
type Commit struct {
	Header `msgpack:"-"`
	World  World `msgpack:"world"`
}

// JoinRequest: joiner -> coordinator. Asks to be part of the next world.
type JoinRequest struct {
	Header  `msgpack:"-"`
	Address string `msgpack:"addr"`   // where the joiner's remote listens
	Cursor  int64  `msgpack:"cursor"` // the next step whose state the joiner holds; 0 for none
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

// JobSpec: any member -> joiner. The job file the world trains, as written.
type JobSpec struct {
	Header `msgpack:"-"`
	YAML   []byte `msgpack:"yaml"`
}

func (*Propose) Kind() Kind     { return KindPropose }
func (*Ack) Kind() Kind         { return KindAck }
func (*Commit) Kind() Kind      { return KindCommit }
func (*JoinRequest) Kind() Kind { return KindJoinRequest }
func (*StepDone) Kind() Kind    { return KindStepDone }
func (*ReduceChunk) Kind() Kind { return KindReduceChunk }
func (*StateChunk) Kind() Kind  { return KindStateChunk }
func (*JobSpec) Kind() Kind     { return KindJobSpec }

// registry maps each kind to a constructor of its Go type.
var registry = [...]func() Message{
	KindPropose:     func() Message { return new(Propose) },
	KindAck:         func() Message { return new(Ack) },
	KindCommit:      func() Message { return new(Commit) },
	KindJoinRequest: func() Message { return new(JoinRequest) },
	KindStepDone:    func() Message { return new(StepDone) },
	KindReduceChunk: func() Message { return new(ReduceChunk) },
	KindStateChunk:  func() Message { return new(StateChunk) },
	KindJobSpec:     func() Message { return new(JobSpec) },
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
	return checkString("from", h.From)
}

func (w *World) validate() error {
	if w.StartStep < 0 {
		return fmt.Errorf("%w: negative start step %d", ErrMalformed, w.StartStep)
	}
	if len(w.Members) > MaxMembers {
		return fmt.Errorf("%w: %d members, at most %d", ErrTooLarge, len(w.Members), MaxMembers)
	}
	for i, m := range w.Members {
		if m == "" {
			return fmt.Errorf("%w: member %d has an empty id", ErrMalformed, i)
		}
		if err := checkString("member", m); err != nil {
			return err
		}
	}
	return nil
}

func (m *Propose) validate() error { return firstError(m.Header.validate(), m.World.validate()) }
func (m *Commit) validate() error  { return firstError(m.Header.validate(), m.World.validate()) }

func (m *Ack) validate() error {
	return firstError(m.Header.validate(), checkNonNegative("cursor", m.Cursor))
}

func (m *JoinRequest) validate() error {
	return firstError(m.Header.validate(), checkString("address", m.Address),
		checkNonNegative("cursor", m.Cursor))
}

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

func (m *JobSpec) validate() error { return m.Header.validate() }

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
