package actors

import (
	"fmt"

	"github.com/troupe-ml/troupe/cluster/wire"
	"github.com/troupe-ml/troupe/sched"
)

// This file maps the world protocol's messages (sched) to the frames that carry them between
// nodes (cluster/wire) and back. The two packages know nothing of each other; this is the one
// place where their fields meet, and protocol_test.go checks that nothing is lost either way.

// protocolToWire turns a message the scheduler wants sent into its frame, stamped with the
// sending node's incarnation.
func protocolToWire(m sched.Message, incarnation uint64) (wire.Message, error) {
	h := wire.Header{Generation: m.Gen, Incarnation: incarnation, From: string(m.From), To: string(m.To)}
	switch b := m.Body.(type) {
	case sched.Prepare:
		return &wire.Prepare{Header: h, Gen: b.Gen, Ballot: ballotToWire(b.Ballot)}, nil
	case sched.Promise:
		p := &wire.Promise{Header: h, Gen: b.Gen, Ballot: ballotToWire(b.Ballot), Cursor: b.Cursor, AcceptedBallot: ballotToWire(b.AcceptedBallot)}
		if b.Accepted != nil {
			w := worldToWire(*b.Accepted)
			p.Accepted = &w
		}
		return p, nil
	case sched.Accept:
		return &wire.Accept{Header: h, Gen: b.Gen, Ballot: ballotToWire(b.Ballot), World: worldToWire(b.World)}, nil
	case sched.Accepted:
		return &wire.Accepted{Header: h, Gen: b.Gen, Ballot: ballotToWire(b.Ballot)}, nil
	case sched.Nack:
		return &wire.Nack{Header: h, Gen: b.Gen, Promised: ballotToWire(b.Promised)}, nil
	case sched.Commit:
		return &wire.Commit{Header: h, World: worldToWire(b.World), Voters: idsToWire(b.Voters)}, nil
	case sched.JoinRequest:
		return &wire.JoinRequest{Header: h}, nil
	case sched.CatchUp:
		return &wire.CatchUp{Header: h}, nil
	case sched.Leaving:
		return &wire.Leaving{Header: h}, nil
	}
	return nil, fmt.Errorf("actors: no frame for protocol message %T", m.Body)
}

// protocolFromWire turns a received frame back into the scheduler's message. ok is false for
// frames that are not part of the world protocol.
func protocolFromWire(msg wire.Message) (m sched.Message, ok bool) {
	var h wire.Header
	switch f := msg.(type) {
	case *wire.Prepare:
		h, m.Body = f.Header, sched.Prepare{Gen: f.Gen, Ballot: ballotFromWire(f.Ballot)}
	case *wire.Promise:
		p := sched.Promise{Gen: f.Gen, Ballot: ballotFromWire(f.Ballot), Cursor: f.Cursor, AcceptedBallot: ballotFromWire(f.AcceptedBallot)}
		if f.Accepted != nil {
			w := worldFromWire(*f.Accepted)
			p.Accepted = &w
		}
		h, m.Body = f.Header, p
	case *wire.Accept:
		h, m.Body = f.Header, sched.Accept{Gen: f.Gen, Ballot: ballotFromWire(f.Ballot), World: worldFromWire(f.World)}
	case *wire.Accepted:
		h, m.Body = f.Header, sched.Accepted{Gen: f.Gen, Ballot: ballotFromWire(f.Ballot)}
	case *wire.Nack:
		h, m.Body = f.Header, sched.Nack{Gen: f.Gen, Promised: ballotFromWire(f.Promised)}
	case *wire.Commit:
		h, m.Body = f.Header, sched.Commit{World: worldFromWire(f.World), Voters: idsFromWire(f.Voters)}
	case *wire.JoinRequest:
		h, m.Body = f.Header, sched.JoinRequest{}
	case *wire.CatchUp:
		h, m.Body = f.Header, sched.CatchUp{}
	case *wire.Leaving:
		h, m.Body = f.Header, sched.Leaving{}
	default:
		return sched.Message{}, false
	}
	m.From, m.To, m.Gen = sched.NodeID(h.From), sched.NodeID(h.To), h.Generation
	return m, true
}

func ballotToWire(b sched.Ballot) wire.Ballot {
	return wire.Ballot{N: b.N, Proposer: string(b.Proposer)}
}

func ballotFromWire(b wire.Ballot) sched.Ballot {
	return sched.Ballot{N: b.N, Proposer: sched.NodeID(b.Proposer)}
}

func worldToWire(w sched.World) wire.World {
	return wire.World{Generation: w.Generation, Members: idsToWire(w.Members), Coordinator: string(w.Coordinator),
		StartStep: w.StartStep, Source: string(w.Source)}
}

func worldFromWire(w wire.World) sched.World {
	return sched.World{Generation: w.Generation, Members: idsFromWire(w.Members), Coordinator: sched.NodeID(w.Coordinator),
		StartStep: w.StartStep, Source: sched.NodeID(w.Source)}
}

func idsToWire(ids []sched.NodeID) []string {
	if ids == nil {
		return nil
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

func idsFromWire(ids []string) []sched.NodeID {
	if ids == nil {
		return nil
	}
	out := make([]sched.NodeID, len(ids))
	for i, id := range ids {
		out[i] = sched.NodeID(id)
	}
	return out
}
