package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/internal/benchmeter"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/server"
	"github.com/drainpipe/drainpipe/storetest"
)

// minuteBucket is one busy web minute: about 700 requests with
// log-normal service times and a few statuses, and four dynos' memory and
// load samples, as a demo storefront minute holds.
func minuteBucket(rng *rand.Rand) *metrics.Bucket {
	b := new(metrics.Bucket)
	n := 600 + rng.IntN(200)
	for range n {
		b.AddStatus([]int{200, 200, 200, 200, 200, 304, 404, 500}[rng.IntN(8)])
		b.AddService(85 * (1 + rng.NormFloat64()*0.6*rng.Float64()) * 1.0001)
		b.AddConnect(float64(rng.IntN(3)))
	}
	for d := 1; d <= 4; d++ {
		g := b.Dyno([]byte("web." + strconv.Itoa(d)))
		for s := range 3 {
			t := int64(s) * int64(20*time.Second)
			for i := range logline.NumGauges {
				g.Add(i, float64(200<<20+rng.IntN(50<<20))/float64(i+1), t)
			}
		}
	}
	return b
}

// quietBucket is one minute of a small app: a few requests on two dynos.
// Most apps of a fleet look like this.
func quietBucket(rng *rand.Rand) *metrics.Bucket {
	b := new(metrics.Bucket)
	for range 1 + rng.IntN(8) {
		b.AddStatus(200)
		b.AddService(40 * (1 + rng.Float64()))
		b.AddConnect(1)
	}
	for d := 1; d <= 2; d++ {
		g := b.Dyno([]byte("web." + strconv.Itoa(d)))
		for i := range logline.NumGauges {
			g.Add(i, float64(100<<20+rng.IntN(10<<20))/float64(i+1), 0)
		}
	}
	return b
}

// BenchmarkApply is the store flush: one flush of the current minute's
// deltas for apps × 2 process types, merged into the rows already stored
// (as the flushes of a still-open minute are), with the journal position,
// in one transaction. The rows come in random order, as State.Take hands
// them over. Minutes this young reach only the 1-minute tier; the
// coarser tiers get them later, once, through the rollup
// (BenchmarkRollup).
func BenchmarkApply(b *testing.B) {
	for _, apps := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("apps=%d", apps), func(b *testing.B) {
			// A context that can be cancelled, as the aggregator's.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := openStore(b)
			rng := rand.New(rand.NewPCG(1, 2))
			t := time.Now().UTC().Truncate(time.Minute)
			f := &metrics.Flush{}
			var lines int64
			for a := range apps {
				for _, pt := range []string{"web", "worker"} {
					mb := minuteBucket(rng)
					lines += mb.Requests
					f.Rows = append(f.Rows, metrics.Row{App: fmt.Sprintf("app%05d", a), ProcessType: pt, Time: t, Bucket: mb})
				}
			}
			rng.Shuffle(len(f.Rows), func(i, j int) { f.Rows[i], f.Rows[j] = f.Rows[j], f.Rows[i] })
			if err := s.Apply(ctx, f); err != nil {
				b.Fatal(err)
			}
			m := benchmeter.Start(b)
			for b.Loop() {
				f.Position++
				if err := s.Apply(ctx, f); err != nil {
					b.Fatal(err)
				}
			}
			m.Lines(int(lines))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(f.Rows))/1e3, "µs/row")
		})
	}
}

