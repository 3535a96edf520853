package actors

import (
	"context"
	"sync"
	"time"

	"github.com/troupe-ml/troupe/cluster/wire"
	"github.com/troupe-ml/troupe/sched"
)

// MemberStatus is what one member says of itself when asked (troupe status).
type MemberStatus struct {
	ID               string
	Step             int64 // the next step it runs
	TotalSteps       int64
	Epoch            int64
	Loss             float64 // of the last step it applied
	Accuracy         float64
	SamplesPerSecond float64 // over its last steps
	Training         bool    // false before its first world, between worlds, and after the end
	Finished         bool
	Job              string
	World            sched.World // the world it trains in
}

// statusBoard is a node's own status, kept up to date by its Node actor and read by the Peer
// when a member asks. The rate is measured over the last rateWindow steps.
type statusBoard struct {
	mu     sync.Mutex
	status wire.Status
	times  [rateWindow]time.Time
	counts [rateWindow]int
	next   int
}

const rateWindow = 32

func (b *statusBoard) step(s *StepDone) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.times[b.next], b.counts[b.next] = now, s.Samples
	b.next = (b.next + 1) % rateWindow
	if oldest := b.times[b.next]; !oldest.IsZero() && now.After(oldest) {
		total := 0 // the samples of the steps after the oldest in the window
		for i, c := range b.counts {
			if i != b.next {
				total += c
			}
		}
		b.status.SamplesPerSecond = float64(total) / now.Sub(oldest).Seconds()
	}
	b.status.Step, b.status.Epoch = s.Step+1, int64(s.Epoch)
	b.status.Loss, b.status.Accuracy = s.Loss, s.Accuracy
}

func (b *statusBoard) update(f func(*wire.Status)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.status)
}

func (b *statusBoard) snapshot() wire.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

// statusReply: Peer -> whoever asked. One member's answer to a StatusRequest.
type statusReply struct {
	from   sched.NodeID
	status *wire.Status
}

// Status asks every live member for its status and returns the answers that arrive before ctx
// ends or every member has answered, in member order.
func (p *Peer) Status(ctx context.Context) []MemberStatus {
	ids := p.Members()
	for _, id := range ids {
		_ = p.send(id, &wire.StatusRequest{})
	}
	got := map[sched.NodeID]*wire.Status{}
wait:
	for len(got) < len(ids) {
		select {
		case r := <-p.statuses:
			got[r.from] = r.status
		case <-ctx.Done():
			break wait
		}
	}
	var out []MemberStatus
	for _, id := range p.Members() {
		s, ok := got[id]
		if !ok {
			continue
		}
		out = append(out, MemberStatus{ID: string(id), Step: s.Step, TotalSteps: s.TotalSteps, Epoch: s.Epoch, Loss: s.Loss,
			Accuracy: s.Accuracy, SamplesPerSecond: s.SamplesPerSecond, Training: s.Training, Finished: s.Finished,
			Job: s.Job, World: worldFromWire(s.World)})
	}
	return out
}
