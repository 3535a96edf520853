package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config says how a node takes part in gossip membership. Start from
// DefaultConfig or LocalConfig and change what differs; a zero Config is not
// valid. Start copies it, so changing it afterwards has no effect.
type Config struct {
	// BindAddr is the IP address memberlist listens on, for UDP and TCP alike.
	// Default "0.0.0.0" (every interface), so that a node is reachable on a LAN
	// without knowing its address in advance. Binding to anything but a
	// loopback address requires a cluster key unless Insecure is set.
	BindAddr string

	// BindPort is the UDP and TCP port memberlist listens on. Default 7946,
	// memberlist's usual port, so firewall rules written for it apply. 0 picks
	// a free port, which is what tests and several nodes on one host want.
	BindPort int

	// AdvertiseAddr is the IP address other nodes use to reach this one. Empty
	// means the bound address, or a private address of this host when bound
	// to every interface. Set it behind NAT or in containers, where the bound
	// address is not the reachable one.
	AdvertiseAddr string

	// AdvertisePort is the port other nodes use to reach this one. 0 means the
	// bound port; set it only when a port is forwarded.
	AdvertisePort int

	// Seeds are "host:port" addresses of nodes to join. Any one live member is
	// enough: gossip tells the rest. Empty starts a new cluster that others
	// join.
	Seeds []string

	// RejoinInterval is how often the seeds are joined again once a join has
	// succeeded. memberlist does not heal a partition by itself: two halves
	// that each declared the other dead stay apart until one of them talks to
	// the other again, and a push-pull with a seed is that conversation. Each
	// re-join costs one TCP state exchange per seed. Default 30 s, the same as
	// memberlist's push-pull period: a partition heals within about a minute
	// at a cost that does not grow with the cluster.
	RejoinInterval time.Duration

	// JoinRetryInterval is the first delay between join attempts while no
	// seed has answered yet; it doubles after each failure up to
	// RejoinInterval. Default 1 s: a node started before its seeds joins
	// soon after they come up without hammering an address that is down.
	JoinRetryInterval time.Duration

	// Key is the shared cluster key (16, 24 or 32 bytes: AES-128, -192 or
	// -256) that encrypts and authenticates all gossip. When empty the key is
	// read with LoadKey(KeyFile), so from KeyFile or from the
	// TROUPE_CLUSTER_KEY environment variable. Every member needs the same
	// key; a node with another key or none cannot join.
	Key []byte

	// KeyFile names a file holding the cluster key in base64 (see LoadKey).
	// It takes precedence over TROUPE_CLUSTER_KEY. Ignored when Key is set.
	KeyFile string

	// Insecure allows running without a cluster key on a non-loopback
	// address: gossip then travels in clear text and anyone who can reach the
	// port can join. Default false. It only permits a missing key; a key that
	// is found is still used.
	Insecure bool

	// Meta is what this node tells the others about itself. Start fills in
	// Incarnation and Protocol; the caller sets RemoteAddr, DataAddr, Device
	// and Capacity. Each string must keep to its limit (MetaMaxAddrLen,
	// MetaMaxDeviceLen), and DataAddr must be empty or a "host:port".
	Meta Meta

	// Logger receives memberlist's log lines, mapped to slog levels, and this
	// package's own. Nil discards them.
	Logger *slog.Logger

	// ProbeInterval is how often this node probes one random member for
	// liveness. Shorter detects failures sooner but sends more packets and
	// suspects nodes that are merely slow. Default 1 s (memberlist's LAN
	// value).
	ProbeInterval time.Duration

	// ProbeTimeout is how long a direct probe waits for an ack before indirect
	// probes through other members start. It must exceed the network's round
	// trip time by a margin. Default 500 ms, a generous LAN round trip.
	ProbeTimeout time.Duration

	// SuspicionMult scales how long a suspected node has to refute the
	// suspicion before it is declared failed: at least
	// SuspicionMult * max(1, log10(members)) * ProbeInterval. Higher means
	// fewer false failures and slower detection. Default 4 (memberlist's LAN
	// value, about 4 s in a small cluster).
	SuspicionMult int

	// SuspicionMaxTimeoutMult bounds the suspicion timeout from above, as a
	// multiple of its minimum; the timeout starts at the maximum and falls
	// toward the minimum as other members confirm the suspicion. Default 6
	// (memberlist's LAN value). 1 makes the timeout fixed.
	SuspicionMaxTimeoutMult int

	// GossipInterval is how often queued updates (joins, leaves, suspicions)
	// are gossiped to a few random members. Shorter spreads news faster at
	// the cost of more packets. Default 200 ms (memberlist's LAN value).
	GossipInterval time.Duration

	// PushPullInterval is how often this node exchanges its full state with
	// one random member, repairing what gossip missed. Default 30 s
	// (memberlist's LAN value): the exchange is a TCP round trip carrying the
	// whole member list.
	PushPullInterval time.Duration

	// TCPTimeout bounds one TCP exchange (a join, a push-pull, a TCP probe).
	// It also bounds how long a join to a dead seed may block. Default 10 s
	// (memberlist's LAN value).
	TCPTimeout time.Duration
}

