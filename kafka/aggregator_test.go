package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/kafka"
	"github.com/drainpipe/drainpipe/kafka/kafkatest"
	"github.com/drainpipe/drainpipe/logplex"
	"github.com/drainpipe/drainpipe/postgres"
	"github.com/drainpipe/drainpipe/postgres/pgtest"
)

// memSink is an in-memory aggregate.PartitionSink with the same fencing
// rule as the PostgreSQL store; it counts router requests per app.
type memSink struct {
	mu       sync.Mutex
	offsets  map[string]int64 // group/topic/partition → next offset
	seen     map[aggregate.FrameKey]bool
	requests map[string]int64
	applies  int
	fenced   int
}

func newMemSink() *memSink {
	return &memSink{offsets: map[string]int64{}, seen: map[aggregate.FrameKey]bool{}, requests: map[string]int64{}}
}

func offKey(g, t string, p int32) string { return fmt.Sprintf("%s/%s/%d", g, t, p) }

func (m *memSink) ApplyPartition(_ context.Context, p *aggregate.PartitionFlush) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := offKey(p.Group, p.Topic, p.Partition)
	if cur, ok := m.offsets[k]; ok && cur != p.From {
		m.fenced++
		return aggregate.ErrFenced
	}
	m.offsets[k] = p.To
	for _, f := range p.Frames {
		m.seen[f] = true
	}
	for _, r := range p.Flush.Rows {
		m.requests[r.App] += r.Bucket.Requests
	}
	m.applies++
	return nil
}

func (m *memSink) PartitionOffset(_ context.Context, g, t string, p int32) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.offsets[offKey(g, t, p)]; ok {
		return o, nil
	}
	return -1, nil
}

func (m *memSink) SeenFrames(_ context.Context, keys []aggregate.FrameKey) (map[aggregate.FrameKey]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[aggregate.FrameKey]bool{}
	for _, k := range keys {
		if m.seen[k] {
			out[k] = true
		}
	}
	return out, nil
}

