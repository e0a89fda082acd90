package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/drain"
	"github.com/drainpipe/drainpipe/gen"
	"github.com/drainpipe/drainpipe/metrics"
)

// historyStore is where importHistory puts its buckets: *sqlite.Store.
type historyStore interface {
	Import(ctx context.Context, f *metrics.Flush, now time.Time) error
}

// historyChunk is the slice of one app's history generated, folded and
// stored as one unit (one store transaction).
const historyChunk = 3 * time.Hour

// importHistory generates fleet's traffic for [from, to) and folds it
// into st with the drain path's own code: the generator's lines are
// framed into logplex-1 bodies of up to 500 lines, as Logplex sends
// them, and every body goes through aggregate.State.Fold (framing,
// syslog header, classification, parsing, the per-minute fold) as if it
// had arrived at the end of its chunk. Each chunk of an app is then
// merged into the store in one transaction (Store.Import), newest chunks
// first so the dashboard's default 24 hours fill in first.
//
// What this skips is HTTP and the journal. The demo's history is
// synthetic: no client was promised it was kept, so there is nothing for
// the journal's fsync to guarantee, and the store's own transactions
// (synchronous, checksummed buckets) are the same as for drained data.
// Live traffic after it goes through the drain endpoint as before.
//
// Lines older than maxAge at their chunk's end are rejected as the
// aggregator would (pass the 1-minute tier's retention). progress, when
// not nil, is called after every chunk. importHistory
// returns the number of lines folded.
func importHistory(ctx context.Context, st historyStore, fleet []gen.AppSpec, seed uint64, from, to time.Time, maxAge time.Duration, workers int, progress func(done, total int, lines int64)) (int64, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	type job struct {
		app      int
		from, to time.Time
	}
	var jobs []job
	for end := to; end.After(from); end = end.Add(-historyChunk) {
		start := end.Add(-historyChunk)
		if start.Before(from) {
			start = from
		}
		for i := range fleet {
			jobs = append(jobs, job{i, start, end})
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan job)
	var lines atomic.Int64
	var done atomic.Int64
	var progressMu sync.Mutex
	var wg sync.WaitGroup
	now := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gens := make([]*gen.Generator, len(fleet))
			state := aggregate.NewState(maxAge, 5*time.Minute)
			var rec drainpipe.Record
			var seq int64
			for j := range next {
				if gens[j.app] == nil {
					gens[j.app] = gen.NewGenerator(fleet[j.app], seed, from, to)
				}
				rec.App, rec.ReceivedAt = fleet[j.app].Name, j.to
				b := drain.NewBatcher(drain.DefaultBatchMessages, 0, func(body []byte, n int) error {
					seq++
					rec.Seq, rec.Body = seq, body
					state.Fold(&rec)
					return nil
				})
				n := gens[j.app].Generate(j.from, j.to, func(l *gen.Line) {
					_ = b.AddBytes(l.Time, l.AppName, l.ProcID, l.Msg) // the fold cannot fail
				})
				_ = b.Flush()
				if err := st.Import(ctx, state.Take(seq), now); err != nil {
					cancel(fmt.Errorf("import history of %s: %w", fleet[j.app].Name, err))
					continue
				}
				lines.Add(int64(n))
				d := done.Add(1)
				if progress != nil {
					progressMu.Lock()
					progress(int(d), len(jobs), lines.Load())
					progressMu.Unlock()
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return lines.Load(), context.Cause(ctx)
}