// DefaultConfig returns a configuration for a LAN: memberlist's LAN
// timings, listening on every interface at port 7946, encryption required.
func DefaultConfig() Config {
	return Config{
		BindAddr:                "0.0.0.0",
		BindPort:                7946,
		RejoinInterval:          30 * time.Second,
		JoinRetryInterval:       time.Second,
		ProbeInterval:           time.Second,
		ProbeTimeout:            500 * time.Millisecond,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 6,
		GossipInterval:          200 * time.Millisecond,
		PushPullInterval:        30 * time.Second,
		TCPTimeout:              10 * time.Second,
		Meta:                    Meta{Device: DeviceCPU},
	}
}

// LocalConfig returns DefaultConfig changed for nodes on one host: loopback,
// a free port, and timings short enough that a failure in a small cluster is
// detected well under a second (see FailureDetectionBound). A loopback round
// trip takes microseconds, so the tight probe timeout costs nothing there;
// on a real network it would turn every hiccup into a failure.
func LocalConfig() Config {
	c := DefaultConfig()
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.RejoinInterval = 250 * time.Millisecond // heal within a test's patience
	c.JoinRetryInterval = 50 * time.Millisecond
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.SuspicionMult = 3
	c.SuspicionMaxTimeoutMult = 1 // few members confirm anything; do not wait for them
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
	c.TCPTimeout = time.Second
	return c
}

// FailureDetectionBound is an upper estimate of how long the members of a
// cluster of n nodes take to report a node that stopped without leaving: the
// time until some member probes it ((n-1) probe intervals in memberlist's
// round robin), one failed probe round, the longest suspicion timeout, and a
// few gossip rounds to spread the verdict. Under CPU starvation memberlist
// stretches its probe timeouts (Lifeguard), so this is an estimate for a
// healthy host, not a guarantee.
func (c Config) FailureDetectionBound(n int) time.Duration {
	n = max(n, 2)
	scale := 1.0
	for m := n; m >= 10; m /= 10 {
		scale++ // max(1, log10(n)), rounded up
	}
	suspicion := time.Duration(float64(c.SuspicionMult*c.SuspicionMaxTimeoutMult) * scale * float64(c.ProbeInterval))
	return time.Duration(n-1)*c.ProbeInterval + c.ProbeInterval + suspicion + 3*c.GossipInterval
}

// ErrInvalidConfig is returned, wrapped with the offending field, by Start for a
// Config whose values make no sense.
var ErrInvalidConfig = errors.New("cluster: invalid config")

// validate rejects values memberlist would misbehave with, naming the field.
func (c *Config) validate() error {
	bad := func(field string, v any) error {
		return fmt.Errorf("%w: %s = %v", ErrInvalidConfig, field, v)
	}
	switch {
	case c.BindAddr == "":
		return bad("BindAddr", `""`)
	case c.BindPort < 0 || c.BindPort > 65535:
		return bad("BindPort", c.BindPort)
	case c.AdvertisePort < 0 || c.AdvertisePort > 65535:
		return bad("AdvertisePort", c.AdvertisePort)
	case c.RejoinInterval <= 0:
		return bad("RejoinInterval", c.RejoinInterval)
	case c.JoinRetryInterval <= 0:
		return bad("JoinRetryInterval", c.JoinRetryInterval)
	case c.ProbeInterval <= 0:
		return bad("ProbeInterval", c.ProbeInterval)
	case c.ProbeTimeout <= 0 || c.ProbeTimeout >= c.ProbeInterval:
		return bad("ProbeTimeout (must be in (0, ProbeInterval))", c.ProbeTimeout)
	case c.SuspicionMult < 1:
		return bad("SuspicionMult", c.SuspicionMult)
	case c.SuspicionMaxTimeoutMult < 1:
		return bad("SuspicionMaxTimeoutMult", c.SuspicionMaxTimeoutMult)
	case c.GossipInterval <= 0:
		return bad("GossipInterval", c.GossipInterval)
	case c.PushPullInterval <= 0:
		return bad("PushPullInterval", c.PushPullInterval)
	case c.TCPTimeout <= 0:
		return bad("TCPTimeout", c.TCPTimeout)
	}
	return nil
}
