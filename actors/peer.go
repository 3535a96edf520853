package actors

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/cluster/collective"
	"github.com/troupe-ml/troupe/cluster/transport"
	"github.com/troupe-ml/troupe/cluster/wire"
	"github.com/troupe-ml/troupe/sched"
)

// PeerConfig places a process in a cluster.
type PeerConfig struct {
	// Gossip configures the membership: bind address, seeds, key (or Insecure) and failure
	// detection timings. Its Meta is filled in by StartPeer.
	Gossip cluster.Config
	// Logger receives the peer's records; nil discards them.
	Logger *slog.Logger
}

// Peer is this process in a cluster: its gossip member, its control-plane transport (the world
// protocol, job hand-over, status), its collective endpoint (reductions and state transfer),
// and the bridge from their events to the running node's Coordinator.
//
// A process that a world left out (it was frozen past the failure timeout, or partitioned off)
// cannot come back under the same name: Rejoin makes it a new incarnation, with a new gossip
// name and incarnation id, that joins like any new node.
type Peer struct {
	log       *slog.Logger
	gossip    cluster.Config
	transport *transport.Transport
	endpoint  *collective.Endpoint

	mu         sync.Mutex
	membership *cluster.Membership           // this incarnation's
	id         sched.NodeID                  // this incarnation's gossip name
	members    map[sched.NodeID]cluster.Node // live members with readable metadata, self excluded
	run        func(any)                     // the running Coordinator's mailbox; nil between runs
	job        []byte                        // the job as YAML, served to joiners
	jobFP      string
	replies    chan *wire.JobSpec
	statuses   chan statusReply
	board      *statusBoard // this node's status, for members that ask
	closed     bool

	// spoofed counts frames whose sender is not the member it names: another address, or a
	// previous incarnation.
	spoofed atomic.Uint64
	events  sync.WaitGroup
}

// StartPeer starts the transport and the collective endpoint on the gossip bind address (on
// ports the system picks), then joins the gossip cluster with their addresses in the node's
// metadata. With a cluster key, the transport and the endpoint use mutual TLS under the CA the
// key derives, and gossip is encrypted with it.
func StartPeer(cfg PeerConfig) (*Peer, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := cfg.Gossip.Key
	if len(key) == 0 {
		var err error
		key, err = cluster.LoadKey(cfg.Gossip.KeyFile)
		if errors.Is(err, cluster.ErrNoKey) {
			key, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	host := cfg.Gossip.AdvertiseAddr
	if host == "" {
		host = cfg.Gossip.BindAddr
	}
	if key == nil && !cfg.Gossip.Insecure && !isLoopbackHost(cfg.Gossip.BindAddr) {
		return nil, fmt.Errorf("%w: %s: give a key file or set %s, or run insecure on purpose",
			cluster.ErrKeyRequired, cfg.Gossip.BindAddr, cluster.KeyEnv)
	}
	p := &Peer{log: log, members: map[sched.NodeID]cluster.Node{}, replies: make(chan *wire.JobSpec, 1),
		statuses: make(chan statusReply, 64), board: &statusBoard{}}
	tcfg := transport.Config{Host: cfg.Gossip.BindAddr, AdvertiseHost: cfg.Gossip.AdvertiseAddr, Handler: p.deliver,
		Logger: log.With("part", "transport")}
	var server, client *tls.Config
	if key != nil {
		var err error
		if server, client, err = cluster.TLSConfigs(key, host); err != nil {
			return nil, err
		}
		tcfg.TLS = transport.TLS{Server: server, Client: client}
	} else {
		tcfg.Insecure = true
	}
	var err error
	if p.transport, err = transport.Start(tcfg); err != nil {
		return nil, err
	}
	if p.endpoint, err = collective.Listen(net.JoinHostPort(cfg.Gossip.BindAddr, "0"), server, client); err != nil {
		_ = p.transport.Close()
		return nil, err
	}
	p.gossip = cfg.Gossip
	p.gossip.Key = key
	p.gossip.Logger = log.With("part", "gossip")
	p.gossip.Meta.RemoteAddr = p.transport.Address()
	p.gossip.Meta.DataAddr = advertised(p.endpoint.Addr(), cfg.Gossip.AdvertiseAddr)
	if p.gossip.Meta.Device == "" {
		p.gossip.Meta.Device = cluster.DeviceCPU
	}
	if err := p.startMembership(cfg.Gossip.Seeds); err != nil {
		_ = p.endpoint.Close()
		_ = p.transport.Close()
		return nil, err
	}
	return p, nil
}

// startMembership joins the gossip cluster as a new incarnation, through seeds.
func (p *Peer) startMembership(seeds []string) error {
	cfg := p.gossip
	cfg.Seeds = seeds
	m, err := cluster.Start(cfg)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.membership, p.id = m, sched.NodeID(m.Name())
	p.mu.Unlock()
	p.events.Add(1)
	go p.follow(m, p.id)
	return nil
}

// Rejoin leaves the cluster and joins it again through seeds as a new incarnation: a new
// name and incarnation id, so the members take it for a new node. It is what a process does
// after a world went on without it. The transport and the collective endpoint stay: the
// process holds one of each for its whole life (a second gRPC server in one process races on
// gRPC's global logger).
func (p *Peer) Rejoin(seeds []string) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrPeerClosed
	}
	old := p.membership
	p.run, p.members = nil, map[sched.NodeID]cluster.Node{}
	p.mu.Unlock()
	_ = old.Leave(time.Second)
	_ = old.Shutdown()
	p.events.Wait()
	p.transport.SetPeers(nil)
	return p.startMembership(seeds)
}

