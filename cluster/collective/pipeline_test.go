package collective

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/troupe-ml/troupe/cluster"
)

// ringOrderSum is the all-reduce written out plainly: element i lies in segment j, whose
// partial sum starts at rank j and goes round the ring, each rank adding its own value to
// what it received. Which NaN a sum of two NaNs gives is left to the hardware and the
// compiler (Go's + is commutative), so sameSum treats all NaNs alike.
func ringOrderSum(in [][]float32) []float32 {
	size, n := len(in), len(in[0])
	out := make([]float32, n)
	for j := range size {
		lo, hi := segment(n, size, j)
		for i := lo; i < hi; i++ {
			acc := in[j][i]
			for t := 1; t < size; t++ {
				acc = in[(j+t)%size][i] + acc
			}
			out[i] = acc
		}
	}
	return out
}

// The pipelined ring gives, bit for bit, the sum in the ring's order on every rank: with odd
// lengths, lengths below the world size, chunks that do not divide segments, and random bits
// (NaNs, infinities, zeros of both signs) included; through the raw system calls, the streams'
// own Read and Write, and the portable (big-endian) conversions.
func TestAllReduceEqualsTheRingOrderSum(t *testing.T) {
	defer goleak.VerifyNone(t)
	type config struct{ size, n, chunk int }
	configs := []config{
		{2, 0, 0}, {3, 1, 0}, {4, 1, 1}, {4, 3, 1}, {2, 1, 0}, {2, 1001, 7}, {3, 10_007, 64},
		{4, 10_007, 333}, {5, 4099, 1}, {4, 70_001, 0}, {3, 100_003, 4096}, {2, 300_001, 40_000},
	}
	paths := []struct {
		name         string
		raw, littleE bool
	}{{"raw", true, true}, {"stream", false, true}, {"portable", false, false}, {"raw-portable", true, false}}
	for _, path := range paths {
		for _, c := range configs {
			t.Run(fmt.Sprintf("%s/ranks=%d/n=%d/chunk=%d", path.name, c.size, c.n, c.chunk), func(t *testing.T) {
				oldRaw, oldLE := useRaw, littleEndian
				useRaw, littleEndian = path.raw, path.littleE
				defer func() { useRaw, littleEndian = oldRaw, oldLE }()
				links, closeAll := world(t, c.size, 1)
				defer closeAll()
				in := randomInputs(links, c.n, c.chunk)
				for step := range int64(2) { // twice: the second run reuses the ring's buffers
					checkRingSum(t, links, Stamp{Generation: 1, Step: step}, in)
				}
			})
		}
	}
}

// Over mutually authenticated TLS the ring gives the same bits as over plain TCP.
func TestAllReduceOverTLS(t *testing.T) {
	defer goleak.VerifyNone(t)
	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	links, closeAll := tlsWorld(t, key, 3)
	defer closeAll()
	checkRingSum(t, links, Stamp{Generation: 1, Step: 1}, randomInputs(links, 20_011, 1000))
}

// randomInputs draws each rank's vector and sets the links' chunk size.
func randomInputs(links []*Link, n, chunk int) [][]float32 {
	rng := rand.New(rand.NewPCG(uint64(len(links)), uint64(n)))
	in := make([][]float32, len(links))
	for r := range in {
		links[r].ChunkFloats = chunk
		in[r] = randomBits(rng, n)
	}
	return in
}

// checkRingSum all-reduces copies of in and checks every rank holds ringOrderSum's bits.
func checkRingSum(t *testing.T, links []*Link, stamp Stamp, in [][]float32) {
	t.Helper()
	data := make([][]float32, len(in))
	for r := range in {
		data[r] = append([]float32(nil), in[r]...)
	}
	if err := reduceAll(links, stamp, data); err != nil {
		t.Fatal(err)
	}
	want := ringOrderSum(in)
	for r := range data {
		for i := range want {
			if !sameSum(data[r][i], want[i]) || math.Float32bits(data[r][i]) != math.Float32bits(data[0][i]) {
				t.Fatalf("step %d rank %d element %d: %x (rank 0 %x), want %x", stamp.Step, r, i,
					math.Float32bits(data[r][i]), math.Float32bits(data[0][i]), math.Float32bits(want[i]))
			}
		}
	}
}

