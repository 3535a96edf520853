package collective

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Sentinel errors. Every error a ring returns wraps one of them.
var (
	// ErrStale: a chunk from another generation or step arrived: the peer is in another world.
	ErrStale = errors.New("collective: stale chunk")
	// ErrProtocol: a chunk arrived out of order or with a shape the ring did not expect.
	ErrProtocol = errors.New("collective: protocol violation")
)

// Stamp identifies the reduction a chunk belongs to, as every data-plane message does.
type Stamp struct {
	Generation uint64
	Step       int64
}

// DefaultChunkFloats is the pipelining unit: 256 Ki floats (1 MiB). A chunk is forwarded as
// soon as it has been received and summed, so a smaller one fills the ring's pipeline sooner;
// but every chunk costs wake-ups, and on a busy 2-core machine 64 Ki floats took about twice
// the context switches and 8-13% more CPU in BenchmarkAllReduceProcesses at 16 and 64 MiB.
const DefaultChunkFloats = 256 << 10

// maxChunkFloats keeps a chunk's count within the header's 32 bits.
const maxChunkFloats = 1 << 30

// Ring is one rank's place in a ring all-reduce: a stream to the next rank and one from the
// previous. It is not safe for concurrent use: one reduction at a time. After an error its
// streams are out of step (and may have been given a past deadline to stop the other
// direction): close them.
type Ring struct {
	Rank, Size  int
	Next        io.Writer // to rank (Rank+1) mod Size
	Prev        io.Reader // from rank (Rank-1+Size) mod Size
	ChunkFloats int       // 0: DefaultChunkFloats; must be the same on every rank

	p *pipeline // buffers and hand-off, made on first use and kept
}

const (
	phaseReduceScatter = 1
	phaseAllGather     = 2
	phaseBroadcast     = 3
)

// segment returns the bounds of segment i when n floats are cut into size near-equal parts.
func segment(n, size, i int) (lo, hi int) {
	base, extra := n/size, n%size
	lo = i*base + min(i, extra)
	hi = lo + base
	if i < extra {
		hi++
	}
	return lo, hi
}

func mod(a, n int) int { return ((a % n) + n) % n }

// AllReduceSum replaces data on every rank with the element-wise sum over the ring: a
// reduce-scatter (after Size-1 rounds rank r holds the full sum of segment r+1) followed by an
// all-gather (Size-1 rounds passing the summed segments on). Every link carries 2(Size-1)/Size
// of the buffer, the bandwidth optimum.
//
// The rounds are pipelined chunk by chunk: a chunk is added in as it comes off the socket and
// forwarded as soon as it is summed, while later chunks of the same round are still on the
// wire, so a link never waits for a whole round. A goroutine sends while the caller's
// receives and adds; the bytes on the wire are the same as a round-by-round ring's.
//
// The summation order of each element is fixed by the ring's size and the element's segment, so
// the result is deterministic for a given world, though not bit-equal to a sum in another order.
func (r *Ring) AllReduceSum(stamp Stamp, data []float32) error {
	if r.Size <= 1 {
		return nil
	}
	if r.Rank < 0 || r.Rank >= r.Size {
		return fmt.Errorf("%w: rank %d of %d", ErrProtocol, r.Rank, r.Size)
	}
	return r.run(stamp, data, r.plan(len(data), 0, 2*(r.Size-1)))
}

// Shard returns the part [lo, hi) of a vector of n values that rank owns in a world of size:
// where ReduceScatterSum leaves the rank the full sum, and what AllGather sends from it.
// The shards of the ranks are disjoint and cover the vector, within one value of n/size each.
func Shard(n, size, rank int) (lo, hi int) {
	if size <= 1 {
		return 0, n
	}
	return segment(n, size, mod(rank+1, size))
}

// ReduceScatterSum is the first half of AllReduceSum: afterwards data[Shard(len(data), Size,
// Rank)] holds the element-wise sum over the ring (the same bits AllReduceSum would leave
// there) and the rest of data holds partial sums. Every link carries (Size-1)/Size of the
// buffer. With AllGather after it (once each rank has changed its shard, for example by an
// optimizer step on it), it does what AllReduceSum does in two halves.
func (r *Ring) ReduceScatterSum(stamp Stamp, data []float32) error {
	if r.Size <= 1 {
		return nil
	}
	if r.Rank < 0 || r.Rank >= r.Size {
		return fmt.Errorf("%w: rank %d of %d", ErrProtocol, r.Rank, r.Size)
	}
	return r.run(stamp, data, r.plan(len(data), 0, r.Size-1))
}

