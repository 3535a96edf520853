package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrShutdown is returned by methods called after Shutdown.
var ErrShutdown = errors.New("cluster: membership shut down")

// Membership is this process's place in the gossip cluster: one memberlist
// instance, the loop that re-joins the seeds, and the queue that turns
// memberlist's callbacks into Events. Its methods are safe for concurrent
// use. A Membership that left cannot join again (memberlist forbids it):
// Shutdown it and Start a new one, which gets a new name.
type Membership struct {
	cfg         Config
	name        string
	incarnation uint64
	log         *slog.Logger
	addr        string // advertised gossip address
	ml          *memberlist.Memberlist
	queue       *eventQueue
	delegate    *delegate

	metaMu    sync.Mutex
	metaBytes []byte // what NodeMeta returns; replaced, never mutated

	lifeMu      sync.Mutex // serializes Leave and Shutdown
	left, shut  bool
	stopRejoin  context.CancelFunc
	rejoinEnded chan struct{}
}

// Start creates the memberlist instance described by cfg, joins the seeds
// once, and keeps joining them in the background (see Config.RejoinInterval),
// so a node may start before its seeds. An unreachable seed is therefore not
// an error; Join reports one. Start fails for an invalid Config, a bad or
// missing key (ErrKeyRequired on a non-loopback address without Insecure),
// metadata too large, or a port that cannot be bound.
func Start(cfg Config) (*Membership, error) {
	cfg.Seeds = slices.Clone(cfg.Seeds)
	cfg.Key = slices.Clone(cfg.Key)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	key, err := resolveKey(cfg)
	if err != nil {
		return nil, err
	}
	incarnation, err := newIncarnation()
	if err != nil {
		return nil, err
	}
	cfg.Meta.Incarnation, cfg.Meta.Protocol = incarnation, ProtocolVersion
	metaBytes, err := cfg.Meta.Encode()
	if err != nil {
		return nil, err
	}

	transport, err := listen(cfg, logger)
	if err != nil {
		return nil, err
	}
	advIP, advPort, err := transport.FinalAdvertiseAddr(cfg.AdvertiseAddr, cfg.AdvertisePort)
	if err != nil {
		_ = transport.Shutdown()
		return nil, fmt.Errorf("cluster: advertise address: %w", err)
	}
	if advPort == 0 {
		advPort = transport.GetAutoBindPort()
	}
	m := &Membership{
		cfg:         cfg,
		name:        nodeName(advIP, advPort, incarnation),
		incarnation: incarnation,
		addr:        net.JoinHostPort(advIP.String(), strconv.Itoa(advPort)),
		metaBytes:   metaBytes,
	}
	m.log = logger.With("node", m.name)

	mc := memberlist.DefaultLANConfig()
	mc.Name = m.name
	mc.Transport = transport
	mc.BindAddr, mc.BindPort = cfg.BindAddr, transport.GetAutoBindPort()
	mc.AdvertiseAddr, mc.AdvertisePort = advIP.String(), advPort
	mc.ProbeInterval, mc.ProbeTimeout = cfg.ProbeInterval, cfg.ProbeTimeout
	mc.SuspicionMult, mc.SuspicionMaxTimeoutMult = cfg.SuspicionMult, cfg.SuspicionMaxTimeoutMult
	mc.GossipInterval, mc.PushPullInterval = cfg.GossipInterval, cfg.PushPullInterval
	mc.GossipToTheDeadTime = cfg.PushPullInterval
	mc.TCPTimeout = cfg.TCPTimeout
	mc.Logger = stdLogger(logger)
	if key != nil {
		if mc.Keyring, err = memberlist.NewKeyring(nil, key); err != nil {
			_ = transport.Shutdown()
			return nil, fmt.Errorf("cluster: keyring: %w", err)
		}
	}
	m.queue = newEventQueue()
	m.delegate = &delegate{queue: m.queue, members: map[string]Node{}, meta: m.encodedMeta, warn: m.log.Warn}
	mc.Delegate, mc.Events = m.delegate, m.delegate

	if m.ml, err = memberlist.Create(mc); err != nil {
		_ = transport.Shutdown()
		m.queue.close()
		return nil, fmt.Errorf("cluster: starting memberlist: %w", err)
	}
	m.log.Info("cluster member started", "encrypted", key != nil, "seeds", cfg.Seeds)

	ctx, cancel := context.WithCancel(context.Background())
	m.stopRejoin, m.rejoinEnded = cancel, make(chan struct{})
	joined := false
	if len(cfg.Seeds) > 0 {
		_, err := m.Join()
		joined = err == nil
		if err != nil {
			m.log.Warn("no seed answered; retrying in the background", "err", err)
		}
	}
	go m.rejoinLoop(ctx, joined)
	return m, nil
}

