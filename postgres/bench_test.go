package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/storetest"
)

// BenchmarkApplyPartition measures the scale-out aggregator's write: one
// partition's flush (storetest.BenchFlush: 100 one-minute deltas) merged
// into the three tiers with its offset move and 20 frame IDs, in one
// transaction. rows/s counts 1-minute deltas.
func BenchmarkApplyPartition(b *testing.B) {
	s := openTest(b, nil)
	frames := make([]aggregate.FrameKey, 20)
	var off int64
	storetest.BenchApply(b, func(ctx context.Context, f *metrics.Flush) error {
		for i := range frames {
			frames[i] = aggregate.FrameKey{App: f.Rows[i].App, FrameID: time.Now().String() + string(rune('a'+i))}
		}
		p := &aggregate.PartitionFlush{Group: "bench", Topic: "logs", Partition: 0, From: off, To: off + 100, Flush: f, Frames: frames}
		off += 100
		return s.ApplyPartition(ctx, p)
	})
}

// BenchmarkApply is the same write through aggregate.Sink (role all with
// a local journal).
func BenchmarkApply(b *testing.B) {
	s := openTest(b, nil)
	storetest.BenchApply(b, s.Apply)
}

// BenchmarkBuckets24h measures the query behind one app's 24-hour charts
// at a 1-minute step, over a day of 50 apps × 2 process types.
func BenchmarkBuckets24h(b *testing.B) {
	s := openTest(b, nil)
	end := time.Now().UTC().Truncate(time.Minute)
	app := storetest.FillDay(b, s.Apply, end)
	if _, err := s.pool.Exec(context.Background(), `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	storetest.BenchBuckets(b, s, app, end)
}

// BenchmarkApplyPartitionConcurrent runs 1, 2 and 4 aggregators at once,
// each applying its own partition's flushes (its own 50 apps), as a
// consumer group does; rows/s is their sum.
func BenchmarkApplyPartitionConcurrent(b *testing.B) {
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("partitions=%d", n), func(b *testing.B) {
			s := openTest(b, nil)
			t0 := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			b.ResetTimer()
			for p := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range b.N {
						f := storetest.BenchFlushOf(fmt.Sprintf("p%d", p), t0.Add(time.Duration(i)*time.Second), int64(i))
						err := s.ApplyPartition(context.Background(), &aggregate.PartitionFlush{
							Group: "bench", Topic: "logs", Partition: int32(p), From: int64(i), To: int64(i + 1), Flush: f})
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n*b.N*storetest.BenchApps*storetest.BenchProcessTypes)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
