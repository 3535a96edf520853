package cluster

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
)

// logWriter turns the lines memberlist writes to its *log.Logger into slog
// records, so that its "[WARN] memberlist: ..." lines are filtered and
// formatted like the rest of a node's logs.
type logWriter struct {
	logger *slog.Logger
}

var _ io.Writer = logWriter{}

// levelPrefixes maps memberlist's level tags to slog levels. Lines without a
// tag are logged at Info.
var levelPrefixes = []struct {
	tag   []byte
	level slog.Level
}{
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[ERR]"), slog.LevelError},
	{[]byte("[ERROR]"), slog.LevelError},
}

// Write logs each line of p as one record. log.Logger calls it once per
// line, but a writer must not rely on that. It never fails: losing a log
// line must not break gossip.
func (w logWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		level := slog.LevelInfo
		for _, lp := range levelPrefixes {
			if rest, ok := bytes.CutPrefix(line, lp.tag); ok {
				level, line = lp.level, bytes.TrimSpace(rest)
				break
			}
		}
		line = bytes.TrimPrefix(line, []byte("memberlist: "))
		w.logger.Log(context.Background(), level, string(line), "component", "memberlist")
	}
	return len(p), nil
}

// stdLogger returns a *log.Logger for memberlist that writes into logger.
// Flags are zero: slog adds its own time stamps.
func stdLogger(logger *slog.Logger) *log.Logger {
	return log.New(logWriter{logger}, "", 0)
}