// AllGather copies every rank's shard (Shard) of data to every other rank, bit for bit: the
// second half of AllReduceSum. data must have the same length on every rank.
func (r *Ring) AllGather(stamp Stamp, data []float32) error {
	if r.Size <= 1 {
		return nil
	}
	if r.Rank < 0 || r.Rank >= r.Size {
		return fmt.Errorf("%w: rank %d of %d", ErrProtocol, r.Rank, r.Size)
	}
	return r.run(stamp, data, r.plan(len(data), r.Size-1, 2*(r.Size-1)))
}

// plan is the all-reduce schedule's steps [first, last) for n values.
func (r *Ring) plan(n, first, last int) plan {
	return plan{n: n, size: r.Size, rank: r.Rank, chunk: r.chunk(), first: first, last: last}
}

// Broadcast copies root's data to every rank, bit for bit: the state transfer that brings
// joiners and ranks behind to the world's starting state. Chunks travel the ring from root
// onwards, each rank forwarding a chunk while it receives the next; the rank before root only
// receives. data must have the same length on every rank.
func (r *Ring) Broadcast(stamp Stamp, data []float32, root int) error {
	if r.Size <= 1 {
		return nil
	}
	if root < 0 || root >= r.Size {
		return fmt.Errorf("%w: broadcast root %d of %d", ErrProtocol, root, r.Size)
	}
	if r.Rank < 0 || r.Rank >= r.Size {
		return fmt.Errorf("%w: rank %d of %d", ErrProtocol, r.Rank, r.Size)
	}
	return r.run(stamp, data, plan{n: len(data), size: r.Size, rank: r.Rank, chunk: r.chunk(), broadcast: true, root: root})
}

func (r *Ring) chunk() int {
	c := r.ChunkFloats
	if c <= 0 {
		c = DefaultChunkFloats
	}
	return min(c, maxChunkFloats)
}

// plan is the schedule of one collective: in step s a rank sends one segment to the next rank
// and receives one from the previous, both cut into chunks. Each chunk the sender forwards
// (dependent) is the one the receiver took in (published) at the same position one step
// earlier, so the k-th dependent send waits for the k-th published receive. An all-reduce
// runs steps [0, 2(size-1)): size-1 of reduce-scatter, then size-1 of all-gather; either half
// alone runs its own steps [first, last). A broadcast is one step over the whole vector.
type plan struct {
	n, size, rank, chunk int
	first, last          int
	broadcast            bool
	root                 int
}

// steps returns the range of steps the plan runs.
func (p plan) steps() (first, last int) {
	switch {
	case p.broadcast:
		return 0, 1
	case p.n == 0:
		return 0, 0
	}
	return p.first, p.last
}

// send returns step s's outgoing segment and whether its chunks wait for received ones; ok is
// false where the rank sends nothing.
func (p plan) send(s int) (lo, hi, phase, round int, dependent, ok bool) {
	if p.broadcast {
		return 0, p.n, phaseBroadcast, 0, p.rank != p.root, mod(p.rank+1, p.size) != p.root
	}
	// Every step but the plan's first forwards what the step before it received.
	if s < p.size-1 {
		lo, hi = segment(p.n, p.size, mod(p.rank-s, p.size))
		return lo, hi, phaseReduceScatter, s, s > p.first, true
	}
	g := s - (p.size - 1)
	lo, hi = segment(p.n, p.size, mod(p.rank+1-g, p.size))
	return lo, hi, phaseAllGather, g, s > p.first, true
}

// recv returns step s's incoming segment, whether it is added in (else copied over), and
// whether the sender forwards its chunks later (published); ok is false where the rank
// receives nothing.
func (p plan) recv(s int) (lo, hi, phase, round int, add, published, ok bool) {
	if p.broadcast {
		return 0, p.n, phaseBroadcast, 0, false, mod(p.rank+1, p.size) != p.root, p.rank != p.root
	}
	// What the plan's last step receives is forwarded by no later step.
	if s < p.size-1 {
		lo, hi = segment(p.n, p.size, mod(p.rank-s-1, p.size))
		return lo, hi, phaseReduceScatter, s, true, s < p.last-1, true
	}
	g := s - (p.size - 1)
	lo, hi = segment(p.n, p.size, mod(p.rank-g, p.size))
	return lo, hi, phaseAllGather, g, false, s < p.last-1, true
}

