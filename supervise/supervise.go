// Package supervise runs drainpipe's background workers (the aggregator's
// fold-and-flush loop, journal trimming, retention) so that none of them
// can die silently: a panic is recovered, logged with its stack and
// counted, and the worker is started again after a backoff; each worker's
// last success is exported so a stalled one shows in /metrics.
package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Backoff bounds: the first restart waits MinBackoff, each further one in
// a row twice as long, up to MaxBackoff. A run that lasted longer than
// MaxBackoff resets the wait.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 10 * time.Second
)

// Supervisor starts and restarts workers and keeps their metrics.
type Supervisor struct {
	log      *slog.Logger
	lastOK   *prometheus.GaugeVec
	restarts *prometheus.CounterVec
	wg       sync.WaitGroup
}

// New returns a Supervisor whose metrics are registered with reg (nil: not
// exported):
//
//	drainpipe_worker_last_success_timestamp_seconds{worker}
//	drainpipe_worker_restarts_total{worker,cause}
func New(log *slog.Logger, reg prometheus.Registerer) *Supervisor {
	s := &Supervisor{
		log: log,
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drainpipe_worker_last_success_timestamp_seconds",
			Help: "When each background worker last finished a unit of work (flush, trim, retention) successfully.",
		}, []string{"worker"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drainpipe_worker_restarts_total",
			Help: "Background workers restarted by their supervisor, by worker and cause (panic or error).",
		}, []string{"worker", "cause"}),
	}
	if reg != nil {
		reg.MustRegister(s.lastOK, s.restarts)
	}
	return s
}

// OK records that worker just finished a unit of work successfully.
func (s *Supervisor) OK(worker string) { s.lastOK.WithLabelValues(worker).SetToCurrentTime() }

// Declare makes worker's metrics appear (at zero) before its first
// success or restart, so a worker that never succeeds is visible too.
func (s *Supervisor) Declare(worker string) {
	s.lastOK.WithLabelValues(worker)
	s.restarts.WithLabelValues(worker, "panic")
	s.restarts.WithLabelValues(worker, "error")
}

// Go runs fn in its own goroutine until ctx ends. When fn panics or
// returns an error before ctx ends, it is logged, counted and run again
// after a backoff. fn returning nil while ctx is live ends the worker.
func (s *Supervisor) Go(ctx context.Context, worker string, fn func(context.Context) error) {
	s.Declare(worker)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		backoff := MinBackoff
		for {
			start := time.Now()
			err, panicked := run(ctx, fn)
			if ctx.Err() != nil {
				return
			}
			switch {
			case panicked:
				s.restarts.WithLabelValues(worker, "panic").Inc()
				s.log.Error("worker panicked; restarting", "worker", worker, "panic", err.Error(), "in", backoff)
			case err != nil:
				s.restarts.WithLabelValues(worker, "error").Inc()
				s.log.Error("worker failed; restarting", "worker", worker, "err", err, "in", backoff)
			default:
				return
			}
			if time.Since(start) > MaxBackoff {
				backoff = MinBackoff
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, MaxBackoff)
		}
	}()
}

// Every calls fn at once and then every interval until ctx ends, for work
// whose failure is not fatal (retention, partition maintenance): an error
// while ctx is live is logged and the next tick tries again; a success is
// recorded with OK(worker). It returns nil when ctx ends, so it fits Go.
func (s *Supervisor) Every(ctx context.Context, worker string, interval time.Duration, fn func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := fn(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error(worker, "err", err)
		case err == nil:
			s.OK(worker)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// run calls fn, turning a panic into an error with its stack.
func run(ctx context.Context, fn func(context.Context) error) (err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = fmt.Errorf("%v\n%s", r, debug.Stack()), true
		}
	}()
	return fn(ctx), false
}

// Wait waits for every worker to return (after their ctx ended).
func (s *Supervisor) Wait() { s.wg.Wait() }
