package actors

import (
	"reflect"
	"testing"

	"github.com/troupe-ml/troupe/cluster/wire"
	"github.com/troupe-ml/troupe/sched"
)

// Every message of the world protocol survives the trip through its frame and the bytes of
// the wire format unchanged, field for field: the scheduler on the other node sees what this
// one sent.
func TestProtocolMessagesCrossTheWireUnchanged(t *testing.T) {
	world := sched.World{Generation: 7, Members: []sched.NodeID{"a:1/01", "b:2/02", "c:3/03"}, Coordinator: "a:1/01", StartStep: 940, Source: "b:2/02"}
	empty := sched.World{Generation: 3, StartStep: -1}
	ballot := sched.Ballot{N: 4, Proposer: "b:2/02"}
	bodies := []any{
		sched.Prepare{Gen: 8, Ballot: ballot},
		sched.Promise{Gen: 8, Ballot: ballot, Cursor: 941},
		sched.Promise{Gen: 8, Ballot: ballot, Cursor: -1, Accepted: &world, AcceptedBallot: sched.Ballot{N: 3, Proposer: "a:1/01"}},
		sched.Accept{Gen: 8, Ballot: ballot, World: world},
		sched.Accept{Gen: 4, Ballot: ballot, World: empty},
		sched.Accepted{Gen: 8, Ballot: ballot},
		sched.Nack{Gen: 8, Promised: ballot},
		sched.Commit{World: world, Voters: []sched.NodeID{"a:1/01", "c:3/03"}},
		sched.Commit{World: world},
		sched.JoinRequest{},
		sched.CatchUp{},
		sched.Leaving{},
		sched.Commit{World: sched.World{Generation: 9, StartStep: 12, Source: "b:2/02"}}, // everyone departed
	}
	for _, body := range bodies {
		sent := sched.Message{From: "a:1/01", To: "c:3/03", Gen: 7, Body: body}
		frame, err := protocolToWire(sent, 0xfeed)
		if err != nil {
			t.Fatalf("%T: %v", body, err)
		}
		raw, err := wire.Encode(frame)
		if err != nil {
			t.Fatalf("%T: encode: %v", body, err)
		}
		decoded, err := wire.Decode(raw)
		if err != nil {
			t.Fatalf("%T: decode: %v", body, err)
		}
		got, ok := protocolFromWire(decoded)
		if !ok {
			t.Fatalf("%T: not recognised as a protocol message", body)
		}
		if !reflect.DeepEqual(got, sent) {
			t.Errorf("%T changed on the wire:\n sent %#v\n  got %#v", body, sent, got)
		}
	}
}

func TestNonProtocolFramesAreNotProtocolMessages(t *testing.T) {
	if _, ok := protocolFromWire(&wire.StepDone{}); ok {
		t.Fatal("a StepDone frame taken for a protocol message")
	}
	if _, err := protocolToWire(sched.Message{Body: "hello"}, 0); err == nil {
		t.Fatal("an unknown body got a frame")
	}
}
