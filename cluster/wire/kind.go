package wire

import "strconv"

// Kind names the Go type a frame carries. Zero is never a valid kind, so a frame whose kind
// byte was never set is rejected rather than mistaken for a message.
type Kind uint8

// The kinds of message, in the order they were added. Values are part of the wire format:
// append new kinds, never renumber.
const (
	KindPropose Kind = iota + 1
	KindAck
	KindCommit
	KindJoinRequest
	KindStepDone
	KindReduceChunk
	KindStateChunk
	KindJobSpec
	KindPrepare
	KindPromise
	KindAccept
	KindAccepted
	KindNack
	KindCatchUp
	KindJobRequest
	KindLeaving
	KindStatusRequest
	KindStatus
)

var kindNames = [...]string{
	KindPropose:       "Propose",
	KindAck:           "Ack",
	KindCommit:        "Commit",
	KindJoinRequest:   "JoinRequest",
	KindStepDone:      "StepDone",
	KindReduceChunk:   "ReduceChunk",
	KindStateChunk:    "StateChunk",
	KindJobSpec:       "JobSpec",
	KindPrepare:       "Prepare",
	KindPromise:       "Promise",
	KindAccept:        "Accept",
	KindAccepted:      "Accepted",
	KindNack:          "Nack",
	KindCatchUp:       "CatchUp",
	KindJobRequest:    "JobRequest",
	KindLeaving:       "Leaving",
	KindStatusRequest: "StatusRequest",
	KindStatus:        "Status",
}

func (k Kind) String() string { return enumName(kindNames[:], int(k), "Kind") }

// Op is the phase of a ring all-reduce a ReduceChunk belongs to.
type Op uint8

// The phases of a ring all-reduce. Values are part of the wire format.
const (
	OpReduceScatter Op = iota + 1 // the chunk is a partial sum to add to the receiver's own
	OpAllGather                   // the chunk is a finished sum to copy
)

var opNames = [...]string{OpReduceScatter: "ReduceScatter", OpAllGather: "AllGather"}

func (o Op) String() string { return enumName(opNames[:], int(o), "Op") }

// Part names the piece of training state a StateChunk carries. Values are part of the wire format.
type Part uint8

// The parts of a node's training state.
const (
	PartParams    Part = iota + 1 // the flat parameter vector
	PartOptimizer                 // optimizer buffer StateChunk.Buffer (Adam's moments, for example)
	PartCursor                    // the data cursor: StateChunk.Cursor, no floats
)

var partNames = [...]string{PartParams: "Params", PartOptimizer: "Optimizer", PartCursor: "Cursor"}

func (p Part) String() string { return enumName(partNames[:], int(p), "Part") }

// enumName returns names[v], or type(v) for a value without a name, as stringer does.
func enumName(names []string, v int, typ string) string {
	if v > 0 && v < len(names) && names[v] != "" {
		return names[v]
	}
	return typ + "(" + strconv.Itoa(v) + ")"
}
