package aggregate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/internal/benchmeter"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/logplex"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/sqlite"
	"github.com/drainpipe/drainpipe/supervise"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func frame(body []byte, at time.Time, app, proc, msg string) []byte {
	return logplex.AppendMessage(body, at, "host", app, proc, msg)
}

func record(seq int64, body []byte) drainpipe.Record {
	return drainpipe.Record{Seq: seq, Batch: drainpipe.Batch{App: "shop", ReceivedAt: t0.Add(2 * time.Minute), Body: body}}
}

func rowsByKey(f *metrics.Flush) map[string]*metrics.Bucket {
	m := map[string]*metrics.Bucket{}
	for _, r := range f.Rows {
		m[r.ProcessType+"@"+r.Time.Format("15:04")] = r.Bucket
	}
	return m
}

func TestFoldCountsEveryKind(t *testing.T) {
	var body []byte
	body = frame(body, t0.Add(1*time.Second), "heroku", "router", `at=info method=GET path=/ host=x request_id=1 fwd="1.2.3.4" dyno=web.1 connect=1ms service=18ms status=200 bytes=13 protocol=https`)
	body = frame(body, t0.Add(2*time.Second), "heroku", "router", `at=error code=H12 desc="Request timeout" method=GET path=/ host=x request_id=2 fwd="1.2.3.4" dyno=web.2 connect=0ms service=30000ms status=503 bytes=0`)
	body = frame(body, t0.Add(3*time.Second), "heroku", "router", `at=error code=H10 desc="App crashed" method=GET path=/ host=x request_id=3 fwd="1.2.3.4" dyno= connect= service= status=503 bytes=`)
	body = frame(body, t0.Add(4*time.Second), "heroku", "web.1", `source=web.1 dyno=heroku.1.abc sample#memory_total=21.00MB sample#memory_rss=21.22MB sample#memory_cache=0.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB`)
	body = frame(body, t0.Add(5*time.Second), "heroku", "worker.1", `source=worker.1 dyno=heroku.1.def sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99`)
	body = frame(body, t0.Add(6*time.Second), "heroku", "web.1", `Error R14 (Memory quota exceeded)`)
	body = frame(body, t0.Add(7*time.Second), "heroku", "web.1", `Error R14 (Memory quota exceeded)`)
	body = frame(body, t0.Add(8*time.Second), "app", "api", `Deploy e6442b7c by user dev@example.com`)
	body = frame(body, t0.Add(9*time.Second), "heroku", "logplex", `Error L10 (output buffer overflow): 12 messages dropped since 2026-11-25T09:59:00+00:00.`)
	body = frame(body, t0.Add(61*time.Second), "app", "web.1", `measure#db.query=200ms count#signups=2 sample#queue.depth=99`)
	body = frame(body, t0.Add(62*time.Second), "heroku", "router", `at=info method=GET path=/ host=x dyno=web.1 connect=1ms service=abc status=oops bytes=1`)
	body = frame(body, t0.Add(-10*24*time.Hour), "heroku", "router", `at=info method=GET path=/ dyno=web.1 connect=1ms service=5ms status=200`)
	body = append(body, "12 garbage"...)

	s := NewState(3*24*time.Hour, 5*time.Minute)
	rec := record(1, body)
	s.Fold(&rec)
	f := s.Take(1)
	b := rowsByKey(f)
	web := b["web@10:00"]
	if web == nil || web.Requests != 3 || web.Status().Get(200) != 1 || web.Status().Get(503) != 2 {
		t.Fatalf("web minute: %+v", web)
	}
	if web.HCodes().Get("H12") != 1 || web.HCodes().Get("H10") != 1 || web.RCodes().Get("R14") != 2 {
		t.Fatalf("codes: H %v R %v", web.HCodes(), web.RCodes())
	}
	if web.Service().Count != 2 || web.Service().Max != 30000 {
		t.Fatalf("service dist: count %d max %v", web.Service().Count, web.Service().Max)
	}
	if got := web.DynoGauges("web.1").Stat(logline.GaugeMemQuota).Max; got != 512*1048576 {
		t.Fatalf("memory quota = %v", got)
	}
	if got := b["worker@10:00"].DynoGauges("worker.1").Stat(logline.GaugeLoad1m).Last; got != 2.46 {
		t.Fatalf("load = %v", got)
	}
	if got := b["@10:00"].LogLoss().Get("L10"); got != 12 {
		t.Fatalf("L10 = %d", got)
	}
	c := b["web@10:01"]
	dbq, _ := c.Metric("db.query")
	signups, _ := c.Metric("signups")
	depth, _ := c.Metric("queue.depth")
	if dbq.Dist == nil || dbq.Dist.Count != 1 || signups.Total != 2 || depth.Stat == nil || depth.Stat.Last != 99 {
		t.Fatalf("custom = %+v", c)
	}
	// The unparsable router line, the too-old line and the unframeable tail
	// are counted as rejected, at their time or arrival time.
	loss := map[string]int64{}
	for _, r := range f.Rows {
		for k, v := range r.Bucket.LogLoss().All() {
			loss[k] += v
		}
	}
	if loss[ReasonMalformed] != 1 || loss[ReasonTooOld] != 1 || loss[ReasonFraming] != 1 {
		t.Fatalf("rejections = %v", loss)
	}
	kinds := map[drainpipe.EventKind]int{}
	for _, e := range f.Events {
		kinds[e.Kind]++
	}
	if kinds[drainpipe.EventDeploy] != 1 || kinds[drainpipe.EventError] != 1 {
		t.Fatalf("events = %v (R14 must give one event per dyno and minute)", kinds)
	}
}