// ErrPeerClosed is returned by Rejoin after Close.
var ErrPeerClosed = errors.New("actors: peer closed")

// advertised replaces the host of a listener's address with the advertised host, if any.
func advertised(addr, host string) string {
	if host == "" {
		return addr
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, port)
}

func isLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// ID is this incarnation's node id: its gossip name, unique per start.
func (p *Peer) ID() sched.NodeID {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.id
}

// Incarnation is the random id of this start; every frame the peer sends carries it.
func (p *Peer) Incarnation() uint64 { return p.current().Incarnation() }

func (p *Peer) current() *cluster.Membership {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.membership
}

// GossipAddr is the address other nodes give to --join.
func (p *Peer) GossipAddr() string { return p.current().Local().Addr }

// Members returns the live members other than this one, sorted by id.
func (p *Peer) Members() []sched.NodeID {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]sched.NodeID, 0, len(p.members))
	for id := range p.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Spoofed counts the frames dropped because their sender was not the member they named.
func (p *Peer) Spoofed() uint64 { return p.spoofed.Load() }

// TransportStats are the control plane's counters (malformed frames among them).
func (p *Peer) TransportStats() transport.Stats { return p.transport.Stats() }

// memberEvent: Peer -> Coordinator. A change of membership, in sched's terms.
type memberEvent struct{ event sched.Event }

// protocolMessage: Peer -> Coordinator. A world-protocol message from a member.
type protocolMessage struct{ msg sched.Message }

// peerFinished: Peer -> Coordinator. A member says it has trained the whole job.
type peerFinished struct {
	id   sched.NodeID
	step int64
}

// follow turns membership events into peer sets for the transport and into sched events for
// the running Coordinator, in the order membership reports them.
func (p *Peer) follow(m *cluster.Membership, self sched.NodeID) {
	defer p.events.Done()
	for ev := range m.Events() {
		var node cluster.Node
		var gone bool
		var out sched.Event
		switch e := ev.(type) {
		case cluster.MemberJoined:
			node = e.Node
			out = sched.MemberJoined{ID: sched.NodeID(node.Name)}
		case cluster.MemberUpdated:
			node = e.Node
			out = sched.MemberJoined{ID: sched.NodeID(node.Name)}
			if node.Meta.Leaving { // announced before the leave itself: act on it at once
				out, gone = sched.MemberLeft{ID: sched.NodeID(node.Name)}, true
			}
		case cluster.MemberLeft:
			node, gone = e.Node, true
			out = sched.MemberLeft{ID: sched.NodeID(node.Name)}
		case cluster.MemberFailed:
			node, gone = e.Node, true
			out = sched.MemberFailed{ID: sched.NodeID(node.Name)}
		}
		id := sched.NodeID(node.Name)
		if id == self {
			continue
		}
		if !node.MetaValid || node.Meta.Protocol != cluster.ProtocolVersion {
			p.log.Warn("ignoring a member that speaks another protocol", "member", node.Name)
			continue
		}
		p.mu.Lock()
		if gone {
			delete(p.members, id)
		} else {
			p.members[id] = node
		}
		p.updatePeers(node.Meta.RemoteAddr, gone)
		if p.run != nil {
			p.run(memberEvent{out})
		}
		p.mu.Unlock()
	}
}

