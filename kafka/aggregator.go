package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/aggregate"
)

// Aggregator is one member of the aggregators' consumer group. For each
// partition assigned to it, it keeps its own aggregate.State, starting
// from the offset stored with the aggregates (never from Kafka's committed
// offsets, which it does not use), and every FlushInterval writes that
// partition's buckets, the Frame-Ids it folded and the new offset to the
// sink in one transaction (aggregate.PartitionSink.ApplyPartition).
//
// The sink applies a flush on a goroutine of its own while Run goes on
// consuming and folding, as the embedded aggregator does: a slow store
// write no longer stalls consumption. One flush is in flight at a time;
// a partition's next flush starts only once the store has answered the
// last one, at its To (committed) or its From again (refused, the fold
// restored), so the offsets of a partition's flushes still follow each
// other and every flush is still one transaction with its offsets.
// Frame-Ids of a flush in flight stay in the pending set until it
// commits. While a flush is in flight the fold may grow to
// maxFoldWhileApplying buckets; beyond that Run waits for the flush.
//
// Duplicates are dropped by Frame-Id: all of an app's batches are in one
// partition (the record key is the app), so a retried POST that reached
// another ingest process is either still in this partition's unflushed
// window (the pending set) or in an earlier flush (SeenFrames, asked once
// per poll).
//
// When a flush is fenced (another member applied the partition since, as
// after a rebalance), the partition's unflushed state is dropped and
// consumption resumes at the stored offset; on revocation the state is
// flushed first, when the store takes it.
type Aggregator struct {
	cfg          aggregate.Config
	kc           Config
	topic, group string // kc's full names
	sink         aggregate.PartitionSink
	log          *slog.Logger
	opts         []kgo.Opt   // of the group member each Run creates
	cl           *kgo.Client // of the current Run

	mu     sync.Mutex // parts, reseek, flight, and the sink calls made for them
	parts  map[int32]*partState
	reseek map[int32]bool // fenced partitions whose stored offset is to be read again
	// flight is the flush the sink is applying in the background; nil
	// when none. Its goroutine settles each partition's result under mu.
	flight *flight

	healthMu     sync.Mutex
	failingSince time.Time
	lastErr      error

	onLine    func(kind string, n int64)
	mFlushes  prometheus.Counter
	mFlushErr prometheus.Counter
	mFenced   prometheus.Counter
	mDup      prometheus.Counter
	mRecords  prometheus.Counter
	mFlushDur prometheus.Histogram
}