// failingSink fails its first n Apply calls, then passes to the store.
type failingSink struct {
	*sqlite.Store
	fail int
}

func (f *failingSink) Apply(ctx context.Context, fl *metrics.Flush) error {
	if f.fail > 0 {
		f.fail--
		return errors.New("injected failure")
	}
	return f.Store.Apply(ctx, fl)
}

// openStack opens a real journal and store in a temporary directory.
func openStack(t *testing.T) (*sqlite.Journal, *sqlite.Store) {
	t.Helper()
	dir := t.TempDir()
	j, err := sqlite.OpenJournal(context.Background(), filepath.Join(dir, "j.db"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	st, err := sqlite.OpenStore(context.Background(), filepath.Join(dir, "m.db"), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return j, st
}

// TestReplayAfterCrashIsExact folds records, "crashes" (drops the
// aggregator without flushing), starts a new aggregator on the same
// journal and store, and checks every line is counted exactly once.
func TestReplayAfterCrashIsExact(t *testing.T) {
	ctx := context.Background()
	j, st := openStack(t)
	now := time.Now().UTC()
	appendN := func(n int) {
		var body []byte
		for i := 0; i < n; i++ {
			body = frame(body, now, "heroku", "router", `at=info method=GET path=/ dyno=web.1 connect=1ms service=5ms status=200`)
		}
		if _, _, err := j.Append(ctx, drainpipe.Batch{App: "shop", ReceivedAt: now, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	appendN(10)
	appendN(20)
	sink := &failingSink{Store: st, fail: 1}
	a := New(Config{}, j, sink, nil, quiet, nil)
	if _, err := a.readOnce(ctx); err != nil {
		t.Fatal(err)
	}
	a.Flush(ctx) // fails: state must be kept
	appendN(5)
	if _, err := a.readOnce(ctx); err != nil {
		t.Fatal(err)
	}
	a.Flush(ctx) // applies all 35 lines and position 3
	appendN(7)
	if _, err := a.readOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// Crash: the 7 folded lines were never flushed. A new aggregator
	// resumes from the stored position.
	b := New(Config{}, j, st, nil, quiet, nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- b.Run(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pos, _ := st.Position(ctx); pos == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replay did not reach position 4")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rows, err := st.Buckets(ctx, "shop", "web", drainpipe.Tier1h, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, r := range rows {
		total += r.Bucket.Requests
	}
	if total != 42 {
		t.Fatalf("counted %d requests, want exactly 42", total)
	}
}

func BenchmarkFold(b *testing.B) {
	var body []byte
	n := 0
	for i := 0; i < 100; i++ {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		body = frame(body, at, "heroku", "router", `at=info method=GET path=/products/123 host=shop.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="204.204.204.204" dyno=web.3 connect=1ms service=87ms status=200 bytes=1234 protocol=https`)
		n++
		if i%10 == 0 {
			body = frame(body, at, "heroku", "web.3", `source=web.3 dyno=heroku.2808254.d97d0ea7 sample#memory_total=210.00MB sample#memory_rss=200.22MB sample#memory_cache=10.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB`)
			n++
		}
	}
	s := NewState(3*24*time.Hour, 5*time.Minute)
	rec := record(1, body)
	s.Fold(&rec) // create the buckets once
	b.SetBytes(int64(len(body)))
	m := benchmeter.Start(b)
	for b.Loop() {
		s.Fold(&rec)
	}
	m.Lines(n)
}

// TestR14EventsDedupAcrossFlushes checks that R14 lines, which repeat every
// 20 s, give one event per dyno and minute even when they fall in
// different flushes, while every line is still counted.
func TestR14EventsDedupAcrossFlushes(t *testing.T) {
	s := NewState(3*24*time.Hour, 5*time.Minute)
	var events, r14 int
	for i := 0; i < 6; i++ { // 2 minutes of R14 every 20 s, one flush each
		body := frame(nil, t0.Add(time.Duration(i)*20*time.Second), "heroku", "web.1", "Error R14 (Memory quota exceeded)")
		rec := record(int64(i+1), body)
		s.Fold(&rec)
		f := s.Take(int64(i + 1))
		events += len(f.Events)
		for _, r := range f.Rows {
			r14 += int(r.Bucket.RCodes().Get("R14"))
		}
	}
	if r14 != 6 || events != 2 {
		t.Fatalf("R14 counted %d times (want 6) with %d events (want 2)", r14, events)
	}
}

// TestCardinalityLimits checks that one app cannot make drainpipe keep
// unbounded process types or dynos: lines beyond the limits are counted
// as rejected, and names not seen for an hour make room again.
func TestCardinalityLimits(t *testing.T) {
	s := NewState(3*24*time.Hour, 5*time.Minute)
	var body []byte
	for i := 0; i < MaxProcessTypes+8; i++ {
		body = frame(body, t0, "heroku", "router", fmt.Sprintf("at=info method=GET path=/ dyno=type%d.1 connect=1ms service=5ms status=200", i))
	}
	rec := record(1, body)
	s.Fold(&rec)
	f := s.Take(1)
	var requests, rejected int64
	types := map[string]bool{}
	for _, r := range f.Rows {
		requests += r.Bucket.Requests
		rejected += r.Bucket.LogLoss().Get(ReasonCardinality)
		if r.Bucket.Requests > 0 {
			types[r.ProcessType] = true
		}
	}
	if requests != MaxProcessTypes || rejected != 8 || len(types) != MaxProcessTypes {
		t.Fatalf("kept %d requests in %d types, rejected %d; want %d, %d, 8", requests, len(types), rejected, MaxProcessTypes, MaxProcessTypes)
	}
	// Two hours later the old types have aged out.
	later := t0.Add(2 * time.Hour)
	body = frame(nil, later, "heroku", "router", "at=info method=GET path=/ dyno=fresh.1 connect=1ms service=5ms status=200")
	rec = drainpipe.Record{Seq: 2, Batch: drainpipe.Batch{App: "shop", ReceivedAt: later, Body: body}}
	s.Fold(&rec)
	f = s.Take(2)
	if len(f.Rows) != 1 || f.Rows[0].ProcessType != "fresh" || f.Rows[0].Bucket.Requests != 1 {
		t.Fatalf("after aging: %+v", f.Rows)
	}
}

func TestHealthReportsStalledFlushes(t *testing.T) {
	ctx := context.Background()
	j, st := openStack(t)
	body := frame(nil, time.Now(), "heroku", "router", "at=info method=GET path=/ dyno=web.1 connect=1ms service=5ms status=200")
	if _, _, err := j.Append(ctx, drainpipe.Batch{App: "shop", ReceivedAt: time.Now(), Body: body}); err != nil {
		t.Fatal(err)
	}
	a := New(Config{}, j, &failingSink{Store: st, fail: 1000}, nil, quiet, nil)
	if _, err := a.readOnce(ctx); err != nil {
		t.Fatal(err)
	}
	a.Flush(ctx)
	if err := a.Health(ctx); err != nil {
		t.Fatalf("unhealthy right after the first failure: %v", err)
	}
	a.failingSince = time.Now().Add(-UnhealthyAfter - time.Second) // as if failing for long
	if err := a.Health(ctx); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Health after a long stall = %v", err)
	}
	a.sink = st
	a.Flush(ctx)
	if err := a.Health(ctx); err != nil {
		t.Fatalf("still unhealthy after a successful flush: %v", err)
	}
}

// FuzzFold feeds arbitrary drain bodies to the fold: it must never panic,
// and every frame must be accounted for exactly once, as a line of some
// kind or as a rejection, with an unframeable tail counted once.
func FuzzFold(f *testing.F) {
	good := frame(nil, t0, "heroku", "router", `at=info method=GET path=/ dyno=web.1 connect=1ms service=18ms status=200`)
	f.Add(good)
	f.Add(append(append([]byte(nil), good...), "12 garbage"...))
	f.Add(frame(good, t0, "heroku", "web.1", "source=web.1 sample#memory_rss=12.5MB sample#load_avg_1m=0.5"))
	f.Add(frame(nil, t0, "app", "web.2", "count#a=1 measure#b=2ms sample#c=3"))
	f.Add([]byte("5 <1>1 "))
	f.Fuzz(func(t *testing.T, body []byte) {
		s := NewState(3*24*time.Hour, 5*time.Minute)
		counted := 0
		s.onLine = func(_ string, n int64) { counted += int(n) }
		rec := record(1, body)
		s.Fold(&rec)
		frames := 0
		r := logplex.NewReader(body)
		framingErr := 0
		for {
			_, err := r.Next()
			if err != nil {
				if err != io.EOF {
					framingErr = 1
				}
				break
			}
			frames++
		}
		// A line may add one extra rejection (a custom metric over a limit),
		// so count at least one per frame.
		if counted < frames+framingErr {
			t.Fatalf("%d frames (+%d framing error) but only %d accounted for", frames, framingErr, counted)
		}
		s.Take(1) // must not panic either
	})
}

// TestDamagedRecordIsCountedAsLost: a journal record whose checksum
// failed reaches the fold without its body and is counted, per app, as
// rejected.corrupt in the log-loss series instead of being read.
func TestDamagedRecordIsCountedAsLost(t *testing.T) {
	s := NewState(3*24*time.Hour, 5*time.Minute)
	good := record(1, frame(nil, t0.Add(time.Minute), "heroku", "router", `at=info method=GET path=/ dyno=web.1 connect=1ms service=5ms status=200`))
	bad := record(2, nil)
	bad.Damaged = true
	s.Fold(&good)
	s.Fold(&bad)
	f := s.Take(2)
	var requests, corrupt int64
	for _, r := range f.Rows {
		requests += r.Bucket.Requests
		corrupt += r.Bucket.LogLoss().Get(ReasonCorrupt)
	}
	if requests != 1 || corrupt != 1 {
		t.Fatalf("requests %d, rejected.corrupt %d; want 1 and 1", requests, corrupt)
	}
}

// TestPoisonRecordIsSkippedAfterTwoPanics makes the fold panic on one
// journal record every time. The supervisor restarts the aggregator; after
// the second panic on the same record it is skipped and counted as
// rejected.malformed, and the records around it are counted exactly once.
func TestPoisonRecordIsSkippedAfterTwoPanics(t *testing.T) {
	ctx := context.Background()
	j, st := openStack(t)
	now := time.Now().UTC()
	for range 3 {
		body := frame(nil, now, "heroku", "router", `at=info method=GET path=/ dyno=web.1 connect=1ms service=5ms status=200`)
		if _, _, err := j.Append(ctx, drainpipe.Batch{App: "shop", ReceivedAt: now, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	a := New(Config{FlushInterval: 20 * time.Millisecond}, j, st, nil, quiet, nil)
	a.beforeFold = func(r *drainpipe.Record) {
		if r.Seq == 2 {
			panic("injected: this record breaks the fold")
		}
	}
	sup := supervise.New(quiet, nil)
	runCtx, cancel := context.WithCancel(ctx)
	sup.Go(runCtx, "aggregator", a.Run)
	waitPosition(t, st, 3)
	cancel()
	sup.Wait()
	if requests, malformed := requestsAndMalformed(t, st, "shop", drainpipe.Tier1h, now); requests != 2 || malformed != 1 {
		t.Fatalf("requests %d, rejected.malformed %d; want 2 and 1", requests, malformed)
	}
}

// TestLineAndFrameLimits: a frame above MaxLineBytes is skipped, frames
// past MaxFramesPerBody are not parsed, and both are counted per app in
// the log-loss series and in drainpipe_rejected_lines_total.
func TestLineAndFrameLimits(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := New(Config{}, nil, nil, nil, quiet, reg)
	s := a.state
	at := t0.Add(time.Minute)
	router := `at=info method=GET path=/ dyno=web.1 connect=1ms service=5ms status=200`
	long := frame(nil, at, "app", "web.1", strings.Repeat("x", MaxLineBytes))
	one := record(1, frame(long, at, "heroku", "router", router))
	s.Fold(&one)
	var many []byte
	for range MaxFramesPerBody + 5 {
		many = frame(many, at, "heroku", "router", router)
	}
	two := record(2, many)
	s.Fold(&two)
	f := s.Take(2)
	var requests, tooLong, tooMany int64
	for _, r := range f.Rows {
		requests += r.Bucket.Requests
		tooLong += r.Bucket.LogLoss().Get(ReasonLineTooLong)
		tooMany += r.Bucket.LogLoss().Get(ReasonTooManyFrames)
	}
	if requests != 1+MaxFramesPerBody || tooLong != 1 || tooMany != 5 {
		t.Fatalf("requests %d, line_too_long %d, too_many_frames %d; want %d, 1, 5", requests, tooLong, tooMany, 1+MaxFramesPerBody)
	}
	if got := testutil.ToFloat64(a.mRejected.WithLabelValues("shop", ReasonTooManyFrames)); got != 5 {
		t.Fatalf("drainpipe_rejected_lines_total{app=shop,reason=too_many_frames} = %v", got)
	}
}

// slowSink takes delay for every Apply before passing it to the store.
type slowSink struct {
	*sqlite.Store
	delay time.Duration
}

func (s *slowSink) Apply(ctx context.Context, fl *metrics.Flush) error {
	time.Sleep(s.delay)
	return s.Store.Apply(ctx, fl)
}

// TestFlushWaitAdapts: after a flush that took d the aggregator waits d
// before the next one, within [FlushInterval, MaxFlushInterval], and
// returns to FlushInterval once flushes are quick again.
func TestFlushWaitAdapts(t *testing.T) {
	ctx := context.Background()
	j, st := openStack(t)
	sink := &slowSink{Store: st}
	minWait, maxWait := 10*time.Millisecond, 300*time.Millisecond
	a := New(Config{FlushInterval: minWait, MaxFlushInterval: maxWait}, j, sink, nil, quiet, nil)
	now := time.Now().UTC()
	for i, delay := range []time.Duration{50 * time.Millisecond, 400 * time.Millisecond, 0, 100 * time.Millisecond} {
		body := frame(nil, now, "heroku", "router", `at=info method=GET path=/ dyno=web.1 connect=1ms service=5ms status=200`)
		if _, _, err := j.Append(ctx, drainpipe.Batch{App: "shop", ReceivedAt: now, Body: body}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.readOnce(ctx); err != nil {
			t.Fatal(err)
		}
		sink.delay = delay
		start := time.Now()
		a.Flush(ctx)
		took := time.Since(start)
		if got := a.Flushed(); got != int64(i+1) {
			t.Fatalf("flushed position %d, want %d", got, i+1)
		}
		lo := min(max(delay, minWait), maxWait)
		hi := min(max(took, minWait), maxWait)
		if a.wait < lo || a.wait > hi {
			t.Fatalf("flush %d took %s (%s injected): wait %s, want within [%s, %s]", i, took, delay, a.wait, lo, hi)
		}
	}
	if d := (Config{FlushInterval: 10 * time.Second}).WithDefaults(); d.MaxFlushInterval != 10*time.Second {
		t.Fatalf("MaxFlushInterval below FlushInterval: %s", d.MaxFlushInterval)
	}
}

// TestStateFindsBucketsInAnyOrder folds lines of several process types
// and minutes in a random order (late and out-of-order lines, as a
// backfill or a slow drain sends them) and checks that every (process
// type, minute) gets exactly its own lines, in one bucket each.
func TestStateFindsBucketsInAnyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	s := NewState(3*24*time.Hour, 5*time.Minute)
	want := map[string]int64{}
	var body []byte
	for range 3000 {
		ptype := []string{"web", "api", "worker"}[rng.IntN(3)]
		at := t0.Add(-time.Duration(rng.IntN(300)) * time.Minute).Add(time.Duration(rng.IntN(60)) * time.Second)
		body = frame(body, at, "heroku", "router", fmt.Sprintf("at=info method=GET path=/ dyno=%s.1 connect=1ms service=5ms status=200", ptype))
		want[ptype+"@"+at.Truncate(time.Minute).Format(time.RFC3339)]++
	}
	rec := record(1, body)
	s.Fold(&rec)
	if s.Size() != len(want) {
		t.Fatalf("%d buckets held, want %d", s.Size(), len(want))
	}
	f := s.Take(1)
	got := map[string]int64{}
	for _, r := range f.Rows {
		k := r.ProcessType + "@" + r.Time.Format(time.RFC3339)
		if _, dup := got[k]; dup {
			t.Fatalf("two buckets for %s", k)
		}
		got[k] = r.Bucket.Requests
	}
	if !maps.Equal(got, want) {
		t.Fatalf("requests per bucket differ: got %d buckets, want %d", len(got), len(want))
	}
	if s.Size() != 0 {
		t.Fatal("Take left buckets behind")
	}
	for as := range s.apps.all {
		if as.series.Len() != 0 {
			t.Fatalf("Take left %s's buckets behind", as.name)
		}
	}
}

// TestLastSeenMatchesMap checks the sorted-slice name limits against
// the same rule kept in a map per kind: a name is admitted when known or
// when fewer than its kind's limit of names were seen within the last
// hour (in ticks of about a second); the three kinds share one slice but
// not their limits. The name table holds exactly the names the limits
// hold, each once.
func TestLastSeenMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var m lastSeen
	names := newNameTable()
	models := [3]map[string]int64{{}, {}, {}}
	limits := [3]int{50, 20, 35}
	now := t0.UnixNano()
	for i := range 30000 {
		now += int64(rng.IntN(3)) * int64(time.Second) * int64(rng.IntN(100))
		kind := byte(rng.IntN(3))
		model, limit := models[kind], limits[kind]
		name := fmt.Sprintf("n%d", rng.IntN(120))
		if rng.IntN(50) == 0 {
			name = ""
		}
		_, known := model[name]
		if !known && len(model) >= limit {
			for k, last := range model {
				if last < int64(tick(now))-windowTicks {
					delete(model, k)
				}
			}
		}
		want := known || len(model) < limit
		if want {
			model[name] = int64(tick(now))
		}
		id, got := m.admit(names, kind, []byte(name), now, limit)
		if got != want || got && names.str(id) != name {
			t.Fatalf("step %d: admit(%d, %q) = %q, %v, want %v", i, kind, name, names.str(id), got, want)
		}
		if !slices.IsSortedFunc(m, func(a, b seenName) int {
			return cmp.Or(cmp.Compare(a.kind(), b.kind()), strings.Compare(names.str(a.id()), names.str(b.id())))
		}) {
			t.Fatalf("step %d: names out of order", i)
		}
		distinct := map[string]bool{"": true}
		for k := range models {
			if n := m.count(byte(k)); n != len(models[k]) {
				t.Fatalf("step %d: %d names of kind %d held (model %d)", i, n, k, len(models[k]))
			}
			for n := range models[k] {
				distinct[n] = true
			}
		}
		if names.held+1 != len(distinct) {
			t.Fatalf("step %d: the table holds %d names, the limits %d", i, names.held+1, len(distinct))
		}
	}
}

// gatedSink holds every Apply until the gate is closed, telling entered
// (when not nil) that one started.
type gatedSink struct {
	*sqlite.Store
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedSink) Apply(ctx context.Context, fl *metrics.Flush) error {
	if g.entered != nil {
		select {
		case g.entered <- struct{}{}:
		default:
		}
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.Apply(ctx, fl)
}

func appendRouter(t *testing.T, j *sqlite.Journal, app string, at time.Time) {
	t.Helper()
	body := frame(nil, at, "heroku", "router", `at=info method=GET path=/ dyno=web.1 connect=1ms service=5ms status=200`)
	if _, _, err := j.Append(context.Background(), drainpipe.Batch{App: app, ReceivedAt: at, Body: body}); err != nil {
		t.Fatal(err)
	}
}

// waitPosition waits until the store holds journal position pos.
func waitPosition(t *testing.T, st *sqlite.Store, pos int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p, _ := st.Position(context.Background()); p == pos {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("aggregation stuck before position %d", pos)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requestsAndMalformed sums app's requests and rejected.malformed lines
// in tier within an hour of at.
func requestsAndMalformed(t *testing.T, st *sqlite.Store, app string, tier drainpipe.Tier, at time.Time) (int64, int64) {
	t.Helper()
	rows, err := st.Buckets(context.Background(), app, "", tier, at.Add(-time.Hour), at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var requests, malformed int64
	for _, r := range rows {
		requests += r.Bucket.Requests
		malformed += r.Bucket.LogLoss().Get(ReasonMalformed)
	}
	return requests, malformed
}

// TestFoldGoesOnWhileTheStoreApplies: while the store applies a flush the
// aggregator keeps folding the journal, reports only the flush's position
// as applied, and everything is counted once when the store is back.
func TestFoldGoesOnWhileTheStoreApplies(t *testing.T) {
	j, st := openStack(t)
	sink := &gatedSink{Store: st, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	a := New(Config{FlushInterval: 10 * time.Millisecond}, j, sink, nil, quiet, nil)
	folded3 := make(chan struct{})
	a.beforeFold = func(r *drainpipe.Record) {
		if r.Seq == 3 {
			close(folded3)
		}
	}
	now := time.Now().UTC()
	appendRouter(t, j, "shop", now)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	<-sink.entered
	appendRouter(t, j, "shop", now)
	appendRouter(t, j, "shop", now)
	select {
	case <-folded3:
	case <-time.After(10 * time.Second):
		t.Fatal("the fold stopped while the store applied a flush")
	}
	if got := a.Flushed(); got != 0 {
		t.Fatalf("Flushed() = %d while the first flush is still being applied", got)
	}
	close(sink.gate)
	deadline := time.Now().Add(10 * time.Second)
	for a.Flushed() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("applied position %d, want 3", a.Flushed())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if req, _ := requestsAndMalformed(t, st, "shop", drainpipe.Tier1m, now); req != 3 {
		t.Fatalf("%d requests counted, want 3", req)
	}
}

// panicWhileFlushing runs an aggregator (with cfg) under a supervisor
// over three journal records: record 2 makes the fold panic every time,
// and it is folded while the store holds the flush of record 1 (until
// the returned gate is closed). It returns when the first panic happened,
// with the store, the gate, and stop, which waits for the store to hold
// position 3 and stops the aggregator.
func panicWhileFlushing(t *testing.T, cfg Config) (st *sqlite.Store, now time.Time, gate chan struct{}, stop func()) {
	t.Helper()
	j, st := openStack(t)
	sink := &gatedSink{Store: st, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	a := New(cfg, j, sink, nil, quiet, nil)
	panicked := make(chan struct{}, 2)
	a.beforeFold = func(r *drainpipe.Record) {
		if r.Seq == 2 {
			panicked <- struct{}{}
			panic("injected: this record breaks the fold")
		}
	}
	now = time.Now().UTC()
	appendRouter(t, j, "shop", now)
	sup := supervise.New(quiet, nil)
	ctx, cancel := context.WithCancel(context.Background())
	sup.Go(ctx, "aggregator", a.Run)
	<-sink.entered // the flush of record 1 is being applied
	appendRouter(t, j, "shop", now)
	appendRouter(t, j, "shop", now)
	<-panicked
	return st, now, sink.gate, func() {
		waitPosition(t, st, 3)
		cancel()
		sup.Wait()
	}
}

// TestRestartWaitsForTheFlushInFlight: the fold panics while the store
// still applies the flush before it. The restarted aggregator must wait
// for that flush before it reads the stored position, or it would fold
// the flushed records again and count them twice.
func TestRestartWaitsForTheFlushInFlight(t *testing.T) {
	st, now, gate, stop := panicWhileFlushing(t, Config{FlushInterval: 10 * time.Millisecond})
	time.Sleep(300 * time.Millisecond) // the supervisor restarts Run meanwhile
	close(gate)
	stop()
	if req, bad := requestsAndMalformed(t, st, "shop", drainpipe.Tier1m, now); req != 2 || bad != 1 {
		t.Fatalf("requests %d, rejected.malformed %d; want 2 and 1", req, bad)
	}
}

// TestRestartDeliversTheFlushInFlight: the fold panics while the store
// applies a flush. The store commits it after the panic; the restarted
// aggregator must still hand it to OnFlush (the monitor evaluator), so
// that OnFlush sees every request the store holds.
func TestRestartDeliversTheFlushInFlight(t *testing.T) {
	var delivered []*metrics.Flush // written by Run's goroutine, read after stop
	st, now, gate, stop := panicWhileFlushing(t, Config{FlushInterval: 10 * time.Millisecond, OnFlush: func(f *metrics.Flush) {
		delivered = append(delivered, f)
	}})
	close(gate) // the store commits the flush after the panic
	stop()
	var requests int64
	var positions []int64
	for _, f := range delivered {
		positions = append(positions, f.Position)
		for _, r := range f.Rows {
			requests += r.Bucket.Requests
		}
	}
	if stored, _ := requestsAndMalformed(t, st, "shop", drainpipe.Tier1m, now); requests != stored || stored != 2 {
		t.Fatalf("OnFlush was given %d requests (flushes at positions %v); the store holds %d, want 2", requests, positions, stored)
	}
	if len(positions) == 0 || positions[0] != 1 {
		t.Fatalf("OnFlush got flushes at positions %v; want the flush of position 1 first", positions)
	}
}

// TestNameTableMatchesMap drives the name table through random acquires
// and releases against a map of names to holders: a held name keeps its
// id and is found again (also after other names were removed from the
// index around it), a name no one holds is forgotten, and ids are
// reused.
func TestNameTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	tbl := newNameTable()
	refs := map[string]int{}
	ids := map[string]uint32{}
	for step := range 50000 {
		name := fmt.Sprintf("n%d", rng.IntN(300))
		if rng.IntN(2) == 0 || refs[name] == 0 {
			id, ok := tbl.acquire([]byte(name))
			if !ok {
				t.Fatalf("step %d: table full", step)
			}
			if held, had := ids[name]; had && held != id {
				t.Fatalf("step %d: %q has id %d, was %d", step, name, id, held)
			}
			ids[name] = id
			refs[name]++
		} else {
			tbl.release(ids[name])
			if refs[name]--; refs[name] == 0 {
				delete(refs, name)
				delete(ids, name)
			}
		}
		if tbl.held != len(refs) {
			t.Fatalf("step %d: %d names held, want %d", step, tbl.held, len(refs))
		}
		if step%97 == 0 {
			for n, id := range ids {
				if tbl.str(id) != n {
					t.Fatalf("step %d: id %d is %q, want %q", step, id, tbl.str(id), n)
				}
				if _, v := tbl.slot([]byte(n)); v != id+1 {
					t.Fatalf("step %d: %q not found in the index", step, n)
				}
			}
		}
	}
	if len(tbl.entries) > 300+1+300/4+1 {
		t.Fatalf("%d entries for at most 300 names: ids not reused", len(tbl.entries))
	}
}

// TestLineCounterCountsEveryKind: drainpipe_aggregate_lines_total counts
// each line kind (counted by the State, reported once per record) and
// each rejection reason, also after resetState.
func TestLineCounterCountsEveryKind(t *testing.T) {
	a := New(Config{}, nil, nil, nil, nil, nil)
	kinds := append(lineKinds[:], ReasonTooOld, ReasonMalformed)
	for round := range 2 {
		if round == 1 {
			a.resetState() // a new State keeps counting into the same metric
		}
		for i, k := range kinds {
			for range i + 1 {
				if i < len(lineKinds) {
					a.state.count(i)
				} else {
					a.state.reject("app", t0.UnixNano(), k, 1)
				}
			}
		}
		a.state.reportLines()
	}
	for i, k := range kinds {
		if got := testutil.ToFloat64(a.mLines.WithLabelValues(k)); got != float64(2*(i+1)) {
			t.Errorf("%s: %v lines, want %d", k, got, 2*(i+1))
		}
	}
}

// trimAsker is a journal that asks for trims (journal.Journal.WantsTrim)
// when want is set, and counts the trims it gets.
type trimAsker struct {
	*sqlite.Journal
	want  bool
	fail  bool // Trim fails (as when the frame index cannot be written)
	trims []int64
}

func (j *trimAsker) WantsTrim(int64) bool { return j.want }

func (j *trimAsker) Trim(ctx context.Context, upTo int64) error {
	j.trims = append(j.trims, upTo)
	if j.fail {
		return errors.New("trim: disk full")
	}
	return j.Journal.Trim(ctx, upTo)
}

// foldOne appends a record to j, has a fold it, calls before and
// flushes.
func (j *trimAsker) foldOne(t *testing.T, a *Aggregator, now time.Time, before func()) {
	t.Helper()
	ctx := context.Background()
	body := frame(nil, now, "heroku", "router", `at=info method=GET path=/ dyno=web.1 connect=1ms service=5ms status=200`)
	if _, _, err := j.Append(ctx, drainpipe.Batch{App: "shop", ReceivedAt: now, Body: body}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.readOnce(ctx); err != nil {
		t.Fatal(err)
	}
	before()
	a.Flush(ctx)
}

// TestTrimWhenTheJournalAsks: after a flush the aggregator trims at once
// when the journal asks for it, and otherwise only every TrimEvery.
func TestTrimWhenTheJournalAsks(t *testing.T) {
	sj, st := openStack(t)
	j := &trimAsker{Journal: sj}
	now := time.Now().UTC()
	a := New(Config{TrimEvery: time.Hour}, j, st, nil, quiet, nil)
	step := func(want bool) {
		t.Helper()
		j.foldOne(t, a, now, func() { j.want = want })
	}
	step(false) // the first flush trims: no trim yet
	step(false) // within TrimEvery, not asked: no trim
	step(true)  // asked: a trim up to the flushed position
	if want := []int64{1, 3}; !slices.Equal(j.trims, want) {
		t.Fatalf("trims up to %v, want %v", j.trims, want)
	}
}

// TestFailedTrimWaitsTrimEvery: a trim that failed is tried again after
// TrimEvery, as before journals asked for trims, not after every flush
// while the journal (which the failure left as it was) still asks; once
// a trim succeeds the journal's asks count again.
func TestFailedTrimWaitsTrimEvery(t *testing.T) {
	sj, st := openStack(t)
	j := &trimAsker{Journal: sj, want: true, fail: true}
	now := time.Now().UTC()
	a := New(Config{TrimEvery: time.Hour}, j, st, nil, quiet, nil)
	step := func() {
		t.Helper()
		j.foldOne(t, a, now, func() {})
	}
	step() // the first flush trims, and fails
	step() // asked, but the last trim failed: not before TrimEvery
	step()
	if want := []int64{1}; !slices.Equal(j.trims, want) {
		t.Fatalf("trims up to %v, want %v: a failed trim is tried after every flush", j.trims, want)
	}
	a.lastTrim = a.lastTrim.Add(-time.Hour) // TrimEvery passes
	j.fail = false
	step() // TrimEvery has passed: tried, and it succeeds
	step() // asked, the last trim succeeded: at once
	if want := []int64{1, 4, 5}; !slices.Equal(j.trims, want) {
		t.Fatalf("trims up to %v, want %v", j.trims, want)
	}
}
