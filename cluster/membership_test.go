package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	testKey  = bytes.Repeat([]byte{0x5a}, 32)
	otherKey = bytes.Repeat([]byte{0xa5}, 32)
)

// checkLeaks registers a goroutine leak check that runs after every other
// cleanup of t, so after the nodes it started are shut down.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// testConfig is LocalConfig with the test key and the given seeds.
func testConfig(key []byte, seeds ...string) Config {
	c := LocalConfig()
	c.Key = key
	c.Seeds = seeds
	c.Meta = Meta{RemoteAddr: "127.0.0.1:9000", DataAddr: "127.0.0.1:9001", Device: DeviceCPU, Capacity: 100}
	return c
}

// node is a started Membership and every event it has reported so far.
type node struct {
	*Membership
	seen []Event
}

// start starts a node that is shut down when the test ends.
func start(t *testing.T, cfg Config) *node {
	t.Helper()
	m, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return &node{Membership: m}
}

func (n *node) addr() string { return n.Local().Addr }

// find returns the first event n has reported so far that match accepts.
func (n *node) find(match func(Event) bool) (Event, bool) {
	for _, e := range n.seen {
		if match(e) {
			return e, true
		}
	}
	return nil, false
}

// read records events until one that match accepts or until the deadline.
func (n *node) read(deadline <-chan time.Time, match func(Event) bool) (Event, bool) {
	if e, ok := n.find(match); ok {
		return e, true
	}
	for {
		select {
		case e, ok := <-n.Events():
			if !ok {
				return nil, false
			}
			n.seen = append(n.seen, e)
			if match(e) {
				return e, true
			}
		case <-deadline:
			return nil, false
		}
	}
}

// await fails the test unless n reports an event that match accepts, or has
// already, within the given time. It returns that event.
func await(t *testing.T, n *node, within time.Duration, what string, match func(Event) bool) Event {
	t.Helper()
	e, ok := n.read(time.After(within), match)
	if !ok {
		t.Fatalf("%s: no %s within %v", n.Name(), what, within)
	}
	return e
}

// never fails the test if n reports an event that match accepts, or has
// already, while it watches for window.
func never(t *testing.T, n *node, window time.Duration, what string, match func(Event) bool) {
	t.Helper()
	if e, ok := n.read(time.After(window), match); ok {
		t.Fatalf("%s: unexpected %s: %#v", n.Name(), what, e)
	}
}

func joinedNamed(name string) func(Event) bool {
	return func(e Event) bool { j, ok := e.(MemberJoined); return ok && j.Node.Name == name }
}

func joinedOther(self string) func(Event) bool {
	return func(e Event) bool { j, ok := e.(MemberJoined); return ok && j.Node.Name != self }
}

// departed matches a Left or Failed event about name.
func departed(name string) func(Event) bool {
	return func(e Event) bool {
		switch e := e.(type) {
		case MemberLeft:
			return e.Node.Name == name
		case MemberFailed:
			return e.Node.Name == name
		}
		return false
	}
}

// joinWait is generous: a join on loopback takes about 0.1 s.
const joinWait = 5 * time.Second

// startCluster starts n nodes joined through the first and waits until every
// node has seen every other.
func startCluster(t *testing.T, n int) []*node {
	t.Helper()
	seed := start(t, testConfig(testKey))
	nodes := []*node{seed}
	for range n - 1 {
		nodes = append(nodes, start(t, testConfig(testKey, seed.addr())))
	}
	for _, m := range nodes {
		for _, other := range nodes {
			if other != m {
				await(t, m, joinWait, "join of "+other.Name(), joinedNamed(other.Name()))
			}
		}
	}
	return nodes
}

func TestThreeNodesJoinThroughOneSeed(t *testing.T) {
	checkLeaks(t)
	nodes := startCluster(t, 3)
	for _, m := range nodes {
		members := m.Members()
		if len(members) != 3 {
			t.Fatalf("%s sees %d members, want 3", m.Name(), len(members))
		}
		for _, other := range nodes {
			i := indexOf(members, other.Name())
			if i < 0 {
				t.Fatalf("%s does not list %s", m.Name(), other.Name())
			}
			got := members[i]
			if !got.MetaValid || got.Meta != other.Local().Meta {
				t.Errorf("%s sees meta %+v of %s, want %+v", m.Name(), got.Meta, other.Name(), other.Local().Meta)
			}
			if got.Meta.Incarnation != other.Incarnation() || got.Meta.Protocol != ProtocolVersion {
				t.Errorf("meta of %s: incarnation %x protocol %d, want %x %d",
					other.Name(), got.Meta.Incarnation, got.Meta.Protocol, other.Incarnation(), ProtocolVersion)
			}
			if want := testConfig(nil).Meta.DataAddr; got.Meta.DataAddr != want {
				t.Errorf("meta of %s: data address %q, want %q", other.Name(), got.Meta.DataAddr, want)
			}
		}
	}
}

