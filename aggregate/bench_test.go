package aggregate

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/go-logfmt/logfmt"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/drain"
	"github.com/drainpipe/drainpipe/gen"
	"github.com/drainpipe/drainpipe/internal/benchmeter"
)

// demoBodies returns one minute of the demo's storefront traffic at k
// times its usual rate, as logplex-1 bodies of up to 500 frames, the way
// Logplex batches them, and the number of lines. routerOnly keeps only
// router lines.
func demoBodies(tb testing.TB, k float64, routerOnly bool) ([][]byte, int) {
	tb.Helper()
	app := gen.ScaleRPS(gen.DemoFleet(3, 1), k)[0]
	from := benchMinute
	g := gen.NewGenerator(app, 1, from.Add(-time.Hour), from.Add(time.Hour))
	var bodies [][]byte
	b := drain.NewBatcher(500, 1<<20, func(body []byte, n int) error {
		bodies = append(bodies, bytes.Clone(body))
		return nil
	})
	lines := 0
	g.Generate(from, from.Add(time.Minute), func(l *gen.Line) {
		if routerOnly && l.ProcID != "router" {
			return
		}
		lines++
		if err := b.AddBytes(l.Time, l.AppName, l.ProcID, l.Msg); err != nil {
			tb.Fatal(err)
		}
	})
	if err := b.Flush(); err != nil {
		tb.Fatal(err)
	}
	if lines == 0 {
		tb.Fatal("the generator made no lines")
	}
	return bodies, lines
}

// benchMinute is the minute of demo traffic the benchmarks fold: an
// ordinary one, without the daily restart's burst of events at 10:00.
var benchMinute = t0.Add(37 * time.Minute)

func bodyRecords(bodies [][]byte) ([]drainpipe.Record, int64) {
	recs := make([]drainpipe.Record, len(bodies))
	var size int64
	for i, body := range bodies {
		recs[i] = drainpipe.Record{Seq: int64(i + 1), Batch: drainpipe.Batch{App: "storefront", ReceivedAt: benchMinute.Add(time.Minute), Body: body}}
		size += int64(len(body))
	}
	return recs, size
}

// BenchmarkFoldRouter is the fold target: router lines from frame
// bytes in memory (framing, syslog header, classification, parsing and
// the fold into per-minute buckets), one core.
func BenchmarkFoldRouter(b *testing.B) {
	benchFoldBodies(b, true)
}

// BenchmarkFoldDemoMix folds the demo's whole line mix (router, runtime
// samples, app output, custom metrics, lifecycle).
func BenchmarkFoldDemoMix(b *testing.B) {
	benchFoldBodies(b, false)
}

func benchFoldBodies(b *testing.B, routerOnly bool) {
	bodies, lines := demoBodies(b, 20, routerOnly)
	recs, size := bodyRecords(bodies)
	s := NewState(3*24*time.Hour, 5*time.Minute)
	for i := range recs {
		s.Fold(&recs[i]) // the buckets exist once the minute has begun
	}
	b.SetBytes(size)
	m := benchmeter.Start(b)
	for b.Loop() {
		for i := range recs {
			s.Fold(&recs[i])
		}
	}
	m.Lines(lines)
}

// BenchmarkMinute compares drainpipe with a naive implementation on the
// same minute of demo traffic, in one run: fold every body, then answer
// p50/p95/p99 of service time for every (app, process type, minute).
// Compare the two with `benchstat -col /impl`.
func BenchmarkMinute(b *testing.B) {
	bodies, lines := demoBodies(b, 20, false)
	recs, size := bodyRecords(bodies)
	b.Run("impl=drainpipe", func(b *testing.B) {
		b.SetBytes(size)
		var sum float64
		m := benchmeter.Start(b)
		for b.Loop() {
			s := NewState(3*24*time.Hour, 5*time.Minute)
			for i := range recs {
				s.Fold(&recs[i])
			}
			f := s.Take(1)
			for _, r := range f.Rows {
				for _, q := range []float64{0.5, 0.95, 0.99} {
					v, _ := r.Bucket.Service().Quantile(q)
					sum += v
				}
			}
		}
		m.Lines(lines)
		if sum == 0 {
			b.Fatal("no quantiles")
		}
	})
	b.Run("impl=naive", func(b *testing.B) {
		b.SetBytes(size)
		var sum float64
		m := benchmeter.Start(b)
		for b.Loop() {
			n := newNaive()
			for i := range recs {
				if err := n.fold(&recs[i]); err != nil {
					b.Fatal(err)
				}
			}
			for _, q := range n.quantiles(0.5, 0.95, 0.99) {
				sum += q
			}
		}
		m.Lines(lines)
		if sum == 0 {
			b.Fatal("no quantiles")
		}
	})
}

