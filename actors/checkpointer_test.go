package actors

import (
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/checkpoint"
)

// gatedStore is a directory store whose Puts wait at a gate the test opens, so that the test
// decides when the store is slow.
type gatedStore struct {
	*checkpoint.DirStore
	gate chan struct{}
	once sync.Once
}

func (g *gatedStore) Put(name string, data []byte) error {
	<-g.gate
	return g.DirStore.Put(name, data)
}

func (g *gatedStore) open() { g.once.Do(func() { close(g.gate) }) }

// A store slower than the snapshots: the write in progress goes on, the newest snapshot waits
// behind it and supersedes the ones before it (reported as skipped, their buffers handed back),
// and stopping the Checkpointer waits for both writes.
func TestCheckpointerKeepsOnlyTheNewestWaitingSnapshot(t *testing.T) {
	dir, err := checkpoint.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &gatedStore{DirStore: dir, gate: make(chan struct{})}
	defer store.open()
	manager := checkpoint.NewManager(store, 10)
	spare := make(chan *checkpoint.Snapshot, 4)
	outcomes := make(chan *SnapshotSaved, 16)
	system := actor.NewActorSystem()
	defer system.Shutdown()
	parent := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch msg := ctx.Message().(type) {
		case *actor.Started:
			ckpter := ctx.Spawn(actor.PropsFromProducer(func() actor.Actor {
				return &checkpointer{manager: manager, now: time.Now, spare: spare}
			}))
			for step := int64(1); step <= 5; step++ {
				ctx.Send(ckpter, &SaveSnapshot{Stamp: Stamp{Step: step}, Snapshot: &checkpoint.Snapshot{Step: step, Params: []float32{float32(step)}}})
			}
			ctx.Poison(ckpter)
		case *SnapshotSaved:
			outcomes <- msg
		}
	}))
	defer system.Root.Stop(parent)

	for want := int64(2); want <= 4; want++ { // superseded while step 1 is being written
		select {
		case o := <-outcomes:
			if !o.Skipped || o.Step != want {
				t.Fatalf("got %+v, want step %d skipped", o, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no outcome for step %d", want)
		}
	}
	if len(spare) != 3 {
		t.Fatalf("%d skipped snapshots handed back, want 3", len(spare))
	}
	store.open()
	for _, want := range []int64{1, 5} {
		select {
		case o := <-outcomes:
			if o.Skipped || o.Err != nil || o.Step != want || o.Name != checkpoint.Name(want) {
				t.Fatalf("got %+v, want step %d written", o, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("step %d never written: stopping did not wait for it", want)
		}
	}
	infos, err := manager.List()
	if err != nil {
		t.Fatal(err)
	}
	var steps []int64
	for _, info := range infos {
		if info.Committed {
			steps = append(steps, info.Step)
		}
	}
	if len(steps) != 2 {
		t.Fatalf("committed checkpoints at steps %v, want 1 and 5", steps)
	}
}
