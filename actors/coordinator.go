package actors

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/cluster/collective"
	"github.com/troupe-ml/troupe/cluster/wire"
	"github.com/troupe-ml/troupe/sched"
)

// Timing of the world protocol on a peer. The protocol counts ticks; these turn them into time.
const (
	tickInterval        = 50 * time.Millisecond
	proposeTimeoutTicks = 20 // a proposal without a quorum for 1 s is retried
	joinRetryTicks      = 10 // joiners knock again, lost Commits are resent, every 0.5 s
	joinStallTicks      = 40 // joiners wait at most 2 s for a step boundary
	// maxLinger bounds how long a node that trained the whole job stays to hand its final
	// state to members behind it.
	maxLinger = 30 * time.Second
	// departWait bounds how long a stopped node waits for a world without it before it goes
	// anyway (counted then as failed); it covers a few proposal retries.
	departWait = 3 * time.Second
	// departLinger is how long a node stays after its departure was decided: long enough for
	// every member to poke it once (joinRetryTicks), so that a member the Commit missed learns
	// it from the node that made it.
	departLinger = (joinRetryTicks + 2) * tickInterval
)

// ErrJobStopped reports that every member of the job's world departed while this node waited
// to join: there is no world left to join, and the job's state is in its last checkpoint.
var ErrJobStopped = errors.New("actors: every member departed: the job stopped (start a node with the job and its checkpoint to go on)")

// ErrLeftOut reports that the world went on without this node (it was frozen or cut off past
// the failure timeout). Its state is stale; it must rejoin as a new incarnation.
var ErrLeftOut = errors.New("actors: the world went on without this node")

// errSuperseded: the world a data-plane operation belonged to was replaced by a newer one.
var errSuperseded = errors.New("actors: the world was superseded")

// dataPlane is a node's share of the worlds' rings. The Aggregator connects and uses the ring of
// the world it was told to enter; the Coordinator, on committing a newer world, supersedes it,
// which breaks off whatever the Aggregator is blocked on (a connect that waits for a member
// that died, a reduction with a frozen member) so that it can move on.
type dataPlane struct {
	endpoint *collective.Endpoint
	log      *slog.Logger

	mu     sync.Mutex
	gen    uint64             // the newest world committed
	cancel context.CancelFunc // ends the connect in progress, if any
	link   *collective.Link   // the ring of world gen, once connected
	closed bool
}

// supersede tells the data plane that world gen was committed: the rings of older worlds close.
func (d *dataPlane) supersede(gen uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen <= d.gen {
		return
	}
	d.gen = gen
	d.breakOff()
}

// breakOff cancels the connect in progress and closes the current ring. Called with mu held.
func (d *dataPlane) breakOff() {
	if d.cancel != nil {
		d.cancel()
		d.cancel = nil
	}
	if d.link != nil {
		_ = d.link.Close()
		d.link = nil
	}
}

// connect builds this node's ring of world gen. It waits as long as it takes for the other
// members (they may still be receiving the Commit), until gen is superseded.
func (d *dataPlane) connect(gen uint64, rank int, addrs []string) (*collective.Link, error) {
	d.mu.Lock()
	if d.closed || gen != d.gen {
		d.mu.Unlock()
		return nil, errSuperseded
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.mu.Unlock()
	link, err := d.endpoint.Connect(ctx, gen, rank, addrs)
	d.mu.Lock()
	defer d.mu.Unlock()
	cancel()
	if err == nil && (d.closed || gen != d.gen) {
		_ = link.Close()
		err = errSuperseded
	}
	if err != nil {
		return nil, err
	}
	d.link = link
	return link, nil
}

// close ends the data plane at the end of a run.
func (d *dataPlane) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.breakOff()
}

// Messages of the elastic shell. They stay inside a node.

// tick: timer -> Coordinator.
type tick struct{}

// enterWorld: Coordinator -> Worker. A world with this node in it was committed: train as rank
// Rank once the state of rank Root is everyone's. Addrs are the members' collective endpoints.
type enterWorld struct {
	world sched.World
	rank  int
	addrs []string
	root  int
}

// pauseTraining: Coordinator -> Worker. This node promised its vote for the successor of world
// gen: it starts no further step of gen (the step in flight may still complete).
type pauseTraining struct{ gen uint64 }

// joinWorld: Worker -> Aggregator. Connect world gen's ring and broadcast root's state. State
// holds this node's encoded state; on success it holds root's.
type joinWorld struct {
	gen   uint64
	start int64
	rank  int
	addrs []string
	root  int
	state []float32
	shard *shardJoin // train.shard_optimizer: what this node holds of the optimizer state
}

