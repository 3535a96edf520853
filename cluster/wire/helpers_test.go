package wire

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// sameMessage reports whether a and b hold the same values, comparing floats bit by bit (so a
// NaN equals itself and -0 differs from +0) and telling a nil slice from an empty one.
func sameMessage(a, b Message) bool {
	return sameValue(reflect.ValueOf(a), reflect.ValueOf(b))
}

func reflectOf(v any) reflect.Value { return reflect.ValueOf(v) }

func sameValue(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Float32:
		return math.Float32bits(float32(a.Float())) == math.Float32bits(float32(b.Float()))
	case reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.String:
		return a.String() == b.String()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return a.Uint() == b.Uint()
	}
	panic("sameValue: unhandled kind " + a.Kind().String())
}

// randomFloats returns n floats drawn from a fixed seed.
func randomFloats(n int, seed uint64) Floats {
	r := rand.New(rand.NewPCG(seed, seed))
	f := make(Floats, n)
	for i := range f {
		f[i] = float32(r.NormFloat64())
	}
	return f
}

// specialFloats are values whose bits a careless codec loses: NaN payloads (quiet and
// signalling, both signs), signed zeros, infinities, subnormals and the extremes.
func specialFloats() Floats {
	bits := []uint32{
		0x7fc00000, 0x7fc00001, 0xffc12345, // quiet NaNs with payloads
		0x7f800001, 0xff800123, // signalling NaNs
		0x80000000, 0x00000000, // -0, +0
		0x7f800000, 0xff800000, // +Inf, -Inf
		0x00000001, 0x807fffff, // subnormals
		0x7f7fffff, 0x00800000, // largest finite, smallest normal
	}
	f := make(Floats, len(bits))
	for i, b := range bits {
		f[i] = math.Float32frombits(b)
	}
	return f
}

func testHeader() Header {
	return Header{Generation: 7, Step: 1234, Incarnation: 0xdeadbeefcafe, From: "node-a-1f2e", To: "node-b-77c0"}
}

// testWorld is a world as the protocol builds it: coordinator first, source among the members.
func testWorld() World {
	return World{Generation: 8, Members: []string{"c", "a", "joiner-9"}, Coordinator: "c", StartStep: 1230, Source: "a"}
}

// validMessages holds at least one message of every kind, with the edge cases of each.
func validMessages() map[string]Message {
	h := testHeader()
	ballot := Ballot{N: 3, Proposer: "c"}
	noState := World{Generation: 9, Members: []string{"a", "b"}, Coordinator: "a", StartStep: NoCursor}
	accepted := testWorld()
	return map[string]Message{
		"prepare":                &Prepare{Header: h, Gen: 8, Ballot: ballot},
		"prepare/zero":           &Prepare{},
		"promise":                &Promise{Header: h, Gen: 8, Ballot: ballot, Cursor: 1231, Accepted: &accepted, AcceptedBallot: Ballot{N: 2, Proposer: "a"}},
		"promise/none accepted":  &Promise{Header: h, Gen: 8, Ballot: ballot, Cursor: 1231},
		"promise/no cursor":      &Promise{Header: h, Gen: 8, Ballot: ballot, Cursor: NoCursor},
		"promise/accepted empty": &Promise{Gen: 1, Accepted: &World{}, AcceptedBallot: ballot},
		"accept":                 &Accept{Header: h, Gen: 8, Ballot: ballot, World: testWorld()},
		"accept/no state":        &Accept{Header: h, Gen: 9, Ballot: ballot, World: noState},
		"accepted":               &Accepted{Header: h, Gen: 8, Ballot: ballot},
		"nack":                   &Nack{Header: h, Gen: 8, Promised: Ballot{N: 1 << 40, Proposer: "b"}},
		"catch up":               &CatchUp{Header: h},
		"job request":            &JobRequest{Header: Header{From: "joiner-9"}},
		"leaving":                &Leaving{Header: h, Deadline: 1_760_000_000_123_456_789},
		"leaving/no deadline":    &Leaving{Header: h},
		"status request":         &StatusRequest{Header: h},
		"status": &Status{Header: h, Job: "mnist-mlp", World: World{Generation: 4, Members: []string{"a", "b"}, Coordinator: "a", StartStep: 90, Source: "b"},
			TotalSteps: 3750, Epoch: 2, Loss: 0.125, Accuracy: 0.96875, SamplesPerSecond: 5012.5, Training: true},
		"commit/voters":             &Commit{Header: h, World: testWorld(), Voters: []string{"a", "c"}},
		"commit/repeated, no votes": &Commit{Header: h, World: noState},
		"job spec/fingerprint":      &JobSpec{Header: h, YAML: []byte("model: mlp\n"), Fingerprint: "9f86d081884c7d65"},
		"propose":                   &Propose{Header: h, World: World{Generation: 8, Members: []string{"a", "b", "c"}, StartStep: 1230}},
		"propose/no members":        &Propose{Header: h, World: World{Generation: 8}},
		"ack":                       &Ack{Header: h, Generation: 8, Accept: true, Cursor: 1231},
		"ack/refuse":                &Ack{Header: h, Generation: 8},
		"commit":                    &Commit{Header: h, World: World{Generation: 8, Members: []string{"c", "a"}, StartStep: 1230}},
		"join":                      &JoinRequest{Header: h, Address: "10.0.0.5:8090", Cursor: 0},
		"step done":                 &StepDone{Header: h, Rank: 3, LossSum: 17.25, Correct: 90, Samples: 128},
		"step done/nan loss":        &StepDone{Header: h, LossSum: math.Float64frombits(0x7ff8000000000042)},
		"reduce scatter":            &ReduceChunk{Header: h, Op: OpReduceScatter, Round: 2, ChunkIndex: 5, Offset: 1 << 20, Data: randomFloats(1000, 1)},
		"all gather/special":        &ReduceChunk{Header: h, Op: OpAllGather, Data: specialFloats()},
		"reduce/nil data":           &ReduceChunk{Header: h, Op: OpAllGather},
		"reduce/empty data":         &ReduceChunk{Header: h, Op: OpAllGather, Data: Floats{}},
		"state params":              &StateChunk{Header: h, Part: PartParams, Offset: 10, Total: 1010, Data: randomFloats(1000, 2)},
		"state optimizer":           &StateChunk{Header: h, Part: PartOptimizer, Buffer: 1, Offset: 0, Total: 13, Data: specialFloats()},
		"state cursor":              &StateChunk{Header: h, Part: PartCursor, Cursor: 1 << 40},
		"job spec":                  &JobSpec{Header: h, YAML: []byte("model: mlp\nbatch: 128\n")},
		"job spec/empty":            &JobSpec{},
	}
}

func mustEncode(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := Encode(m)
	if err != nil {
		t.Fatalf("Encode(%T): %v", m, err)
	}
	return b
}
