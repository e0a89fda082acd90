// Package aggregate folds journal records into per-minute buckets and
// flushes them to the store together with the journal position.
//
// The aggregator reads the journal in order, frames and parses every line,
// and folds it into the bucket of its app, process type and event-time
// minute. Every FlushInterval it hands all buckets touched since the last
// flush (closed and still-open minutes alike) to the store as deltas, with
// the sequence number of the last record folded, in one transaction. When
// flushes get slow (many apps), it waits longer between them, up to
// MaxFlushInterval, so that deltas add up in memory and each store row is
// rewritten less often. The store applies a flush on a goroutine of its
// own while the aggregator goes on folding (one flush at a time, in
// order). After
// a crash it resumes from the stored position: records after it are folded
// again, records before it never are, so nothing is lost or counted twice.
package aggregate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/internal/tightslice"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/logplex"
	"github.com/drainpipe/drainpipe/metrics"
)

// Sink is where flushes go: the store.
type Sink interface {
	// Apply merges f into the store and records f.Position atomically.
	Apply(ctx context.Context, f *metrics.Flush) error
	// Position returns the journal position of the last applied flush.
	Position(ctx context.Context) (int64, error)
}

// Config tunes the aggregator; zero fields take the defaults.
type Config struct {
	// FlushInterval is how often buckets go to the store while flushes
	// are quick (default 1 s; SPEC §4 asks for freshness within 10 s).
	FlushInterval time.Duration
	// MaxFlushInterval bounds the adaptive wait between flushes (default
	// 2 s). After a flush that took d, the next one starts d after it
	// ended, but no sooner than FlushInterval and no later than
	// MaxFlushInterval, and the fold goes on meanwhile: a line waits at
	// most MaxFlushInterval + 2·d from its 2xx to the store (≤ 10 s while
	// flushes take ≤ 4 s). A flush's cost grows with the (app, process
	// type, minute) rows it touches, hardly with the lines folded into
	// them: when every row is touched in every flush (busy apps), a longer
	// wait makes each row rewritten less often; when apps send every few
	// seconds, a longer wait only makes flushes bigger, so the wait stays
	// short (a 10,000-app run with a 4 s bound measured the same CPU and
	// worse freshness, docs/BENCHMARKS.md). The Kafka aggregator
	// (kafka.Aggregator) flushes every FlushInterval and ignores it.
	MaxFlushInterval time.Duration
	// ReadBatch is how many journal records are read at once (default 256).
	ReadBatch int
	// MaxAge drops lines older than this relative to their arrival
	// (default 3 days, the 1-minute tier's retention).
	MaxAge time.Duration
	// MaxFuture drops lines more than this ahead of their arrival
	// (default 5 minutes).
	MaxFuture time.Duration
	// TrimEvery is how often applied records are deleted from the journal
	// (default 10 s).
	TrimEvery time.Duration
	// OK, when not nil, is called with "flush" after every flush the store
	// committed (which also rolled the deltas up into the 10-minute and
	// hourly tiers) and with "trim" after every journal trim; the
	// supervisor exports these as each worker's last success.
	OK func(worker string)
	// OnFlush, when not nil, is given every flush after the store applied
	// it (the monitor evaluator's feed), also one that was in flight when
	// the fold panicked (the restarted Run gives it before it reads the
	// journal). It runs on the aggregator's goroutine, must not block,
	// and must not change the flush.
	OnFlush func(*metrics.Flush)
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	c.defaults()
	return c
}

func (c *Config) defaults() {
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.MaxFlushInterval <= 0 {
		c.MaxFlushInterval = max(2*time.Second, c.FlushInterval)
	}
	c.MaxFlushInterval = max(c.MaxFlushInterval, c.FlushInterval)
	if c.ReadBatch <= 0 {
		c.ReadBatch = 256
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 3 * 24 * time.Hour
	}
	if c.MaxFuture <= 0 {
		c.MaxFuture = 5 * time.Minute
	}
	if c.TrimEvery <= 0 {
		c.TrimEvery = 10 * time.Second
	}
}

// Rejection reasons, as they appear in the log-loss series.
const (
	ReasonFraming   = "rejected.framing"   // the unframeable tail of a body
	ReasonMalformed = "rejected.malformed" // a frame or line that could not be parsed
	ReasonTooOld    = "rejected.too_old"
	ReasonFuture    = "rejected.future"
	ReasonCustomCap = "rejected.custom_limit"
	// ReasonCardinality counts lines that would have added a process type,
	// dyno or custom metric name beyond an app's limits (see Limits).
	ReasonCardinality = "rejected.cardinality"
	// ReasonCorrupt counts journal records (whole batches) whose checksum
	// failed: their bytes were changed on disk, so their lines are lost.
	ReasonCorrupt = "rejected.corrupt"
	// ReasonLineTooLong counts frames longer than MaxLineBytes.
	ReasonLineTooLong = "rejected.line_too_long"
	// ReasonTooManyFrames counts the frames of a body beyond
	// MaxFramesPerBody.
	ReasonTooManyFrames = "rejected.too_many_frames"
	ReasonDropCount     = "drop_count" // Logplex-Drop-Count header
	ReasonLostCount     = "lost_count" // Logplex-Lost-Count header
)

