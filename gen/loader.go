package gen

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drainpipe/drainpipe/drain"
)

// Sender delivers one logplex-1 body of msgCount frames. *drain.Client
// implements it.
type Sender interface {
	Send(ctx context.Context, body []byte, msgCount int) error
}

// Options tune Run. Zero values take the defaults.
type Options struct {
	// Seed makes the traffic deterministic.
	Seed uint64
	// Concurrency is the number of POSTs in flight at once (default 8).
	Concurrency int
	// Workers is the number of goroutines generating lines (default
	// GOMAXPROCS).
	Workers int
	// BatchMessages and BatchBytes bound one POST (defaults 500 and 1 MiB,
	// like Logplex).
	BatchMessages, BatchBytes int
	// Chunk is the slice of one app's backfill one worker generates at a
	// time (default 10 minutes).
	Chunk time.Duration
	// Live keeps going after the backfill: every second, the lines of the
	// seconds that have passed are generated and sent, until ctx ends.
	Live bool
	// Progress, when set, is called about every ProgressInterval (default
	// 1 s) and once at the end, always from one goroutine at a time.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Now is the clock of live mode (default time.Now).
	Now func() time.Time
}

// Progress reports how far Run has got.
type Progress struct {
	// Phase is "backfill", "live" or "done".
	Phase string
	// Generated counts lines produced; Sent lines acknowledged (2xx);
	// Failed lines in batches given up (4xx, retries exhausted).
	Generated, Sent, Failed int64
	// Batches counts acknowledged POSTs, FailedBatches those given up.
	Batches, FailedBatches int64
	// Backfilled is the share of the backfill window generated (0..1).
	Backfilled float64
	// Cursor is, in live mode, the end of the last second sent.
	Cursor time.Time
	// Elapsed is the time since Run started.
	Elapsed time.Duration
	// LastError is the most recent send error, if any.
	LastError string
}

