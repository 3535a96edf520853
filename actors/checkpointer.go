package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/checkpoint"
)

// checkpointer writes snapshots while training goes on, one at a time and in step order, on a
// goroutine of its own so that it can take the next snapshot while a write is in progress. It
// holds at most one snapshot waiting behind the write: a newer one supersedes it (reported as
// skipped), so a store slower than the checkpoint interval costs neither memory without bound
// nor ever older checkpoints. The Node stops it with a poison pill after the final snapshot;
// stopping waits for the write in progress and the one waiting.
type checkpointer struct {
	manager *checkpoint.Manager
	now     func() time.Time
	// spare takes back the buffers of written snapshots for the Worker's next copy: reusing
	// them spares it the allocation and page faults of a model-sized copy every time.
	spare chan *checkpoint.Snapshot

	writing *SaveSnapshot // the snapshot being written, if any
	waiting *SaveSnapshot // the newest one behind it, if any
	written chan snapshotWritten
}

// snapshotWritten: the writing goroutine's outcome.
type snapshotWritten struct {
	name string
	err  error
}

// writeDone: the writing goroutine -> Checkpointer. An outcome is ready on written.
type writeDone struct{}

// Receive: SaveSnapshot. Outcomes go to the Node; a failed write is reported, never retried
// here: the next snapshot supersedes it.
func (c *checkpointer) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		c.written = make(chan snapshotWritten, 1)
	case *SaveSnapshot:
		switch {
		case c.writing == nil:
			c.write(ctx, msg)
		default:
			if c.waiting != nil {
				ctx.Send(ctx.Parent(), &SnapshotSaved{Stamp: c.waiting.Stamp, Skipped: true})
				c.recycle(c.waiting.Snapshot)
			}
			c.waiting = msg
		}
	case writeDone:
		select {
		case w := <-c.written:
			c.done(ctx, w)
		default:
		}
	case *actor.Stopping:
		for c.writing != nil {
			c.done(ctx, <-c.written)
		}
	}
}

// write starts writing msg on a goroutine of its own.
func (c *checkpointer) write(ctx actor.Context, msg *SaveSnapshot) {
	c.writing = msg
	self, root, now := ctx.Self(), ctx.ActorSystem().Root, c.now()
	go func() {
		name, err := c.manager.Save(msg.Snapshot, now)
		c.written <- snapshotWritten{name: name, err: err}
		root.Send(self, writeDone{})
	}()
}

// done reports a finished write and starts the one waiting, if any.
func (c *checkpointer) done(ctx actor.Context, w snapshotWritten) {
	msg := c.writing
	c.writing = nil
	ctx.Send(ctx.Parent(), &SnapshotSaved{Stamp: msg.Stamp, Name: w.name, Err: w.err})
	c.recycle(msg.Snapshot)
	if next := c.waiting; next != nil {
		c.waiting = nil
		c.write(ctx, next)
	}
}

// recycle hands a snapshot's buffers back to the Worker, or drops them when it has enough.
func (c *checkpointer) recycle(s *checkpoint.Snapshot) {
	if c.spare == nil {
		return
	}
	select {
	case c.spare <- s:
	default:
	}
}