// updatePeers opens the transport to the live members only; a departed member's endpoint is
// torn down. Called with mu held.
func (p *Peer) updatePeers(addr string, gone bool) {
	addrs := make([]string, 0, len(p.members))
	for _, m := range p.members {
		addrs = append(addrs, m.Meta.RemoteAddr)
	}
	p.transport.SetPeers(addrs)
	if gone && !slices.Contains(addrs, addr) {
		p.transport.PeerGone(addr)
	}
}

// attach connects a Coordinator's mailbox: it first hears of every live member, then of every
// change. detach disconnects it.
func (p *Peer) attach(mailbox func(any)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.run = mailbox
	for _, id := range slices.Sorted(maps.Keys(p.members)) {
		mailbox(memberEvent{sched.MemberJoined{ID: id}})
	}
}

func (p *Peer) detach() {
	p.mu.Lock()
	p.run = nil
	p.mu.Unlock()
}

// deliver handles one frame from the transport: job hand-over at once, the world protocol and
// finish notices through the Coordinator. A frame whose header names a member other than the
// one at its address, or another incarnation of it, is dropped: the cluster key proves the
// sender belongs to the cluster, this proves it is who it says.
func (p *Peer) deliver(d transport.Delivery) {
	h := wire.HeaderOf(d.Message)
	p.mu.Lock()
	member, known := p.members[sched.NodeID(h.From)]
	if !known || member.Meta.RemoteAddr != d.From || member.Meta.Incarnation != h.Incarnation {
		p.mu.Unlock()
		p.spoofed.Add(1)
		p.log.Debug("dropping a frame from an unknown sender", "from", h.From, "addr", d.From, "kind", fmt.Sprintf("%T", d.Message))
		return
	}
	run := p.run
	job, fp := p.job, p.jobFP
	p.mu.Unlock()
	switch f := d.Message.(type) {
	case *wire.JobRequest:
		if job != nil {
			_ = p.send(sched.NodeID(h.From), &wire.JobSpec{YAML: job, Fingerprint: fp})
		}
	case *wire.JobSpec:
		select {
		case p.replies <- f:
		default:
		}
	case *wire.StatusRequest:
		st := p.board.snapshot()
		_ = p.send(sched.NodeID(h.From), &st)
	case *wire.Status:
		select {
		case p.statuses <- statusReply{from: sched.NodeID(h.From), status: f}:
		default: // nobody is asking, or an answer too many
		}
	case *wire.StepDone:
		if run != nil {
			run(peerFinished{id: sched.NodeID(h.From), step: h.Step})
		}
	default:
		if m, ok := protocolFromWire(d.Message); ok && run != nil {
			run(protocolMessage{m})
		}
	}
}

// send stamps msg with this peer's id and incarnation and sends it to member to.
func (p *Peer) send(to sched.NodeID, msg wire.Message) error {
	p.mu.Lock()
	member, ok := p.members[to]
	self, inc := p.id, p.membership.Incarnation()
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", transport.ErrNotPeer, to)
	}
	h := wire.HeaderOf(msg)
	h.From, h.To, h.Incarnation = string(self), string(to), inc
	wire.SetHeader(msg, h)
	return p.transport.Send(member.Meta.RemoteAddr, msg)
}