// Run sends the traffic of fleet for [from, to) through the sender of each
// app (senders is keyed by app name and must hold every app), as fast as
// the senders accept with at most Options.Concurrency POSTs in flight,
// then, with Options.Live, follows real time from `to` until ctx ends.
// Batches of one app are sent concurrently and not in time order.
//
// A batch that fails is counted and skipped, except that a 401, 403 or 404
// answer (wrong credentials or unknown app: every further batch would fail
// the same way) stops Run with that error. Run returns the final progress,
// and ctx's error when ctx ended first (the normal way to end live mode).
func Run(ctx context.Context, fleet []AppSpec, senders map[string]Sender, from, to time.Time, opt Options) (Progress, error) {
	for _, a := range fleet {
		if senders[a.Name] == nil {
			return Progress{}, fmt.Errorf("gen: no sender for app %q", a.Name)
		}
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = 8
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.Chunk <= 0 {
		opt.Chunk = 10 * time.Minute
	}
	if opt.ProgressInterval <= 0 {
		opt.ProgressInterval = time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	l := &loader{
		opt:     opt,
		fleet:   fleet,
		senders: make([]Sender, len(fleet)),
		gens:    make([]*Generator, len(fleet)),
		locks:   make([]sync.Mutex, len(fleet)),
		batches: make(chan batch, opt.Concurrency),
		start:   time.Now(),
		cancel:  cancel,
	}
	l.phase.Store("backfill")
	for t := from; t.Before(to); t = t.Add(opt.Chunk) {
		l.total += int64(len(fleet))
	}
	for i, a := range fleet {
		l.senders[i] = senders[a.Name]
		l.gens[i] = NewGenerator(a, opt.Seed, from, to)
	}

	var sendWG sync.WaitGroup
	for range opt.Concurrency {
		sendWG.Add(1)
		go func() {
			defer sendWG.Done()
			l.sendLoop(ctx)
		}()
	}
	stopProgress := l.startProgress()

	l.backfill(ctx, from, to)
	if opt.Live && ctx.Err() == nil {
		l.phase.Store("live")
		l.live(ctx, to)
	}
	close(l.batches)
	sendWG.Wait()
	stopProgress()
	l.phase.Store("done")
	p := l.snapshot()
	if opt.Progress != nil {
		opt.Progress(p)
	}
	if err := context.Cause(ctx); err != nil {
		return p, err
	}
	return p, nil
}

type batch struct {
	app  int
	body *[]byte
	n    int
}

type loader struct {
	opt     Options
	fleet   []AppSpec
	senders []Sender
	gens    []*Generator
	locks   []sync.Mutex
	batches chan batch
	pool    sync.Pool
	start   time.Time
	cancel  context.CancelCauseFunc

	phase                                                   atomic.Value
	generated, sent, failed, batchesOK, batchesFailed, done atomic.Int64
	total                                                   int64
	cursor                                                  atomic.Int64
	lastErr                                                 atomic.Value
}

func (l *loader) snapshot() Progress {
	p := Progress{
		Phase:         l.phase.Load().(string),
		Generated:     l.generated.Load(),
		Sent:          l.sent.Load(),
		Failed:        l.failed.Load(),
		Batches:       l.batchesOK.Load(),
		FailedBatches: l.batchesFailed.Load(),
		Elapsed:       time.Since(l.start),
	}
	if l.total > 0 {
		p.Backfilled = float64(l.done.Load()) / float64(l.total)
	}
	if c := l.cursor.Load(); c != 0 {
		p.Cursor = time.Unix(0, c).UTC()
	}
	if e, ok := l.lastErr.Load().(string); ok {
		p.LastError = e
	}
	return p
}

func (l *loader) startProgress() (stop func()) {
	if l.opt.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(l.opt.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				l.opt.Progress(l.snapshot())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (l *loader) sendLoop(ctx context.Context) {
	for b := range l.batches {
		if ctx.Err() == nil {
			err := l.senders[b.app].Send(ctx, *b.body, b.n)
			if err == nil {
				l.sent.Add(int64(b.n))
				l.batchesOK.Add(1)
			} else if ctx.Err() == nil {
				l.failed.Add(int64(b.n))
				l.batchesFailed.Add(1)
				l.lastErr.Store(err.Error())
				var se *drain.StatusError
				if errors.As(err, &se) && (se.Code == 401 || se.Code == 403 || se.Code == 404) {
					l.cancel(fmt.Errorf("gen: app %s: %w", l.fleet[b.app].Name, err))
				}
			}
		}
		l.pool.Put(b.body)
	}
}

// batcher returns a drain.Batcher whose full batches go to the senders.
func (l *loader) batcher(ctx context.Context, app int) *drain.Batcher {
	return drain.NewBatcher(l.opt.BatchMessages, l.opt.BatchBytes, func(body []byte, n int) error {
		p, _ := l.pool.Get().(*[]byte)
		if p == nil {
			p = new([]byte)
		}
		*p = append((*p)[:0], body...)
		select {
		case l.batches <- batch{app: app, body: p, n: n}:
			return nil
		case <-ctx.Done():
			l.pool.Put(p)
			return ctx.Err()
		}
	})
}

type job struct {
	app      int
	from, to time.Time
}

// backfill generates [from, to) chunk by chunk, all apps' first chunk
// before any app's second, on Workers goroutines.
func (l *loader) backfill(ctx context.Context, from, to time.Time) {
	if !to.After(from) {
		return
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range l.opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				l.generate(ctx, j.app, j.from, j.to)
				l.done.Add(1)
			}
		}()
	}
feed:
	for t := from; t.Before(to); t = t.Add(l.opt.Chunk) {
		end := t.Add(l.opt.Chunk)
		if end.After(to) {
			end = to
		}
		for i := range l.fleet {
			select {
			case jobs <- job{app: i, from: t, to: end}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
}

// generate sends app's lines for [from, to).
func (l *loader) generate(ctx context.Context, app int, from, to time.Time) {
	l.locks[app].Lock()
	defer l.locks[app].Unlock()
	b := l.batcher(ctx, app)
	var stop bool
	n := l.gens[app].Generate(from, to, func(line *Line) {
		if stop {
			return
		}
		if err := b.AddBytes(line.Time, line.AppName, line.ProcID, line.Msg); err != nil {
			stop = true
		}
	})
	if !stop {
		b.Flush()
	}
	l.generated.Add(int64(n))
}

// live sends, every second, the lines of the whole seconds that have
// passed since cursor.
func (l *loader) live(ctx context.Context, cursor time.Time) {
	cursor = cursor.Truncate(time.Second)
	l.cursor.Store(cursor.UnixNano())
	for ctx.Err() == nil {
		now := l.opt.Now().Truncate(time.Second)
		if now.After(cursor) {
			// Cap one step so that a long stall does not build one huge
			// generation; the loop catches up quickly.
			end := now
			if end.Sub(cursor) > l.opt.Chunk {
				end = cursor.Add(l.opt.Chunk)
			}
			for i := range l.fleet {
				if ctx.Err() != nil {
					return
				}
				l.generate(ctx, i, cursor, end)
			}
			cursor = end
			l.cursor.Store(cursor.UnixNano())
			continue
		}
		// Sleep until just after the next second completes, but wake at
		// least every 200 ms so that a clock that jumps (or a fake one in
		// tests) is followed promptly.
		wait := min(max(cursor.Add(time.Second).Sub(l.opt.Now())+20*time.Millisecond, 10*time.Millisecond), 200*time.Millisecond)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