// partState is the unflushed fold of one partition.
type partState struct {
	state   *aggregate.State
	from    int64 // the stored offset this fold continues (From of the next flush); -1 unknown
	next    int64 // offset after the last record folded; -1 before the first
	pending map[aggregate.FrameKey]struct{}
	frames  []aggregate.FrameKey
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func (a *Aggregator) newPart(stored int64) *partState {
	ps := &partState{
		state: aggregate.NewState(a.cfg.MaxAge, a.cfg.MaxFuture),
		from:  stored, next: stored,
		pending: map[aggregate.FrameKey]struct{}{},
	}
	ps.state.SetLineCounter(a.onLine)
	return ps
}

// flight is a background flush: one PartitionFlush per dirty partition,
// applied in turn.
type flight struct {
	done  chan struct{} // closed when every partition's result is settled
	ended time.Time     // when it ended; read after done is closed
}

// partFlush is one partition's share of a flight.
type partFlush struct {
	ps *partState // the fold it was taken from
	pf *aggregate.PartitionFlush
}

// maxFoldWhileApplying is how many buckets (all partitions together) the
// fold may hold while a flush is in flight before Run waits for it, so
// that a slow store bounds memory instead of letting the next flush grow
// with it.
const maxFoldWhileApplying = 10000

// dirty reports whether the partition has anything to flush.
func (ps *partState) dirty() bool {
	return ps.next >= 0 && (ps.next != ps.from || !ps.state.Empty())
}

// NewAggregator returns a group member consuming kc's topic as kc's group
// and flushing to sink. Run it with Run.
func NewAggregator(cfg aggregate.Config, kc Config, sink aggregate.PartitionSink, log *slog.Logger, reg prometheus.Registerer) (*Aggregator, error) {
	cfg = cfg.WithDefaults()
	a := &Aggregator{
		cfg: cfg, kc: kc, topic: kc.TopicName(), group: kc.GroupName(), sink: sink, log: log, parts: map[int32]*partState{}, reseek: map[int32]bool{},
		mFlushes:  counter("drainpipe_aggregate_flushes_total", "Partition flushes applied to the store."),
		mFlushErr: counter("drainpipe_aggregate_flush_errors_total", "Partition flushes the store refused (retried)."),
		mFenced:   counter("drainpipe_aggregate_fenced_total", "Partition flushes refused because another aggregator applied the partition since."),
		mDup:      counter("drainpipe_aggregate_duplicate_batches_total", "Batches skipped because their Frame-Id was already folded."),
		mRecords:  counter("drainpipe_aggregate_records_total", "Kafka records (drain batches) consumed."),
		mFlushDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "drainpipe_aggregate_flush_seconds", Help: "Time to apply one partition flush.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	lines := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drainpipe_aggregate_lines_total",
		Help: "Lines folded by the aggregator, by kind or rejection reason.",
	}, []string{"kind"})
	// Lines are folded only under a.mu, so the cache needs no lock of its own.
	counters := map[string]prometheus.Counter{}
	a.onLine = func(kind string, n int64) {
		c, ok := counters[kind]
		if !ok {
			c = lines.WithLabelValues(kind)
			counters[kind] = c
		}
		c.Add(float64(n))
	}
	if reg != nil {
		reg.MustRegister(lines, a.mFlushes, a.mFlushErr, a.mFenced, a.mDup, a.mRecords, a.mFlushDur)
	}

	opts, err := kc.clientOpts()
	if err != nil {
		return nil, err
	}
	a.opts = append(opts,
		kgo.ConsumerGroup(kc.GroupName()),
		kgo.ConsumeTopics(kc.TopicName()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.RebalanceTimeout(30*time.Second),
		kgo.AdjustFetchOffsetsFn(a.adjustOffsets),
		kgo.OnPartitionsRevoked(a.revoked),
		kgo.OnPartitionsLost(a.lost),
	)
	return a, nil
}

// adjustOffsets runs when partitions are assigned, before fetching: it
// replaces Kafka's (unused) committed offsets by the offsets stored with
// the aggregates, and starts a fresh fold for each partition.
func (a *Aggregator) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	// A flush in flight (of a partition lost and now given back) would
	// move the offset read here: wait for it.
	a.lockIdle()
	a.mu.Unlock()
	topic := a.topic
	for t, parts := range offsets {
		if t != topic {
			continue
		}
		for p := range parts {
			stored, err := a.storedOffset(ctx, p)
			if err != nil {
				return nil, err
			}
			a.mu.Lock()
			a.parts[p] = a.newPart(stored)
			a.mu.Unlock()
			parts[p] = startAt(stored)
			a.log.Info("aggregate: partition assigned", "partition", p, "offset", stored)
		}
	}
	return offsets, nil
}

func startAt(stored int64) kgo.Offset {
	if stored < 0 {
		return kgo.NewOffset().AtStart()
	}
	return kgo.NewOffset().At(stored).WithEpoch(-1)
}

// storedOffset reads a partition's offset from the sink, retrying while
// the store is unreachable until ctx ends (the group then rebalances).
func (a *Aggregator) storedOffset(ctx context.Context, p int32) (int64, error) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		off, err := a.sink.PartitionOffset(ctx, a.group, a.topic, p)
		if err == nil {
			return off, nil
		}
		a.log.Warn("aggregate: read stored offset; retrying", "partition", p, "err", err)
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("aggregate: stored offset of partition %d: %w", p, err)
		case <-time.After(wait):
		}
	}
}