// Aggregator folds journal records into buckets and flushes them.
type Aggregator struct {
	cfg    Config
	j      drainpipe.Journal
	sink   Sink
	notify <-chan struct{}
	log    *slog.Logger

	state    *State
	pos      int64
	lastTrim time.Time
	// trimFailed: the last Trim failed (see applied).
	trimFailed bool
	flushed    atomic.Int64 // the position the store has committed
	// wait is the time from the end of one flush to the start of the
	// next, adapted to the last flush's duration (see MaxFlushInterval).
	wait time.Duration
	// applying is the flush the store is applying in the background while
	// Run goes on folding; nil when none. One at a time, in order.
	applying *applying

	// folding is the record being folded; poison counts the panics each
	// record caused, so that a record that makes the fold panic again
	// after a restart is skipped (counted as rejected.malformed) instead
	// of stopping aggregation for good.
	folding int64
	poison  map[int64]int

	// health is read by HTTP handlers while Run writes it.
	healthMu     sync.Mutex
	failingSince time.Time // zero while flushes succeed
	lastErr      error

	mLines    *prometheus.CounterVec
	mRejected *prometheus.CounterVec
	mFlushes  prometheus.Counter
	mFlushErr prometheus.Counter
	mFlushDur prometheus.Histogram
	mWait     prometheus.Gauge
	mLastOK   prometheus.Gauge
	mPos      prometheus.Gauge

	beforeFold func(*drainpipe.Record) // test hook: runs before each fold
}

// New returns an aggregator reading j and flushing to sink. notify (may be
// nil) wakes it when the journal has new records; it also polls.
func New(cfg Config, j drainpipe.Journal, sink Sink, notify <-chan struct{}, log *slog.Logger, reg prometheus.Registerer) *Aggregator {
	cfg.defaults()
	a := &Aggregator{
		cfg: cfg, j: j, sink: sink, notify: notify, log: log,
		poison: map[int64]int{},
		mLines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drainpipe_aggregate_lines_total",
			Help: "Lines folded by the aggregator, by kind or rejection reason.",
		}, []string{"kind"}),
		mRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drainpipe_rejected_lines_total",
			Help: "Lines skipped or reported lost, per app and reason, as the app's log-loss series shows them (rejected.* by drainpipe; drop_count and lost_count from the sender's headers).",
		}, []string{"app", "reason"}),
		mFlushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drainpipe_aggregate_flushes_total", Help: "Flushes applied to the store.",
		}),
		mFlushErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drainpipe_aggregate_flush_errors_total", Help: "Flushes the store refused (retried).",
		}),
		mFlushDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "drainpipe_aggregate_flush_seconds", Help: "Time to apply one flush.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		mWait: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drainpipe_aggregate_flush_wait_seconds", Help: "Wait between the end of one flush and the start of the next, adapted to the last flush's duration.",
		}),
		mLastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drainpipe_aggregate_last_flush_timestamp_seconds", Help: "When the last flush succeeded.",
		}),
		mPos: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drainpipe_aggregate_journal_position", Help: "Journal sequence number applied to the store.",
		}),
	}
	// Look each kind's counter up once: WithLabelValues hashes its labels
	// on every call, which showed in profiles of the per-line path.
	a.resetState()
	if reg != nil {
		reg.MustRegister(a.mLines, a.mRejected, a.mFlushes, a.mFlushErr, a.mFlushDur, a.mWait, a.mLastOK, a.mPos)
	}
	return a
}

