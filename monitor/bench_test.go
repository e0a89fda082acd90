package monitor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/metrics"
)

// benchEvaluator watches apps apps with a LATENCY and an ERROR_RATE
// monitor each and returns it with one flush's rows (one minute of 50
// requests per app).
func benchEvaluator(b *testing.B, apps int) (*Evaluator, *metrics.Flush, *time.Time) {
	st := &memStore{states: map[string]State{}}
	for i := 0; i < apps; i++ {
		app := fmt.Sprintf("app%d", i)
		st.mons = append(st.mons,
			Monitor{ID: app + "-lat", App: app, ProcessType: "web", ActionType: ActionAlert, Name: Latency, Op: GreaterOrEqual, Value: 500, Period: 5, NotificationPeriod: 60, IsActive: true},
			Monitor{ID: app + "-err", App: app, ProcessType: "web", ActionType: ActionAlert, Name: ErrorRate, Op: GreaterOrEqual, Value: 0.1, Period: 5, NotificationPeriod: 60, IsActive: true})
	}
	now := new(time.Time)
	*now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	e := NewEvaluator(Config{Grace: time.Hour, Now: func() time.Time { return *now }}, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := e.Load(context.Background(), nil); err != nil {
		b.Fatal(err)
	}
	f := &metrics.Flush{}
	t0 := now.Add(-time.Hour)
	for i := 0; i < apps; i++ {
		r := errorMinute(t0, 50, 2)
		r.App = fmt.Sprintf("app%d", i)
		for j := 0; j < 50; j++ {
			r.Bucket.AddService(float64(20 + j*7))
		}
		f.Rows = append(f.Rows, r)
	}
	return e, f, now
}

// BenchmarkObserve is what the aggregator's goroutine pays per flush for
// alerting: filtering and queueing the rows of 1,000 watched apps.
func BenchmarkObserve(b *testing.B) {
	e, f, _ := benchEvaluator(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		e.Observe(f)
		e.mu.Lock()
		e.queue = e.queue[:0]
		e.mu.Unlock()
	}
}

// BenchmarkPass is one evaluator pass that closes a minute for 1,000
// apps with 2 monitors each: merge the rows, evaluate 2,000 monitors,
// commit their states.
func BenchmarkPass(b *testing.B) {
	e, f, now := benchEvaluator(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		// The clock and the data move on together: each pass closes the
		// previous minute (live traffic).
		*now = now.Add(time.Minute)
		for i := range f.Rows {
			f.Rows[i].Time = now.Add(-time.Hour).Truncate(time.Minute)
		}
		e.Observe(f)
		e.pass(context.Background())
	}
}
