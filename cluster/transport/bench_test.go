package transport

import (
	"sync"
	"testing"
	"time"

	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/cluster/wire"
)

// BenchmarkReduceChunk1MiB measures how fast 1 MiB ReduceChunk frames
// cross from this process to a peer process through actor messages, with
// up to window frames unacknowledged. It is the figure to hold against
// cluster/collective's streams, which carry the bulk data plane because
// actor messages cannot keep up.
//
// A process may host one remote in its lifetime (see inOwnProcess), and
// the benchmark function runs several times, so the node and its peer are
// started once and shared.
func BenchmarkReduceChunk1MiB(b *testing.B) {
	const window = 8
	n, peer := benchNode(b)
	acks := n.acks
	data := make(wire.Floats, wire.DefaultChunkBytes/4)
	for i := range data {
		data[i] = float32(i)
	}
	b.SetBytes(wire.DefaultChunkBytes)
	b.ResetTimer()
	inFlight := 0
	for i := range b.N {
		if inFlight == window {
			<-acks
			inFlight--
		}
		msg := &wire.ReduceChunk{Header: wire.Header{From: "bench"}, Op: wire.OpReduceScatter,
			ChunkIndex: i, Offset: 0, Data: data}
		if err := n.Send(peer, msg); err != nil {
			b.Fatal(err)
		}
		inFlight++
	}
	for ; inFlight > 0; inFlight-- {
		select {
		case <-acks:
		case <-time.After(30 * time.Second):
			b.Fatal("acknowledgements stopped")
		}
	}
}

type benchTransport struct {
	*Transport
	acks chan int64
}

var bench struct {
	once sync.Once
	node *benchTransport
	peer *helper
	err  error
}

// benchNode starts the shared node and its peer on first use. They live
// until the process exits; TestMain closes the node before its leak check.
func benchNode(b *testing.B) (*benchTransport, string) {
	bench.once.Do(func() {
		key, err := cluster.GenerateKey()
		if err != nil {
			bench.err = err
			return
		}
		server, client, err := cluster.TLSConfigs(key, "bench")
		if err != nil {
			bench.err = err
			return
		}
		acks := make(chan int64, 64)
		tr, err := Start(Config{TLS: TLS{Server: server, Client: client}, Handler: func(d Delivery) {
			if a, ok := d.Message.(*wire.Ack); ok {
				acks <- a.Cursor
			}
		}})
		if err != nil {
			bench.err = err
			return
		}
		bench.node = &benchTransport{Transport: tr, acks: acks}
		bench.peer = launchHelper(b, modeReply, key, tr.Address(), "sink")
		tr.SetPeers([]string{bench.peer.addr})
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.node, bench.peer.addr
}

// closeBench stops what benchNode started, if it ran.
func closeBench() {
	if bench.node == nil {
		return
	}
	bench.peer.stop()
	bench.node.Close()
}
