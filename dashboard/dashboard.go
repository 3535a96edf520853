// Package dashboard serves a live page of a run: loss and accuracy curves (training by step,
// validation by epoch), throughput, the worlds the node trained in with their members, joins
// and departures, and the checkpoints written. The page and its script are embedded (no CDN:
// it works offline); it receives the run as server-sent events, starting with a snapshot of
// everything so far, so it never reloads. /api/run gives the same snapshot as JSON.
package dashboard

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/troupe-ml/troupe/actors"
)

//go:embed assets
var assets embed.FS

// Num is a figure as JSON holds it: null for NaN and infinities (a diverged loss), which JSON
// has no numbers for.
type Num float64

// MarshalJSON writes the number, or null.
func (n Num) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(n), 'g', -1, 64), nil
}

// Step is one applied step as the page draws it.
type Step struct {
	Step          int64 `json:"step"`
	Epoch         int   `json:"epoch"`
	Loss          Num   `json:"loss"`
	Accuracy      Num   `json:"accuracy"`
	LR            Num   `json:"lr"`
	SamplesPerSec Num   `json:"samples_per_second"` // over the last 2 s of steps; 0 until there is half of that
	Time          Num   `json:"time"`               // seconds since the board was made
}

// Epoch is an epoch's end.
type Epoch struct {
	Step          int64 `json:"step"`
	Epoch         int   `json:"epoch"`
	TrainLoss     Num   `json:"train_loss"`
	TrainAccuracy Num   `json:"train_accuracy"`
	ValLoss       *Num  `json:"val_loss,omitempty"` // absent without validation samples
	ValAccuracy   *Num  `json:"val_accuracy,omitempty"`
}

// World is a world this node trained in, from its first step.
type World struct {
	Generation uint64   `json:"generation"`
	StartStep  int64    `json:"start_step"`
	Members    []string `json:"members"`
	Rank       int      `json:"rank"`
	Joins      int      `json:"joins"`
	Departures int      `json:"departures"`
	Time       Num      `json:"time"`
	WallMS     int64    `json:"wall_ms"` // when the node entered it, Unix milliseconds: the page shows its delay
}

// Checkpoint is a checkpoint write.
type Checkpoint struct {
	Step    int64  `json:"step"`
	Name    string `json:"name"`
	Error   string `json:"error,omitempty"`
	Skipped bool   `json:"skipped,omitempty"`
	Time    Num    `json:"time"`
}

// Member is a cluster member's state, as an observer of the whole cluster (troupe status
// --http) shows it.
type Member struct {
	ID            string `json:"id"`
	Rank          int    `json:"rank"` // -1: not in the newest world
	Generation    uint64 `json:"generation"`
	Step          int64  `json:"step"`
	Loss          Num    `json:"loss"`
	Accuracy      Num    `json:"accuracy"`
	SamplesPerSec Num    `json:"samples_per_second"`
	State         string `json:"state"` // training, waiting, finished
}

// Run is everything the board holds: what the page's first event and /api/run carry.
type Run struct {
	Job         string       `json:"job"`
	Params      int          `json:"params"`
	TotalSteps  int64        `json:"total_steps"`
	StartStep   int64        `json:"start_step"`
	Steps       []Step       `json:"steps"`
	Epochs      []Epoch      `json:"epochs"`
	Worlds      []World      `json:"worlds"`
	Checkpoints []Checkpoint `json:"checkpoints"`
	Restarts    []string     `json:"restarts"`
	Done        bool         `json:"done"`
	Viewers     int          `json:"viewers"`           // pages open on the event stream
	Members     []Member     `json:"members,omitempty"` // a cluster observer's view of every member
}

// Board collects a run's events. Its methods may be called from any goroutine.
type Board struct {
	mu    sync.Mutex
	began time.Time
	run   Run
	// Throughput: step events reach the board in bursts (a busy node hands several over at
	// once), so the rate is taken over the steps of the last rateWindow of wall time.
	recent  []tick
	samples int64
	rate    float64
	subs    map[chan event]struct{}
}

