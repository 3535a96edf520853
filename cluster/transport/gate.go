package transport

import (
	"errors"
	"sync"

	"google.golang.org/grpc"
)

// errShuttingDown refuses streams that open while the transport closes.
var errShuttingDown = errors.New("transport: shutting down")

// streamGate counts the gRPC stream handlers protoactor runs for incoming
// connections. grpc's Server.Stop closes their connections but does not
// wait for the handlers to return, and a handler still running can reach
// into protoactor's endpoint manager while Close tears it down; so Close
// waits on this gate between stopping the server and stopping endpoints.
type streamGate struct {
	mu      sync.Mutex
	idle    *sync.Cond // signalled when running drops to zero
	running int
	closing bool
}

func newStreamGate() *streamGate {
	g := &streamGate{}
	g.idle = sync.NewCond(&g.mu)
	return g
}

// intercept is a grpc.StreamServerInterceptor that counts each handler.
func (g *streamGate) intercept(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		return errShuttingDown
	}
	g.running++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		if g.running == 0 {
			g.idle.Broadcast()
		}
		g.mu.Unlock()
	}()
	return handler(srv, ss)
}

// close refuses every later stream.
func (g *streamGate) close() {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
}

// wait returns once no handler runs. Call it after close and after the
// server has closed its connections, or it may wait for a peer to hang up.
func (g *streamGate) wait() {
	g.mu.Lock()
	for g.running > 0 {
		g.idle.Wait()
	}
	g.mu.Unlock()
}

var _ grpc.StreamServerInterceptor = (*streamGate)(nil).intercept