// BenchmarkRollup is the other half of a minute's cost since flushes
// write only the 1-minute tier: rolling one closed minute of apps × 2
// process types into the 10-minute and hourly tiers (into rows that
// exist, as for every minute but the first of an hour). It reports the
// CPU time per 1-minute row rolled up.
func BenchmarkRollup(b *testing.B) {
	for _, apps := range []int{100, 1000} {
		b.Run(fmt.Sprintf("apps=%d", apps), func(b *testing.B) {
			ctx := context.Background()
			s := openStore(b)
			rng := rand.New(rand.NewPCG(1, 2))
			base := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
			var rows []metrics.Row
			for a := range apps {
				for _, pt := range []string{"web", "worker"} {
					rows = append(rows, metrics.Row{App: fmt.Sprintf("app%05d", a), ProcessType: pt, Bucket: minuteBucket(rng)})
				}
			}
			minute := 0
			// One closed minute more in the 1-minute tier, not rolled up.
			next := func() {
				at := base.Add(time.Duration(minute) * time.Minute)
				for i := range rows {
					rows[i].Time = at
				}
				minute++
				if err := s.Import(ctx, &metrics.Flush{Rows: rows}, time.Time{}); err != nil {
					b.Fatal(err)
				}
				s.now = func() time.Time { return at.Add(rollupLag) }
			}
			next()
			if err := s.RollUp(ctx, s.now()); err != nil { // the coarser rows exist
				b.Fatal(err)
			}
			var cpu time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				next()
				b.StartTimer()
				c := benchmeter.ProcessCPU()
				if err := s.RollUp(ctx, s.now()); err != nil {
					b.Fatal(err)
				}
				cpu += benchmeter.ProcessCPU() - c
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*len(rows)), "cpu-µs/row")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows))/1e3, "µs/row")
		})
	}
}

// historyEnd is the end of the benchmark store's history: mid-afternoon,
// so that 24 hours span two daily 1-minute partitions.
var historyEnd = time.Date(2026, 11, 25, 14, 30, 0, 0, time.UTC)

// fillHistory writes apps × {web, worker} rows of tier for every step in
// [from, to) straight into the partition tables, from a few realistic
// encoded buckets. It is how a benchmark gets a store with days of a big
// fleet's history in seconds instead of replaying it.
func fillHistory(tb testing.TB, s *Store, apps int, tier drainpipe.Tier, from, to time.Time, blobs func(app int) []blob) {
	tb.Helper()
	ctx := context.Background()
	step := tier.Duration()
	for day := from; day.Before(to); {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			tb.Fatal(err)
		}
		// A big page cache for the fill only: the rows go in primary-key
		// order, the ts index gets them out of order.
		if _, err := tx.ExecContext(ctx, `PRAGMA cache_size = -1000000`); err != nil {
			tb.Fatal(err)
		}
		created := map[partKey]string{}
		table, err := s.partition(ctx, tx, tier, day, created)
		if err != nil {
			tb.Fatal(err)
		}
		// The partition's end, aligned on the Unix epoch as partition()
		// aligns it (time.Truncate aligns on year 1 instead).
		span := int64(partitionSpan(tier) / time.Second)
		end := time.Unix(day.Unix()-day.Unix()%span+span, 0)
		if end.After(to) {
			end = to
		}
		st, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO `+table+`(app, ptype, ts, requests, err5xx, data) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			tb.Fatal(err)
		}
		i := 0
		for a := range apps {
			name := fmt.Sprintf("app%05d", a)
			for _, pt := range []string{"web", "worker"} {
				for ts := day.Truncate(step); ts.Before(end); ts = ts.Add(step) {
					i++
					bs := blobs(a)
					blob := bs[i%len(bs)]
					if _, err := st.ExecContext(ctx, name, pt, ts.Unix(), blob.requests, blob.err5xx, blob.data); err != nil {
						tb.Fatal(err)
					}
				}
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
		for k, v := range created {
			s.parts[k] = v
		}
		day = end
	}
}

// blob is one encoded bucket with its plain columns.
type blob struct {
	data             []byte
	requests, err5xx int64
}

func newBlob(b *metrics.Bucket) blob {
	return blob{data: b.Encode(nil), requests: b.Requests, err5xx: b.Count5xx()}
}

// historyVersion names the layout of the benchmark stores; change it when
// fillHistory or the store's schema changes, so old ones are not reused.
const historyVersion = "v5" // v5: 8 KB pages

var historyMu sync.Mutex

// historyStore returns a store holding, for apps apps with web and worker
// process types, two days of 1-minute rows and eight days of 10-minute
// and hourly rows up to historyEnd. Building 1,000 apps of history takes
// many minutes on a busy 2-core machine, so the database is built once in
// the temp directory (drainpipe-bench-history-VERSION-APPS) and reused by
// later runs; the benchmarks only read it. Delete the directory to
// rebuild it.
func historyStore(b *testing.B, apps int) *Store {
	return historyStoreDays(b, apps, 8)
}

