package transport

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/troupe-ml/troupe/cluster/wire"
)

// inbox is the actor registered as InboxName. It decodes frames and hands
// them over; anything else a peer sends is counted and dropped. Bad input
// from the network never makes it panic.
type inbox struct {
	t       *Transport
	handler func(Delivery)
}

var _ actor.Actor = (*inbox)(nil)

func (a *inbox) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *wrapperspb.BytesValue:
		from := ""
		if s := ctx.Sender(); s != nil {
			from = s.GetAddress()
		}
		msg, err := wire.Unframe(m)
		if err != nil {
			a.t.malformed.Add(1)
			a.t.logger.Debug("dropping malformed frame", "from", from, "bytes", len(m.GetValue()), "error", err)
			return
		}
		a.t.delivered.Add(1)
		a.handler(Delivery{From: from, Message: msg})
	case actor.SystemMessage, actor.AutoReceiveMessage:
		// Started, Stopping, Stopped and the like: lifecycle, not traffic.
	default:
		a.t.foreign.Add(1)
		a.t.logger.Debug("dropping a message that is not a frame", "type", fmt.Sprintf("%T", m))
	}
}

// channelHandler hands deliveries to ch, waiting for room until Close.
func (t *Transport) channelHandler(ch chan<- Delivery) func(Delivery) {
	return func(d Delivery) {
		select {
		case ch <- d:
		case <-t.done:
		}
	}
}