// revoked flushes and forgets the partitions taken away in a rebalance,
// once the flush in flight (which may hold some of their folds) ended.
func (a *Aggregator) revoked(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	a.lockIdle()
	defer a.mu.Unlock()
	for _, p := range lost[a.topic] {
		if ps := a.parts[p]; ps != nil && ps.dirty() {
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			a.flushPart(fctx, p, ps)
			cancel()
		}
		delete(a.parts, p)
		delete(a.reseek, p)
		a.log.Info("aggregate: partition revoked", "partition", p)
	}
}

// lost forgets partitions without flushing: the group already gave them
// to another member, whose flushes fence any of ours.
func (a *Aggregator) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range lost[a.topic] {
		delete(a.parts, p)
		delete(a.reseek, p)
		a.log.Warn("aggregate: partition lost", "partition", p)
	}
}

// lockIdle locks mu once no flush is in flight.
func (a *Aggregator) lockIdle() {
	for {
		a.mu.Lock()
		fl := a.flight
		if fl == nil {
			return
		}
		a.mu.Unlock()
		<-fl.done
	}
}

// Run consumes until ctx ends, starting a flush every FlushInterval after
// the last one ended (applied in the background while it goes on
// consuming), and leaves the group on the way out after a last flush.
//
// Each Run is one membership of the group with a client of its own, so a
// supervisor may call Run again after it failed (or panicked): the new
// member waits for a flush the last one left in flight and starts from
// the stored offsets like any other.
func (a *Aggregator) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(a.opts...)
	if err != nil {
		return fmt.Errorf("kafka: consumer: %w", err)
	}
	a.lockIdle()
	a.cl = cl
	clear(a.parts)
	clear(a.reseek)
	a.mu.Unlock()
	defer cl.Close()
	lastFlush := time.Now()
	var fl *flight // the flush this Run started, until Run saw it end
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		if backoff > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
		}
		pctx, cancel := context.WithTimeout(ctx, a.cfg.FlushInterval)
		fetches := cl.PollRecords(pctx, a.cfg.ReadBatch*4)
		cancel()
		if errs := fetches.Errors(); len(errs) > 0 {
			for _, fe := range errs {
				if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
					continue
				}
				a.log.Warn("aggregate: fetch", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
			}
		}
		ok := a.process(ctx, fetches.Records())
		backoff = 0
		if !ok {
			backoff = time.Second
		}
		if fl != nil {
			a.mu.Lock()
			size := a.foldSize()
			a.mu.Unlock()
			if size > maxFoldWhileApplying {
				<-fl.done
			}
			select {
			case <-fl.done:
				lastFlush, fl = fl.ended, nil
			default:
			}
		}
		if fl == nil && time.Since(lastFlush) >= a.cfg.FlushInterval {
			if fl = a.startFlush(ctx); fl == nil {
				lastFlush = time.Now()
			}
		}
		cl.AllowRebalance()
	}
	a.flushAll(context.WithoutCancel(ctx))
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = cl.LeaveGroupContext(lctx)
	return nil
}

// process folds one poll's records. It asks the store once which of their
// Frame-Ids were already applied. When it cannot (store down), it rewinds
// the partitions to the first unprocessed record and reports false, so
// nothing is folded that might be a duplicate.
func (a *Aggregator) process(ctx context.Context, recs []*kgo.Record) bool {
	if len(recs) == 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mRecords.Add(float64(len(recs)))

	var keys []aggregate.FrameKey
	batches := make([]drainpipe.Batch, len(recs))
	for i, r := range recs {
		batches[i] = batchOf(r)
		ps := a.parts[r.Partition]
		if ps == nil || batches[i].FrameID == "" {
			continue
		}
		k := aggregate.FrameKey{App: batches[i].App, FrameID: batches[i].FrameID}
		if _, ok := ps.pending[k]; !ok {
			keys = append(keys, k)
		}
	}
	var seen map[aggregate.FrameKey]bool
	if len(keys) > 0 {
		var err error
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		seen, err = a.sink.SeenFrames(sctx, keys)
		cancel()
		if err != nil {
			a.noteFailure(err)
			a.log.Error("aggregate: cannot check Frame-Ids; will re-read", "err", err)
			a.rewind(recs)
			return false
		}
		a.noteFailure(nil)
	}
	for i, r := range recs {
		ps := a.parts[r.Partition]
		if ps == nil || r.Topic != a.topic {
			continue // revoked or lost since the fetch
		}
		if ps.next >= 0 && r.Offset < ps.next {
			continue // before the stored offset (fetched before a re-seek)
		}
		if ps.from < 0 {
			ps.from = r.Offset // first ever flush of the partition
		}
		ps.next = r.Offset + 1
		b := &batches[i]
		if b.FrameID != "" {
			k := aggregate.FrameKey{App: b.App, FrameID: b.FrameID}
			if _, dup := ps.pending[k]; dup || seen[k] {
				a.mDup.Inc()
				continue
			}
			ps.pending[k] = struct{}{}
			ps.frames = append(ps.frames, k)
		}
		rec := drainpipe.Record{Seq: r.Offset, Batch: *b}
		ps.state.Fold(&rec)
	}
	return true
}