// historyStoreDays is historyStore with days of history: 1-minute rows
// for the last min(days, 2) days, 10-minute rows for min(days, 35) days
// and hourly rows for all of them, as the default retentions keep.
func historyStoreDays(b *testing.B, apps, days int) *Store {
	b.Helper()
	historyMu.Lock()
	defer historyMu.Unlock()
	name := fmt.Sprintf("drainpipe-bench-history-%s-%d", historyVersion, apps)
	if days != 8 {
		name += fmt.Sprintf("-%dd", days)
	}
	dir := filepath.Join(os.TempDir(), name)
	path := filepath.Join(dir, "m.db")
	done := filepath.Join(dir, "complete")
	if _, err := os.Stat(done); err != nil {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		buildHistory(b, path, apps, days)
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	key := [2]int{apps, days}
	if s := historyOpen[key]; s != nil {
		return s
	}
	// Opening verifies every stored bucket, which takes a while for a big
	// store; the benchmarks share one open store per fleet size for the
	// rest of the test binary's life.
	s, err := OpenStore(context.Background(), path, nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	historyOpen[key] = s
	return s
}

// historyOpen holds the open benchmark stores, by fleet size.
var historyOpen = map[[2]int]*Store{}

func buildHistory(b *testing.B, path string, apps, days int) {
	s, err := OpenStore(context.Background(), path, nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	// The queried app (apps/2) is a busy one; the others are quiet, as
	// most apps of a fleet are.
	busy := rollups(rng, minuteBucket)
	calm := rollups(rng, quietBucket)
	tier := func(t int) func(int) []blob {
		return func(a int) []blob {
			if a == apps/2 {
				return busy[t]
			}
			return calm[t]
		}
	}
	start := time.Now()
	for a := range apps {
		if _, err := s.db.Exec(`INSERT INTO apps(name, created_at, drain_user, secret_hash, token_hash) VALUES (?, 0, ?, '', ?)`,
			fmt.Sprintf("app%05d", a), fmt.Sprint("u", a), fmt.Sprint("t", a)); err != nil {
			b.Fatal(err)
		}
	}
	day := 24 * time.Hour
	fillHistory(b, s, apps, drainpipe.Tier1m, historyEnd.Add(-time.Duration(min(days, 2))*day), historyEnd, tier(0))
	fillHistory(b, s, apps, drainpipe.Tier10m, historyEnd.Add(-time.Duration(min(days, 35))*day), historyEnd, tier(1))
	fillHistory(b, s, apps, drainpipe.Tier1h, historyEnd.Add(-time.Duration(days)*day), historyEnd, tier(2))
	b.Logf("built the history of %d apps in %s (a busy minute bucket is %d bytes encoded, a quiet one %d)",
		apps, time.Since(start).Round(time.Millisecond), len(busy[0][0].data), len(calm[0][0].data))
}

// rollups returns encoded 1-minute, 10-minute and hourly buckets made of
// minutes from minute: 32, 8 and 8 variants.
func rollups(rng *rand.Rand, minute func(*rand.Rand) *metrics.Bucket) [3][]blob {
	var out [3][]blob
	for range 32 {
		out[0] = append(out[0], newBlob(minute(rng)))
	}
	for range 8 {
		var ten, hour metrics.Bucket
		for i := range 60 {
			mb := minute(rng)
			hour.Merge(mb)
			if i < 10 {
				ten.Merge(mb)
			}
		}
		out[1] = append(out[1], newBlob(&ten))
		out[2] = append(out[2], newBlob(&hour))
	}
	return out
}

// BenchmarkQuery answers the dashboard's latency request for one app
// through the HTTP API (auth, store read, decode, merge per step, JSON),
// with no query cache, from a store holding the history of apps apps.
// It reports the 99th percentile of the request times as p99-ms, and
// the process's CPU time per request as cpu-ms/op: on a machine shared
// with other work the wall-clock times include waiting for a core, and
// cpu-ms/op is what a request costs when it gets one.
func BenchmarkQuery(b *testing.B) {
	for _, apps := range []int{1, 10, 100, 1000} {
		for _, q := range queryRanges {
			b.Run(fmt.Sprintf("apps=%d/range=%s", apps, q.name), func(b *testing.B) {
				benchQuery(b, historyStore(b, apps), fmt.Sprintf("app%05d", apps/2), q.span, q.step)
			})
		}
	}
}

// queryRanges are the two query targets.
var queryRanges = []struct {
	name string
	span time.Duration
	step string
}{
	{"24h@1m", 24 * time.Hour, "1m"},
	{"7d@2h", 7 * 24 * time.Hour, "2h"},
}

// benchQuery requests app's web latency for span up to historyEnd at step
// through the HTTP API until the benchmark ends.
func benchQuery(b *testing.B, s *Store, app string, span time.Duration, step string) {
	srv := server.New(server.Config{AdminToken: "bench", Now: func() time.Time { return historyEnd }}, nil, s, nil, nil)
	h := srv.Handler()
	url := fmt.Sprintf("/api/apps/%s/router-metrics/latency?process_type=web&step=%s&start_time=%s&end_time=%s",
		app, step, historyEnd.Add(-span).Format(time.RFC3339), historyEnd.Format(time.RFC3339))
	stepDur := map[string]time.Duration{"1m": time.Minute, "2h": 2 * time.Hour}[step]
	var took []time.Duration
	cpu0 := benchmeter.ProcessCPU()
	m := benchmeter.Start(b)
	for b.Loop() {
		start := time.Now()
		req := httptest.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer bench")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", url, w.Code, w.Body)
		}
		took = append(took, time.Since(start))
	}
	m.Per(int(span/stepDur), "bucket")
	b.ReportMetric(float64(benchmeter.ProcessCPU()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100])/1e6, "p99-ms")
}

