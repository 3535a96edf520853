package cluster

import (
	"context"
	"log/slog"
)

// Quiet wraps a handler so that records below floor are dropped. The libraries under troupe
// (protoactor logs every connection step at info) stay audible when something fails without
// flooding a node's log the rest of the time.
func Quiet(h slog.Handler, floor slog.Level) slog.Handler { return quiet{h, floor} }

type quiet struct {
	slog.Handler
	floor slog.Level
}

func (h quiet) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.floor && h.Handler.Enabled(ctx, l)
}

func (h quiet) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quiet{h.Handler.WithAttrs(attrs), h.floor}
}

func (h quiet) WithGroup(name string) slog.Handler {
	return quiet{h.Handler.WithGroup(name), h.floor}
}
