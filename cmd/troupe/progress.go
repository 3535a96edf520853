package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/troupe-ml/troupe/actors"
)

// progress shows a run as it goes: a bar on a terminal, plain lines in logs, or nothing.
// Its methods are called from the run's Node goroutine, one at a time; the bar renders on its
// own goroutine, so the latest loss is shared under a mutex.
type progress struct {
	mode     string // bar | lines | none
	w        io.Writer
	logEvery int

	total, startStep int64
	stepsPerEpoch    int
	epochs           int
	began            time.Time
	samples          int64

	p   *mpb.Progress
	bar *mpb.Bar

	mu       sync.Mutex
	lastLoss float64
	lastAcc  float64
}

func newProgress(mode string, w io.Writer, logEvery int) *progress {
	return &progress{mode: mode, w: w, logEvery: logEvery}
}

func (p *progress) start(s actors.Start) {
	p.total, p.startStep, p.stepsPerEpoch = s.TotalSteps, s.StartStep, s.StepsPerEpoch
	p.epochs = int((s.TotalSteps + int64(s.StepsPerEpoch) - 1) / int64(s.StepsPerEpoch))
	p.began = time.Now()
	if p.mode == "none" {
		return
	}
	fmt.Fprintf(p.w, "%s: %d parameters, %d training samples, %d steps per epoch, %d steps\n",
		s.Job.Name, s.Params, s.TrainSamples, s.StepsPerEpoch, s.TotalSteps)
	if s.ResumedFrom != "" {
		fmt.Fprintf(p.w, "resumed from %s at step %d\n", s.ResumedFrom, s.StartStep)
	}
	if p.mode != "bar" {
		return
	}
	p.p = mpb.New(mpb.WithOutput(p.w), mpb.WithAutoRefresh(), mpb.WithWidth(32), mpb.WithRefreshRate(150*time.Millisecond))
	p.bar = p.p.AddBar(s.TotalSteps,
		mpb.PrependDecorators(
			decor.Any(func(st decor.Statistics) string {
				return fmt.Sprintf("epoch %d/%d", min(int(st.Current)/max(p.stepsPerEpoch, 1)+1, p.epochs), p.epochs)
			}, decor.WCSyncSpaceR),
			decor.CountersNoUnit("%d/%d steps", decor.WCSyncSpaceR),
		),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string {
				p.mu.Lock()
				defer p.mu.Unlock()
				return fmt.Sprintf("loss %.4f acc %.3f", p.lastLoss, p.lastAcc)
			}, decor.WCSyncSpace),
			decor.EwmaETA(decor.ET_STYLE_MMSS, 60, decor.WCSyncSpace),
		),
	)
	p.bar.SetCurrent(s.StartStep)
	p.bar.DecoratorAverageAdjust(time.Now())
}

func (p *progress) step(s *actors.StepDone) {
	p.samples += int64(s.Samples)
	switch p.mode {
	case "bar":
		p.mu.Lock()
		p.lastLoss, p.lastAcc = s.Loss, s.Accuracy
		p.mu.Unlock()
		p.bar.EwmaSetCurrent(s.Step+1, 0)
	case "lines":
		if (s.Step+1)%int64(p.logEvery) == 0 || s.Step+1 == p.total {
			rate := float64(p.samples) / time.Since(p.began).Seconds()
			fmt.Fprintf(p.w, "step %d/%d epoch %d/%d loss %.4f acc %.3f lr %.3g %.0f samples/s\n",
				s.Step+1, p.total, s.Epoch+1, p.epochs, s.Loss, s.Accuracy, s.LR, rate)
		}
	}
}

func (p *progress) epoch(e *actors.EpochDone) {
	if p.mode == "none" {
		return
	}
	line := fmt.Sprintf("epoch %d/%d: train loss %.4f acc %.4f", e.Epoch+1, p.epochs, e.TrainLoss, e.TrainAccuracy)
	if e.HasVal {
		line += fmt.Sprintf(", validation loss %.4f acc %.4f", e.ValLoss, e.ValAccuracy)
	}
	if e.Epsilon > 0 {
		line += fmt.Sprintf(", privacy spent epsilon %.3f", e.Epsilon)
	}
	if e.Stop {
		line += " (early stop)"
	}
	p.println(line)
}

func (p *progress) checkpoint(s *actors.SnapshotSaved) {
	if s.Err != nil && p.mode != "none" {
		p.println(fmt.Sprintf("checkpoint at step %d failed: %v", s.Step, s.Err))
	}
}

// println writes a line above the bar when there is one.
func (p *progress) println(line string) {
	if p.p != nil {
		fmt.Fprintln(p.p, line)
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) stop() {
	if p.p == nil {
		return
	}
	p.bar.Abort(false)
	p.p.Wait()
}
