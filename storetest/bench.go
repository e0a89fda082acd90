package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"
)

// BenchApps and BenchProcessTypes shape the benchmark flushes: one
// aggregator's share of a fleet, each app with web and worker dynos.
const (
	BenchApps         = 50
	BenchProcessTypes = 2
)

// BenchFlush is a 1-second flush of an aggregator at time at: one 1-minute
// delta per app and process type, each with 20 requests, two dynos'
// runtime samples and a custom metric, as the aggregator hands the store.
func BenchFlush(at time.Time, seq int64) *metrics.Flush { return BenchFlushOf("app", at, seq) }

// BenchFlushOf is BenchFlush for apps named <prefix>-000 … <prefix>-049,
// so that concurrent writers (one per Kafka partition) own disjoint apps.
func BenchFlushOf(prefix string, at time.Time, seq int64) *metrics.Flush {
	f := &metrics.Flush{Position: seq, Rows: make([]metrics.Row, 0, BenchApps*BenchProcessTypes)}
	minute := at.Truncate(time.Minute)
	for a := range BenchApps {
		for p, pt := range []string{"web", "worker"}[:BenchProcessTypes] {
			b := new(metrics.Bucket)
			for i := range 20 {
				b.AddStatus([]int{200, 200, 200, 302, 404, 500}[(i+a)%6])
				b.AddService(float64(5 + (i*37+a*11+int(seq))%900))
				b.AddConnect(float64(i % 3))
			}
			for d := 1; d <= 2; d++ {
				g := b.Dyno(fmt.Appendf(nil, "%s.%d", pt, d))
				g.Add(logline.GaugeMemRSS, float64((200+a+p)<<20), at.UnixNano())
				g.Add(logline.GaugeLoad1m, 0.5, at.UnixNano())
			}
			b.AddCustom("jobs.done", logline.CustomCount, 3, 0)
			f.Rows = append(f.Rows, metrics.Row{App: fmt.Sprintf("%s-%03d", prefix, a), ProcessType: pt, Time: minute, Bucket: b})
		}
	}
	return f
}

// BenchApply measures Apply of BenchFlush flushes one simulated second
// apart (so most rows merge into stored ones, and every minute starts new
// ones), and reports rows/s: 1-minute deltas absorbed per second, each
// written to all three tiers.
func BenchApply(b *testing.B, apply func(ctx context.Context, f *metrics.Flush) error) {
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	flushes := make([]*metrics.Flush, 120)
	for i := range flushes {
		flushes[i] = BenchFlush(t0.Add(time.Duration(i)*time.Second), int64(i+1))
	}
	b.ResetTimer()
	rows := 0
	for i := range b.N {
		f := flushes[i%len(flushes)]
		// Shift each round of 120 flushes two minutes on, so the store
		// keeps seeing new minutes as well as merges.
		if round := i / len(flushes); round > 0 {
			shifted := *f
			shifted.Rows = append([]metrics.Row(nil), f.Rows...)
			for j := range shifted.Rows {
				shifted.Rows[j].Time = f.Rows[j].Time.Add(time.Duration(round) * 2 * time.Minute)
			}
			f = &shifted
		}
		if err := apply(ctx, f); err != nil {
			b.Fatal(err)
		}
		rows += len(f.Rows)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// FillDay stores 24 hours of 1-minute rows for BenchApps apps, one flush
// per minute, ending at end, and returns the first app's name.
func FillDay(tb testing.TB, apply func(ctx context.Context, f *metrics.Flush) error, end time.Time) string {
	ctx := context.Background()
	start := end.Add(-24 * time.Hour)
	for t, i := start, int64(1); t.Before(end); t, i = t.Add(time.Minute), i+1 {
		if err := apply(ctx, BenchFlush(t, i)); err != nil {
			tb.Fatal(err)
		}
	}
	return "app-000"
}

// BenchBuckets measures the query behind one app's 24-hour charts at a
// 1-minute step: Buckets of every process type over a filled day.
func BenchBuckets(b *testing.B, s Store, app string, end time.Time) {
	ctx := context.Background()
	start := end.Add(-24 * time.Hour)
	want := 24 * 60 * BenchProcessTypes
	b.ResetTimer()
	for range b.N {
		rows, err := s.Buckets(ctx, app, "", drainpipe.Tier1m, start, end)
		if err != nil {
			b.Fatal(err)
		}
		if len(rows) != want {
			b.Fatalf("%d rows, want %d", len(rows), want)
		}
	}
	b.ReportMetric(float64(want), "rows/op")
}
