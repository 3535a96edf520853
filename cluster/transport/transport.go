package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/cluster/wire"
)

// InboxName is the actor name every node's inbox is registered under, so a
// peer's inbox is addressed by its remote address alone.
const InboxName = "troupe"

// writerBatchSize is how many messages protoactor packs into one gRPC
// message. The receiver refuses a gRPC message above its limit and tears
// the whole endpoint down, which every watcher sees as a termination; a
// small batch keeps the worst case (every message a frame of
// wire.MaxFrameBytes) under maxRecvBytes. Control messages are small and
// rare, so a larger batch would buy nothing.
const writerBatchSize = 4

// maxRecvBytes is the gRPC receive limit: a full batch of the largest
// frames plus 1 MiB for envelopes, type names and PIDs.
const maxRecvBytes = writerBatchSize*wire.MaxFrameBytes + 1<<20

// Errors returned by this package.
var (
	// ErrNotPeer: Send was asked to reach an address outside the current
	// peer set (see SetPeers).
	ErrNotPeer = errors.New("transport: address is not a current peer")
	// ErrClosed: the transport was closed.
	ErrClosed = errors.New("transport: closed")
	// ErrConfig: the configuration is inconsistent; the message names the field.
	ErrConfig = errors.New("transport: invalid config")
)

// TLS holds the two sides of mutual TLS, as cluster.TLSConfigs returns them.
type TLS struct {
	Server *tls.Config // for the listener; must require and verify client certificates
	Client *tls.Config // for dials to peers
}

// Delivery is one decoded message and the remote address of its sender.
type Delivery struct {
	// From is the remote address of the sending node's inbox, as the sender
	// states it. Mutual TLS proves the sender holds the cluster key, not
	// which member it is: treat From as a reply address, not an identity.
	From    string
	Message wire.Message
}

// Config configures Start. Exactly one of Handler and Inbox must be set.
type Config struct {
	// Host to listen on. Empty means 127.0.0.1: exposing a node is a
	// deliberate choice. IPv6 literals are accepted without brackets.
	Host string
	// Port to listen on; 0 picks a free one (see AdvertiseHost).
	Port int
	// AdvertiseHost is the host peers dial, when it differs from Host (a
	// wildcard Host, or NAT). With Port 0 it forces Start to pick a free
	// port itself before protoactor listens on it, because the advertised
	// address must name the port up front: another process can take the
	// port in between, and Start then fails rather than listen elsewhere.
	AdvertiseHost string
	// TLS secures every connection in both directions. Both sides are
	// required unless Insecure is set.
	TLS TLS
	// Insecure runs without TLS, for tests on loopback only. It must not be
	// combined with TLS.
	Insecure bool
	// Handler receives every decoded message, one at a time, on the inbox
	// actor's goroutine: a slow handler delays every later message.
	Handler func(Delivery)
	// Inbox receives every decoded message instead of Handler. A full
	// channel holds up the inbox (and so, in time, the senders' queues)
	// until there is room or the transport closes.
	Inbox chan<- Delivery
	// Logger receives protoactor's and the inbox's records. protoactor logs
	// routine connection steps at info, so its records below warn are
	// dropped. Nil discards everything.
	Logger *slog.Logger
}

// Stats counts what the inbox saw since Start.
type Stats struct {
	Delivered uint64 // frames decoded and handed over
	Malformed uint64 // frames that failed to decode (wire errors)
	Foreign   uint64 // messages that were not frames at all, dropped
}

// Transport is one node's control-plane endpoint: its remote listener, its
// inbox and its gated sends. Create it with Start; it is safe for
// concurrent use.
type Transport struct {
	system *actor.ActorSystem
	remote *remote.Remote
	gate   *streamGate
	inbox  *actor.PID
	logger *slog.Logger
	done   chan struct{} // closed by Close: releases an inbox blocked on a full channel

	mu     sync.RWMutex
	peers  map[string]struct{}
	closed bool

	delivered, malformed, foreign atomic.Uint64
}