// Run replays the journal from the store's position and then follows it
// until ctx ends, flushing every FlushInterval (longer while flushes are
// slow, see MaxFlushInterval) and folding on while the store applies a
// flush. On the way out it makes a last flush.
func (a *Aggregator) Run(ctx context.Context) error {
	// Whatever was folded but not flushed before (a panic, a failed
	// start) is dropped: it is folded again from the stored position.
	a.resetState()
	defer func() {
		if r := recover(); r != nil {
			if a.folding != 0 {
				a.poison[a.folding]++
				a.folding = 0
			}
			panic(r) // for the supervisor to log, count and restart
		}
	}()
	if a.applying != nil {
		// A flush of the previous run (it panicked) is still being
		// applied: the stored position is known only once it has ended,
		// and a flush the store took goes to OnFlush like any other.
		a.settle(ctx, <-a.applying.done)
	}
	pos, err := a.sink.Position(ctx)
	if err != nil {
		return fmt.Errorf("aggregate: read start position: %w", err)
	}
	a.pos = pos
	a.flushed.Store(pos)
	a.log.Info("aggregator starting", "position", pos)
	tick := time.NewTicker(a.cfg.FlushInterval)
	defer tick.Stop()
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	lastFlush := time.Now()
	a.wait = a.cfg.FlushInterval
	for {
		n, err := a.readOnce(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Error("aggregate: read journal", "err", err)
		}
		if a.applying != nil {
			// Folding goes on while the store applies the last flush, up
			// to maxFoldWhileApplying buckets: catching up, a fold
			// without that bound made the next flush as big as the time
			// the last one took, and flushes grew (and memory with them).
			var done flushDone
			if a.state.Size() > maxFoldWhileApplying {
				done = <-a.applying.done
			} else {
				select {
				case done = <-a.applying.done:
				default:
				}
			}
			if done.finished {
				a.finish(ctx, done)
				lastFlush = time.Now()
			}
		}
		if a.applying == nil && (time.Since(lastFlush) >= a.wait || a.state.Size() > maxStateBuckets) {
			if !a.startFlush(ctx) {
				lastFlush = time.Now()
			}
		}
		if n > 0 {
			continue // maybe behind: keep reading until the journal is dry
		}
		var applied <-chan flushDone
		if a.applying != nil {
			applied = a.applying.done
		}
		select {
		case <-ctx.Done():
			if a.applying != nil {
				a.finish(context.WithoutCancel(ctx), <-a.applying.done)
			}
			a.drain(context.WithoutCancel(ctx), time.Now().Add(DrainBudget))
			return nil
		case done := <-applied:
			a.finish(ctx, done)
			lastFlush = time.Now()
		case <-a.notify:
		case <-poll.C:
		case <-tick.C:
		}
	}
}

// applying is a flush being applied by a goroutine of its own.
type applying struct {
	f     *metrics.Flush
	start time.Time
	done  chan flushDone
}

// flushDone is how a background apply ended.
type flushDone struct {
	finished bool
	err      error
	panicked any // a panic of Apply, raised again on Run's goroutine
}

// maxStateBuckets is how many buckets the fold may hold before it flushes
// early, bounding memory when catching up.
const maxStateBuckets = 50000

// maxFoldWhileApplying is how many buckets the fold may hold while the
// store applies a flush before it waits for that flush: more than one
// flush of 10,000 live apps touches, far fewer than a catch-up holds.
const maxFoldWhileApplying = 10000

// DrainBudget bounds how long a stopping aggregator keeps folding what
// the journal still holds before its last flush; whatever is left after
// it is folded from the journal at the next start.
const DrainBudget = 5 * time.Second

// drain folds the journal until it is dry (or the deadline passes) and
// flushes, so a clean stop leaves no backlog and every open minute in the
// store.
func (a *Aggregator) drain(ctx context.Context, deadline time.Time) {
	for time.Now().Before(deadline) {
		n, err := a.readOnce(ctx)
		if err != nil {
			a.log.Error("aggregate: read journal while stopping", "err", err)
			break
		}
		if n == 0 {
			break
		}
		if a.state.Size() > maxStateBuckets {
			a.Flush(ctx)
		}
	}
	a.Flush(ctx)
}

func (a *Aggregator) readOnce(ctx context.Context) (int, error) {
	recs, err := a.j.Read(ctx, a.pos, a.cfg.ReadBatch)
	if err != nil {
		return 0, err
	}
	for i := range recs {
		r := &recs[i]
		if a.poison[r.Seq] >= 2 {
			a.log.Error("aggregate: journal record made the fold panic twice; skipped and counted as rejected.malformed",
				"seq", r.Seq, "app", r.App, "frame_id", r.FrameID)
			a.state.reject(r.App, r.ReceivedAt.UnixNano(), ReasonMalformed, 1)
		} else {
			a.folding = r.Seq
			if a.beforeFold != nil {
				a.beforeFold(r)
			}
			a.state.Fold(r)
			a.folding = 0
		}
		a.pos = r.Seq
	}
	return len(recs), nil
}

// resetState starts a fresh State, counting lines into mLines.
func (a *Aggregator) resetState() {
	a.state = NewState(a.cfg.MaxAge, a.cfg.MaxFuture)
	// Called once per kind and journal record (the State counts a
	// record's lines itself), so a map lookup is cheap enough.
	counters := map[string]prometheus.Counter{}
	a.state.onLine = func(kind string, n int64) {
		c, ok := counters[kind]
		if !ok {
			c = a.mLines.WithLabelValues(kind)
			counters[kind] = c
		}
		c.Add(float64(n))
	}
	type appReason struct{ app, reason string }
	rejected := map[appReason]prometheus.Counter{}
	a.state.onReject = func(app, reason string, n int64) {
		k := appReason{app, reason}
		c, ok := rejected[k]
		if !ok {
			c = a.mRejected.WithLabelValues(app, reason)
			rejected[k] = c
		}
		c.Add(float64(n))
	}
}