// BenchmarkStoreApply measures Apply of storetest.BenchFlush flushes, as
// the PostgreSQL store's BenchmarkApply does.
func BenchmarkStoreApply(b *testing.B) {
	storetest.BenchApply(b, openStore(b).Apply)
}

// BenchmarkStoreBuckets24h measures one app's 24 h at 1m, as the
// PostgreSQL store's BenchmarkBuckets24h does.
func BenchmarkStoreBuckets24h(b *testing.B) {
	s := openStore(b)
	end := time.Now().UTC().Truncate(time.Minute)
	storetest.BenchBuckets(b, s, storetest.FillDay(b, s.Apply, end), end)
}

// BenchmarkQueryDays is BenchmarkQuery over 10 apps with 8, 30 or 90
// days of history in the store: partitioned tiers should keep the cost
// of a query independent of how much history lies outside its window.
func BenchmarkQueryDays(b *testing.B) {
	for _, days := range []int{8, 30, 90} {
		for _, q := range queryRanges {
			b.Run(fmt.Sprintf("days=%d/range=%s", days, q.name), func(b *testing.B) {
				s := historyStoreDays(b, 10, days)
				benchQuery(b, s, "app00005", q.span, q.step)
			})
		}
	}
}

// BenchmarkJournalAppend appends drain batches of 500 router lines (about
// 120 KB, as Logplex sends) from 16 goroutines, as concurrent POSTs do:
// group commit, frame-id dedup, checksums and the fsync of each commit.
func BenchmarkJournalAppend(b *testing.B) {
	ctx := context.Background()
	j := openJournal(b)
	body := journalBenchBody()
	b.SetBytes(int64(len(body)))
	var seq atomic.Int64
	m := benchmeter.Start(b)
	b.SetParallelism(8) // 16 appenders on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := seq.Add(1)
			if _, _, err := j.Append(ctx, drainpipe.Batch{App: "shop", FrameID: strconv.FormatInt(id, 10), ReceivedAt: time.Now(), Body: body}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	m.Lines(500)
}

// BenchmarkApplyEvents is a flush carrying 2,000 events (a fleet's dyno
// errors, restarts and deploys of a few seconds) and nothing else.
func BenchmarkApplyEvents(b *testing.B) {
	ctx := context.Background()
	s := openStore(b)
	t := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f := &metrics.Flush{}
	for i := range 2000 {
		f.Events = append(f.Events, drainpipe.Event{Time: t.Add(time.Duration(i) * time.Millisecond), App: fmt.Sprintf("app%05d", i%1000),
			Kind: drainpipe.EventError, ProcessType: "web", Dyno: "web.1", Code: "R14", Detail: "Error R14 (Memory quota exceeded)"})
	}
	m := benchmeter.Start(b)
	for b.Loop() {
		f.Position++
		if err := s.Apply(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
	m.Lines(len(f.Events))
}