func (m *memSink) total() (map[string]int64, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int64{}
	var n int64
	for a, c := range m.requests {
		out[a] = c
		n += c
	}
	return out, n
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testConfig(t *testing.T, partitions int32) kafka.Config {
	return kafka.Config{
		Brokers: kafkatest.Brokers(t), Topic: kafkatest.Name("drains"),
		Group: kafkatest.Name("agg"), Partitions: partitions,
	}
}

// openTopic creates a fresh topic of partitions on the shared broker and
// a producer for it.
func openTopic(t *testing.T, partitions int32) (kafka.Config, *kafka.Journal) {
	t.Helper()
	kc := testConfig(t, partitions)
	if err := kafka.EnsureTopic(context.Background(), kc, quiet); err != nil {
		t.Fatal(err)
	}
	j, err := kafka.OpenJournal(kc, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return kc, j
}

// appendN appends batches from..to-1 of one request each for app, with
// their index as Frame-Id.
func appendN(t *testing.T, j *kafka.Journal, app string, from, to int) {
	t.Helper()
	now := time.Now().UTC()
	for i := from; i < to; i++ {
		if _, _, err := j.Append(context.Background(), drainpipe.Batch{App: app, FrameID: fmt.Sprint(i), ReceivedAt: now, Body: routerBody(now, 1)}); err != nil {
			t.Fatal(err)
		}
	}
}

// routerBody returns a logplex-1 body of n router lines at t.
func routerBody(t time.Time, n int) []byte {
	var b []byte
	for i := range n {
		b = logplex.AppendMessage(b, t, "host", "heroku", "router",
			fmt.Sprintf("at=info method=GET path=/%d host=x dyno=web.1 connect=1ms service=%dms status=200 bytes=10", i, 5+i))
	}
	return b
}

// countingSink is a PartitionSink whose counted router requests a test
// can read: memSink, or the PostgreSQL store through pgSink.
type countingSink interface {
	aggregate.PartitionSink
	total() (map[string]int64, int64)
}

// pgSink is the real PostgreSQL store, counting what its 1-minute tier
// holds.
type pgSink struct {
	*postgres.Store
	t *testing.T
}

func newPGSink(t *testing.T) pgSink {
	st, err := postgres.Open(context.Background(), pgtest.DB(t), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return pgSink{st, t}
}

func (s pgSink) total() (map[string]int64, int64) {
	now := time.Now()
	rows, err := s.Buckets(context.Background(), "", "", drainpipe.Tier1m, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]int64{}
	var n int64
	for _, r := range rows {
		out[r.App] += r.Bucket.Requests
		n += r.Bucket.Requests
	}
	return out, n
}

// startAggregator runs a group member flushing every 200 ms into sink
// until the test ends or it is cancelled, with its metrics in reg (may
// be nil).
func startAggregator(t *testing.T, kc kafka.Config, sink aggregate.PartitionSink, reg ...prometheus.Registerer) (*kafka.Aggregator, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	var r prometheus.Registerer
	if len(reg) > 0 {
		r = reg[0]
	}
	a, err := kafka.NewAggregator(aggregate.Config{FlushInterval: 200 * time.Millisecond}, kc, sink, quiet, r)
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := run(t, a)
	t.Cleanup(func() { cancel(); <-done })
	return a, cancel, done
}

// run runs a until the returned cancel is called; done closes when Run
// returned.
func run(t *testing.T, a *kafka.Aggregator) (context.CancelFunc, <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	return cancel, done
}

// waitTotal waits until the sink counted want requests, then checks that
// it stays there (no late double counting).
func waitTotal(t *testing.T, sink countingSink, want int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, n := sink.total()
		if n == want {
			break
		}
		if n > want || time.Now().After(deadline) {
			t.Fatalf("requests counted: %d, want %d", n, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if _, n := sink.total(); n != want {
		t.Fatalf("requests counted after settling: %d, want %d", n, want)
	}
}

func TestJournalRecordsCarryTheBatch(t *testing.T) {
	kc := testConfig(t, 1)
	ctx := context.Background()
	if err := kafka.EnsureTopic(ctx, kc, quiet); err != nil {
		t.Fatal(err)
	}
	if err := kafka.EnsureTopic(ctx, kc, quiet); err != nil {
		t.Fatalf("second EnsureTopic of an existing topic: %v", err)
	}
	j, err := kafka.OpenJournal(kc, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	at := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	in := drainpipe.Batch{App: "shop", FrameID: "f-1", ReceivedAt: at, Body: routerBody(at, 2), Dropped: 3, Lost: 4}
	off, dup, err := j.Append(ctx, in)
	if err != nil || dup || off != 0 {
		t.Fatalf("Append = %d, %v, %v; want offset 0 of a new topic", off, dup, err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers...), kgo.ConsumeTopics(kc.TopicName()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	fs := cl.PollFetches(pctx)
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("consumed %d records (%v), want 1", len(recs), fs.Errors())
	}
	got := kafka.BatchOf(recs[0])
	if got.App != in.App || got.FrameID != in.FrameID || !got.ReceivedAt.Equal(at) ||
		string(got.Body) != string(in.Body) || got.Dropped != 3 || got.Lost != 4 {
		t.Fatalf("record decodes to %+v, want %+v", got, in)
	}
}

// TestAggregatorCountsEveryBatchOnceAcrossMembersAndRetries runs two group
// members over retried (duplicate Frame-Id) batches, one of them joining
// and the other leaving while they fold, into the in-memory sink and into
// the real PostgreSQL store.
func TestAggregatorCountsEveryBatchOnceAcrossMembersAndRetries(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testExactlyOnce(t, newMemSink()) })
	t.Run("postgres", func(t *testing.T) { testExactlyOnce(t, newPGSink(t)) })
	// A slow store whose flushes sometimes fail, before or after their
	// commit: the flushes applied in the background overlap the fold of
	// the next records, are restored into it, or are fenced and re-read.
	t.Run("postgres slow and failing", func(t *testing.T) {
		testExactlyOnce(t, &flakySink{countingSink: newPGSink(t), delay: 150 * time.Millisecond})
	})
}

// flakySink delays every ApplyPartition; every third one fails after
// the store committed it (an ambiguous failure) and every fourth one
// fails without reaching the store.
type flakySink struct {
	countingSink
	delay time.Duration
	mu    sync.Mutex
	calls int
}

func (f *flakySink) ApplyPartition(ctx context.Context, p *aggregate.PartitionFlush) error {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	time.Sleep(f.delay)
	switch {
	case n%4 == 0:
		return errors.New("injected: the store was not reached")
	case n%3 == 0:
		if err := f.countingSink.ApplyPartition(ctx, p); err != nil {
			return err
		}
		return errors.New("injected: the commit's answer was lost")
	}
	return f.countingSink.ApplyPartition(ctx, p)
}

// gatedSink holds every ApplyPartition until gate is closed, telling
// entered that one started.
type gatedSink struct {
	countingSink
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedSink) ApplyPartition(ctx context.Context, p *aggregate.PartitionFlush) error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.countingSink.ApplyPartition(ctx, p)
}

// TestAggregatorConsumesWhileTheStoreApplies: while the store applies a
// flush (held here until the test lets it go), the aggregator goes on
// consuming and folding; nothing is counted before the store commits,
// and everything exactly once after.
func TestAggregatorConsumesWhileTheStoreApplies(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testConsumesWhileApplying(t, newMemSink()) })
	t.Run("postgres", func(t *testing.T) { testConsumesWhileApplying(t, newPGSink(t)) })
}

func testConsumesWhileApplying(t *testing.T, inner countingSink) {
	kc, j := openTopic(t, 1)
	sink := &gatedSink{countingSink: inner, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	reg := prometheus.NewRegistry()
	startAggregator(t, kc, sink, reg)
	var release sync.Once
	open := func() { release.Do(func() { close(sink.gate) }) }
	t.Cleanup(open) // before the aggregator's cleanup, which waits for its flush
	appendN(t, j, "shop", 0, 5)
	select {
	case <-sink.entered:
	case <-time.After(60 * time.Second):
		t.Fatal("no flush started")
	}
	appendN(t, j, "shop", 5, 12)
	appendN(t, j, "shop", 3, 5) // retried POSTs of the flush in flight
	deadline := time.Now().Add(20 * time.Second)
	for consumed(t, reg) < 14 {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %v records while the store applied a flush, want 14: consumption stalled", consumed(t, reg))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, n := sink.total(); n != 0 {
		t.Fatalf("%d requests counted before the store committed anything", n)
	}
	open()
	waitTotal(t, sink, 12)
}

// consumed reads drainpipe_aggregate_records_total from reg.
func consumed(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "drainpipe_aggregate_records_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func testExactlyOnce(t *testing.T, sink countingSink) {
	ctx := context.Background()
	kc, j := openTopic(t, 4)
	now := time.Now().UTC()
	apps := []string{"a1", "a2", "a3", "a4", "a5", "a6"}
	want := map[string]int64{}
	var total int64
	send := func(from, to int) {
		for i := from; i < to; i++ {
			app := apps[i%len(apps)]
			b := drainpipe.Batch{App: app, FrameID: fmt.Sprintf("frame-%d", i), ReceivedAt: now, Body: routerBody(now, 1+i%7)}
			if _, _, err := j.Append(ctx, b); err != nil {
				t.Fatal(err)
			}
			want[app] += int64(1 + i%7)
			total += int64(1 + i%7)
			if i%5 == 0 { // a Logplex retry of an earlier POST
				b.App = apps[(i/2)%len(apps)]
				b.FrameID = fmt.Sprintf("frame-%d", i/2)
				b.Body = routerBody(now, 1+(i/2)%7)
				if _, _, err := j.Append(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	send(0, 150)
	_, stopA, doneA := startAggregator(t, kc, sink)
	time.Sleep(500 * time.Millisecond)
	b, _, _ := startAggregator(t, kc, sink) // rebalance while folding
	send(150, 300)
	waitTotal(t, sink, total)
	stopA()
	<-doneA
	send(300, 400) // b takes A's partitions over at their stored offsets
	waitTotal(t, sink, total)
	// A's partitions may have had no new batch; the rebalance still hands
	// them to B.
	for deadline := time.Now().Add(30 * time.Second); len(b.Assigned()) != 4; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after A left, B folds partitions %v, want all 4", b.Assigned())
		}
	}
	got, _ := sink.total()
	for _, app := range apps {
		if got[app] != want[app] {
			t.Errorf("app %s: %d requests, want %d", app, got[app], want[app])
		}
	}
}

func TestAggregatorResumesAtTheStoredOffset(t *testing.T) {
	kc, j := openTopic(t, 1)
	appendN(t, j, "shop", 0, 10)
	sink := newMemSink()
	// As if an earlier aggregator had applied offsets [0, 6).
	sink.offsets[offKey(kc.GroupName(), kc.TopicName(), 0)] = 6
	startAggregator(t, kc, sink)
	waitTotal(t, sink, 4)
}

// TestAggregatorDropsItsFoldWhenFenced moves a partition's stored offset
// behind the aggregator's back, as another group member would.
func TestAggregatorDropsItsFoldWhenFenced(t *testing.T) {
	kc, j := openTopic(t, 1)
	appendN(t, j, "shop", 0, 5)
	sink := newMemSink()
	startAggregator(t, kc, sink)
	waitTotal(t, sink, 5)
	// Another member applies offsets [5, 8) with 3 requests; this one must
	// not count them again, and must go on from 8.
	k := offKey(kc.GroupName(), kc.TopicName(), 0)
	sink.mu.Lock()
	sink.offsets[k] = 8
	sink.requests["shop"] += 3
	sink.mu.Unlock()
	appendN(t, j, "shop", 5, 12)
	waitTotal(t, sink, 12)
	sink.mu.Lock()
	fenced := sink.fenced
	sink.mu.Unlock()
	if fenced == 0 {
		t.Error("no flush was fenced, so the test did not test fencing")
	}
}

// TestAggregatorRunsAgain checks that Run can be called again after it
// returned, as the supervisor does after a failure: the new member resumes
// at the stored offsets.
func TestAggregatorRunsAgain(t *testing.T) {
	kc, j := openTopic(t, 2)
	sink := newMemSink()
	a, err := kafka.NewAggregator(aggregate.Config{FlushInterval: 200 * time.Millisecond}, kc, sink, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, j, "shop", 0, 10)
	appendN(t, j, "blog", 0, 10)
	stop, done := run(t, a)
	waitTotal(t, sink, 20)
	stop()
	<-done
	appendN(t, j, "shop", 10, 15)
	stop, done = run(t, a)
	defer func() { stop(); <-done }()
	waitTotal(t, sink, 25)
}