// Flushed returns the journal position the store has committed: records
// after it are the backlog (in the journal, not yet in the store).
func (a *Aggregator) Flushed() int64 { return a.flushed.Load() }

func (a *Aggregator) ok(worker string) {
	if a.cfg.OK != nil {
		a.cfg.OK(worker)
	}
}

// UnhealthyAfter is how long flushes may keep failing before Health
// reports the aggregator unhealthy.
const UnhealthyAfter = 30 * time.Second

// Health returns an error while flushes to the store have been failing for
// longer than UnhealthyAfter, so /healthz turns 503 instead of hiding a
// stalled pipeline.
func (a *Aggregator) Health(context.Context) error {
	a.healthMu.Lock()
	defer a.healthMu.Unlock()
	if !a.failingSince.IsZero() && time.Since(a.failingSince) > UnhealthyAfter {
		return fmt.Errorf("aggregator: flushes failing since %s: %w", a.failingSince.UTC().Format(time.RFC3339), a.lastErr)
	}
	return nil
}

// Flush applies everything folded so far to the store and waits for it
// (after any flush still being applied). On failure the state is kept
// and merged into the next attempt, which is still exact because the
// store applies a flush entirely or not at all.
func (a *Aggregator) Flush(ctx context.Context) {
	if a.applying != nil {
		a.finish(ctx, <-a.applying.done)
	}
	if a.startFlush(ctx) {
		a.finish(ctx, <-a.applying.done)
	}
}

// startFlush hands everything folded so far to the store, applied by a
// goroutine of its own; it reports false when there was nothing to
// flush. The caller must not start another before finish.
func (a *Aggregator) startFlush(ctx context.Context) bool {
	if a.state.Empty() && a.pos == a.state.flushedPos {
		return false
	}
	ap := &applying{f: a.state.Take(a.pos), start: time.Now(), done: make(chan flushDone, 1)}
	a.applying = ap
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ap.done <- flushDone{finished: true, panicked: r}
			}
		}()
		err := a.sink.Apply(ctx, ap.f)
		ap.done <- flushDone{finished: true, err: err}
	}()
	return true
}

// finish does what follows a flush the store applied (or refused): the
// flush's own position, never the fold's, is what the store holds.
func (a *Aggregator) finish(ctx context.Context, done flushDone) {
	ap := a.applying
	a.applying = nil
	if done.panicked != nil {
		a.state.Restore(ap.f)
		panic(done.panicked) // for the supervisor, as a panic of Run
	}
	if err := done.err; err != nil {
		a.failed(ap, err)
		a.state.Restore(ap.f)
		return
	}
	a.applied(ctx, ap)
}

// settle ends the flush a panicked Run left in flight, for the Run that
// restarts: one the store took is delivered like any other (OnFlush, the
// trim), one it refused or that panicked is only reported. Its state is
// not restored: the restarted Run folds everything after the stored
// position again.
func (a *Aggregator) settle(ctx context.Context, done flushDone) {
	ap := a.applying
	a.applying = nil
	switch {
	case done.panicked != nil:
		a.log.Error("aggregate: the flush in flight when the fold panicked panicked too; folded again from the stored position",
			"panic", fmt.Sprint(done.panicked), "position", ap.f.Position)
	case done.err != nil:
		a.failed(ap, done.err)
	default:
		a.applied(ctx, ap)
	}
}

// failed records a flush the store refused.
func (a *Aggregator) failed(ap *applying, err error) {
	a.mFlushErr.Inc()
	a.log.Error("aggregate: flush failed; will retry", "err", err, "position", ap.f.Position)
	a.healthMu.Lock()
	if a.failingSince.IsZero() {
		a.failingSince = time.Now()
	}
	a.lastErr = err
	a.healthMu.Unlock()
}

// applied does what follows a flush the store committed.
func (a *Aggregator) applied(ctx context.Context, ap *applying) {
	f, pos := ap.f, ap.f.Position
	a.healthMu.Lock()
	a.failingSince, a.lastErr = time.Time{}, nil
	a.healthMu.Unlock()
	a.state.flushedPos = pos
	a.flushed.Store(pos)
	took := time.Since(ap.start)
	a.wait = min(max(took, a.cfg.FlushInterval), a.cfg.MaxFlushInterval)
	a.mFlushDur.Observe(took.Seconds())
	a.mWait.Set(a.wait.Seconds())
	if a.cfg.OnFlush != nil {
		a.cfg.OnFlush(f)
	}
	a.mFlushes.Inc()
	a.mLastOK.SetToCurrentTime()
	a.mPos.Set(float64(pos))
	a.ok("flush")
	for seq := range a.poison {
		if seq <= pos {
			delete(a.poison, seq)
		}
	}
	// The journal's asks are heeded only after a trim that succeeded: a
	// failed one (the frame index cannot be written) leaves the journal
	// asking, and is tried again after TrimEvery, not after every flush.
	if time.Since(a.lastTrim) >= a.cfg.TrimEvery || (!a.trimFailed && a.wantsTrim(pos)) {
		err := a.j.Trim(ctx, pos)
		if err != nil {
			a.log.Error("aggregate: trim journal", "err", err)
		} else {
			a.ok("trim")
		}
		a.lastTrim, a.trimFailed = time.Now(), err != nil
	}
}

