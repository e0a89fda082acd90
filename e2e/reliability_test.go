package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/embedded"
	"github.com/drainpipe/drainpipe/logplex"
	"github.com/drainpipe/drainpipe/metrics"
)

// metricValue reads one sample from GET /metrics: the first line that
// starts with name (labels included, as Prometheus writes them).
func metricValue(t *testing.T, base, name string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// routerBatch is n router lines with status code status, at t.
func routerBatch(n, status int, at time.Time) []byte {
	var body []byte
	for i := range n {
		body = logplex.AppendMessage(body, at, "host", "heroku", "router",
			fmt.Sprintf("at=info method=GET path=/ dyno=web.1 connect=1ms service=%dms status=%d bytes=1", 5+i, status))
	}
	return body
}

// countWindow makes every countStatus query's window differ by a second,
// so that the server's 1 s query-window cache never answers one.
var countWindow atomic.Int64

// countStatus returns how many lines of app with status code status the
// API counts in the hours around at, as the store holds them now.
func countStatus(t *testing.T, base, app string, status int, at time.Time) float64 {
	t.Helper()
	end := at.Add(time.Hour + time.Duration(countWindow.Add(1)%1800)*time.Second)
	s := query(t, base, adminToken, "/api/apps/"+app+"/router-metrics/status", at.Add(-time.Hour), end, "1h", nil)
	return sum(s.Data[strconv.Itoa(status)])
}

// panickySink panics on some Apply calls: before the store is touched, or
// after it committed (the flush is kept but the aggregator dies before it
// knows).
type panickySink struct {
	aggregate.Sink
	calls, before, after atomic.Int64
}

func (p *panickySink) Apply(ctx context.Context, f *metrics.Flush) error {
	n := p.calls.Add(1)
	if n == p.before.Load() {
		panic("injected panic before the store commits")
	}
	err := p.Sink.Apply(ctx, f)
	if n == p.after.Load() {
		panic("injected panic after the store committed")
	}
	return err
}

// TestWorkerPanicIsRecovered injects two panics into the aggregator's
// flush, one before and one after the store commits. The supervisor
// recovers each, restarts the worker, counts the restarts in /metrics next
// to each worker's last success, and every acknowledged line is still
// counted exactly once.
func TestWorkerPanicIsRecovered(t *testing.T) {
	sink := &panickySink{}
	sink.before.Store(2)
	sink.after.Store(4)
	n := startNodeWith(t, embedded.Config{DataDir: t.TempDir(), WrapSink: func(s aggregate.Sink) aggregate.Sink {
		sink.Sink = s
		return sink
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	app := createApp(t, n.URL, "panicky")
	now := time.Now().UTC()
	const per = 25
	// Post a batch every 60 ms (several per flush) until both panics
	// have hit and been recovered.
	batches := 0
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code := postDrain(t, app.DrainURL, fmt.Sprint("f", batches), routerBatch(per, 200, now), per); code != 200 {
			t.Fatalf("drain POST: %d", code)
		}
		batches++
		if v, _ := metricValue(t, n.URL, `drainpipe_worker_restarts_total{cause="panic",worker="aggregator"}`); v == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two injected panics were not both recovered (%d Apply calls)", sink.calls.Load())
		}
		time.Sleep(60 * time.Millisecond)
	}
	eventually(t, "every line counted", func() bool { return countStatus(t, n.URL, "panicky", 200, now) >= float64(batches*per) })
	time.Sleep(500 * time.Millisecond)
	if got := countStatus(t, n.URL, "panicky", 200, now); got != float64(batches*per) {
		t.Fatalf("counted %v lines after two panics, want exactly %d", got, batches*per)
	}
	t.Logf("%d lines in %d batches counted exactly once across 2 recovered panics", batches*per, batches)
	for _, w := range []string{"flush", "trim", "retention"} {
		v, ok := metricValue(t, n.URL, `drainpipe_worker_last_success_timestamp_seconds{worker="`+w+`"}`)
		if !ok || v < float64(now.Add(-time.Minute).Unix()) {
			t.Errorf("last success of %s: %v (exported %v)", w, v, ok)
		}
	}
}

// gatedSink blocks every Apply while closed: a store that has stopped
// answering.
type gatedSink struct {
	aggregate.Sink
	mu   sync.Mutex
	open chan struct{}
}

func (g *gatedSink) Apply(ctx context.Context, f *metrics.Flush) error {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Sink.Apply(ctx, f)
}

// TestSlowStoreJournalAbsorbs stalls the store completely. Drains keep
// being acknowledged (the journal absorbs them), the backlog shows in
// /metrics and in /healthz's detail while /healthz stays 200 (the node
// still accepts drains), and once the store answers again it catches up:
// every line counted exactly once, backlog back to 0.
func TestSlowStoreJournalAbsorbs(t *testing.T) {
	sink := &gatedSink{open: make(chan struct{})}
	n := startNodeWith(t, embedded.Config{DataDir: t.TempDir(), WrapSink: func(s aggregate.Sink) aggregate.Sink {
		sink.Sink = s
		return sink
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	app := createApp(t, n.URL, "slowstore")
	now := time.Now().UTC()
	const batches, per = 40, 50
	for b := range batches {
		if code := postDrain(t, app.DrainURL, fmt.Sprint("f", b), routerBatch(per, 200, now), per); code != 200 {
			t.Fatalf("drain POST %d while the store is stalled: %d", b, code)
		}
	}
	eventually(t, "backlog in /metrics", func() bool {
		v, _ := metricValue(t, n.URL, "drainpipe_journal_backlog_records")
		return v == batches
	})
	code, body := do(t, "GET", n.URL+"/healthz", "", nil, nil)
	if code != 200 || !strings.Contains(string(body), fmt.Sprintf("journal_backlog_records %d\n", batches)) {
		t.Fatalf("healthz while the store is stalled: %d %q", code, body)
	}
	if got := countStatus(t, n.URL, "slowstore", 200, now); got != 0 {
		t.Fatalf("counted %v lines while the store was stalled", got)
	}
	close(sink.open)
	eventually(t, "store caught up", func() bool { return countStatus(t, n.URL, "slowstore", 200, now) >= batches*per })
	if got := countStatus(t, n.URL, "slowstore", 200, now); got != batches*per {
		t.Fatalf("counted %v lines after catching up, want %d", got, batches*per)
	}
	eventually(t, "backlog back to 0", func() bool {
		v, ok := metricValue(t, n.URL, "drainpipe_journal_backlog_records")
		return ok && v == 0
	})
	// The batches fit the first segment: one begun, from whatever.
	begun := 0.0
	for _, from := range []string{"created", "retired", "zeroed"} {
		v, ok := metricValue(t, n.URL, `drainpipe_journal_segments_begun_total{from="`+from+`"}`)
		if !ok {
			t.Fatalf("no drainpipe_journal_segments_begun_total for %s in /metrics", from)
		}
		begun += v
	}
	if begun != 1 {
		t.Fatalf("drainpipe_journal_segments_begun_total sums to %v, want 1", begun)
	}
}

// TestCardinalityFloodIsCountedPerApp floods one app with 600 distinct
// custom metric names in one minute. It keeps 200 (the per-bucket cap);
// the rest are counted, never silently dropped: 300 as
// rejected.custom_limit and the 100 beyond the 500 names an app may have
// per hour as rejected.cardinality, both in that app's log-loss series
// and in drainpipe_rejected_lines_total{app=...}. Another app is not
// touched.
func TestCardinalityFloodIsCountedPerApp(t *testing.T) {
	n := startNode(t, t.TempDir())
	flood := createApp(t, n.URL, "flood")
	calm := createApp(t, n.URL, "calm")
	now := time.Now().UTC().Truncate(time.Minute).Add(30 * time.Second)
	var body []byte
	for i := range 600 {
		body = logplex.AppendMessage(body, now, "host", "app", "web.1", fmt.Sprintf("count#name%03d=1", i))
	}
	if code := postDrain(t, flood.DrainURL, "flood-1", body, 600); code != 200 {
		t.Fatalf("flood POST: %d", code)
	}
	if code := postDrain(t, calm.DrainURL, "calm-1", routerBatch(5, 200, now), 5); code != 200 {
		t.Fatalf("calm POST: %d", code)
	}
	settled(t, n.URL)
	loss := query(t, n.URL, adminToken, "/api/apps/flood/log-loss", now.Add(-time.Hour), now.Add(time.Hour), "1h", nil)
	if got := sum(loss.Data["rejected.custom_limit"]); got != 300 {
		t.Errorf("flood rejected.custom_limit = %v, want 300 (data %v)", got, loss.Data)
	}
	if got := sum(loss.Data["rejected.cardinality"]); got != 100 {
		t.Errorf("flood rejected.cardinality = %v, want 100", got)
	}
	v, _ := metricValue(t, n.URL, `drainpipe_rejected_lines_total{app="flood",reason="rejected.cardinality"}`)
	if v != 100 {
		t.Errorf("/metrics rejected.cardinality for flood = %v, want 100", v)
	}
	calmLoss := query(t, n.URL, adminToken, "/api/apps/calm/log-loss", now.Add(-time.Hour), now.Add(time.Hour), "1h", nil)
	for k, vals := range calmLoss.Data {
		if sum(vals) != 0 {
			t.Errorf("calm app has log loss %s = %v", k, sum(vals))
		}
	}
	if got := countStatus(t, n.URL, "calm", 200, now); got != 5 {
		t.Errorf("calm app counted %v lines, want 5", got)
	}
}

// TestSheddingOnTheRealStack limits a real node to 2 drains in flight and
// sends 40 at once, each retried on 503 as Logplex does: some are shed
// with 503 + Retry-After, none gets a 4xx, and once all are acknowledged
// every line is counted exactly once.
func TestSheddingOnTheRealStack(t *testing.T) {
	cfg := embedded.Config{DataDir: t.TempDir()}
	cfg.Server.MaxConcurrentDrains = 2
	n := startNodeWith(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	d := targetOf(t, createApp(t, n.URL, "shed").DrainURL)
	now := time.Now().UTC()
	const senders, per = 40, 200
	var shed atomic.Int64
	var wg sync.WaitGroup
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := routerBatch(per, 200, now)
			for {
				req, _ := http.NewRequest("POST", d.endpoint, bytes.NewReader(body))
				req.SetBasicAuth(d.user, d.secret)
				req.Header.Set("Logplex-Frame-Id", fmt.Sprint("shed-", i))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					return
				case resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
					shed.Add(1)
					time.Sleep(20 * time.Millisecond)
				default:
					t.Errorf("drain under load: %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"))
					return
				}
			}
		}()
	}
	wg.Wait()
	if shed.Load() == 0 {
		t.Fatal("40 concurrent drains against a limit of 2: none was shed")
	}
	settled(t, n.URL)
	if got := countStatus(t, n.URL, "shed", 200, now); got != senders*per {
		t.Fatalf("counted %v lines, want %d", got, senders*per)
	}
	v, _ := metricValue(t, n.URL, `drainpipe_drain_shed_total{reason="concurrency"}`)
	if v != float64(shed.Load()) {
		t.Errorf("drainpipe_drain_shed_total{reason=concurrency} = %v, senders saw %d", v, shed.Load())
	}
	t.Logf("%d drains shed with 503 + Retry-After and retried; %d lines counted exactly once", shed.Load(), senders*per)
}

// TestReplacedJournalIsNotSkipped deletes the journal (its segments and
// journal.db with its WAL) between two runs while metrics.db is kept: the
// new journal numbers its records from 1 again, below the store's
// position. The node notices, moves the
// store's position back, and every line acknowledged afterwards is counted.
func TestReplacedJournalIsNotSkipped(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	app := createApp(t, n.URL, "swapped")
	now := time.Now().UTC()
	for b := range 5 {
		if code := postDrain(t, app.DrainURL, fmt.Sprint("before-", b), routerBatch(10, 200, now), 10); code != 200 {
			t.Fatalf("drain: %d", code)
		}
	}
	settled(t, n.URL)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"journal.db", "journal.db-wal", "journal.db-shm", "journal"} {
		os.RemoveAll(filepath.Join(dir, f))
	}
	oldHost := strings.TrimPrefix(n.URL, "http://")
	n = startNode(t, dir)
	drainURL := strings.Replace(app.DrainURL, oldHost, strings.TrimPrefix(n.URL, "http://"), 1)
	for b := range 3 {
		if code := postDrain(t, drainURL, fmt.Sprint("after-", b), routerBatch(10, 200, now), 10); code != 200 {
			t.Fatalf("drain: %d", code)
		}
	}
	settled(t, n.URL)
	if got := countStatus(t, n.URL, "swapped", 200, now); got != 80 {
		t.Fatalf("counted %v lines, want 80: lines sent after the journal was replaced were skipped", got)
	}
}
