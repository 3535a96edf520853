package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"

	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/cluster/wire"
)

// TestMain checks for leaked goroutines once the benchmark's shared node,
// if any, is closed. A closed transport leaves none of its own or of its
// libraries behind, so nothing is ignored.
func TestMain(m *testing.M) {
	code := m.Run()
	closeBench()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// node is the test process's own transport, with its deliveries on a channel.
type node struct {
	*Transport
	got chan Delivery
	key []byte
}

// testCredentials makes a fresh cluster key and this node's TLS configs from it.
func testCredentials(t *testing.T) (key []byte, server, client *tls.Config) {
	t.Helper()
	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	server, client, err = cluster.TLSConfigs(key, "test")
	if err != nil {
		t.Fatal(err)
	}
	return key, server, client
}

// startNode starts a transport on loopback with a fresh cluster key; it is
// closed, and checked for leaked goroutines, when t ends.
func startNode(t *testing.T) *node {
	t.Helper()
	before := goleak.IgnoreCurrent()
	key, server, client := testCredentials(t)
	got := make(chan Delivery, 64)
	tr, err := Start(Config{TLS: TLS{Server: server, Client: client}, Inbox: got, Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
		goleak.VerifyNone(t, before)
	})
	return &node{Transport: tr, got: got, key: key}
}

// receive waits up to timeout for the next delivery.
func (n *node) receive(t *testing.T, timeout time.Duration) Delivery {
	t.Helper()
	select {
	case d := <-n.got:
		return d
	case <-time.After(timeout):
		t.Fatalf("nothing delivered within %v (stats %+v)", timeout, n.Stats())
	}
	return Delivery{}
}

func TestRoundTripOverTLS(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	n := startNode(t)
	h := startHelper(t, modeReply, n.key, n.Address(), "echo")
	n.SetPeers([]string{h.addr})

	sent := []wire.Message{
		&wire.Propose{Header: wire.Header{Generation: 3, Step: 7, Incarnation: 11, From: "a"},
			World: wire.World{Generation: 3, Members: []string{"a", "b"}, StartStep: 7}},
		&wire.Ack{Header: wire.Header{Generation: 3, From: "a"}, Generation: 3, Accept: true, Cursor: 7},
		&wire.JobSpec{Header: wire.Header{From: "a"}, YAML: []byte("steps: 10\n")},
	}
	for _, m := range sent {
		if err := n.Send(h.addr, m); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range sent {
		d := n.receive(t, 10*time.Second)
		if d.From != h.addr {
			t.Errorf("message %d from %q, want %q", i, d.From, h.addr)
		}
		if !reflect.DeepEqual(d.Message, want) {
			t.Errorf("message %d came back as %#v, want %#v", i, d.Message, want)
		}
	}
}

// A burst of chunks of the default chunk size fills whole writer batches:
// together they exceed gRPC's default 4 MiB receive limit, which would kill
// the endpoint if the limit had not been raised.
func TestLargeStateChunksGetThrough(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	n := startNode(t)
	h := startHelper(t, modeReply, n.key, n.Address(), "echo")
	n.SetPeers([]string{h.addr})

	const chunks = 2 * writerBatchSize
	floats := wire.DefaultChunkBytes / 4
	rng := rand.New(rand.NewPCG(1, 1))
	sent := make([]*wire.StateChunk, chunks)
	for i := range sent {
		data := make(wire.Floats, floats)
		for j := range data {
			data[j] = math.Float32frombits(rng.Uint32())
		}
		sent[i] = &wire.StateChunk{Header: wire.Header{From: "a", Step: int64(i)}, Part: wire.PartParams,
			Offset: i * floats, Total: chunks * floats, Data: data}
		if err := n.Send(h.addr, sent[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range sent {
		got, ok := n.receive(t, 20*time.Second).Message.(*wire.StateChunk)
		if !ok {
			t.Fatalf("chunk %d: got another message type", i)
		}
		if got.Offset != want.Offset || len(got.Data) != len(want.Data) {
			t.Fatalf("chunk %d: offset %d, %d floats; want %d, %d", i, got.Offset, len(got.Data), want.Offset, len(want.Data))
		}
		for j := range want.Data {
			if math.Float32bits(got.Data[j]) != math.Float32bits(want.Data[j]) {
				t.Fatalf("chunk %d float %d: %x, want %x", i, j, math.Float32bits(got.Data[j]), math.Float32bits(want.Data[j]))
			}
		}
	}
}

// A node with another cluster key cannot deliver anything, while a node
// with the right key, started at the same time, can.
func TestOtherKeyCannotDeliver(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	n := startNode(t)
	otherKey, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	intruder := startHelper(t, modeSend, otherKey, n.Address(), "intruder")
	friend := startHelper(t, modeSend, n.key, n.Address(), "friend")
	for _, h := range []*helper{intruder, friend} {
		if line := h.next(t, 10*time.Second); line != "sent" {
			t.Fatalf("helper said %q, want sent", line)
		}
	}

	// The friend's message is the positive control. After it, wait a while
	// longer: the intruder sent first, so it had at least that long.
	deadline := time.After(2 * time.Second)
	sawFriend := false
	for !sawFriend {
		select {
		case d := <-n.got:
			if from := d.Message.(*wire.StepDone).From; from != "friend" {
				t.Fatalf("delivered a message from %q", from)
			}
			sawFriend = true
		case <-time.After(10 * time.Second):
			t.Fatal("the node with the right key could not deliver either")
		}
	}
	select {
	case d := <-n.got:
		t.Fatalf("delivered %#v after the friend's message", d.Message)
	case <-deadline:
	}
	if s := n.Stats(); s.Delivered != 1 || s.Malformed != 0 || s.Foreign != 0 {
		t.Errorf("stats %+v, want exactly one delivery", s)
	}
	// The intruder's endpoint keeps retrying for about 10 s, and a graceful
	// Close would wait for it; it has nothing left to show.
	intruder.kill()
}

func TestMalformedFramesAreCountedAndDropped(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	n := startNode(t)
	h := startHelper(t, modeGarble, n.key, n.Address(), "garble")
	if line := h.next(t, 10*time.Second); line != "sent" {
		t.Fatalf("helper said %q, want sent", line)
	}
	// The valid frame was sent last, on the same ordered endpoint.
	d := n.receive(t, 10*time.Second)
	if _, ok := d.Message.(*wire.StepDone); !ok {
		t.Fatalf("delivered %#v, want the StepDone", d.Message)
	}
	if want := (Stats{Delivered: 1, Malformed: 1, Foreign: 1}); n.Stats() != want {
		t.Errorf("stats %+v, want %+v", n.Stats(), want)
	}
	if _, err := wire.Decode(garbage); err == nil {
		t.Error("the garbage frame decodes: the test sends nothing malformed")
	}
}

func TestSendGate(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	n := startNode(t)
	const stranger = "127.0.0.1:9"
	msg := &wire.StepDone{Header: wire.Header{From: "a"}}

	// Nobody listens at stranger: a send protoactor accepted would retry
	// for seconds. Through the gate, it must fail at once.
	start := time.Now()
	if err := n.Send(stranger, msg); !errors.Is(err, ErrNotPeer) {
		t.Fatalf("send to a non-peer: %v, want ErrNotPeer", err)
	}
	// Not a speed test: the bound only tells "refused at the gate" (microseconds) from
	// "queued and retried" (protoactor retries an unreachable address for about 10 s), with
	// room for a loaded machine under -race.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusing a non-peer took %v", d)
	}

	n.SetPeers([]string{stranger})
	if err := n.Send(stranger, &wire.StepDone{Header: wire.Header{Step: -1}}); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("send of an invalid message to a peer: %v, want wire.ErrMalformed", err)
	}
	n.PeerGone(stranger)
	if got := n.Peers(); len(got) != 0 {
		t.Errorf("peers after PeerGone: %v, want none", got)
	}
	if err := n.Send(stranger, msg); !errors.Is(err, ErrNotPeer) {
		t.Errorf("send after PeerGone: %v, want ErrNotPeer", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Send(stranger, msg); !errors.Is(err, ErrClosed) {
		t.Errorf("send after Close: %v, want ErrClosed", err)
	}
}

// watcher watches one PID and reports the Terminated it receives.
type watcher struct {
	target     *actor.PID
	watching   chan struct{}
	terminated chan *actor.Terminated
}

func (w *watcher) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Watch(w.target)
		close(w.watching)
	case *actor.Terminated:
		w.terminated <- m
	}
}

// The peer stays up and connected: only PeerGone can tell the watcher.
func TestPeerGoneTerminatesWatchers(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	n := startNode(t)
	h := startHelper(t, modeReply, n.key, n.Address(), "echo")
	n.SetPeers([]string{h.addr})
	if err := n.Send(h.addr, &wire.StepDone{Header: wire.Header{From: "a"}}); err != nil {
		t.Fatal(err)
	}
	n.receive(t, 10*time.Second) // the endpoint is up

	w := &watcher{target: actor.NewPID(h.addr, InboxName), watching: make(chan struct{}),
		terminated: make(chan *actor.Terminated, 1)}
	pid := n.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return w }))
	defer n.system.Root.Stop(pid)
	<-w.watching

	select {
	case m := <-w.terminated:
		t.Fatalf("Terminated %v before PeerGone", m)
	case <-time.After(200 * time.Millisecond):
	}
	start := time.Now()
	n.PeerGone(h.addr)
	select {
	case m := <-w.terminated:
		if m.Why != actor.TerminatedReason_AddressTerminated || m.Who.GetAddress() != h.addr {
			t.Errorf("Terminated %v, want AddressTerminated of %s", m, h.addr)
		}
		t.Logf("Terminated %v after PeerGone", time.Since(start))
	case <-time.After(5 * time.Second): // it takes milliseconds; the bound only tells "never"
		t.Fatal("no Terminated within 5 s of PeerGone")
	}

	// The peer still counts the watcher as its own: a graceful shutdown
	// would send it a Terminated, for which protoactor dials the departed
	// address again. A departed node is gone, so kill it.
	h.kill()
}

