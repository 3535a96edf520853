package kernels

import (
	"runtime"
	"sync/atomic"
)

// A product split over goroutines pays, besides its work, the time the
// runtime takes to get a second goroutine running on another core. For a
// core gone idle in a virtual machine that was measured at 30-700 µs
// (median about 130 µs, with other work on the machine), against about
// 330 µs for a whole 256³ product on one core; with a fresh goroutine per
// product, two threads were no faster than one below 1024³. So:
//
//   - worker goroutines stay awake for workerPolls polls after their last
//     chunk, looking for the next product and yielding their P to any
//     other goroutine in between, so that back-to-back products, as in a
//     training step, find them running; and they exit after that, leaving
//     nothing behind in an idle program;
//   - the work is cut into chunks that whoever is free claims, the caller
//     included, so a caller whose worker starts late does the chunks
//     itself instead of waiting for it.
//
// A poll takes about 60 ns when nothing else wants the P, so workers
// linger for about a millisecond (longer when other goroutines run: they
// get the P between polls). The count is not a clock on purpose: the
// package reads none.
const workerPolls = 1 << 14

// gemmJob is one product's chunks.
type gemmJob struct {
	chunks int32
	next   atomic.Int32 // next chunk to claim
	done   atomic.Int32 // chunks finished
	run    func(chunk int)
}

// work runs unclaimed chunks until there are none left.
func (j *gemmJob) work() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.chunks {
			return
		}
		j.run(int(i))
		j.done.Add(1)
	}
}

// team holds the workers: jobs is where products wait for them, alive
// counts them.
var team struct {
	jobs  chan *gemmJob
	alive atomic.Int32
}

func init() { team.jobs = make(chan *gemmJob, 64) }

// runChunks calls run(0), ..., run(chunks-1), each once, on the caller and
// up to workers other goroutines, and returns when all calls have.
func runChunks(chunks, workers int, run func(chunk int)) {
	j := &gemmJob{chunks: int32(chunks), run: run}
	for range workers {
		select {
		case team.jobs <- j:
		default: // the queue is full: the caller does more itself
		}
	}
	for {
		a := team.alive.Load()
		if int(a) >= workers {
			break
		}
		if team.alive.CompareAndSwap(a, a+1) {
			go worker()
		}
	}
	j.work()
	// Chunks still running elsewhere are one chunk per worker at most; a
	// spin (yielding the P) beats parking, whose wake-up is the latency
	// this file is about.
	for j.done.Load() < j.chunks {
		runtime.Gosched()
	}
}

// worker runs queued jobs until none has come for workerPolls polls. A
// job it receives after its caller finished has no chunks left and costs
// nothing.
func worker() {
	defer team.alive.Add(-1)
	for idle := 0; idle < workerPolls; idle++ {
		select {
		case j := <-team.jobs:
			j.work()
			idle = 0
			continue
		default:
		}
		runtime.Gosched()
	}
}