func indexOf(nodes []Node, name string) int {
	for i, n := range nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

func TestNodeNameIsAddressAndIncarnation(t *testing.T) {
	checkLeaks(t)
	m := start(t, testConfig(testKey))
	want := fmt.Sprintf("%s/%016x", m.addr(), m.Incarnation())
	if m.Name() != want || m.Local().Name != want {
		t.Fatalf("name %q, want %q", m.Name(), want)
	}
	if m.Local().Meta.Incarnation != m.Incarnation() {
		t.Fatalf("meta incarnation %x, want %x", m.Local().Meta.Incarnation, m.Incarnation())
	}
}

func TestGracefulLeaveIsReportedAsLeft(t *testing.T) {
	checkLeaks(t)
	nodes := startCluster(t, 3)
	leaver := nodes[2]
	if err := leaver.Leave(joinWait); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := leaver.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, m := range nodes[:2] {
		e := await(t, m, joinWait, "departure of "+leaver.Name(), departed(leaver.Name()))
		if _, ok := e.(MemberLeft); !ok {
			t.Errorf("%s reported %T for a graceful leave, want MemberLeft", m.Name(), e)
		}
	}
	if err := leaver.Leave(time.Second); !errors.Is(err, ErrShutdown) {
		t.Errorf("Leave after Shutdown: %v, want ErrShutdown", err)
	}
}

func TestCrashIsReportedAsFailedInTime(t *testing.T) {
	checkLeaks(t)
	nodes := startCluster(t, 3)
	victim := nodes[2]
	bound := LocalConfig().FailureDetectionBound(3)
	if bound >= time.Second {
		t.Fatalf("LocalConfig detects failures in up to %v, want under 1 s", bound)
	}
	stopped := time.Now()
	if err := victim.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, m := range nodes[:2] {
		// Thrice the bound: -race and a busy host slow everything down.
		e := await(t, m, 3*bound, "failure of "+victim.Name(), departed(victim.Name()))
		if _, ok := e.(MemberFailed); !ok {
			t.Errorf("%s reported %T for a crash, want MemberFailed", m.Name(), e)
		}
		t.Logf("%s reported the failure after %v (bound %v)", m.Name(), time.Since(stopped), bound)
	}
}

func TestForeignNodeCannotJoin(t *testing.T) {
	cases := []struct {
		name string
		key  []byte
	}{
		{"wrong key", otherKey},
		{"no key", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			t.Setenv(KeyEnv, "") // no key really means none
			nodes := startCluster(t, 2)
			cfg := testConfig(tc.key, nodes[0].addr())
			intruder := start(t, cfg)
			if n, err := intruder.Join(); err == nil {
				t.Fatalf("Join succeeded with %d seeds", n)
			}
			// Several re-join rounds go by; neither side may see the other.
			window := 4 * cfg.RejoinInterval
			never(t, intruder, window, "join of a member", joinedOther(intruder.Name()))
			for _, m := range nodes {
				never(t, m, cfg.RejoinInterval, "join of the intruder", joinedNamed(intruder.Name()))
				if i := indexOf(m.Members(), intruder.Name()); i >= 0 {
					t.Fatalf("%s lists the intruder", m.Name())
				}
			}
			if got := len(intruder.Members()); got != 1 {
				t.Fatalf("intruder sees %d members, want only itself", got)
			}
		})
	}
}

func TestNonLoopbackWithoutKeyIsRefused(t *testing.T) {
	checkLeaks(t)
	t.Setenv(KeyEnv, "")
	cfg := LocalConfig()
	cfg.BindAddr = "0.0.0.0"
	_, err := Start(cfg)
	if !errors.Is(err, ErrKeyRequired) {
		t.Fatalf("Start: %v, want ErrKeyRequired", err)
	}
	for _, hint := range []string{KeyEnv, "KeyFile", "Insecure"} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("error %q does not mention %s", err, hint)
		}
	}
}

