package main

import (
	"log/slog"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/dashboard"
)

// liveBoard is the --http dashboard of a run: nil (hooking nothing) without the flag.
type liveBoard struct {
	board *dashboard.Board
	stop  func()
}

// serveDashboard starts the dashboard the flags ask for and logs its address.
func (f *trainFlags) serveDashboard(log *slog.Logger) (*liveBoard, error) {
	if f.httpAddr == "" {
		return nil, nil
	}
	b := dashboard.New()
	url, stop, err := dashboard.Serve(f.httpAddr, b, log)
	if err != nil {
		return nil, err
	}
	log.Info("dashboard", "url", url)
	return &liveBoard{board: b, stop: stop}, nil
}

func (l *liveBoard) hook(opts *actors.Options) {
	if l != nil {
		l.board.Hook(opts)
	}
}

// close marks the run finished for the pages still open, then stops serving.
func (l *liveBoard) close() {
	if l != nil {
		l.board.Done()
		l.stop()
	}
}
