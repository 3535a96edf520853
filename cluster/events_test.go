package cluster

import (
	"net"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestNotifyLeaveTellsLeftFromFailed(t *testing.T) {
	encode := func(m Meta) []byte {
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name  string
		meta  []byte
		state memberlist.NodeStateType
		left  bool
	}{
		{"announced leaving", encode(Meta{Leaving: true}), memberlist.StateAlive, true},
		{"silent", encode(Meta{}), memberlist.StateAlive, false},
		{"state left", encode(Meta{}), memberlist.StateLeft, true},
		{"state dead", encode(Meta{}), memberlist.StateDead, false},
		{"garbage meta", []byte("junk"), memberlist.StateAlive, false},
	}
	for _, tc := range cases {
		q := newEventQueue()
		d := &delegate{queue: q, members: map[string]Node{}, warn: func(string, ...any) {}}
		n := &memberlist.Node{Name: "n", Addr: net.IPv4(127, 0, 0, 1), Port: 1, Meta: tc.meta, State: tc.state}
		d.NotifyJoin(n)
		d.NotifyLeave(n)
		if len(d.liveMembers()) != 0 {
			t.Errorf("%s: member still listed after leaving", tc.name)
		}
		if _, ok := (<-q.out).(MemberJoined); !ok {
			t.Fatalf("%s: first event is not MemberJoined", tc.name)
		}
		e := <-q.out
		q.close()
		_, left := e.(MemberLeft)
		_, failed := e.(MemberFailed)
		if left != tc.left || failed == tc.left {
			t.Errorf("%s: got %T, want left=%v", tc.name, e, tc.left)
		}
	}
}

func TestEventQueueNeverBlocksAndKeepsOrder(t *testing.T) {
	q := newEventQueue()
	defer q.close()
	const n = 10000
	// No reader yet: every push must return.
	for i := range n {
		q.push(MemberUpdated{Node{Name: "n", Meta: Meta{Capacity: uint32(i)}}})
	}
	for i := range n {
		e := (<-q.out).(MemberUpdated)
		if e.Node.Meta.Capacity != uint32(i) {
			t.Fatalf("event %d carries %d", i, e.Node.Meta.Capacity)
		}
	}
}