// tick is the board's count of samples at a moment.
type tick struct {
	at      time.Time
	samples int64
}

// rateWindow is the stretch of wall time a samples/s figure is measured over.
const rateWindow = 2 * time.Second

// event is one server-sent event: its type and JSON data.
type event struct {
	kind string
	data []byte
}

// New returns an empty board.
func New() *Board {
	return &Board{began: time.Now(), subs: map[chan event]struct{}{},
		run: Run{Steps: []Step{}, Epochs: []Epoch{}, Worlds: []World{}, Checkpoints: []Checkpoint{}, Restarts: []string{}}}
}

// Hook chains the board's updates after opts' callbacks.
func (b *Board) Hook(opts *actors.Options) {
	onStart, onStep, onEpoch, onWorld, onCkpt, onRestart := opts.OnStart, opts.OnStep, opts.OnEpoch, opts.OnWorld, opts.OnCheckpoint, opts.OnRestart
	opts.OnStart = func(s actors.Start) {
		if onStart != nil {
			onStart(s)
		}
		b.Start(s.Job.Name, s.Params, s.StartStep, s.TotalSteps)
	}
	opts.OnStep = func(s *actors.StepDone) {
		if onStep != nil {
			onStep(s)
		}
		b.AddStep(s)
	}
	opts.OnEpoch = func(e *actors.EpochDone) {
		if onEpoch != nil {
			onEpoch(e)
		}
		b.AddEpoch(e)
	}
	opts.OnWorld = func(w actors.WorldInfo) {
		if onWorld != nil {
			onWorld(w)
		}
		b.AddWorld(w)
	}
	opts.OnCheckpoint = func(c *actors.SnapshotSaved) {
		if onCkpt != nil {
			onCkpt(c)
		}
		b.AddCheckpoint(c)
	}
	opts.OnRestart = func(role string) {
		if onRestart != nil {
			onRestart(role)
		}
		b.mu.Lock()
		b.run.Restarts = append(b.run.Restarts, role)
		b.publish("restart", role)
		b.mu.Unlock()
	}
}

func (b *Board) since() Num { return Num(time.Since(b.began).Seconds()) }

// Start records the run's shape (again for each incarnation of a node).
func (b *Board) Start(job string, params int, startStep, totalSteps int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.run.Job, b.run.Params, b.run.StartStep, b.run.TotalSteps = job, params, startStep, totalSteps
	b.recent, b.rate = b.recent[:0], 0
	b.publish("start", map[string]any{"job": job, "params": params, "start_step": startStep, "total_steps": totalSteps})
}

// AddStep records an applied step.
func (b *Board) AddStep(s *actors.StepDone) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.samples += int64(s.Samples)
	b.recent = append(b.recent, tick{now, b.samples})
	for len(b.recent) > 2 && now.Sub(b.recent[1].at) >= rateWindow {
		b.recent = b.recent[1:]
	}
	if first := b.recent[0]; now.Sub(first.at) >= rateWindow/4 {
		b.rate = float64(b.samples-first.samples) / now.Sub(first.at).Seconds()
	}
	p := Step{Step: s.Step, Epoch: s.Epoch, Loss: Num(s.Loss), Accuracy: Num(s.Accuracy), LR: Num(s.LR),
		SamplesPerSec: Num(b.rate), Time: b.since()}
	b.run.Steps = append(b.run.Steps, p)
	b.publish("step", p)
}

// AddEpoch records an epoch's end.
func (b *Board) AddEpoch(e *actors.EpochDone) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := Epoch{Step: e.Step, Epoch: e.Epoch, TrainLoss: Num(e.TrainLoss), TrainAccuracy: Num(e.TrainAccuracy)}
	if e.HasVal {
		vl, va := Num(e.ValLoss), Num(e.ValAccuracy)
		p.ValLoss, p.ValAccuracy = &vl, &va
	}
	b.run.Epochs = append(b.run.Epochs, p)
	b.publish("epoch", p)
}