// sameSum: the same bits, or both NaN.
func sameSum(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b
}

func tlsWorld(t testing.TB, key []byte, size int) ([]*Link, func()) {
	t.Helper()
	eps := make([]*Endpoint, size)
	addrs := make([]string, size)
	for i := range eps {
		server, client, err := cluster.TLSConfigs(key, fmt.Sprintf("rank-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if eps[i], err = Listen("127.0.0.1:0", server, client); err != nil {
			t.Fatal(err)
		}
		addrs[i] = eps[i].Addr()
	}
	return connectAll(t, eps, addrs)
}

func connectAll(t testing.TB, eps []*Endpoint, addrs []string) ([]*Link, func()) {
	t.Helper()
	links := make([]*Link, len(eps))
	errs := make([]error, len(eps))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			links[i], errs[i] = eps[i].Connect(ctx, 1, i, addrs)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if _, ok := links[0].Prev.(*tls.Conn); !ok && eps[0].client != nil {
		t.Fatalf("stream is a %T, want TLS", links[0].Prev)
	}
	return links, func() {
		for i := range links {
			links[i].Close()
			eps[i].Close()
		}
	}
}

// A reduction in steady state allocates nothing per chunk: the buffers and the hand-off are
// the ring's own and are reused.
func TestAllReduceAllocatesNothingPerChunk(t *testing.T) {
	defer goleak.VerifyNone(t)
	links, closeAll := world(t, 2, 1)
	defer closeAll()
	const n = 1 << 18
	data := [][]float32{make([]float32, n), make([]float32, n)}
	for _, l := range links {
		l.ChunkFloats = 512 // 512 chunks per reduction and rank
	}
	const runs = 20
	done := make(chan error, 1)
	go func() {
		var err error
		for i := range runs + 1 { // AllocsPerRun calls once more to warm up
			if err == nil {
				err = links[1].AllReduceSum(Stamp{Generation: 1, Step: int64(i)}, data[1])
			}
		}
		done <- err
	}()
	var step int64
	var err error
	allocs := testing.AllocsPerRun(runs, func() {
		if err == nil {
			err = links[0].AllReduceSum(Stamp{Generation: 1, Step: step}, data[0])
		}
		step++
	})
	if err := errors.Join(err, <-done); err != nil {
		t.Fatal(err)
	}
	// Both ranks' allocations count; the goroutine each reduction starts may need a few.
	if allocs > 8 {
		t.Fatalf("%v allocations per reduction of %d chunks", allocs, 2*n/512)
	}
}

// fakePeer is rank 1 of a world of two whose bytes the test writes: it dials rank 0 with a
// valid hello and listens for rank 0's stream, which it accepts but never reads, so that
// rank 0's sender soon blocks on a full socket.
type fakePeer struct {
	toRank0   net.Conn // what rank 0 receives
	fromRank0 net.Conn // accepted; never read unless the test does
	ln        net.Listener
}

func startFakePeer(t *testing.T, ep *Endpoint) (*fakePeer, *Link) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakePeer{ln: ln}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	if fp.toRank0, err = net.Dial("tcp", ep.Addr()); err != nil {
		t.Fatal(err)
	}
	var hello [helloSize]byte
	copy(hello[:], helloMagic)
	hello[4] = protocolVersion
	binary.LittleEndian.PutUint64(hello[8:], 1)
	binary.LittleEndian.PutUint32(hello[16:], 1)
	binary.LittleEndian.PutUint32(hello[20:], 2)
	if _, err := fp.toRank0.Write(hello[:]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	link, err := ep.Connect(ctx, 1, 0, []string{ep.Addr(), ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	fp.fromRank0 = <-accepted
	if fp.fromRank0 == nil {
		t.Fatal("no stream from rank 0")
	}
	return fp, link
}

func (fp *fakePeer) close() {
	fp.toRank0.Close()
	fp.fromRank0.Close()
	fp.ln.Close()
}

// Hostile or garbled frames end the reduction with a clear error, promptly, even while the
// sender is blocked on a peer that does not read; nothing is allocated from a header's count.
func TestHostileFramesAreRejected(t *testing.T) {
	defer goleak.VerifyNone(t)
	const n = 8 << 20 // 32 MiB: far more than the socket buffers hold
	stamp := Stamp{Generation: 1, Step: 7}
	pl := plan{n: n, size: 2, rank: 0, chunk: DefaultChunkFloats, last: 2}
	lo, hi, phase, round, _, _, _ := pl.recv(0)
	count := min(hi-lo, pl.chunk)
	header := func(s Stamp, phase, round, off, count int) []byte {
		b := make([]byte, headerSize)
		putHeader(b, s, phase, round, off, count)
		return b
	}
	huge := header(stamp, phase, round, lo, count)
	binary.LittleEndian.PutUint32(huge[32:], math.MaxUint32)
	farOff := header(stamp, phase, round, lo, count)
	binary.LittleEndian.PutUint64(farOff[24:], math.MaxUint64)
	for _, tc := range []struct {
		name  string
		bytes []byte
		close bool
		want  error
	}{
		{"stale step", header(Stamp{Generation: 1, Step: 6}, phase, round, lo, count), false, ErrStale},
		{"other generation", header(Stamp{Generation: 9, Step: 7}, phase, round, lo, count), false, ErrStale},
		{"wrong phase", header(stamp, phaseAllGather, round, lo, count), false, ErrProtocol},
		{"wrong round", header(stamp, phase, 1, lo, count), false, ErrProtocol},
		{"wrong offset", header(stamp, phase, round, lo+1, count), false, ErrProtocol},
		{"huge count", huge, false, ErrProtocol},
		{"offset past any buffer", farOff, false, ErrProtocol},
		{"garbage", bytes.Repeat([]byte{0xa5}, headerSize), false, ErrStale},
		{"truncated header", header(stamp, phase, round, lo, count)[:20], true, io.ErrUnexpectedEOF},
		{"truncated payload", append(header(stamp, phase, round, lo, count), make([]byte, 4*count-3)...), true, io.ErrUnexpectedEOF},
		{"closed at once", nil, true, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := Listen("127.0.0.1:0", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ep.Close()
			fp, link := startFakePeer(t, ep)
			defer fp.close()
			defer link.Close()
			if _, err := fp.toRank0.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			if tc.close {
				fp.toRank0.(*net.TCPConn).CloseWrite()
			}
			result := make(chan error, 1)
			go func() { result <- link.AllReduceSum(stamp, make([]float32, n)) }()
			select {
			case err := <-result:
				if !errors.Is(err, tc.want) {
					t.Fatalf("error %v, want %v", err, tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the reduction did not end")
			}
		})
	}
}

// When the next rank goes away the reduction ends with the send error, even while the previous
// rank sends nothing.
func TestDeadNextRankEndsTheReduction(t *testing.T) {
	defer goleak.VerifyNone(t)
	ep, err := Listen("127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	fp, link := startFakePeer(t, ep)
	defer fp.close()
	defer link.Close()
	fp.fromRank0.(*net.TCPConn).SetLinger(0) // a reset, not a graceful close
	fp.fromRank0.Close()
	result := make(chan error, 1)
	go func() { result <- link.AllReduceSum(Stamp{Generation: 1, Step: 1}, make([]float32, 8<<20)) }()
	select {
	case err := <-result:
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("send to rank 1")) {
			t.Fatalf("error %v, want a send error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the reduction did not end")
	}
}

// canonicalStream is what rank 0 of a world of two sends in an all-reduce of n floats: the
// frames of its plan, payload values taken from vals.
func canonicalStream(stamp Stamp, n, chunk int, vals []float32) []byte {
	pl := plan{n: n, size: 2, rank: 0, chunk: chunk, last: 2}
	var buf bytes.Buffer
	var s sender
	first, last := pl.steps()
	for t := first; t < last; t++ {
		lo, hi, phase, round, _, ok := pl.send(t)
		if !ok {
			continue
		}
		for off := lo; off < hi; off += chunk {
			end := min(off+chunk, hi)
			s.header(stamp, phase, round, off, end-off)
			if err := s.chunk(&buf, vals[off:end]); err != nil {
				panic(err)
			}
		}
	}
	return buf.Bytes()
}

// FuzzReceive feeds arbitrary bytes to rank 1 of a world of two as the stream from rank 0. It
// must never panic or hang; when it succeeds, the bytes must have been frames with the
// expected headers, and the result must be what those frames' floats say.
func FuzzReceive(f *testing.F) {
	const n, chunk = 13, 3
	stamp := Stamp{Generation: 4, Step: 2}
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(i) + 0.5
	}
	valid := canonicalStream(stamp, n, chunk, vals)
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(valid[:headerSize])
	f.Add([]byte{})
	flipped := append([]byte(nil), valid...)
	flipped[32] ^= 0x80 // a count
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, in []byte) {
		local := make([]float32, n)
		for i := range local {
			local[i] = float32(100 * i)
		}
		data := append([]float32(nil), local...)
		r := Ring{Rank: 1, Size: 2, Next: io.Discard, Prev: bytes.NewReader(in), ChunkFloats: chunk}
		err := r.AllReduceSum(stamp, data)
		if err != nil {
			if !errors.Is(err, ErrStale) && !errors.Is(err, ErrProtocol) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				t.Fatalf("unexpected kind of error: %v", err)
			}
			return
		}
		if len(in) < len(valid) {
			t.Fatalf("succeeded on %d bytes, a reduction takes %d", len(in), len(valid))
		}
		// Same headers as the canonical stream, and the floats the frames carried.
		pl := plan{n: n, size: 2, rank: 1, chunk: chunk, last: 2}
		pos := 0
		first, last := pl.steps()
		for step := first; step < last; step++ {
			lo, hi, _, _, add, _, _ := pl.recv(step)
			for off := lo; off < hi; off += chunk {
				end := min(off+chunk, hi)
				if !bytes.Equal(in[pos:pos+headerSize], valid[pos:pos+headerSize]) {
					t.Fatalf("accepted header %x, want %x", in[pos:pos+headerSize], valid[pos:pos+headerSize])
				}
				pos += headerSize
				for i := off; i < end; i++ {
					v := math.Float32frombits(binary.LittleEndian.Uint32(in[pos:]))
					pos += 4
					want := v
					if add {
						want = local[i] + v
					}
					if math.Float32bits(data[i]) != math.Float32bits(want) {
						t.Fatalf("element %d: %x, want %x", i, math.Float32bits(data[i]), math.Float32bits(want))
					}
				}
			}
		}
	})
}

// FuzzHello: any bytes at the data port are dropped or read as a hello, never a crash.
func FuzzHello(f *testing.F) {
	var valid [helloSize]byte
	copy(valid[:], helloMagic)
	valid[4] = protocolVersion
	binary.LittleEndian.PutUint64(valid[8:], 3)
	binary.LittleEndian.PutUint32(valid[16:], 1)
	binary.LittleEndian.PutUint32(valid[20:], 4)
	f.Add(valid[:])
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < helloSize {
			in = append(in, make([]byte, helloSize-len(in))...)
		}
		key, err := parseHello(in[:helloSize])
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v, want ErrProtocol", err)
			}
			return
		}
		if !bytes.Equal(in[:4], helloMagic) || in[4] != protocolVersion {
			t.Fatalf("accepted %x", in[:helloSize])
		}
		if key.generation != binary.LittleEndian.Uint64(in[8:]) || key.from < 0 || key.size < 0 {
			t.Fatalf("hello %x read as %+v", in[:helloSize], key)
		}
	})
}