// Start listens, starts the inbox and returns the running transport. The
// peer set starts empty. Listen and configuration errors are returned.
func Start(cfg Config) (*Transport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	libLogger := slog.New(skipRecords{cluster.Quiet(logger.Handler(), slog.LevelWarn), expectedRecords}).With("component", "protoactor")
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return libLogger }))

	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := cfg.Port
	var opts []remote.ConfigOption
	if cfg.AdvertiseHost != "" {
		if port == 0 {
			p, err := freePort(host)
			if err != nil {
				return nil, err
			}
			port = p
		}
		opts = append(opts, remote.WithAdvertisedHost(net.JoinHostPort(cfg.AdvertiseHost, strconv.Itoa(port))))
	}
	gate := newStreamGate()
	serverCreds, clientCreds := insecure.NewCredentials(), insecure.NewCredentials()
	if !cfg.Insecure {
		serverCreds, clientCreds = credentials.NewTLS(cfg.TLS.Server), credentials.NewTLS(cfg.TLS.Client)
	}
	opts = append(opts,
		remote.WithServerOptions(grpc.Creds(serverCreds), grpc.MaxRecvMsgSize(maxRecvBytes),
			grpc.StreamInterceptor(gate.intercept)),
		remote.WithDialOptions(grpc.WithTransportCredentials(clientCreds)),
		remote.WithEndpointWriterBatchSize(writerBatchSize),
	)
	// protoactor formats the listen address as host:port, so an IPv6
	// literal needs its brackets here.
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	r := remote.NewRemote(system, remote.Configure(host, port, opts...))
	if err := startRemote(r); err != nil {
		system.Shutdown()
		return nil, err
	}

	t := &Transport{
		system: system,
		remote: r,
		gate:   gate,
		logger: logger.With("component", "transport"),
		done:   make(chan struct{}),
		peers:  map[string]struct{}{},
	}
	handler := cfg.Handler
	if cfg.Inbox != nil {
		handler = t.channelHandler(cfg.Inbox)
	}
	pid, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &inbox{t: t, handler: handler}
	}), InboxName)
	if err != nil {
		t.stopRemote()
		return nil, fmt.Errorf("transport: spawning inbox: %w", err)
	}
	t.inbox = pid
	return t, nil
}

func (c *Config) validate() error {
	switch {
	case (c.Handler == nil) == (c.Inbox == nil):
		return fmt.Errorf("%w: set exactly one of Handler and Inbox", ErrConfig)
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("%w: Port %d out of range", ErrConfig, c.Port)
	case c.Insecure && (c.TLS.Server != nil || c.TLS.Client != nil):
		return fmt.Errorf("%w: Insecure set together with TLS", ErrConfig)
	case !c.Insecure && (c.TLS.Server == nil || c.TLS.Client == nil):
		return fmt.Errorf("%w: TLS.Server and TLS.Client are required unless Insecure", ErrConfig)
	}
	return nil
}

// startRemote turns protoactor's panics on a failed listen or a stuck
// endpoint manager into an error.
func startRemote(r *remote.Remote) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("transport: starting remote: %v", p)
		}
	}()
	r.Start()
	return nil
}

// freePort asks the kernel for a free port on host and releases it at once.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("transport: picking a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Address is the remote address peers reach this node's inbox at.
func (t *Transport) Address() string { return t.system.Address() }

// SetPeers replaces the set of addresses Send may reach. The node calls it
// whenever its world or membership changes. addrs is not retained.
func (t *Transport) SetPeers(addrs []string) {
	peers := make(map[string]struct{}, len(addrs))
	for _, a := range addrs {
		peers[a] = struct{}{}
	}
	t.mu.Lock()
	t.peers = peers
	t.mu.Unlock()
}

// Peers returns the current peer set, in no particular order.
func (t *Transport) Peers() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Collect(maps.Keys(t.peers))
}