func TestConfigValidation(t *testing.T) {
	_, server, client := testCredentials(t)
	handler := func(Delivery) {}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no handler", Config{Insecure: true}},
		{"handler and inbox", Config{Insecure: true, Handler: handler, Inbox: make(chan Delivery)}},
		{"no TLS", Config{Handler: handler}},
		{"half TLS", Config{Handler: handler, TLS: TLS{Server: server}}},
		{"insecure with TLS", Config{Handler: handler, Insecure: true, TLS: TLS{Server: server, Client: client}}},
		{"port out of range", Config{Handler: handler, Insecure: true, Port: 70000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tr, err := Start(tt.cfg); !errors.Is(err, ErrConfig) {
				if err == nil {
					tr.Close()
				}
				t.Errorf("Start: %v, want ErrConfig", err)
			}
		})
	}
}

// With AdvertiseHost and port 0, Start picks the port itself so that the
// advertised address can name it.
func TestAdvertisedAddressNamesThePort(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	before := goleak.IgnoreCurrent()
	tr, err := Start(Config{Insecure: true, Host: "127.0.0.1", AdvertiseHost: "localhost", Handler: func(Delivery) {}})
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(tr.Address())
	if err != nil || host != "localhost" || port == "0" {
		t.Errorf("Address() = %q (%v), want localhost and a real port", tr.Address(), err)
	}
	if err := tr.Close(); err != nil {
		t.Error(err)
	}
	goleak.VerifyNone(t, before)
}