// rewind sets each partition of recs back to its first record in recs.
func (a *Aggregator) rewind(recs []*kgo.Record) {
	first := map[int32]int64{}
	for _, r := range recs {
		if ps := a.parts[r.Partition]; ps == nil || (ps.next >= 0 && r.Offset < ps.next) {
			continue
		}
		if o, ok := first[r.Partition]; !ok || r.Offset < o {
			first[r.Partition] = r.Offset
		}
	}
	if len(first) == 0 {
		return
	}
	set := map[int32]kgo.EpochOffset{}
	for p, o := range first {
		set[p] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	a.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{a.topic: set})
}

// foldSize is how many buckets the partitions' folds hold. Under mu.
func (a *Aggregator) foldSize() int {
	n := 0
	for _, ps := range a.parts {
		n += ps.state.Size()
	}
	return n
}

// startFlush takes every dirty partition's fold and hands it to the sink
// on a goroutine of its own, and returns that flight (nil when there was
// nothing to flush). Fenced partitions are re-sought first. Only Run
// calls it, with no flush in flight.
func (a *Aggregator) startFlush(ctx context.Context) *flight {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resolveSeeks(ctx)
	var parts []partFlush
	for p, ps := range a.parts {
		if ps.dirty() {
			parts = append(parts, partFlush{ps, a.take(p, ps)})
		}
	}
	if len(parts) == 0 {
		return nil
	}
	fl := &flight{done: make(chan struct{})}
	a.flight = fl
	go func() {
		defer close(fl.done)
		for _, x := range parts {
			start := time.Now()
			err := a.apply(ctx, x.pf)
			a.mu.Lock()
			a.settle(x.ps, x.pf, err, time.Since(start))
			a.mu.Unlock()
		}
		a.mu.Lock()
		a.flight = nil
		fl.ended = time.Now()
		a.mu.Unlock()
	}()
	return fl
}

// apply is the sink's ApplyPartition with a panic turned into an error:
// the flush's goroutine has no supervisor, and the fold it carries is
// restored for the next attempt like that of any refused flush.
func (a *Aggregator) apply(ctx context.Context, pf *aggregate.PartitionFlush) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("aggregate: apply partition %d panicked: %v\n%s", pf.Partition, r, debug.Stack())
		}
	}()
	return a.sink.ApplyPartition(ctx, pf)
}

// flushAll applies every assigned partition's unflushed fold and waits
// for it (after a flush still in flight). A fenced partition's fold is
// dropped and its stored offset read again.
func (a *Aggregator) flushAll(ctx context.Context) {
	a.lockIdle()
	defer a.mu.Unlock()
	for p, ps := range a.parts {
		if ps.dirty() {
			a.flushPart(ctx, p, ps)
		}
	}
	a.resolveSeeks(ctx)
}