// dataAddr is member id's collective endpoint, or "" when it is not a live member.
func (p *Peer) dataAddr(id sched.NodeID) string {
	if id == p.ID() {
		return p.endpoint.Addr()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.members[id].Meta.DataAddr
}

// lastStanding returns a check, for the Worker of rep, of whether every other member of its
// world has gone or announced its departure. The Worker reads rep.members on its own goroutine,
// where the check runs.
func (p *Peer) lastStanding(rep *replica) func() bool {
	return func() bool {
		alive := p.Members()
		self := string(p.ID())
		for _, m := range rep.members {
			if m != self && slices.Contains(alive, sched.NodeID(m)) {
				return false
			}
		}
		return true
	}
}

// GossipAddrs are the gossip addresses of the live members: the seeds a new incarnation of
// this process joins through.
func (p *Peer) GossipAddrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	addrs := make([]string, 0, len(p.members))
	for _, m := range p.members {
		addrs = append(addrs, m.Addr)
	}
	slices.Sort(addrs)
	return addrs
}

// ServeJob makes this peer hand job to nodes that join without a job file. A text job is
// handed over only with the digest of its corpus (Run serves it again once it has read the
// corpus), so that no joiner can train on other text unnoticed.
func (p *Peer) ServeJob(job Job) error {
	raw, err := sharedJob(job)
	if err != nil {
		return err
	}
	if job.Data.Dataset == DatasetText && job.Data.CorpusDigest == "" {
		raw = nil
	}
	p.mu.Lock()
	p.job, p.jobFP = raw, job.Fingerprint()
	p.mu.Unlock()
	return nil
}

// sharedJob is the job as a joiner gets it: what the cluster trains, without where this node
// finds its data. Checkpoint settings travel only with a store every node can reach (object
// storage), so that whichever node is rank 0 writes to it; a local directory is this node's.
func sharedJob(job Job) ([]byte, error) {
	job.Data.Dir = ""
	if !sharedStore(job.Checkpoint.Dir) {
		job.Checkpoint = CheckpointSpec{}
	}
	job.Checkpoint.Resume, job.Checkpoint.Overwrite = false, false
	raw, err := yaml.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("encoding the job: %w", err)
	}
	return raw, nil
}

// parseSharedJob reads a job sharedJob wrote. The sections it left out stay empty rather
// than take the defaults of a job file: a joiner writes checkpoints only where it is told to.
func parseSharedJob(raw []byte) (Job, error) {
	job, err := ParseJob(raw)
	if err != nil {
		return Job{}, err
	}
	if !sharedStore(job.Checkpoint.Dir) {
		job.Checkpoint = CheckpointSpec{}
	}
	return job, job.Validate()
}

// sharedStore says whether a checkpoint store is the same for every node that names it.
func sharedStore(uri string) bool { return strings.HasPrefix(uri, "s3://") }

// ErrNoJob reports that no member handed over the job in time.
var ErrNoJob = errors.New("actors: no member handed over the job")

// FetchJob asks the members for the job they train, one after another, until one answers or
// ctx ends. The answer is parsed and checked against the fingerprint its sender gave.
func (p *Peer) FetchJob(ctx context.Context) (Job, error) {
	ask := time.NewTicker(500 * time.Millisecond)
	defer ask.Stop()
	for i := 0; ; i++ {
		if ids := p.Members(); len(ids) > 0 {
			_ = p.send(ids[i%len(ids)], &wire.JobRequest{})
		}
		select {
		case spec := <-p.replies:
			job, err := parseSharedJob(spec.YAML)
			if err != nil {
				return Job{}, fmt.Errorf("the job a member handed over: %w", err)
			}
			if fp := job.Fingerprint(); fp != spec.Fingerprint {
				return Job{}, fmt.Errorf("%w: the job handed over has fingerprint %s, its sender says %s", ErrBadJob, fp, spec.Fingerprint)
			}
			return job, nil
		case <-ask.C:
		case <-ctx.Done():
			return Job{}, fmt.Errorf("%w: %w", ErrNoJob, ctx.Err())
		}
	}
}

// Leave announces a graceful departure to the cluster and waits up to timeout for it to go out.
func (p *Peer) Leave(timeout time.Duration) error { return p.current().Leave(timeout) }

// Close leaves the cluster (if Leave was not called), then stops gossip, the transport and the
// endpoint. Safe to call more than once.
func (p *Peer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.run = nil
	m := p.membership
	p.mu.Unlock()
	_ = m.Leave(time.Second)
	err := m.Shutdown()
	p.events.Wait()
	return errors.Join(err, p.transport.Close(), p.endpoint.Close())
}