// AddWorld records the start of a world.
func (b *Board) AddWorld(w actors.WorldInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := World{Generation: w.Generation, StartStep: w.StartStep, Members: append([]string{}, w.Members...), Rank: w.Rank,
		Joins: w.Joins, Departures: w.Departures, Time: b.since(), WallMS: time.Now().UnixMilli()}
	b.run.Worlds = append(b.run.Worlds, p)
	b.publish("world", p)
}

// AddCheckpoint records a checkpoint write.
func (b *Board) AddCheckpoint(c *actors.SnapshotSaved) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := Checkpoint{Step: c.Step, Name: c.Name, Skipped: c.Skipped, Time: b.since()}
	if c.Err != nil {
		p.Error = c.Err.Error()
	}
	b.run.Checkpoints = append(b.run.Checkpoints, p)
	b.publish("checkpoint", p)
}

// Observe records a step as seen from outside the run (an observer polling a cluster): the
// figures as given, with the time of the observation.
func (b *Board) Observe(s Step) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s.Time = b.since()
	b.run.Steps = append(b.run.Steps, s)
	b.publish("step", s)
}

// SetMembers replaces the cluster's member states.
func (b *Board) SetMembers(ms []Member) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.run.Members = append([]Member{}, ms...)
	b.publish("members", b.run.Members)
}

// Done marks the run as over.
func (b *Board) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.run.Done = true
	b.publish("done", true)
}

// Snapshot returns a copy of everything so far.
func (b *Board) Snapshot() Run {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.snapshot()
}

func (b *Board) snapshot() Run {
	r := b.run
	r.Steps = append([]Step{}, r.Steps...)
	r.Epochs = append([]Epoch{}, r.Epochs...)
	r.Worlds = append([]World{}, r.Worlds...)
	r.Checkpoints = append([]Checkpoint{}, r.Checkpoints...)
	r.Restarts = append([]string{}, r.Restarts...)
	r.Members = append([]Member(nil), r.Members...)
	r.Viewers = len(b.subs)
	return r
}

// subscriberBuffer is how many events a page may lag behind before it is dropped; its
// EventSource reconnects and starts again from a snapshot.
const subscriberBuffer = 1024

// publish sends an event to every subscriber; b.mu is held.
func (b *Board) publish(kind string, v any) {
	if len(b.subs) == 0 {
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		return // cannot happen: events are plain structs of Nums and strings
	}
	for ch := range b.subs {
		select {
		case ch <- event{kind, data}:
		default:
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// subscribe returns the snapshot and a channel of the events after it.
func (b *Board) subscribe() (Run, chan event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan event, subscriberBuffer)
	b.subs[ch] = struct{}{}
	return b.snapshot(), ch
}

func (b *Board) unsubscribe(ch chan event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[ch]; ok {
		delete(b.subs, ch)
		close(ch)
	}
}

// Handler serves the page (/), its assets, /api/run (the snapshot as JSON) and /api/events
// (server-sent events: "snapshot" first, then "start", "step", "epoch", "world",
// "checkpoint", "restart", "members", "done").
func (b *Board) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/run", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, b.Snapshot())
	})
	mux.HandleFunc("GET /api/events", b.serveEvents)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func (b *Board) serveEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	snap, ch := b.subscribe()
	defer b.unsubscribe(ch)
	data, _ := json.Marshal(snap) // plain structs of Nums and strings always marshal
	fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", data)
	flusher.Flush()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return // dropped for lagging: the browser reconnects
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.kind, ev.data)
			// Send what else is queued before flushing: a fast run's steps go out in batches.
			for n := len(ch); n > 0; n-- {
				ev := <-ch
				fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.kind, ev.data)
			}
			flusher.Flush()
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// Serve serves the board's handler at addr (port 0 picks one) until stop is called; it
// returns the page's URL.
func Serve(addr string, b *Board, log *slog.Logger) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("dashboard: %w", err)
	}
	srv := &http.Server{Handler: b.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("dashboard stopped", "err", err)
		}
	}()
	url = "http://" + ln.Addr().String() + "/"
	return url, func() {
		_ = srv.Close() // closes the event streams too
		<-done
	}, nil
}
