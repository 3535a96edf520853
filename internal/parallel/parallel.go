// Package parallel splits work over the cores: a few worker goroutines that
// stay awake between back-to-back pieces of work, as in a training step.
// It is below every layer (kernels, the optimizers and compute use it) and
// imports nothing of troupe.
package parallel

import (
	"runtime"
	"sync"
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

// job is one call's chunks. Jobs are reused from call to call (free), so
// that a call allocates nothing; a worker may still hold a job that has
// been handed to a later call, so everything a worker reads before it has
// claimed a chunk is in state, one atomic word: the count of chunks in the
// high half, the next unclaimed chunk in the low half. A late worker thus
// either finds nothing left or claims a chunk of the call now running,
// which is work that call is waiting for.
type job struct {
	state atomic.Uint64
	done  atomic.Int32 // chunks finished
	run   func(chunk int)
}

// work runs unclaimed chunks until there are none left.
func (j *job) work() {
	for {
		s := j.state.Load()
		if uint32(s) >= uint32(s>>32) {
			return
		}
		if !j.state.CompareAndSwap(s, s+1) {
			continue
		}
		j.run(int(uint32(s)))
		j.done.Add(1)
	}
}

// team holds the workers: jobs is where calls wait for them, alive counts
// them, free holds the jobs of finished calls.
var team struct {
	jobs  chan *job
	alive atomic.Int32
	mu    sync.Mutex
	free  []*job
}

func init() { team.jobs = make(chan *job, 64) }

// For calls run(0), ..., run(chunks-1), each once, on the caller and up to
// workers other goroutines, and returns when all calls have. It allocates
// nothing once it has run as many calls at once as it ever will; run should
// then be a function value made once, not a new closure per call.
func For(chunks, workers int, run func(chunk int)) {
	if chunks <= 0 {
		return
	}
	if chunks >= 1<<31 {
		panic("parallel: too many chunks")
	}
	j := takeJob()
	j.run = run
	j.done.Store(0)
	j.state.Store(uint64(chunks) << 32) // published: workers may claim from here on
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
	for j.done.Load() < int32(chunks) {
		runtime.Gosched()
	}
	j.run = nil // every claimed chunk has run: nobody reads it any more
	team.mu.Lock()
	team.free = append(team.free, j)
	team.mu.Unlock()
}

// takeJob returns a finished job, or a new one when every job is in use.
func takeJob() *job {
	team.mu.Lock()
	defer team.mu.Unlock()
	if n := len(team.free); n > 0 {
		j := team.free[n-1]
		team.free = team.free[:n-1]
		return j
	}
	return new(job)
}

// worker runs queued jobs until none has come for workerPolls polls. A
// job it receives after its caller finished has no chunks left, or those of
// a later call that reuses it.
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
