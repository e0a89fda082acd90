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
