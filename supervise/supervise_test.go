package supervise

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestRestartsAfterPanicAndError: a worker that panics, then fails, then
// runs is started three times, each restart counted by cause; one that
// returns nil is not restarted; a context that ends stops everything and
// Wait returns.
func TestRestartsAfterPanicAndError(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(quiet, reg)
	ctx, cancel := context.WithCancel(context.Background())
	var runs atomic.Int32
	running := make(chan struct{})
	s.Go(ctx, "flaky", func(ctx context.Context) error {
		switch runs.Add(1) {
		case 1:
			panic("boom")
		case 2:
			return errors.New("store unavailable")
		}
		s.OK("flaky")
		close(running)
		<-ctx.Done()
		return nil
	})
	var once atomic.Int32
	s.Go(ctx, "done", func(context.Context) error { once.Add(1); return nil })
	select {
	case <-running:
	case <-time.After(5 * time.Second):
		t.Fatalf("worker not running again after a panic and an error (%d runs)", runs.Load())
	}
	if p := testutil.ToFloat64(s.restarts.WithLabelValues("flaky", "panic")); p != 1 {
		t.Errorf("panic restarts = %v", p)
	}
	if e := testutil.ToFloat64(s.restarts.WithLabelValues("flaky", "error")); e != 1 {
		t.Errorf("error restarts = %v", e)
	}
	if ok := testutil.ToFloat64(s.lastOK.WithLabelValues("flaky")); ok < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success = %v", ok)
	}
	cancel()
	s.Wait()
	if once.Load() != 1 {
		t.Errorf("a worker that returned nil ran %d times", once.Load())
	}
}

// TestEveryRetriesAtNextTick: a periodic worker whose run fails is called
// again at its next tick rather than restarted or stopped, its success is
// recorded, and it returns nil when ctx ends.
func TestEveryRetriesAtNextTick(t *testing.T) {
	s := New(quiet, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	var runs atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- s.Every(ctx, "tidy", time.Millisecond, func(context.Context) error {
			if runs.Add(1) == 1 {
				return errors.New("store unavailable")
			}
			cancel()
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Every returned %v after ctx ended, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Every still running after %d runs", runs.Load())
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("runs = %d, want 2 (a failure, then a success)", n)
	}
	if ok := testutil.ToFloat64(s.lastOK.WithLabelValues("tidy")); ok < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success = %v", ok)
	}
	if e := testutil.ToFloat64(s.restarts.WithLabelValues("tidy", "error")); e != 0 {
		t.Errorf("a failed periodic run counted %v restarts", e)
	}
}
