package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/troupe-ml/troupe/actors"
)

// metrics are a run's Prometheus metrics, on a registry of its own (so that tests and library
// users can run several nodes in one process). The run's hooks feed them.
type metrics struct {
	reg         *prometheus.Registry
	step        prometheus.Gauge
	steps       prometheus.Counter
	samples     prometheus.Counter
	stepSeconds prometheus.Histogram
	rate        prometheus.Gauge
	loss        prometheus.Gauge
	reduceBytes prometheus.Counter
	reduceSecs  prometheus.Counter
	busRate     prometheus.Gauge
	generation  prometheus.Gauge
	members     prometheus.Gauge
	worlds      prometheus.Counter
	restarts    *prometheus.CounterVec

	last time.Time // when the previous step was applied
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "troupe", Name: name, Help: help})
		f(g)
		return g
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "troupe", Name: name, Help: help})
		f(c)
		return c
	}
	m.step = gauge("step", "The next step this node runs: every step below it is applied.")
	m.steps = counter("steps_total", "Steps this process applied.")
	m.samples = counter("samples_total", "Samples of the global batches this process applied (the world's, not its share).")
	m.stepSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "troupe", Name: "step_seconds",
		Help:    "Time between two applied steps in one world: batch, forward, backward, all-reduce, update.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
	f(m.stepSeconds)
	m.rate = gauge("samples_per_second", "Samples per second over the last step.")
	m.loss = gauge("loss", "Mean loss of the last step's global batch.")
	m.reduceBytes = counter("allreduce_bytes_total", "Bytes of the gradient vectors all-reduced, each counted once.")
	m.reduceSecs = counter("allreduce_seconds_total", "Time spent in all-reduce.")
	m.busRate = gauge("allreduce_bus_bytes_per_second", "Bus bandwidth of the last all-reduce: bytes x 2(n-1)/n / seconds, as gloo and NCCL count it.")
	m.generation = gauge("generation", "Generation of the world this node trains in (0: none yet).")
	m.members = gauge("world_members", "Members of the world this node trains in.")
	m.worlds = counter("worlds_total", "Worlds this node entered.")
	m.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "troupe", Name: "restarts_total",
		Help: "Supervised restarts of a role after a failure."}, []string{"role"})
	f(m.restarts)
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.members.Set(1)
	return m
}

func (m *metrics) onStep(s *actors.StepDone) {
	now := time.Now()
	if !m.last.IsZero() {
		d := now.Sub(m.last).Seconds()
		m.stepSeconds.Observe(d)
		m.rate.Set(float64(s.Samples) / d)
	}
	m.last = now
	m.step.Set(float64(s.Step + 1))
	m.steps.Inc()
	m.samples.Add(float64(s.Samples))
	m.loss.Set(s.Loss)
	if s.Ranks > 1 && s.ReduceSeconds > 0 {
		m.reduceBytes.Add(float64(s.ReduceBytes))
		m.reduceSecs.Add(s.ReduceSeconds)
		m.busRate.Set(float64(s.ReduceBytes) * 2 * float64(s.Ranks-1) / float64(s.Ranks) / s.ReduceSeconds)
	}
}

func (m *metrics) onWorld(w actors.WorldInfo) {
	m.last = time.Time{} // the stall of a world change is not a step's time
	m.generation.Set(float64(w.Generation))
	m.members.Set(float64(len(w.Members)))
	m.worlds.Inc()
}

func (m *metrics) onRestart(role string) { m.restarts.WithLabelValues(role).Inc() }

// serve exposes the metrics at http://addr/metrics until stop is called.
func (m *metrics) serve(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}

// hook chains the metrics' hooks after the hooks opts already has.
func (m *metrics) hook(opts *actors.Options) {
	onStep, onWorld, onRestart := opts.OnStep, opts.OnWorld, opts.OnRestart
	opts.OnStep = func(s *actors.StepDone) {
		if onStep != nil {
			onStep(s)
		}
		m.onStep(s)
	}
	opts.OnWorld = func(w actors.WorldInfo) {
		if onWorld != nil {
			onWorld(w)
		}
		m.onWorld(w)
	}
	opts.OnRestart = func(role string) {
		if onRestart != nil {
			onRestart(role)
		}
		m.onRestart(role)
	}
}