// trimWanter is a journal that can ask for a Trim sooner than TrimEvery:
// journal.Journal, when a trim would give it a segment to reuse.
type trimWanter interface {
	WantsTrim(upTo int64) bool
}

// wantsTrim reports whether the journal asks for a Trim up to pos now.
func (a *Aggregator) wantsTrim(pos int64) bool {
	tw, ok := a.j.(trimWanter)
	return ok && tw.WantsTrim(pos)
}

// State is the in-memory fold: buckets per app, process type and minute
// since the last flush, and the events seen. It is not safe for
// concurrent use.
type State struct {
	maxAge, maxFuture int64
	// apps holds every app seen: its buckets since the last flush and
	// its limits, which outlive flushes. One table for both (see
	// appTable).
	apps appTable
	// names interns the apps' process types, dynos and custom metric
	// names: one copy per State, not per app. Held in the State, not
	// behind a pointer: one allocation less, within the State's size
	// class (BenchmarkFoldDynos).
	names      nameTable
	events     []drainpipe.Event
	size       int
	flushedPos int64
	// rSeen avoids one event per R14 line (they repeat every 20 s): one
	// dyno_error event per app, dyno, code and minute. It outlives flushes
	// and is pruned by time in Take.
	rSeen map[rKey]struct{}
	// lines counts the lines of each kind (lineKinds) folded since the
	// last call of onLine: a record's lines go to onLine at once, at the
	// end of Fold, rather than one call per line (the aggregator's
	// counter was 7% of the fold in an end-to-end profile).
	lines    [len(lineKinds)]int64
	onLine   func(kind string, n int64)
	onReject func(app, reason string, n int64)
	// recent remembers the last bucket found per process type id (its
	// low bits): a body's lines mostly fall in the minute of the line
	// before them. During a backfill an app holds hundreds of minutes
	// between flushes, and a search by name for every line was a tenth
	// of the fold (BenchmarkFoldBackfill). Only buckets in the apps'
	// series are remembered, and Take forgets them all as it hands them
	// off: a flushed bucket is never found here.
	recent [4]bucketHint

	// scratch reused for every line: no per-line allocations.
	reader logplex.Reader
	hdr    logplex.Header
	line   logline.Line
}

// appState holds one app's buckets since the last flush, and the names
// it was seen with lately. Slices rather than maps: an app has a handful
// of process types and one or two minutes between flushes, and a small
// Go map costs a few hundred bytes (BenchmarkStateMemory). seen tracks
// the app's process types, dynos and custom metric names, to bound what
// one app can make the store keep; it outlives flushes. Both hold names
// as ids in the State's nameTable, whose strings the buckets keep too.
// Both are held as tightslice.Compact: 48 bytes for the appState with
// its name rather than 64 (BenchmarkStateMemory).
type appState struct {
	name   string
	series tightslice.Compact[seriesMinute] // by process type name, then minute
	seen   tightslice.Compact[seenName]     // a lastSeen
}

// admit is lastSeen.admit on the app's names.
func (as *appState) admit(names *nameTable, kind byte, name []byte, t int64, max int) (uint32, bool) {
	seen := lastSeen(as.seen.S())
	id, ok := seen.admit(names, kind, name, t, max)
	as.seen.Set(seen)
	return id, ok
}

// seriesMinute is one process type's bucket of one minute: 16 bytes.
type seriesMinute struct {
	b      *metrics.Bucket
	minute int32  // Unix minutes
	ptype  uint32 // the process type's id in State.names, held while here
}

// bucketHint is a bucket of State.recent: the app's, for the process
// type id and the minute; b is nil when there is none.
type bucketHint struct {
	as     *appState
	b      *metrics.Bucket
	minute int32
	ptype  uint32
}

// unixMinute returns the minute of t (Unix ns), rounded down.
func unixMinute(t int64) int32 {
	m := t / int64(time.Minute)
	if t < 0 && t%int64(time.Minute) != 0 {
		m--
	}
	return int32(m)
}

// rKey identifies the dyno_error event of one app's dyno, code and minute.
type rKey struct {
	app, dyno, code string
	minute          int64
}

// NewState returns an empty fold that rejects lines more than maxAge older
// or maxFuture newer than their arrival.
func NewState(maxAge, maxFuture time.Duration) *State {
	s := &State{maxAge: int64(maxAge), maxFuture: int64(maxFuture)}
	s.names.init()
	return s
}