func TestStartRefusesBadDataAddr(t *testing.T) {
	checkLeaks(t)
	cfg := testConfig(testKey)
	cfg.Meta.DataAddr = "127.0.0.1" // no port: peers could not dial it
	if m, err := Start(cfg); !errors.Is(err, ErrMetaCorrupt) {
		if err == nil {
			m.Shutdown()
		}
		t.Fatalf("Start: %v, want ErrMetaCorrupt", err)
	}
}

func TestResolveKey(t *testing.T) {
	t.Setenv(KeyEnv, "")
	cases := []struct {
		name     string
		bind     string
		key      []byte
		insecure bool
		wantKey  bool
		wantErr  error
	}{
		{"loopback without key", "127.0.0.1", nil, false, false, nil},
		{"ipv6 loopback without key", "::1", nil, false, false, nil},
		{"any address without key", "0.0.0.0", nil, false, false, ErrKeyRequired},
		{"public address without key", "192.0.2.7", nil, false, false, ErrKeyRequired},
		{"host name without key", "localhost", nil, false, false, ErrKeyRequired},
		{"any address insecure", "0.0.0.0", nil, true, false, nil},
		{"any address with key", "0.0.0.0", testKey, false, true, nil},
		{"bad key length", "0.0.0.0", testKey[:10], false, false, ErrKeyLength},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := LocalConfig()
			cfg.BindAddr, cfg.Key, cfg.Insecure = tc.bind, tc.key, tc.insecure
			key, err := resolveKey(cfg)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if (key != nil) != tc.wantKey {
				t.Fatalf("key %x, want key: %v", key, tc.wantKey)
			}
		})
	}
}

func TestRestartedNodeIsANewMember(t *testing.T) {
	checkLeaks(t)
	nodes := startCluster(t, 2)
	seed, old := nodes[0], nodes[1]
	_, portText, _ := net.SplitHostPort(old.addr())
	port, _ := strconv.Atoi(portText)
	if err := old.Shutdown(); err != nil { // a crash: no leave
		t.Fatalf("Shutdown: %v", err)
	}
	cfg := testConfig(testKey, seed.addr())
	cfg.BindPort = port
	reborn := start(t, cfg)
	if reborn.addr() != old.addr() || reborn.Name() == old.Name() || reborn.Incarnation() == old.Incarnation() {
		t.Fatalf("restart: %s (%s) after %s (%s): want same address, new name",
			reborn.Name(), reborn.addr(), old.Name(), old.addr())
	}
	await(t, seed, joinWait, "join of the restarted node", joinedNamed(reborn.Name()))
	await(t, reborn, joinWait, "join of the seed", joinedNamed(seed.Name()))
	// The old incarnation is gone for good, though its address lives on.
	await(t, seed, joinWait, "failure of the old incarnation", departed(old.Name()))
	if indexOf(seed.Members(), reborn.Name()) < 0 {
		t.Fatalf("seed no longer lists the restarted node")
	}
}

// freePort returns a loopback port that was free for TCP and UDP a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			_ = u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func TestRejoinLoopJoinsASeedThatStartsLate(t *testing.T) {
	checkLeaks(t)
	port := freePort(t)
	seedAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	early := start(t, testConfig(testKey, seedAddr))
	if n, err := early.Join(); err == nil {
		t.Fatalf("Join of an absent seed succeeded (%d)", n)
	}
	cfg := testConfig(testKey)
	cfg.BindPort = port
	late := start(t, cfg)
	// The retry delay has reached at most RejoinInterval by now.
	within := 4 * cfg.RejoinInterval
	await(t, early, within, "join of the late seed", joinedNamed(late.Name()))
	await(t, late, within, "join of the early node", joinedNamed(early.Name()))
}

func TestEventsClosedByShutdown(t *testing.T) {
	checkLeaks(t)
	m := start(t, testConfig(testKey))
	await(t, m, joinWait, "own join", joinedNamed(m.Name()))
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := m.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, ok := <-m.Events(); ok {
		t.Fatal("Events still open after Shutdown")
	}
}
