package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/gen"
	"github.com/drainpipe/drainpipe/internal/benchmeter"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/server"
	"github.com/drainpipe/drainpipe/sqlite"
)

func openHistoryStore(tb testing.TB) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.OpenStore(context.Background(), filepath.Join(tb.TempDir(), "metrics.db"), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// TestImportHistoryCountsEveryLine imports two hours of the demo fleet
// and checks the store holds exactly the router lines the generator made,
// and that the journal position was left alone.
func TestImportHistoryCountsEveryLine(t *testing.T) {
	ctx := context.Background()
	st := openHistoryStore(t)
	fleet := gen.DemoFleet(3, 1)
	to := time.Now().UTC().Truncate(time.Minute)
	from := to.Add(-2 * time.Hour)
	want := map[string]int64{}
	for _, a := range fleet {
		gen.NewGenerator(a, 1, from, to).Generate(from, to, func(l *gen.Line) {
			if l.ProcID == "router" {
				want[a.Name]++
			}
		})
	}
	var calls, lastDone, lastTotal int
	var lastLines int64
	n, err := importHistory(ctx, st, fleet, 1, from, to, 3*24*time.Hour, 2, func(done, total int, lines int64) {
		calls++
		lastDone, lastTotal, lastLines = done, total, lines
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two hours are one or two chunks of each app.
	if n == 0 || n != lastLines || calls != lastDone || lastDone != lastTotal || (calls != len(fleet) && calls != 2*len(fleet)) {
		t.Fatalf("%d lines, %d progress calls, the last %d of %d with %d lines", n, calls, lastDone, lastTotal, lastLines)
	}
	for _, a := range fleet {
		rows, err := st.Buckets(ctx, a.Name, "web", drainpipe.Tier1h, from.Add(-time.Hour), to.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		for _, r := range rows {
			got += r.Bucket.Requests
		}
		if got != want[a.Name] {
			t.Errorf("%s: stored %d requests, generated %d router lines", a.Name, got, want[a.Name])
		}
	}
	if pos, err := st.Position(ctx); err != nil || pos != 0 {
		t.Fatalf("journal position %d (%v), want 0", pos, err)
	}
}

// TestImportHistorySkipsExpiredMinutes checks that 1-minute rows older
// than their tier's retention are not written, while the coarser tiers
// keep the same hours.
func TestImportHistorySkipsExpiredMinutes(t *testing.T) {
	ctx := context.Background()
	st := openHistoryStore(t)
	fleet := gen.DemoFleet(3, 1)[:1]
	to := time.Now().UTC().Add(-5 * 24 * time.Hour).Truncate(time.Hour)
	from := to.Add(-time.Hour)
	if _, err := importHistory(ctx, st, fleet, 1, from, to, 7*24*time.Hour, 1, nil); err != nil {
		t.Fatal(err)
	}
	minutes, err := st.Buckets(ctx, fleet[0].Name, "web", drainpipe.Tier1m, from, to)
	if err != nil {
		t.Fatal(err)
	}
	hours, err := st.Buckets(ctx, fleet[0].Name, "web", drainpipe.Tier1h, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(minutes) != 0 || len(hours) != 1 {
		t.Fatalf("%d 1-minute rows (want 0: past retention), %d hourly rows (want 1)", len(minutes), len(hours))
	}
}

// createdAt matches an app's creation time in an API answer.
var createdAt = regexp.MustCompile(`"created_at":"[^"]*"`)

// TestImportHistoryParallelSameAsSequential imports seven hours of the
// demo fleet (three chunks of each app) with one worker and with four,
// and asks both stores' APIs for every series, at every tier's step, and
// for the apps' events, formations and custom metrics: the answers must
// be byte for byte the same, so folding chunks in parallel changes
// nothing the dashboard shows.
func TestImportHistoryParallelSameAsSequential(t *testing.T) {
	ctx := context.Background()
	fleet := gen.DemoFleet(3, 1)
	to := time.Now().UTC().Truncate(time.Minute).Add(-17 * time.Second) // chunks end off the minute
	from := to.Add(-7 * time.Hour)
	now := func() time.Time { return to }
	var handlers [2]http.Handler
	var stores [2]*sqlite.Store
	var lines [2]int64
	for i, workers := range []int{1, 4} {
		st := openHistoryStore(t)
		for _, a := range fleet {
			if _, _, err := st.CreateApp(ctx, a.Name); err != nil {
				t.Fatal(err)
			}
		}
		n, err := importHistory(ctx, st, fleet, 1, from, to, 3*24*time.Hour, workers, nil)
		if err != nil {
			t.Fatal(err)
		}
		stores[i], lines[i] = st, n
		handlers[i] = server.New(server.Config{AdminToken: "t", Now: now}, nil, st, nil, nil).Handler()
	}
	if lines[0] != lines[1] || lines[0] == 0 {
		t.Fatalf("%d lines with one worker, %d with four", lines[0], lines[1])
	}
	window := "start_time=" + from.Format(time.RFC3339) + "&end_time=" + to.Add(time.Minute).Format(time.RFC3339)
	paths := seriesPaths(t, stores[0], fleet, from, to)
	for _, a := range fleet {
		base := "/api/apps/" + a.Name
		paths = append(paths, base+"/events?"+window, base+"/formation", base+"/custom-metrics")
	}
	events := 0
	for _, p := range paths {
		// The apps were created at different times; nothing else may differ.
		want := createdAt.ReplaceAllString(apiGet(t, handlers[0], p), "")
		got := createdAt.ReplaceAllString(apiGet(t, handlers[1], p), "")
		if got != want {
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			lo := max(0, i-200)
			t.Fatalf("%s differs at byte %d:\nfour workers …%.300s\none worker   …%.300s", p, i, got[lo:], want[lo:])
		}
		if strings.Contains(p, "/events?") {
			events += strings.Count(want, `"kind"`)
		}
	}
	if events == 0 {
		t.Fatal("no events in seven hours of the demo fleet")
	}
	t.Logf("%d answers compared, %d events", len(paths), events)
}

// failingStore fails its Import after ok successful ones.
type failingStore struct{ ok, calls int }

func (f *failingStore) Import(ctx context.Context, _ *metrics.Flush, _ time.Time) error {
	f.calls++
	if f.calls > f.ok {
		return errors.New("disk full")
	}
	return ctx.Err()
}

// TestImportHistoryStopsAtStoreError checks a failed transaction ends the
// import with its error, without storing any later chunk, and that a
// cancelled context ends it too: neither waits for the rest of the week.
func TestImportHistoryStopsAtStoreError(t *testing.T) {
	fleet := gen.DemoFleet(3, 1)
	to := time.Now().UTC().Truncate(time.Minute)
	from := to.Add(-7 * 24 * time.Hour)
	st := &failingStore{ok: 2}
	start := time.Now()
	_, err := importHistory(context.Background(), st, fleet, 1, from, to, 3*24*time.Hour, 2, nil)
	if err == nil || !strings.Contains(err.Error(), "disk full") || st.calls != 3 {
		t.Fatalf("error %v after %d imports", err, st.calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st = &failingStore{ok: 1 << 30}
	_, err = importHistory(ctx, st, fleet, 1, from, to, 3*24*time.Hour, 2, func(done, total int, lines int64) {
		if done == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || st.calls > 3 {
		t.Fatalf("error %v after %d imports", err, st.calls)
	}
	t.Logf("both stopped in %s", time.Since(start))
}

// TestHistoryJobs checks the chunks cover the window newest first, one
// of each app per span, and that every boundary inside it is a multiple
// of historyChunk.
func TestHistoryJobs(t *testing.T) {
	to := time.Date(2026, 11, 25, 13, 17, 23, 0, time.UTC)
	from := to.Add(-7 * 24 * time.Hour)
	jobs := historyJobs(3, from, to)
	if len(jobs) != 3*(7*8+1) {
		t.Fatalf("%d jobs", len(jobs))
	}
	end := to
	for i := 0; i < len(jobs); i += 3 {
		j := jobs[i]
		for a := range 3 {
			if jobs[i+a] != (historyJob{a, j.from, j.to}) {
				t.Fatalf("job %d: %+v", i+a, jobs[i+a])
			}
		}
		if !j.to.Equal(end) || !j.from.Before(j.to) || j.to.Sub(j.from) > historyChunk {
			t.Fatalf("job %d: [%s, %s) after %s", i, j.from, j.to, end)
		}
		if !j.from.Equal(from) && j.from.Sub(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC))%historyChunk != 0 {
			t.Fatalf("job %d starts at %s", i, j.from)
		}
		end = j.from
	}
	if !end.Equal(from) {
		t.Fatalf("the jobs end at %s, not %s", end, from)
	}
}

// TestHistoryReport checks the demo's import report: off a terminal a
// progress line at most every 2 seconds and a plain summary; on one a
// line rewritten after every chunk and a summary that clears it. Both
// give the percentage, the lines and lines/s.
func TestHistoryReport(t *testing.T) {
	var plain strings.Builder
	r := newHistoryReport(&plain, false)
	r.progress(1, 4, 1000) // under 2 s since the start: not printed
	r.last = r.last.Add(-3 * time.Second)
	r.progress(2, 4, 2000)
	r.progress(3, 4, 3000) // under 2 s since the last line
	r.done(7*24*time.Hour, 3, 4000)
	lines := strings.Split(strings.TrimSuffix(plain.String(), "\n"), "\n")
	if len(lines) != 2 || !regexp.MustCompile(`^history  50%  2000 lines  [0-9.]+[kM]? lines/s$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^history imported: 168h0m0s of 3 apps, 4000 lines in [0-9.]+m?s \([0-9.]+[kM]? lines/s\)$`).MatchString(lines[1]) {
		t.Fatalf("not a terminal:\n%s", plain.String())
	}
	var tty strings.Builder
	r = newHistoryReport(&tty, true)
	r.progress(1, 4, 1000)
	r.progress(2, 4, 2000)
	r.done(time.Hour, 3, 2000)
	if got := tty.String(); strings.Count(got, "\rhistory  ") != 2 || !strings.Contains(got, "\rhistory imported: 1h0m0s of 3 apps, 2000 lines in ") ||
		!strings.HasSuffix(got, clearEOL+"\n") {
		t.Fatalf("terminal: %q", got)
	}
}

// BenchmarkImportHistory imports six hours of the demo fleet into a real
// store: generation, framing, the fold and the store's transactions.
func BenchmarkImportHistory(b *testing.B) {
	fleet := gen.DemoFleet(3, 1)
	to := time.Now().UTC().Truncate(time.Hour)
	var lines int64
	cpu0 := benchmeter.ProcessCPU()
	for b.Loop() {
		b.StopTimer()
		st := openHistoryStore(b)
		b.StartTimer()
		n, err := importHistory(context.Background(), st, fleet, 1, to.Add(-6*time.Hour), to, 3*24*time.Hour, 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		lines += n
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(lines)/(benchmeter.ProcessCPU()-cpu0).Seconds(), "lines/cpu-s")
}