// SetLineCounter sets a function given the number of lines folded of
// each kind (or rejection reason), for metrics; nil means none. Fold and
// FoldLine call it before they return, for the lines they folded: at
// most once per kind of line they saw, and once per rejection.
func (s *State) SetLineCounter(f func(kind string, n int64)) { s.onLine = f }

// The kinds of lines State.lines counts, and their names for onLine.
const (
	lineRouter = iota
	lineOther
	lineCustom
	lineRuntime
	lineDyno
	lineAPI
	lineLogLoss
)

var lineKinds = [...]string{
	lineRouter: "router", lineOther: "other", lineCustom: "custom", lineRuntime: "runtime",
	lineDyno: "dyno", lineAPI: "api", lineLogLoss: "logloss",
}

// Size returns the number of buckets held.
func (s *State) Size() int { return s.size }

// Empty reports whether nothing has been folded since the last Take.
func (s *State) Empty() bool { return s.size == 0 && len(s.events) == 0 }

// count counts one line of kind (one of the line* constants).
func (s *State) count(kind int) { s.lines[kind]++ }

// reportLines gives onLine the lines counted since it was last called.
func (s *State) reportLines() {
	for k, n := range s.lines {
		if n == 0 {
			continue
		}
		s.lines[k] = 0
		if s.onLine != nil {
			s.onLine(lineKinds[k], n)
		}
	}
}

// app returns app's state, creating it when missing.
func (s *State) app(app string) *appState {
	if as := s.apps.get(app); as != nil {
		return as
	}
	return s.apps.add(app)
}

// appOnce returns app's state: *as when not nil, else the one it looks
// up and sets *as to (a body's lines look it up once).
func (s *State) appOnce(as **appState, app string) *appState {
	if *as == nil {
		*as = s.app(app)
	}
	return *as
}

// bucket returns the bucket of the app's process type ptype (an id in
// s.names, 0 for none) and the minute of t, creating it when missing; a
// new bucket holds ptype's id until Take.
func (s *State) bucket(as *appState, ptype uint32, t int64) *metrics.Bucket {
	minute := unixMinute(t)
	h := &s.recent[ptype%uint32(len(s.recent))]
	if h.as == as && h.minute == minute && h.ptype == ptype && h.b != nil {
		return h.b
	}
	b := s.findBucket(as, ptype, minute)
	*h = bucketHint{as: as, b: b, minute: minute, ptype: ptype}
	return b
}

// findBucket is bucket without State.recent.
func (s *State) findBucket(as *appState, ptype uint32, minute int32) *metrics.Bucket {
	ss := as.series.S()
	if len(ss) <= 8 {
		// The usual case, an app's process types between two flushes: a
		// scan that compares minutes and ids.
		for i := range ss {
			if ss[i].minute == minute && ss[i].ptype == ptype {
				return ss[i].b
			}
		}
	}
	name := s.names.str(ptype)
	lo, hi := 0, len(ss)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if e := &ss[h]; s.names.str(e.ptype) < name || e.ptype == ptype && e.minute < minute {
			lo = h + 1
		} else {
			hi = h
		}
	}
	if lo < len(ss) && ss[lo].minute == minute && ss[lo].ptype == ptype {
		return ss[lo].b
	}
	b := new(metrics.Bucket)
	s.names.hold(ptype)
	as.series.Set(tightslice.Insert(ss, lo, seriesMinute{ptype: ptype, minute: minute, b: b}))
	s.size++
	return b
}

// admit checks a line's process type and (when not nil) dyno against the
// app's limits, counting the line as rejected when they are exceeded. as
// is the app's state. It returns the process type's id and the dyno's
// name as the State's name table holds it, which the buckets keep too.
func (s *State) admit(as *appState, app string, t int64, ptype, dyno []byte) (pt uint32, dy string, ok bool) {
	pt, ok = as.admit(&s.names, seenPtype, ptype, t, MaxProcessTypes)
	if ok && dyno != nil {
		var id uint32
		id, ok = as.admit(&s.names, seenDyno, dyno, t, MaxDynos)
		dy = s.names.str(id)
	}
	if !ok {
		s.reject(app, t, ReasonCardinality, 1)
	}
	return pt, dy, ok
}

func (s *State) reject(app string, t int64, reason string, n int64) {
	s.bucket(s.app(app), 0, t).AddLogLoss([]byte(reason), n)
	if s.onLine != nil {
		s.onLine(reason, 1)
	}
	if s.onReject != nil {
		s.onReject(app, reason, n)
	}
}

