package cluster

import (
	"context"
	"log/slog"
	"sync"
	"testing"
)

// recordHandler keeps every record it is given.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestLogWriterMapsLevels(t *testing.T) {
	cases := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4:5\n", slog.LevelDebug, "Stream connection from=1.2.3.4:5"},
		{"[INFO] memberlist: Marking n as failed\n", slog.LevelInfo, "Marking n as failed"},
		{"[WARN] memberlist: Refuting a suspect message\n", slog.LevelWarn, "Refuting a suspect message"},
		{"[ERR] memberlist: Failed to send ping\n", slog.LevelError, "Failed to send ping"},
		{"[ERROR] memberlist: boom\n", slog.LevelError, "boom"},
		{"no tag at all\n", slog.LevelInfo, "no tag at all"},
	}
	for _, tc := range cases {
		h := &recordHandler{}
		logger := stdLogger(slog.New(h))
		logger.Print(tc.line)
		if len(h.records) != 1 {
			t.Fatalf("%q gave %d records, want 1", tc.line, len(h.records))
		}
		r := h.records[0]
		if r.Level != tc.level || r.Message != tc.msg {
			t.Errorf("%q logged as %v %q, want %v %q", tc.line, r.Level, r.Message, tc.level, tc.msg)
		}
	}
}

func TestLogWriterSplitsLines(t *testing.T) {
	h := &recordHandler{}
	w := logWriter{slog.New(h)}
	p := []byte("[WARN] one\n\n[ERR] two\n")
	n, err := w.Write(p)
	if n != len(p) || err != nil {
		t.Fatalf("Write: %d, %v; want %d, nil", n, err, len(p))
	}
	if len(h.records) != 2 || h.records[0].Level != slog.LevelWarn || h.records[1].Level != slog.LevelError {
		t.Fatalf("records %v, want a warning then an error", h.records)
	}
}

func TestQuietDropsBelowItsFloorOnly(t *testing.T) {
	rec := &recordHandler{}
	log := slog.New(Quiet(rec, slog.LevelWarn)).With("k", "v").WithGroup("g")
	log.Info("chatty")
	log.Warn("listen")
	log.Error("fail")
	if len(rec.records) != 2 || rec.records[0].Message != "listen" || rec.records[1].Message != "fail" {
		t.Fatalf("records %v, want the warning and the error only", rec.records)
	}
}