// resolveKey picks the key Start uses: Config.Key, else LoadKey(KeyFile).
// nil means none, which only loopback or Insecure allow.
func resolveKey(cfg Config) ([]byte, error) {
	if len(cfg.Key) > 0 {
		if err := checkKey(cfg.Key); err != nil {
			return nil, err
		}
		return cfg.Key, nil
	}
	key, err := LoadKey(cfg.KeyFile)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, ErrNoKey) {
		return nil, err
	}
	if !cfg.Insecure && !isLoopback(cfg.BindAddr) {
		return nil, fmt.Errorf("%w: BindAddr %s: give a key file (Config.KeyFile) or set %s, or set Config.Insecure to run unencrypted",
			ErrKeyRequired, cfg.BindAddr, KeyEnv)
	}
	return nil, nil
}

// isLoopback reports whether addr is a loopback IP; anything else, names
// included, counts as reachable from outside.
func isLoopback(addr string) bool {
	ip := net.ParseIP(addr)
	return ip != nil && ip.IsLoopback()
}

// newIncarnation draws the random id of this process start.
func newIncarnation() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("cluster: drawing incarnation: %w", err)
	}
	return binary.BigEndian.Uint64(b[:]), nil
}

// nodeName makes the memberlist name of one process start. memberlist
// rejects a reused name at a new address, so a restarted node must not
// reuse its old name; the incarnation makes it new.
func nodeName(ip net.IP, port int, incarnation uint64) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(port)) + "/" + fmt.Sprintf("%016x", incarnation)
}