// Limits on one journal record (one drain POST), beyond the body size the
// server enforces: a frame longer than MaxLineBytes is skipped, and
// frames beyond the first MaxFramesPerBody are not parsed; both are
// counted in the app's log loss. Logplex sends lines of at most about
// 10 KB and batches of a few hundred lines; log-shuttle's defaults are
// 10,000 bytes per line and 500 lines per batch.
const (
	MaxLineBytes     = 64 << 10
	MaxFramesPerBody = 10000
)

// Fold frames, parses and counts every line of one journal record.
func (s *State) Fold(rec *drainpipe.Record) {
	recv := rec.ReceivedAt.UnixNano()
	if rec.Damaged {
		s.reject(rec.App, recv, ReasonCorrupt, 1)
		return
	}
	if rec.Dropped > 0 {
		s.reject(rec.App, recv, ReasonDropCount, rec.Dropped)
	}
	if rec.Lost > 0 {
		s.reject(rec.App, recv, ReasonLostCount, rec.Lost)
	}
	defer s.reportLines()
	s.reader.Reset(rec.Body)
	var as *appState // looked up at the first router line, then kept for the body
	for frames := 0; ; frames++ {
		frame, err := s.reader.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			// Framing is lost for the rest of the body.
			s.reject(rec.App, recv, ReasonFraming, 1)
			return
		}
		if frames == MaxFramesPerBody {
			s.rejectRest(rec.App, recv)
			return
		}
		if len(frame) > MaxLineBytes {
			s.reject(rec.App, recv, ReasonLineTooLong, 1)
			continue
		}
		if err := logplex.ParseHeader(frame, &s.hdr); err != nil {
			s.reject(rec.App, recv, ReasonMalformed, 1)
			continue
		}
		s.foldLine(&as, rec.App, recv, &s.hdr)
	}
}

// rejectRest counts the frame just read and every further frame of the
// body as too many; an unframeable tail still counts once as framing.
func (s *State) rejectRest(app string, recv int64) {
	n := int64(1)
	for {
		_, err := s.reader.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.reject(app, recv, ReasonFraming, 1)
			break
		}
		n++
	}
	s.reject(app, recv, ReasonTooManyFrames, n)
}

// FoldLine counts one parsed syslog message of app that arrived at recv
// (Unix nanoseconds).
func (s *State) FoldLine(app string, recv int64, h *logplex.Header) {
	var as *appState
	s.foldLine(&as, app, recv, h)
	s.reportLines()
}

// foldLine is FoldLine. *as is app's state, or nil until a line needs it
// (then foldLine sets it), so that a body's lines look it up once.
func (s *State) foldLine(as **appState, app string, recv int64, h *logplex.Header) {
	t := h.Time
	if t < recv-s.maxAge {
		s.reject(app, recv, ReasonTooOld, 1)
		return
	}
	if t > recv+s.maxFuture {
		s.reject(app, recv, ReasonFuture, 1)
		return
	}
	l := &s.line
	if err := logline.Parse(h.AppName, h.ProcID, h.Msg, l); err != nil {
		s.reject(app, t, ReasonMalformed, 1)
		return
	}
	switch l.Kind {
	case logline.KindRouter:
		r := &l.Router
		a := s.appOnce(as, app)
		ptype, _, ok := s.admit(a, app, t, r.ProcessType, nil)
		if !ok {
			return
		}
		b := s.bucket(a, ptype, t)
		b.AddStatus(r.Status)
		if r.HasService {
			b.AddService(r.ServiceMS)
		}
		if r.HasConnect {
			b.AddConnect(r.ConnectMS)
		}
		if len(r.Code) > 0 {
			b.AddHCode(r.Code)
		}
		s.count(lineRouter)
	case logline.KindRuntime:
		r := &l.Runtime
		a := s.appOnce(as, app)
		ptype, dyno, ok := s.admit(a, app, t, r.ProcessType, r.Source)
		if !ok {
			return
		}
		s.bucket(a, ptype, t).DynoNamed(dyno).AddLine(r.Has, &r.Values, t)
		s.count(lineRuntime)
	case logline.KindDyno:
		a := s.appOnce(as, app)
		ptype, _, ok := s.admit(a, app, t, l.Dyno.ProcessType, l.Dyno.Source)
		if !ok {
			return
		}
		s.foldDyno(a, ptype, app, t, &l.Dyno)
		s.count(lineDyno)
	case logline.KindAPI:
		s.foldAPI(app, t, &l.API)
		s.count(lineAPI)
	case logline.KindLogLoss:
		s.bucket(s.app(app), 0, t).AddLogLoss(l.LogLoss.Code, l.LogLoss.Dropped)
		s.count(lineLogLoss)
	case logline.KindCustom:
		s.foldCustom(s.appOnce(as, app), app, t, h.ProcID, l)
		s.count(lineCustom)
	default:
		s.count(lineOther)
	}
}

func processType(procID []byte) []byte {
	if i := bytes.IndexByte(procID, '.'); i >= 0 {
		return procID[:i]
	}
	return procID
}