// Send frames msg and queues it for the inbox at addr. It returns once the
// frame is queued, not when it arrives: protoactor delivers asynchronously,
// in order per destination, and drops (with a log line) what it cannot
// deliver. The first send to an address also spawns its endpoint, a short
// local round trip; connecting happens off the caller's goroutine.
//
// An address outside the peer set fails at once with ErrNotPeer: protoactor
// keeps retrying a dead address for seconds, so sends are only allowed
// where membership says someone lives. A message the wire format rejects
// returns the wire error; after Close, ErrClosed.
func (t *Transport) Send(addr string, msg wire.Message) error {
	// The read lock is held until the frame is queued, so Close cannot
	// tear endpoints down under a send.
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return ErrClosed
	}
	if _, ok := t.peers[addr]; !ok {
		return fmt.Errorf("%w: %s", ErrNotPeer, addr)
	}
	frame, err := wire.Frame(msg)
	if err != nil {
		return err
	}
	t.system.Root.RequestWithCustomSender(actor.NewPID(addr, InboxName), frame, t.inbox)
	return nil
}

// PeerGone tells protoactor that the node at addr is gone and removes addr
// from the peer set. protoactor never notices a silently dead peer itself;
// after this, watchers of actors at addr receive Terminated at once and
// the endpoint to addr is torn down. Call it when membership reports a
// departure.
func (t *Transport) PeerGone(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.peers, addr)
	if !t.closed {
		t.system.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: addr})
	}
}

// Stats returns the inbox counters.
func (t *Transport) Stats() Stats {
	return Stats{
		Delivered: t.delivered.Load(),
		Malformed: t.malformed.Load(),
		Foreign:   t.foreign.Load(),
	}
}

// Close stops the inbox, then the remote, then the actor system. It waits
// for a handler to return from the message it is handling, up to
// protoactor's 10 s, and for an endpoint still connecting to a peer that
// does not answer, up to protoactor's retry budget (about 10 s). Sends
// after Close fail with ErrClosed; Close is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()

	close(t.done)
	var err error
	if werr := t.system.Root.StopFuture(t.inbox).Wait(); werr != nil {
		err = fmt.Errorf("transport: stopping inbox: %w", werr)
	}
	if serr := t.stopRemote(); serr != nil && err == nil {
		err = serr
	}
	return err
}

// expectedRecords are protoactor's error records of a connection to a peer that closed it:
// every departure and every shutdown causes them, and membership reports the departure itself.
var expectedRecords = []string{"EndpointWriter lost connection"}

// skipRecords drops the records whose message is one of msgs.
type skipRecords struct {
	slog.Handler
	msgs []string
}

func (h skipRecords) Handle(ctx context.Context, r slog.Record) error {
	if slices.Contains(h.msgs, r.Message) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h skipRecords) WithAttrs(attrs []slog.Attr) slog.Handler {
	return skipRecords{h.Handler.WithAttrs(attrs), h.msgs}
}

func (h skipRecords) WithGroup(name string) slog.Handler {
	return skipRecords{h.Handler.WithGroup(name), h.msgs}
}

// Names protoactor's remote registers its actors under.
const (
	endpointSupervisorName = "EndpointSupervisor"
	activatorName          = "activator"
)

// stopRemote shuts protoactor's remote down in an order that its own
// graceful Shutdown does not keep: that one clears the endpoint manager's
// connection map while connection goroutines may still read it (a data race
// -race reports, and a nil dereference if the timing is unlucky). Here the
// server stops first and Close waits for its stream handlers, so nothing
// new reaches the endpoint manager; then the endpoint actors stop, closing
// every outgoing connection; the manager itself is left intact for the
// connection goroutines that still report on their way out.
func (t *Transport) stopRemote() error {
	t.gate.close()
	t.remote.Shutdown(false) // grpc Server.Stop: closes every incoming stream
	t.gate.wait()
	var err error
	for _, name := range []string{endpointSupervisorName, activatorName} {
		if werr := t.system.Root.StopFuture(t.system.NewLocalPID(name)).Wait(); werr != nil && err == nil {
			err = fmt.Errorf("transport: stopping %s: %w", name, werr)
		}
	}
	t.system.Shutdown()
	return err
}