// naive is the baseline the issue asks for, kept in benchmarks only: the
// way a log pipeline is usually first written. A regular expression for
// the syslog header, go-logfmt for the message, and a map of float slices
// per series with sort-based percentiles.
type naive struct {
	service map[string][]float64 // app|ptype|minute → service times
	status  map[string]int64     // app|ptype|minute|status → count
	memory  map[string][]float64 // app|ptype|minute → memory_total samples
}

var naiveHeader = regexp.MustCompile(`(?s)^<\d+>1 (\S+) \S+ (\S+) (\S+) \S+ (.*)$`)

func newNaive() *naive {
	return &naive{service: map[string][]float64{}, status: map[string]int64{}, memory: map[string][]float64{}}
}

func (n *naive) fold(rec *drainpipe.Record) error {
	body := rec.Body
	for len(body) > 0 {
		sp := bytes.IndexByte(body, ' ')
		if sp < 0 {
			return errors.New("naive: no frame length")
		}
		size, err := strconv.Atoi(string(body[:sp]))
		if err != nil || sp+1+size > len(body) {
			return errors.New("naive: bad frame length")
		}
		msg := string(body[sp+1 : sp+1+size])
		body = body[sp+1+size:]
		m := naiveHeader.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		minute := ts.Truncate(time.Minute).Format(time.RFC3339)
		appName, procID, text := m[2], m[3], m[4]
		fields := map[string]string{}
		d := logfmt.NewDecoder(bytes.NewReader([]byte(text)))
		for d.ScanRecord() {
			for d.ScanKeyval() {
				fields[string(d.Key())] = string(d.Value())
			}
		}
		switch {
		case appName == "heroku" && procID == "router":
			ptype := fields["dyno"]
			if i := bytes.IndexByte([]byte(ptype), '.'); i >= 0 {
				ptype = ptype[:i]
			}
			key := rec.App + "|" + ptype + "|" + minute
			n.status[key+"|"+fields["status"]]++
			if v, err := strconv.ParseFloat(trimUnit(fields["service"], "ms"), 64); err == nil {
				n.service[key] = append(n.service[key], v)
			}
		case fields["sample#memory_total"] != "":
			ptype := procID
			if i := bytes.IndexByte([]byte(ptype), '.'); i >= 0 {
				ptype = ptype[:i]
			}
			if v, err := strconv.ParseFloat(trimUnit(fields["sample#memory_total"], "MB"), 64); err == nil {
				key := rec.App + "|" + ptype + "|" + minute
				n.memory[key] = append(n.memory[key], v)
			}
		}
	}
	return nil
}

func trimUnit(s, unit string) string {
	if len(s) > len(unit) && s[len(s)-len(unit):] == unit {
		return s[:len(s)-len(unit)]
	}
	return s
}

// quantiles returns, for every series, the nearest-rank quantiles qs of
// its sorted values, one after another.
func (n *naive) quantiles(qs ...float64) []float64 {
	var out []float64
	for _, vs := range n.service {
		sort.Float64s(vs)
		for _, q := range qs {
			out = append(out, vs[int(q*float64(len(vs)-1))])
		}
	}
	return out
}