// resolveSeeks re-reads the stored offset of fenced partitions and moves
// consumption there. Records of a partition waiting here are skipped (not
// folded), so nothing is lost: they are fetched again after the seek.
func (a *Aggregator) resolveSeeks(ctx context.Context) {
	for p := range a.reseek {
		stored, err := a.storedOffsetOnce(ctx, p)
		if err != nil {
			a.log.Error("aggregate: re-read stored offset after fence; will retry", "partition", p, "err", err)
			continue
		}
		delete(a.reseek, p)
		a.parts[p] = a.newPart(stored)
		if stored >= 0 {
			a.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{a.topic: {p: {Epoch: -1, Offset: stored}}})
		}
	}
}

func (a *Aggregator) storedOffsetOnce(ctx context.Context, p int32) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return a.sink.PartitionOffset(ctx, a.group, a.topic, p)
}

// take takes one partition's fold as a flush of [ps.from, ps.next). Its
// Frame-Ids stay pending until the flush commits. Under mu.
func (a *Aggregator) take(p int32, ps *partState) *aggregate.PartitionFlush {
	pf := &aggregate.PartitionFlush{
		Group: a.group, Topic: a.topic, Partition: p,
		From: ps.from, To: ps.next, Flush: ps.state.Take(0), Frames: ps.frames,
	}
	ps.frames = nil
	return pf
}

// flushPart applies one partition's fold and waits for it, with mu held
// and no flush in flight (revocation, the last flush).
func (a *Aggregator) flushPart(ctx context.Context, p int32, ps *partState) {
	pf := a.take(p, ps)
	start := time.Now()
	err := a.apply(ctx, pf)
	a.settle(ps, pf, err, time.Since(start))
}

// settle does what follows the sink's answer to pf, taken from ps, under
// mu. Committed: the partition's next flush starts at pf.To and pf's
// Frame-Ids leave the pending set (the store answers for them now).
// Fenced: the partition's fold, pf's and whatever was folded since, is
// dropped and its stored offset read again. Failed: pf is merged back
// into the fold, whose next flush starts at pf.From again. A partition
// revoked, lost or fenced meanwhile (ps no longer its fold) is left
// alone.
func (a *Aggregator) settle(ps *partState, pf *aggregate.PartitionFlush, err error, took time.Duration) {
	p := pf.Partition
	current := a.parts[p] == ps
	switch {
	case err == nil:
		a.mFlushes.Inc()
		a.mFlushDur.Observe(took.Seconds())
		a.noteFailure(nil)
		if a.cfg.OK != nil {
			a.cfg.OK("flush")
		}
		ps.from = pf.To
		for _, k := range pf.Frames {
			delete(ps.pending, k)
		}
	case errors.Is(err, aggregate.ErrFenced):
		a.mFenced.Inc()
		if current {
			delete(a.parts, p)
			a.reseek[p] = true
			a.log.Warn("aggregate: partition fenced; resuming at the stored offset", "partition", p)
		}
	default:
		a.mFlushErr.Inc()
		a.noteFailure(err)
		a.log.Error("aggregate: flush failed; will retry", "partition", p, "from", pf.From, "to", pf.To, "err", err)
		ps.state.Restore(pf.Flush)
		ps.frames = append(pf.Frames, ps.frames...)
	}
}

func (a *Aggregator) noteFailure(err error) {
	a.healthMu.Lock()
	defer a.healthMu.Unlock()
	if err == nil {
		a.failingSince, a.lastErr = time.Time{}, nil
		return
	}
	if a.failingSince.IsZero() {
		a.failingSince = time.Now()
	}
	a.lastErr = err
}

// Health returns an error while the store has been refusing flushes for
// longer than aggregate.UnhealthyAfter.
func (a *Aggregator) Health(context.Context) error {
	a.healthMu.Lock()
	defer a.healthMu.Unlock()
	if !a.failingSince.IsZero() && time.Since(a.failingSince) > aggregate.UnhealthyAfter {
		return fmt.Errorf("aggregator: store failing since %s: %w", a.failingSince.UTC().Format(time.RFC3339), a.lastErr)
	}
	return nil
}

// Assigned returns the partitions this member folds now, for tests and
// diagnostics.
func (a *Aggregator) Assigned() []int32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ps []int32
	for p := range a.parts {
		ps = append(ps, p)
	}
	return ps
}
