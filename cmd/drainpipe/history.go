package main

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
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
// workers goroutines (GOMAXPROCS when workers <= 0) generate and fold
// chunks in parallel; the calling goroutine alone writes to the store,
// one chunk's transaction after another in the order of the chunks, so
// the store ends up byte for byte as a sequential import leaves it and
// the writers never wait on each other's SQLite locks. At most
// 2×workers chunks are folded ahead of the writer.
//
// What this skips is HTTP and the journal. The demo's history is
// synthetic: no client was promised it was kept, so there is nothing for
// the journal's fsync to guarantee, and the store's own transactions
// (synchronous, checksummed buckets) are the same as for drained data.
// Live traffic after it goes through the drain endpoint as before.
//
// Lines older than maxAge at their chunk's end are rejected as the
// aggregator would (pass the 1-minute tier's retention). progress, when
// not nil, is called after every chunk is stored, from the calling
// goroutine. importHistory returns the number of lines stored.
func importHistory(ctx context.Context, st historyStore, fleet []gen.AppSpec, seed uint64, from, to time.Time, maxAge time.Duration, workers int, progress func(done, total int, lines int64)) (int64, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	jobs := historyJobs(len(fleet), from, to)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ahead := 2 * workers
	next := make(chan int)
	folded := make(chan historyChunkResult, ahead)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := newHistoryFolder(fleet, seed, from, to, maxAge)
			for i := range next {
				folded <- f.fold(i, jobs[i])
			}
		}()
	}
	// The feeder hands out chunk numbers in order, never more than ahead
	// of the last chunk stored: slots holds one token per chunk in flight.
	slots := make(chan struct{}, ahead)
	go func() {
		defer close(next)
		for i := range jobs {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(folded)
	}()
	defer func() {
		cancel()
		for range folded { // let the workers finish and exit
		}
	}()

	now := time.Now()
	pending := make(map[int]historyChunkResult, ahead)
	var lines int64
	for done := 0; done < len(jobs); {
		r, ok := pending[done]
		if !ok {
			var more bool
			if r, more = <-folded; !more {
				return lines, ctx.Err()
			}
			if r.i != done {
				pending[r.i] = r
				continue
			}
		}
		delete(pending, done)
		if err := st.Import(ctx, r.flush, now); err != nil {
			return lines, fmt.Errorf("import history of %s: %w", fleet[jobs[done].app].Name, err)
		}
		<-slots
		lines += int64(r.lines)
		done++
		if progress != nil {
			progress(done, len(jobs), lines)
		}
	}
	return lines, nil
}

// historyJobs cuts [from, to) into chunks of each of apps apps, newest
// first. Chunks start on multiples of historyChunk (UTC), so no minute, 10
// minutes or hour is split between two chunks: each row is written whole,
// and what the fold remembers within a minute (one R14 event per dyno)
// holds across chunks. Only the newest and the oldest may be shorter.
func historyJobs(apps int, from, to time.Time) []historyJob {
	var jobs []historyJob
	for end := to; end.After(from); {
		start := end.Add(-1).Truncate(historyChunk)
		if start.Before(from) {
			start = from
		}
		for i := range apps {
			jobs = append(jobs, historyJob{i, start, end})
		}
		end = start
	}
	return jobs
}

// historyJob is one chunk of one app's history: fleet[app] in [from, to).
type historyJob struct {
	app      int
	from, to time.Time
}

// historyChunkResult is chunk i folded: its flush and how many lines it held.
type historyChunkResult struct {
	i     int
	flush *metrics.Flush
	lines int
}

// historyFolder generates, frames and folds chunks of history; each
// worker has its own.
type historyFolder struct {
	fleet    []gen.AppSpec
	seed     uint64
	from, to time.Time
	maxAge   time.Duration
	gens     []*gen.Generator
	state    *aggregate.State
	rec      drainpipe.Record
	seq      int64
	batcher  *drain.Batcher
}

func newHistoryFolder(fleet []gen.AppSpec, seed uint64, from, to time.Time, maxAge time.Duration) *historyFolder {
	f := &historyFolder{
		fleet: fleet, seed: seed, from: from, to: to, maxAge: maxAge,
		gens: make([]*gen.Generator, len(fleet)),
	}
	f.batcher = drain.NewBatcher(drain.DefaultBatchMessages, 0, func(body []byte, n int) error {
		f.seq++
		f.rec.Seq, f.rec.Body = f.seq, body
		f.state.Fold(&f.rec)
		return nil
	})
	return f
}

// fold generates job's lines, frames them into bodies and folds every
// body as if it arrived at the end of the chunk, then takes the state as
// one flush with its rows in a fixed order (the fold's maps have none),
// so that merging it gives the same bytes every time. Each chunk gets a
// fresh State: what a State remembers between flushes (R14 events seen,
// per-app limits) must not depend on which chunks a worker folded before.
func (f *historyFolder) fold(i int, j historyJob) historyChunkResult {
	f.state = aggregate.NewState(f.maxAge, 5*time.Minute)
	g := f.gens[j.app]
	if g == nil {
		g = gen.NewGenerator(f.fleet[j.app], f.seed, f.from, f.to)
		f.gens[j.app] = g
	}
	f.rec.App, f.rec.ReceivedAt = f.fleet[j.app].Name, j.to
	n := g.Generate(j.from, j.to, func(l *gen.Line) {
		_ = f.batcher.AddBytes(l.Time, l.AppName, l.ProcID, l.Msg) // the fold cannot fail
	})
	_ = f.batcher.Flush()
	flush := f.state.Take(f.seq)
	slices.SortFunc(flush.Rows, func(a, b metrics.Row) int {
		return cmp.Or(strings.Compare(a.App, b.App), strings.Compare(a.ProcessType, b.ProcessType), a.Time.Compare(b.Time))
	})
	return historyChunkResult{i: i, flush: flush, lines: n}
}