// TestNaiveAgreesWithFold keeps the baseline honest: it must count the
// same requests as the real fold, or the comparison would mean nothing.
func TestNaiveAgreesWithFold(t *testing.T) {
	bodies, _ := demoBodies(t, 1, false)
	recs, _ := bodyRecords(bodies)
	s := NewState(3*24*time.Hour, 5*time.Minute)
	n := newNaive()
	for i := range recs {
		s.Fold(&recs[i])
		if err := n.fold(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	var real, naive int64
	for _, r := range s.Take(1).Rows {
		real += r.Bucket.Requests
	}
	for _, c := range n.status {
		naive += c
	}
	if real == 0 || real != naive {
		t.Fatalf("fold counted %d requests, naive %d", real, naive)
	}
}

// TestFoldRouterNoAllocs keeps the fold target's second half: once a
// minute's buckets exist, folding the demo's router traffic allocates
// nothing.
func TestFoldRouterNoAllocs(t *testing.T) {
	bodies, _ := demoBodies(t, 5, true)
	recs, _ := bodyRecords(bodies)
	s := NewState(3*24*time.Hour, 5*time.Minute)
	for i := range recs {
		s.Fold(&recs[i])
	}
	if a := testing.AllocsPerRun(20, func() {
		for i := range recs {
			s.Fold(&recs[i])
		}
	}); a != 0 {
		t.Fatalf("%v allocations per fold of %d bodies", a, len(recs))
	}
}

// BenchmarkStateMemory measures the heap the fold keeps per active
// series-minute: a bucket (one app's process type over one minute)
// holding a whole minute of lines, the most one holds (at the default
// 1 s flush interval a bucket holds a second's lines; a minute's when the
// store falls behind or a backfill arrives). 1,000 apps each fold the
// same minute, and the live heap growth, less the minute's events, is
// divided by the buckets held. It counts everything the fold keeps for
// those apps: the buckets, their index, and the per-app name limits
// (which outlive flushes). The target is at most 1 KB per (app,
// process type) minute. The minutes:
//
//   - storefront: the demo storefront's ordinary minute (web router lines,
//     runtime samples of 3 web and 2 worker dynos, 7 custom metrics);
//   - web-1dyno, web-2dynos: a web process type with 6,000 requests and
//     one or two dynos' runtime samples, no custom metrics.
func BenchmarkStateMemory(b *testing.B) {
	storefront, _ := demoBodies(b, 1, false)
	minutes := []struct {
		name   string
		bodies [][]byte
	}{
		{"storefront", storefront},
		{"web-1dyno", [][]byte{webMinute(1)}},
		{"web-2dynos", [][]byte{webMinute(2)}},
	}
	const apps = 1000
	names := make([]string, apps)
	for i := range names {
		names[i] = fmt.Sprintf("app%05d", i)
	}
	for _, m := range minutes {
		b.Run("minute="+m.name, func(b *testing.B) {
			recs, _ := bodyRecords(m.bodies)
			var perBucket float64
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				b.StartTimer()
				s := NewState(3*24*time.Hour, 5*time.Minute)
				for _, name := range names {
					for i := range recs {
						r := recs[i]
						r.App = name
						s.Fold(&r)
					}
				}
				b.StopTimer()
				s.events = nil // events are kept per event, not per series-minute
				runtime.GC()
				runtime.ReadMemStats(&after)
				perBucket = float64(after.HeapAlloc-before.HeapAlloc) / float64(s.Size())
				runtime.KeepAlive(s)
				b.StartTimer()
			}
			b.ReportMetric(perBucket, "B/series-minute")
		})
	}
}

// webMinute returns one minute of a web process type with dynos dynos, as
// one body: 6,000 router lines spread over the dynos (service times 20 to
// 920 ms, connect 0 to 2 ms) and every dyno's memory and load samples
// every 20 s.
func webMinute(dynos int) []byte {
	var body []byte
	for i := range 6000 {
		at := benchMinute.Add(time.Duration(i) * 10 * time.Millisecond)
		body = frame(body, at, "heroku", "router", fmt.Sprintf(`at=info method=GET path=/products/%d host=shop.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="204.204.204.204" dyno=web.%d connect=%dms service=%dms status=200 bytes=1234 protocol=https`, i, i%dynos+1, i%3, 20+(i*7919)%900))
	}
	for d := 1; d <= dynos; d++ {
		for s := range 3 {
			at := benchMinute.Add(time.Duration(s)*20*time.Second + time.Duration(d)*time.Millisecond)
			body = frame(body, at, "heroku", fmt.Sprintf("web.%d", d), fmt.Sprintf(`source=web.%d dyno=heroku.2808254.d97d0ea7 sample#memory_total=%d.00MB sample#memory_rss=200.22MB sample#memory_cache=10.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB`, d, 200+d))
			body = frame(body, at, "heroku", fmt.Sprintf("web.%d", d), fmt.Sprintf(`source=web.%d dyno=heroku.2808254.d97d0ea7 sample#load_avg_1m=0.%02d sample#load_avg_5m=0.50 sample#load_avg_15m=0.40`, d, d%100))
		}
	}
	return body
}

// BenchmarkFoldDynos folds one minute of a web process type with dynos
// dynos: 6,000 router lines spread over them and every dyno's memory and
// load samples every 20 s. It shows how the fold and the bucket grow with
// the formation. B/series-minute is the live heap that folding the
// minute adds to an empty State: the app's bucket, and what the State
// keeps for the app and for its names (a State's fixed 2 KB of scratch
// are not counted: B/state is what NewState allocates), averaged over
// 100 States: measured on one, the heap moved by ±100–200 B between
// runs (sync.Pool's victim cache, emptied at the second GC).
func BenchmarkFoldDynos(b *testing.B) {
	for _, dynos := range []int{1, 2, 4, 16, 64, 256} {
		b.Run(fmt.Sprintf("dynos=%d", dynos), func(b *testing.B) {
			body := webMinute(dynos)
			lines := 6000 + 6*dynos
			rec := drainpipe.Record{Seq: 1, Batch: drainpipe.Batch{App: "shop", ReceivedAt: benchMinute.Add(time.Minute), Body: body}}
			states := make([]*State, 100)
			var before, made, after runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&made)
			for i := range states {
				states[i] = NewState(3*24*time.Hour, 5*time.Minute)
			}
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&before)
			perState := float64(int64(before.HeapAlloc)-int64(made.HeapAlloc)) / float64(len(states))
			for _, s := range states {
				s.Fold(&rec)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			s := states[0]
			heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(states)*s.Size())
			runtime.KeepAlive(states)
			b.SetBytes(int64(len(body)))
			m := benchmeter.Start(b)
			for b.Loop() {
				s.Fold(&rec)
			}
			m.Lines(lines)
			b.ReportMetric(heap, "B/series-minute")
			b.ReportMetric(perState, "B/state")
		})
	}
}