// chunks returns how many chunks a segment of n floats is cut into.
func (p plan) chunks(n int) int { return (n + p.chunk - 1) / p.chunk }

// sentBefore returns how many chunks the sender sends in the steps before s.
func (p plan) sentBefore(s int) int64 {
	var k int64
	first, _ := p.steps()
	for t := first; t < s; t++ {
		if lo, hi, _, _, _, ok := p.send(t); ok {
			k += int64(p.chunks(hi - lo))
		}
	}
	return k
}

// overwrites returns, for step s's received segment, the step that sent the same segment
// earlier, whose chunks must be on their way before they are overwritten; ok is false if none
// did. Only an all-gather after a reduce-scatter in the same plan overwrites: round g's segment
// is the one sent in reduce-scatter round g. An all-gather alone receives each segment once,
// never one it still has to send.
func (p plan) overwrites(s int) (step int, ok bool) {
	if p.broadcast || s < p.size-1 || p.first >= p.size-1 {
		return 0, false
	}
	return s - (p.size - 1), true
}

// pipeline is a ring's reusable state: the receive scratch, the sender's header and iovec,
// and the hand-off between the receiving goroutine and the sending one.
type pipeline struct {
	hdr  [headerSize]byte // receiver's
	rx   []byte           // receive scratch, 4-byte aligned
	send sender

	// Own system calls for plain TCP streams, made for the connections named (nil: none).
	in              *rawStream
	inConn, outConn *net.TCPConn

	// Hand-off between the two goroutines. The sender waits for published chunks before it
	// forwards them; the receiver waits for sent chunks before it overwrites what they were
	// read from. The ring's data flow already orders both (a chunk to overwrite arrives only
	// after the next rank had this rank's copy), so the receiver's wait is a formality that
	// makes the order one the memory model (and the race detector) can see.
	published, sent progress
	failed          atomic.Int32 // who failed first: failedRecv or failedSend, else 0
	outcome         chan error   // capacity 1: the sender's result
}

// progress counts the chunks one goroutine has finished, for the other to wait on.
type progress struct {
	n    atomic.Int64
	kick chan struct{} // capacity 1: n or failed changed
}

func (c *progress) reset() {
	c.n.Store(0)
	select { // a kick left over from the previous run
	case <-c.kick:
	default:
	}
}

func (c *progress) notify() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *progress) add() {
	c.n.Add(1)
	c.notify()
}

const (
	failedRecv = 1
	failedSend = 2
)

// errInterrupted stops one direction when the other has failed; it is never returned.
var errInterrupted = errors.New("collective: interrupted")

// past is a deadline that has passed: it wakes a goroutine blocked on a stream.
var past = time.Unix(1, 0)

func (r *Ring) pipeline() *pipeline {
	if r.p == nil {
		r.p = &pipeline{
			rx:        bytesOf(make([]float32, rxScratchBytes/4)),
			published: progress{kick: make(chan struct{}, 1)},
			sent:      progress{kick: make(chan struct{}, 1)},
			outcome:   make(chan error, 1),
		}
	}
	// Streams are compared as connections: an io.Reader's dynamic type may not be comparable.
	if tc, _ := r.Prev.(*net.TCPConn); tc != r.p.inConn || tc == nil {
		r.p.in, r.p.inConn = nil, tc
		if tc != nil && useRaw {
			r.p.in = newRawStream(tc)
		}
	}
	if tc, _ := r.Next.(*net.TCPConn); tc != r.p.outConn || tc == nil {
		r.p.send.raw, r.p.outConn = nil, tc
		if tc != nil && useRaw {
			r.p.send.raw = newRawStream(tc)
		}
	}
	return r.p
}

// useRaw: plain TCP streams go through rawStream where the system has it. A variable so
// tests can run the streams' own Read and Write.
var useRaw = true

