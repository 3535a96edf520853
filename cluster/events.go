package cluster

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/memberlist"
)

// Node is a member as this node sees it. It is a value: it does not change
// when the member does.
type Node struct {
	// Name is unique per process start: "<host:port>/<incarnation in hex>".
	Name string
	// Addr is the member's gossip address, "host:port".
	Addr string
	// Meta is the member's metadata; zero when MetaValid is false.
	Meta Meta
	// MetaValid is false when the member's metadata could not be decoded: a
	// node of another format version, or garbage. Such a member is still
	// reported, so that its departure is too.
	MetaValid bool
}

// Event is one of MemberJoined, MemberUpdated, MemberLeft, MemberFailed.
type Event interface{ isEvent() }

// MemberJoined reports a member that became alive, the local node included
// (it comes first).
type MemberJoined struct{ Node Node }

// MemberUpdated reports new metadata of a live member, for example
// Meta.Leaving set just before a graceful leave.
type MemberUpdated struct{ Node Node }

// MemberLeft reports a member that announced its departure (Membership.Leave)
// before going.
type MemberLeft struct{ Node Node }

// MemberFailed reports a member declared dead by failure detection: it
// stopped answering without announcing a departure.
type MemberFailed struct{ Node Node }

func (MemberJoined) isEvent()  {}
func (MemberUpdated) isEvent() {}
func (MemberLeft) isEvent()    {}
func (MemberFailed) isEvent()  {}

// eventQueue hands events from memberlist's callbacks to a reader without
// ever blocking the callback. push appends to an unbounded slice; a goroutine
// feeds the slice, in order, into an unbuffered channel. Nothing is dropped
// while the queue runs; memory grows only with events the reader has not yet
// taken, and membership changes are rare next to anything a reader does.
type eventQueue struct {
	mu      sync.Mutex
	pending []Event

	wake chan struct{} // capacity 1: "pending may have grown"
	out  chan Event    // closed when the queue stops
	stop chan struct{}
	done chan struct{}
}

func newEventQueue() *eventQueue {
	q := &eventQueue{
		wake: make(chan struct{}, 1),
		out:  make(chan Event),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go q.run()
	return q
}

// push enqueues e and returns at once.
func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	q.pending = append(q.pending, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is already due
	}
}

func (q *eventQueue) run() {
	defer close(q.done)
	defer close(q.out)
	for {
		// With nothing pending, out stays nil and its case never fires.
		var out chan Event
		var next Event
		q.mu.Lock()
		if len(q.pending) > 0 {
			out, next = q.out, q.pending[0]
		}
		q.mu.Unlock()
		select {
		case out <- next:
			q.mu.Lock()
			q.pending[0] = nil
			q.pending = q.pending[1:]
			q.mu.Unlock()
		case <-q.wake:
		case <-q.stop:
			return
		}
	}
}

// close stops the queue, drops what is pending, closes the output channel
// and waits for the goroutine to end. Call it once.
func (q *eventQueue) close() {
	close(q.stop)
	<-q.done
}

// delegate is what memberlist calls. memberlist calls the EventDelegate
// methods from several goroutines but never concurrently, often while holding
// its node lock: each returns at once and never calls back into memberlist.
// NodeMeta is called from Create, UpdateNode and its refutations.
type delegate struct {
	queue *eventQueue

	// members mirrors the live members as the events report them.
	// memberlist's Members returns pointers into state it keeps writing, so
	// reading them races; this copy is written only here, under mu.
	mu      sync.Mutex
	members map[string]Node

	meta func() []byte
	warn func(msg string, args ...any)
}

var (
	_ memberlist.EventDelegate = (*delegate)(nil)
	_ memberlist.Delegate      = (*delegate)(nil)
)

func (d *delegate) NotifyJoin(n *memberlist.Node) {
	node := d.track(n, true)
	d.queue.push(MemberJoined{node})
}

func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	node := d.track(n, true)
	d.queue.push(MemberUpdated{node})
}

// NotifyLeave fires for a graceful leave and a failure alike. memberlist
// v0.7.0 keeps the Left/Dead state in a field that shadows Node.State, so
// the State it passes here reads StateAlive either way; the Leaving flag the
// departing node gossiped tells them apart. StateLeft is honoured too, for a
// memberlist that reports it.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	node := d.track(n, false)
	if n.State == memberlist.StateLeft || node.Meta.Leaving {
		d.queue.push(MemberLeft{node})
		return
	}
	d.queue.push(MemberFailed{node})
}

// track converts n and records it as alive or gone.
func (d *delegate) track(n *memberlist.Node, alive bool) Node {
	node := toNode(n, d.warn)
	d.mu.Lock()
	defer d.mu.Unlock()
	if alive {
		d.members[node.Name] = node
	} else {
		delete(d.members, node.Name)
	}
	return node
}

// liveMembers returns the members as the events so far report them,
// ordered by name.
func (d *delegate) liveMembers() []Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	nodes := slices.Collect(maps.Values(d.members))
	slices.SortFunc(nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return nodes
}

// toNode copies what we keep of n; memberlist owns n and its Meta bytes.
// warn hears about metadata that does not decode.
func toNode(n *memberlist.Node, warn func(msg string, args ...any)) Node {
	node := Node{Name: n.Name, Addr: n.Address()}
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		warn("undecodable member metadata", "member", n.Name, "err", err)
		return node
	}
	node.Meta, node.MetaValid = meta, true
	return node
}

// NodeMeta returns this node's encoded metadata, which Start and Leave keep
// within MetaMaxSize (memberlist panics beyond limit).
func (d *delegate) NodeMeta(limit int) []byte {
	b := d.meta()
	if len(b) > limit {
		panic("cluster: encoded metadata exceeds memberlist's limit")
	}
	return b
}

// The rest of memberlist.Delegate: troupe sends no user messages over gossip.
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}