func (s *State) foldCustom(as *appState, app string, t int64, procID []byte, l *logline.Line) {
	ptype, _, ok := s.admit(as, app, t, processType(procID), nil)
	if !ok {
		return
	}
	b := s.bucket(as, ptype, t)
	for i := 0; i < l.NumCustom; i++ {
		c := &l.Custom[i]
		id, ok := as.admit(&s.names, seenCustom, c.Name, t, MaxCustomNames)
		if !ok {
			s.reject(app, t, ReasonCardinality, 1)
			continue
		}
		if !b.AddCustom(s.names.str(id), c.Kind, c.Value, t) {
			s.reject(app, t, ReasonCustomCap, 1)
		}
	}
}

var dynoEventKinds = map[logline.DynoEvent]drainpipe.EventKind{
	logline.DynoCrash:    drainpipe.EventCrash,
	logline.DynoState:    drainpipe.EventState,
	logline.DynoRestart:  drainpipe.EventRestart,
	logline.DynoCycling:  drainpipe.EventRestart,
	logline.DynoStopping: drainpipe.EventStop,
	logline.DynoExit:     drainpipe.EventExit,
	logline.DynoStart:    drainpipe.EventStart,
}

func (s *State) foldDyno(as *appState, ptype uint32, app string, t int64, d *logline.Dyno) {
	if d.Event == logline.DynoError {
		s.bucket(as, ptype, t).AddRCode(d.Code)
		k := rKey{app, string(d.Source), string(d.Code), t - t%int64(time.Minute)}
		if _, seen := s.rSeen[k]; seen {
			return
		}
		if s.rSeen == nil { // made at the first R code: most States see none
			s.rSeen = map[rKey]struct{}{}
		}
		s.rSeen[k] = struct{}{}
		s.addEvent(app, t, d.ProcessType, d.Source, drainpipe.EventError, d.Code, d.Detail)
		return
	}
	kind, ok := dynoEventKinds[d.Event]
	if !ok {
		return
	}
	s.addEvent(app, t, d.ProcessType, d.Source, kind, nil, d.Detail)
}

var apiEventKinds = map[logline.APIEvent]drainpipe.EventKind{
	logline.APIRelease: drainpipe.EventRelease,
	logline.APIDeploy:  drainpipe.EventDeploy,
	logline.APIScale:   drainpipe.EventScale,
	logline.APIConfig:  drainpipe.EventConfig,
}

func (s *State) foldAPI(app string, t int64, a *logline.API) {
	kind, ok := apiEventKinds[a.Event]
	if !ok {
		return
	}
	s.addEvent(app, t, nil, nil, kind, nil, a.Detail)
}

// maxDetail bounds an event's stored detail text.
const maxDetail = 512

func (s *State) addEvent(app string, t int64, ptype, dyno []byte, kind drainpipe.EventKind, code, detail []byte) {
	if len(detail) > maxDetail {
		detail = detail[:maxDetail]
	}
	s.events = append(s.events, drainpipe.Event{
		Time: time.Unix(0, t).UTC(), App: app, ProcessType: string(ptype), Dyno: string(dyno),
		Kind: kind, Code: string(code), Detail: string(detail),
	})
}

// Take returns everything folded so far as a flush at position pos and
// empties the state.
func (s *State) Take(pos int64) *metrics.Flush {
	f := &metrics.Flush{Position: pos, Events: s.events}
	f.Rows = make([]metrics.Row, 0, s.size)
	s.recent = [len(s.recent)]bucketHint{} // the buckets are the flush's now
	for as := range s.apps.all {
		for _, m := range as.series.S() {
			f.Rows = append(f.Rows, metrics.Row{App: as.name, ProcessType: s.names.str(m.ptype), Time: time.Unix(int64(m.minute)*60, 0).UTC(), Bucket: m.b})
			s.names.release(m.ptype)
		}
		as.series = tightslice.Compact[seriesMinute]{}
	}
	s.events = nil
	s.size = 0
	// Forget R-code dedup keys of minutes well in the past; a late R14
	// line for them at worst adds one more event.
	var newest int64
	for k := range s.rSeen {
		newest = max(newest, k.minute)
	}
	for k := range s.rSeen {
		if k.minute < newest-int64(5*time.Minute) {
			delete(s.rSeen, k)
		}
	}
	return f
}

// Restore merges a flush that could not be applied back into the state,
// so the next flush carries it.
func (s *State) Restore(f *metrics.Flush) {
	for _, r := range f.Rows {
		// Held for the lookup: a new bucket holds it again.
		ptype, ok := s.names.acquire([]byte(r.ProcessType))
		if !ok {
			panic("aggregate: restoring a flush: the name table is full")
		}
		s.bucket(s.app(r.App), ptype, r.Time.UnixNano()).Merge(r.Bucket)
		s.names.release(ptype)
	}
	s.events = append(f.Events, s.events...)
}
