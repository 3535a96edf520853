package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/checkpoint"
)

// checkpointer writes snapshots while training goes on. Writes are queued in its mailbox and done
// one at a time, so they commit in step order; the Node stops it with a poison pill after the
// final snapshot, which lets every queued write finish first.
type checkpointer struct {
	manager *checkpoint.Manager
	now     func() time.Time
}

// Receive: SaveSnapshot. The outcome goes to the Node; a failed write is reported, never
// retried here: the next snapshot supersedes it.
func (c *checkpointer) Receive(ctx actor.Context) {
	msg, ok := ctx.Message().(*SaveSnapshot)
	if !ok {
		return
	}
	name, err := c.manager.Save(msg.Snapshot, c.now())
	ctx.Send(ctx.Parent(), &SnapshotSaved{Stamp: msg.Stamp, Name: name, Err: err})
}