// BenchmarkLineCounter is the aggregator's per-line metric (the State's
// line counter, drainpipe_aggregate_lines_total by kind) over a body of
// 500 lines of the demo's mix of kinds, without the fold: a count per
// line, and the counter's update per kind at the end of the body.
func BenchmarkLineCounter(b *testing.B) {
	a := New(Config{}, nil, nil, nil, nil, nil)
	mix := []int{lineRouter, lineRouter, lineOther, lineRouter, lineCustom, lineRouter, lineOther, lineRuntime, lineRouter, lineRouter}
	const body = 500
	m := benchmeter.Start(b)
	for b.Loop() {
		for i := range body {
			a.state.count(mix[i%len(mix)])
		}
		a.state.reportLines()
	}
	m.Lines(body)
}

// backfillBodies returns hours of the demo fleet's traffic (3 apps, at
// their usual rate) as logplex-1 bodies of up to 500 frames, in the order
// `drainpipe loadgen --backfill` sends them: 10-minute chunks, every
// app's chunk before any app's next, one batcher per chunk. It returns
// the records (arriving just after the window, as a backfill's do) and
// the number of lines. The generator's window is 24 hours, as in the
// end-to-end study's backfill; the bodies are its first hours.
func backfillBodies(tb testing.TB, hours int) ([]drainpipe.Record, int) {
	tb.Helper()
	fleet := gen.DemoFleet(3, 1)
	from := t0
	end := from.Add(24 * time.Hour)
	gens := make([]*gen.Generator, len(fleet))
	for i, a := range fleet {
		gens[i] = gen.NewGenerator(a, 1, from, end)
	}
	var recs []drainpipe.Record
	lines := 0
	to := from.Add(time.Duration(hours) * time.Hour)
	for t := from; t.Before(to); t = t.Add(10 * time.Minute) {
		for i, g := range gens {
			b := drain.NewBatcher(500, 1<<20, func(body []byte, n int) error {
				recs = append(recs, drainpipe.Record{Seq: int64(len(recs) + 1), Batch: drainpipe.Batch{
					App: fleet[i].Name, ReceivedAt: to, Body: bytes.Clone(body)}})
				return nil
			})
			lines += g.Generate(t, t.Add(10*time.Minute), func(l *gen.Line) {
				if err := b.AddBytes(l.Time, l.AppName, l.ProcID, l.Msg); err != nil {
					tb.Fatal(err)
				}
			})
			if err := b.Flush(); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return recs, lines
}

// backfillTakeEvery is how many bodies a backfill folds between two
// flushes: an end-to-end backfill of the demo fleet sends ~1,500 bodies
// a second, and the aggregator flushes about once a second.
const backfillTakeEvery = 1500

// BenchmarkFoldBackfill folds the way the aggregator does during a
// backfill: 6 hours of the demo fleet's traffic in the order the loadgen
// sends it, with a Take every backfillTakeEvery bodies (and one at the
// end), into the aggregator's State with its line counter. Unlike
// FoldDemoMix, whose buckets exist, the fold keeps moving to new minutes:
// it makes every (app, process type, minute) bucket, holds a few hundred
// lines in each and hands it off, and every app holds hundreds of
// minutes between two flushes.
func BenchmarkFoldBackfill(b *testing.B) {
	recs, lines := backfillBodies(b, 6)
	var size int64
	for i := range recs {
		size += int64(len(recs[i].Body))
	}
	b.SetBytes(size)
	a := New(Config{}, nil, nil, nil, nil, nil)
	rows := 0
	m := benchmeter.Start(b)
	for b.Loop() {
		a.resetState()
		s := a.state
		for i := range recs {
			s.Fold(&recs[i])
			if (i+1)%backfillTakeEvery == 0 {
				rows += len(s.Take(int64(i + 1)).Rows)
			}
		}
		rows += len(s.Take(int64(len(recs))).Rows)
	}
	m.Lines(lines)
	b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
}