// listen binds memberlist's UDP and TCP listeners. Binding here rather than
// inside memberlist.Create tells us the port before the node is named. With
// port 0 the kernel picks a TCP port that may be taken for UDP, so that case
// is retried a few times, as memberlist itself does.
func listen(cfg Config, logger *slog.Logger) (*memberlist.NetTransport, error) {
	attempts := 1
	if cfg.BindPort == 0 {
		attempts = 10
	}
	var err error
	for range attempts {
		var t *memberlist.NetTransport
		t, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{cfg.BindAddr},
			BindPort:  cfg.BindPort,
			Logger:    stdLogger(logger),
		})
		if err == nil {
			return t, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("cluster: binding %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.BindPort)), err)
}

// Join contacts the seeds now and returns how many answered. It fails when
// none did: seeds down, or a cluster that rejects this node's key.
func (m *Membership) Join() (int, error) {
	if len(m.cfg.Seeds) == 0 {
		return 0, nil
	}
	n, err := m.ml.Join(m.cfg.Seeds)
	if err != nil {
		return n, fmt.Errorf("cluster: joining %v: %w", m.cfg.Seeds, err)
	}
	return n, nil
}

// rejoinLoop joins the seeds every RejoinInterval, and more often (from
// JoinRetryInterval, doubling) until the first join succeeds. It ends when
// ctx is cancelled.
func (m *Membership) rejoinLoop(ctx context.Context, joined bool) {
	defer close(m.rejoinEnded)
	if len(m.cfg.Seeds) == 0 {
		return
	}
	delay := m.cfg.RejoinInterval
	if !joined {
		delay = m.cfg.JoinRetryInterval
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		_, err := m.Join()
		switch {
		case err == nil:
			joined, delay = true, m.cfg.RejoinInterval
		case !joined:
			delay = min(2*delay, m.cfg.RejoinInterval)
			m.log.Debug("seeds still unreachable", "err", err, "retry_in", delay)
		case m.ml.NumMembers() <= 1:
			m.log.Warn("alone and no seed answers", "err", err)
		default:
			m.log.Debug("re-join failed; other members remain", "err", err)
		}
		timer.Reset(delay)
	}
}

// Events returns the channel of membership events, in the order memberlist
// reported them. Events are queued without bound and never dropped, so a
// slow reader delays nothing but itself; read it continually. The channel
// is closed by Shutdown, which drops events not yet read.
func (m *Membership) Events() <-chan Event { return m.queue.out }

// Name returns this node's unique name.
func (m *Membership) Name() string { return m.name }

// Incarnation returns the random id of this process start, also in
// Local().Meta.Incarnation.
func (m *Membership) Incarnation() uint64 { return m.incarnation }

// Local returns this node as the others see it.
func (m *Membership) Local() Node {
	meta, _ := DecodeMeta(m.encodedMeta()) // we encoded it ourselves
	return Node{Name: m.name, Addr: m.addr, Meta: meta, MetaValid: true}
}

// Members returns the live members, this node included, ordered by name:
// the state the events delivered so far and those still queued describe.
func (m *Membership) Members() []Node { return m.delegate.liveMembers() }

func (m *Membership) encodedMeta() []byte {
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	return m.metaBytes
}

// Leave announces a graceful departure and waits up to timeout for it to go
// out: it stops re-joining, gossips Meta.Leaving (so the others report
// MemberLeft rather than MemberFailed), then broadcasts memberlist's leave.
// The node keeps answering probes until Shutdown. A timeout of zero or less
// waits as long as that takes (memberlist's meaning). A second call does
// nothing. A member that hears the leave without the Leaving flag reports
// MemberFailed; with few members and an unloaded network that does not
// happen.
func (m *Membership) Leave(timeout time.Duration) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.shut {
		return ErrShutdown
	}
	if m.left {
		return nil
	}
	m.left = true
	m.endRejoin()
	deadline := time.Now().Add(timeout)

	meta, _ := DecodeMeta(m.encodedMeta())
	meta.Leaving = true
	b, err := meta.Encode() // one flag more than a Meta that already fitted
	if err != nil {
		return err
	}
	m.metaMu.Lock()
	m.metaBytes = b
	m.metaMu.Unlock()
	// Half the time at most for the flag, so the leave itself gets the rest.
	flagWait, leaveWait := timeout/2, time.Duration(0)
	if timeout > 0 {
		leaveWait = max(time.Until(deadline), time.Millisecond)
	}
	if err := m.ml.UpdateNode(flagWait); err != nil {
		m.log.Warn("leaving flag not confirmed sent; leaving anyway", "err", err)
	}
	if err := m.ml.Leave(leaveWait); err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	m.log.Info("left the cluster")
	return nil
}

// Shutdown stops gossip without announcing anything (others will report
// MemberFailed unless Leave came first), stops the re-join loop, and closes
// the Events channel. It waits for this package's goroutines; memberlist's
// own end shortly after. Safe to call more than once.
func (m *Membership) Shutdown() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.shut {
		return nil
	}
	m.shut = true
	m.endRejoin()
	err := m.ml.Shutdown()
	m.queue.close()
	if err != nil {
		return fmt.Errorf("cluster: shutdown: %w", err)
	}
	return nil
}

// endRejoin stops the re-join loop and waits for it, so that no Join runs
// after a leave or during a shutdown. Call with lifeMu held.
func (m *Membership) endRejoin() {
	m.stopRejoin()
	<-m.rejoinEnded
}