// shardJoin is a node's slice of the optimizer state as a world starts: re-cut for the world.
type shardJoin struct {
	spec    *shardSpec
	holds   holding
	buffers [][]float32
}

// worldJoined: Aggregator -> Worker. The outcome of a joinWorld.
type worldJoined struct {
	gen   uint64
	state []float32
	shard *worldShard
	err   error
}

// worldShard is a node's slice of the optimizer state in the world it joined.
type worldShard struct {
	recutResult
	owns holding
}

// stateInstalled: Worker -> Node -> Coordinator. The node holds the state at step, in world gen.
type stateInstalled struct {
	gen   uint64
	step  int64
	shard *worldShard // train.shard_optimizer: how this node's slice was re-cut
}

// worldChanged: Coordinator -> Node. The node entered world: what changed, for the Result.
type worldChanged struct {
	world             sched.World
	joins, departures int
}

// trainingFinished: Node -> Coordinator. This node trained the whole job.
type trainingFinished struct{ step int64 }

// lingerOver: Coordinator -> Node. Every member of the world finished or is gone: the node may
// end its run.
type lingerOver struct{}

// leftOut: Coordinator -> Node. The world went on without this node (or, empty, stopped).
type leftOut struct{ world sched.World }

// depart: Node -> Coordinator. The Worker stopped after a signal or a notice: leave the world.
type depart struct{}

// departed: Coordinator -> Node -> Worker. Whether the world decided this node's departure
// (decided is false when it gave up waiting) and whether this node holds the job's final
// state, nobody staying, and so saves it.
type departed struct{ decided, final bool }

// coordinator drives this node's part of the world protocol (sched.Node): membership events,
// protocol messages and ticks in; messages to peers, world changes for the Worker out. It never
// blocks: the data plane's waiting happens in the Aggregator.
type coordinator struct {
	peer   *Peer
	plane  *dataPlane
	sn     *sched.Node
	worker *actor.PID
	log    *slog.Logger

	stopTicks chan struct{}
	world     sched.World           // the world the Worker was last sent
	waiting   *sched.World          // committed, not yet handed to the Worker
	voting    bool                  // the Worker was told to pause for a vote
	finished  map[sched.NodeID]bool // members that trained the whole job
	doneStep  int64                 // this node's final step; -1 while training
	doneAt    time.Time
	// A stopped node's departure: when it asked, when it may leave the cluster once decided,
	// and whether it was told it may.
	departing         bool
	departAt, leaveAt time.Time
	departureOver     bool
}

func newCoordinator(peer *Peer, plane *dataPlane, sn *sched.Node, worker *actor.PID, log *slog.Logger) *coordinator {
	return &coordinator{peer: peer, plane: plane, sn: sn, worker: worker, log: log, finished: map[sched.NodeID]bool{}, doneStep: -1}
}

// Receive: memberEvent, protocolMessage, tick, *StepDone, stateInstalled, peerFinished,
// trainingFinished, depart.
func (c *coordinator) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		root, self := ctx.ActorSystem().Root, ctx.Self()
		mailbox := func(m any) { root.Send(self, m) }
		c.stopTicks = make(chan struct{})
		go ticks(c.stopTicks, mailbox)
		c.peer.attach(mailbox)
		c.step(ctx, sched.JoinerReady{ID: c.peer.ID()})
	case *actor.Stopping:
		c.peer.detach()
		close(c.stopTicks)
	case memberEvent:
		c.step(ctx, msg.event)
	case protocolMessage:
		c.step(ctx, msg.msg)
	case tick:
		c.step(ctx, sched.Tick{})
		c.checkLinger(ctx)
		c.checkDeparture(ctx)
	case depart:
		if !c.departing {
			c.departing, c.departAt = true, time.Now()
			c.step(ctx, sched.Depart{})
		}
	case *StepDone:
		c.step(ctx, sched.StepDone{Gen: msg.Generation, Step: msg.Step})
	case stateInstalled:
		c.step(ctx, sched.StateLoaded{Gen: msg.gen, Step: msg.step})
	case peerFinished:
		c.finished[msg.id] = true
		c.checkLinger(ctx)
	case trainingFinished:
		c.doneStep, c.doneAt = msg.step, time.Now()
		c.announceFinished(c.world.Members)
		c.checkLinger(ctx)
	}
}

func ticks(stop <-chan struct{}, send func(any)) {
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			send(tick{})
		case <-stop:
			return
		}
	}
}

