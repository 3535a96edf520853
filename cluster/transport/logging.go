package transport

import (
	"context"
	"log/slog"
)

// minLevel passes on only records at or above floor. protoactor logs every
// connection step at info; a node wants to hear only when something fails.
type minLevel struct {
	slog.Handler
	floor slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.floor && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.floor}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.floor}
}