// await waits until c has counted k chunks; false if either direction failed.
func (p *pipeline) await(c *progress, k int64) bool {
	for c.n.Load() < k {
		if p.failed.Load() != 0 {
			return false
		}
		<-c.kick
	}
	return p.failed.Load() == 0
}

// fail records the first failure and wakes both directions' waits.
func (p *pipeline) fail(who int32) bool {
	if !p.failed.CompareAndSwap(0, who) {
		return false
	}
	p.published.notify()
	p.sent.notify()
	return true
}

// run executes a plan: the sender on a goroutine, receives and adds on the caller's. The first
// direction to fail stops the other (a past deadline on its stream where the stream has one),
// so a reduction ends promptly with the error that came first.
func (r *Ring) run(stamp Stamp, data []float32, pl plan) error {
	p := r.pipeline()
	p.published.reset()
	p.sent.reset()
	p.failed.Store(0)
	go r.sendAll(p, stamp, data, pl)
	recvErr := r.receiveAll(p, stamp, data, pl)
	if recvErr != nil && p.fail(failedRecv) {
		if d, ok := r.Next.(interface{ SetWriteDeadline(time.Time) error }); ok {
			_ = d.SetWriteDeadline(past)
		}
	}
	sendErr := <-p.outcome
	if p.failed.Load() == failedSend {
		return fmt.Errorf("collective: send to rank %d: %w", mod(r.Rank+1, r.Size), sendErr)
	}
	return recvErr
}

func (r *Ring) sendAll(p *pipeline, stamp Stamp, data []float32, pl plan) {
	var err error
	var k int64
	first, last := pl.steps()
steps:
	for s := first; s < last; s++ {
		lo, hi, phase, round, dependent, ok := pl.send(s)
		if !ok {
			continue
		}
		for off := lo; off < hi; off += pl.chunk {
			if dependent {
				k++
				if !p.await(&p.published, k) {
					break steps
				}
			} else if p.failed.Load() != 0 {
				break steps
			}
			p.send.header(stamp, phase, round, off, min(off+pl.chunk, hi)-off)
			if err = p.send.chunk(r.Next, data[off:min(off+pl.chunk, hi)]); err != nil {
				break steps
			}
			p.sent.add()
		}
	}
	if err != nil && p.fail(failedSend) {
		if d, ok := r.Prev.(interface{ SetReadDeadline(time.Time) error }); ok {
			_ = d.SetReadDeadline(past)
		}
	}
	p.outcome <- err
}

func (r *Ring) receiveAll(p *pipeline, stamp Stamp, data []float32, pl plan) error {
	first, last := pl.steps()
	for s := first; s < last; s++ {
		lo, hi, phase, round, add, published, ok := pl.recv(s)
		if !ok {
			continue
		}
		var sentFirst int64 = -1 // the sent count that covers this segment's first chunk
		if earlier, ok := pl.overwrites(s); ok {
			sentFirst = pl.sentBefore(earlier) + 1
		}
		for off := lo; off < hi; off += pl.chunk {
			if p.failed.Load() != 0 {
				return errInterrupted
			}
			if sentFirst >= 0 && !p.await(&p.sent, sentFirst+int64((off-lo)/pl.chunk)) {
				return errInterrupted
			}
			if err := r.receive(p, stamp, phase, round, off, min(off+pl.chunk, hi)-off, data, add); err != nil {
				return err
			}
			if published {
				p.published.add()
			}
		}
	}
	return nil
}

// receive reads one chunk header, checks it is the chunk expected next, and adds the floats
// that follow into (or copies them over) data[off:off+count], as they arrive.
func (r *Ring) receive(p *pipeline, stamp Stamp, phase, round, off, count int, data []float32, add bool) error {
	from := mod(r.Rank-1, r.Size)
	var in io.Reader = r.Prev
	if p.in != nil {
		in = p.in
	}
	if _, err := io.ReadFull(in, p.hdr[:]); err != nil {
		return fmt.Errorf("collective: receive from rank %d: %w", from, err)
	}
	if err := checkHeader(p.hdr[:], stamp, phase, round, off, count); err != nil {
		return err
	}
	dst := data[off : off+count]
	var err error
	if add {
		err = readAdd(in, dst, p.rx)
	} else {
		err = readCopy(in, dst, p.rx)
	}
	if err != nil {
		return fmt.Errorf("collective: receive from rank %d: %w", from, err)
	}
	return nil
}