// step feeds one event to the protocol and carries out what it decided.
func (c *coordinator) step(ctx actor.Context, e sched.Event) {
	c.sn.Step(e)
	rd := c.sn.Ready()
	for _, m := range rd.Messages {
		f, err := protocolToWire(m, c.peer.Incarnation())
		if err == nil {
			err = c.peer.send(m.To, f)
		}
		if err != nil {
			c.log.Debug("protocol message not sent", "to", m.To, "err", err)
		}
	}
	for _, w := range rd.Learned {
		c.log.Info("world committed", "generation", w.Generation, "members", len(w.Members), "start", w.StartStep,
			"coordinator", w.Coordinator, "member", w.Rank(c.peer.ID()) >= 0)
	}
	if rd.Departed {
		c.log.Info("left the world", "saves_final_state", rd.Final)
		ctx.Send(ctx.Parent(), departed{decided: true, final: rd.Final})
		c.leaveAt = time.Now().Add(departLinger)
	}
	if rd.Out {
		if !c.departing {
			ctx.Send(ctx.Parent(), leftOut{world: rd.Learned[len(rd.Learned)-1]})
		}
		return
	}
	if c.departing {
		if rd.Commit != nil {
			c.plane.supersede(rd.Commit.Generation) // the Worker trains no more: hand it nothing
		}
		return
	}
	if rd.Commit != nil {
		w := *rd.Commit
		c.plane.supersede(w.Generation)
		c.waiting, c.voting = &w, false
	} else if rd.Voting && !c.voting && c.world.Generation > 0 && c.waiting == nil {
		c.voting = true
		c.log.Debug("pausing: voting on the next world", "generation", c.world.Generation)
		ctx.Send(c.worker, pauseTraining{gen: c.world.Generation})
	}
	c.enterWaiting(ctx)
}

// enterWaiting hands the newest committed world to the Worker once every member's collective
// endpoint is known (a joiner's gossip may reach this node after the Commit does).
func (c *coordinator) enterWaiting(ctx actor.Context) {
	w := c.waiting
	if w == nil {
		return
	}
	addrs := make([]string, len(w.Members))
	for i, m := range w.Members {
		if addrs[i] = c.peer.dataAddr(m); addrs[i] == "" {
			return
		}
	}
	c.waiting = nil
	root := max(w.Rank(w.Source), 0)
	joins, departures := 0, 0
	for _, m := range w.Members {
		if c.world.Rank(m) < 0 {
			joins++
		}
	}
	for _, m := range c.world.Members {
		if w.Rank(m) < 0 {
			departures++
		}
	}
	if c.world.Generation == 0 {
		joins = 0 // the first world is the start, not a change
	}
	newcomers := slices.DeleteFunc(slices.Clone(w.Members), func(m sched.NodeID) bool { return c.world.Rank(m) >= 0 })
	c.world = *w
	ctx.Send(ctx.Parent(), worldChanged{world: *w, joins: joins, departures: departures})
	ctx.Send(c.worker, enterWorld{world: *w, rank: w.Rank(c.peer.ID()), addrs: addrs, root: root})
	if c.doneStep >= 0 {
		c.announceFinished(newcomers)
	}
}

// announceFinished tells members that this node trained the whole job, so that they can end
// their runs once everyone has.
func (c *coordinator) announceFinished(to []sched.NodeID) {
	for _, m := range to {
		if m != c.peer.ID() {
			_ = c.peer.send(m, &wire.StepDone{Header: wire.Header{Generation: c.world.Generation, Step: c.doneStep}})
		}
	}
}

// checkDeparture lets a stopped node go: departLinger after its departure was decided, or
// departWait after it asked if no world without it was decided by then.
func (c *coordinator) checkDeparture(ctx actor.Context) {
	switch {
	case !c.departing || c.departureOver:
		return
	case !c.leaveAt.IsZero():
		if time.Now().Before(c.leaveAt) {
			return
		}
	case time.Since(c.departAt) < departWait:
		return
	default:
		c.log.Warn("no world without this node was decided in time: leaving anyway", "waited", departWait)
		ctx.Send(ctx.Parent(), departed{})
	}
	c.departureOver = true
	ctx.Send(ctx.Parent(), lingerOver{})
}

// checkLinger ends a finished node's run once every other member of its world has finished
// or is gone, or maxLinger after it finished.
func (c *coordinator) checkLinger(ctx actor.Context) {
	if c.doneStep < 0 {
		return
	}
	alive := c.peer.Members()
	for _, m := range c.world.Members {
		if m != c.peer.ID() && !c.finished[m] && slices.Contains(alive, m) && time.Since(c.doneAt) < maxLinger {
			return
		}
	}
	c.doneStep = -2 // said once
	ctx.Send(ctx.Parent(), lingerOver{})
}
