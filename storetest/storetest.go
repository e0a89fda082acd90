// Package storetest is the conformance suite of drainpipe's metrics
// stores. The embedded SQLite store and the PostgreSQL store both run it,
// so the two provably give the same answers to the server and the
// aggregator: app registry and credentials, merge and rollup of buckets,
// events, formation, custom metric names, retention, and (for stores that
// implement aggregate.PartitionSink) offset fencing and frame IDs.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/server"
)

// Store is what every metrics store implements.
type Store interface {
	server.Store
	aggregate.Sink
	// DropExpired drops what retention no longer keeps at now.
	DropExpired(ctx context.Context, now time.Time) ([]string, error)
}

// Config tells the suite how to make and poke a store.
type Config struct {
	// Open returns a new, empty store with the given retention (nil: the
	// default). The store is closed by the caller's cleanup.
	Open func(t *testing.T, retention map[drainpipe.Tier]time.Duration) Store
	// Corrupt overwrites the stored bytes of one Tier1m row with garbage
	// that does not decode. Nil skips the quarantine test.
	Corrupt func(t *testing.T, s Store, app, processType string, ts time.Time)
	// Quarantined counts the rows moved to quarantine.
	Quarantined func(t *testing.T, s Store) int
}

// Run runs the whole suite as parallel subtests of t, each on a store
// of its own.
func Run(t *testing.T, cfg Config) {
	tests := []struct {
		name string
		fn   func(*testing.T, Config)
	}{
		{"Apps", testApps},
		{"ApplyMergesAndRollsUp", testApplyMergesAndRollsUp},
		{"BucketsFilters", testBucketsFilters},
		{"ConcurrentApplyAddsUp", testConcurrentApplyAddsUp},
		{"Events", testEvents},
		{"LastEvents", testLastEvents},
		{"FormationAndCustomMetrics", testFormationAndCustomMetrics},
		{"Quarantine", testQuarantine},
		{"Retention", testRetention},
		{"PartitionFencing", testPartitionFencing},
		{"SeenFrames", testSeenFrames},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // every subtest has a store of its own
			tc.fn(t, cfg)
		})
	}
}

// Now is the suite's reference time: the start of the current hour, so
// that rows are recent (the formation window looks back from the real
// clock) and tier-aligned.
func Now() time.Time { return time.Now().UTC().Truncate(time.Hour) }

// Delta is a 1-minute row with requests of the given latency (ms) and
// status.
func Delta(app, ptype string, at time.Time, requests int, latency float64, status int) metrics.Row {
	b := new(metrics.Bucket)
	for range requests {
		b.AddStatus(status)
		b.AddService(latency)
	}
	return metrics.Row{App: app, ProcessType: ptype, Time: at, Bucket: b}
}

// RandomFlushes returns n flushes of rows spread over the hour before
// now: several apps, process types, dynos, statuses, H and R codes,
// custom metrics and events, with late rows for minutes already flushed.
// The same seed gives the same flushes.
func RandomFlushes(seed uint64, n int, now time.Time) []*metrics.Flush {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	apps := []string{"alpha", "beta", "gamma"}
	ptypes := []string{"web", "worker", ""}
	kinds := []drainpipe.EventKind{drainpipe.EventDeploy, drainpipe.EventRestart, drainpipe.EventCrash, drainpipe.EventScale, drainpipe.EventError}
	var out []*metrics.Flush
	for i := range n {
		f := &metrics.Flush{Position: int64(i + 1)}
		for range 1 + r.IntN(12) {
			app, pt := apps[r.IntN(len(apps))], ptypes[r.IntN(len(ptypes))]
			at := now.Add(-time.Duration(r.IntN(60)) * time.Minute).Add(time.Duration(r.IntN(60)) * time.Second)
			b := new(metrics.Bucket)
			if pt == "" {
				b.AddLogLoss([]byte("L10"), int64(1+r.IntN(5)))
			} else {
				for range r.IntN(30) {
					b.AddStatus([]int{200, 200, 200, 302, 404, 500, 503}[r.IntN(7)])
					b.AddService(float64(1 + r.IntN(2000)))
					b.AddConnect(float64(r.IntN(5)))
				}
				if r.IntN(4) == 0 {
					b.AddHCode([]byte(fmt.Sprintf("H%d", 10+r.IntN(5))))
				}
				if r.IntN(4) == 0 {
					b.AddRCode([]byte("R14"))
				}
				dyno := fmt.Sprintf("%s.%d", pt, 1+r.IntN(11))
				g := b.Dyno([]byte(dyno))
				g.Add(logline.GaugeMemRSS, float64(r.IntN(512)<<20), at.UnixNano())
				g.Add(logline.GaugeLoad1m, float64(r.IntN(400))/100, at.UnixNano())
				if r.IntN(3) == 0 {
					b.AddCustom("jobs", logline.CustomCount, float64(r.IntN(9)), 0)
				}
				if r.IntN(3) == 0 {
					b.AddCustom("queue.depth", logline.CustomMeasure, float64(r.IntN(100)), 0)
				}
			}
			f.Rows = append(f.Rows, metrics.Row{App: app, ProcessType: pt, Time: at.Truncate(time.Minute), Bucket: b})
		}
		for range r.IntN(3) {
			app := apps[r.IntN(len(apps))]
			f.Events = append(f.Events, drainpipe.Event{
				// Nanosecond times: a store must keep them exactly.
				Time: now.Add(-time.Duration(r.Int64N(int64(time.Hour)))),
				App:  app, ProcessType: "web", Dyno: fmt.Sprintf("web.%d", 1+r.IntN(3)),
				Kind: kinds[r.IntN(len(kinds))], Code: "R14", Detail: fmt.Sprintf("event %d", i),
			})
		}
		out = append(out, f)
	}
	return out
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func apply(t *testing.T, s aggregate.Sink, flushes ...*metrics.Flush) {
	t.Helper()
	for _, f := range flushes {
		if err := s.Apply(ctx(t), f); err != nil {
			t.Fatalf("apply flush %d: %v", f.Position, err)
		}
	}
}

func buckets(t *testing.T, s Store, app, ptype string, tier drainpipe.Tier, start, end time.Time) []metrics.Row {
	t.Helper()
	rows, err := s.Buckets(ctx(t), app, ptype, tier, start, end)
	if err != nil {
		t.Fatalf("buckets %s/%s %v: %v", app, ptype, tier, err)
	}
	return rows
}

func testApps(t *testing.T, cfg Config) {
	s := cfg.Open(t, nil)
	c := ctx(t)
	if apps, err := s.ListApps(c); err != nil || len(apps) != 0 {
		t.Fatalf("empty store lists %v, %v", apps, err)
	}
	beta, credB, err := s.CreateApp(c, "beta")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateApp(c, "alpha"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateApp(c, "beta"); !errors.Is(err, drainpipe.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	if credB.DrainUser == "" || credB.DrainSecret == "" || credB.APIToken == "" {
		t.Fatalf("empty credentials %+v", credB)
	}
	apps, err := s.ListApps(c)
	if err != nil || len(apps) != 2 || apps[0].Name != "alpha" || apps[1].Name != "beta" {
		t.Fatalf("ListApps = %v, %v", apps, err)
	}
	got, err := s.App(c, "beta")
	if err != nil || !got.CreatedAt.Equal(beta.CreatedAt) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("App(beta) = %+v, %v; created %v", got, err, beta.CreatedAt)
	}
	if _, err := s.App(c, "nope"); !errors.Is(err, drainpipe.ErrNotFound) {
		t.Fatalf("App(nope): %v", err)
	}
	if err := s.VerifyDrain(c, "beta", credB.DrainUser, credB.DrainSecret); err != nil {
		t.Fatalf("right pair refused: %v", err)
	}
	if err := s.VerifyDrain(c, "beta", credB.DrainUser, credB.DrainSecret+"x"); !errors.Is(err, drainpipe.ErrUnauthorized) {
		t.Fatalf("wrong secret: %v", err)
	}
	if err := s.VerifyDrain(c, "beta", "u"+credB.DrainUser, credB.DrainSecret); !errors.Is(err, drainpipe.ErrUnauthorized) {
		t.Fatalf("wrong user: %v", err)
	}
	if err := s.VerifyDrain(c, "alpha", credB.DrainUser, credB.DrainSecret); !errors.Is(err, drainpipe.ErrUnauthorized) {
		t.Fatalf("another app's pair: %v", err)
	}
	if err := s.VerifyDrain(c, "nope", credB.DrainUser, credB.DrainSecret); !errors.Is(err, drainpipe.ErrNotFound) {
		t.Fatalf("unknown app: %v", err)
	}
	if app, err := s.AppForToken(c, credB.APIToken); err != nil || app != "beta" {
		t.Fatalf("AppForToken = %q, %v", app, err)
	}
	if _, err := s.AppForToken(c, credB.APIToken+"x"); !errors.Is(err, drainpipe.ErrNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
}

func testApplyMergesAndRollsUp(t *testing.T, cfg Config) {
	s := cfg.Open(t, nil)
	c := ctx(t)
	t0 := Now().Add(-time.Hour)
	f1 := &metrics.Flush{Position: 5, Rows: []metrics.Row{
		Delta("a", "web", t0, 10, 100, 200),
		Delta("a", "web", t0.Add(time.Minute), 5, 200, 503),
		Delta("a", "web", t0.Add(11*time.Minute), 2, 50, 200),
	}}
	apply(t, s, f1)
	// Late data for the first minute, after it was flushed.
	apply(t, s, &metrics.Flush{Position: 9, Rows: []metrics.Row{Delta("a", "web", t0.Add(30*time.Second), 3, 300, 500)}})
	if pos, err := s.Position(c); err != nil || pos != 9 {
		t.Fatalf("position = %d, %v; want 9", pos, err)
	}
	rows := buckets(t, s, "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Hour))
	if len(rows) != 3 {
		t.Fatalf("%d 1m rows, want 3", len(rows))
	}
	if !rows[0].Time.Equal(t0) || rows[0].Time.Location() != time.UTC || !rows[1].Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("row times %v, %v", rows[0].Time, rows[1].Time)
	}
	if rows[0].Bucket.Requests != 13 || rows[1].Bucket.Requests != 5 || rows[2].Bucket.Requests != 2 {
		t.Fatalf("1m requests = %d, %d, %d; want 13, 5, 2", rows[0].Bucket.Requests, rows[1].Bucket.Requests, rows[2].Bucket.Requests)
	}
	if rows[0].Bucket.Service().Max != 300 || rows[0].Bucket.Status().Get(500) != 3 || rows[0].Bucket.Status().Get(200) != 10 {
		t.Fatalf("late data not merged: max %v, status %v", rows[0].Bucket.Service().Max, rows[0].Bucket.Status())
	}
	// The rollups hold the merge of the minutes they cover: the sketch of
	// the 10-minute row answers as one built from every request.
	want := new(metrics.Bucket)
	for _, r := range []metrics.Row{Delta("a", "web", t0, 10, 100, 200), Delta("a", "web", t0, 5, 200, 503), Delta("a", "web", t0, 3, 300, 500)} {
		want.Merge(r.Bucket)
	}
	r10 := buckets(t, s, "a", "", drainpipe.Tier10m, t0, t0.Add(time.Hour))
	if len(r10) != 2 || r10[0].Bucket.Requests != 18 || r10[1].Bucket.Requests != 2 || !r10[1].Time.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("10m rows %v", describe(r10))
	}
	for _, q := range []float64{0.5, 0.95, 0.99} {
		got, _ := r10[0].Bucket.Service().Quantile(q)
		exp, _ := want.Service().Quantile(q)
		if got != exp {
			t.Errorf("10m p%v = %v, want %v", q*100, got, exp)
		}
	}
	r1h := buckets(t, s, "a", "web", drainpipe.Tier1h, t0, t0.Add(time.Hour))
	if len(r1h) != 1 || r1h[0].Bucket.Requests != 20 || r1h[0].Bucket.Count5xx() != 8 {
		t.Fatalf("1h rows %v", describe(r1h))
	}
	counts, err := s.RequestCounts(c, drainpipe.Tier1m, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(counts, func(a, b metrics.RequestCount) int { return a.Time.Compare(b.Time) })
	if len(counts) != 3 || counts[0].Requests != 13 || counts[0].Errors5xx != 3 || counts[1].Errors5xx != 5 || !counts[1].Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("request counts %+v", counts)
	}
	// Replaying the same flush adds again: a store merges, the journal
	// position is what prevents replays.
	apply(t, s, f1)
	if rows := buckets(t, s, "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Minute)); len(rows) != 1 || rows[0].Bucket.Requests != 23 {
		t.Fatalf("after a second apply: %v", describe(rows))
	}
}

func describe(rows []metrics.Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s/%s@%s:%d", r.App, r.ProcessType, r.Time.Format(time.TimeOnly), r.Bucket.Requests))
	}
	return out
}

func testBucketsFilters(t *testing.T, cfg Config) {
	s := cfg.Open(t, nil)
	c := ctx(t)
	t0 := Now().Add(-2 * time.Hour)
	apply(t, s, &metrics.Flush{Position: 1, Rows: []metrics.Row{
		Delta("a", "web", t0, 1, 10, 200),
		Delta("a", "worker", t0, 2, 10, 200),
		Delta("b", "web", t0, 4, 10, 500),
		Delta("a", "web", t0.Add(time.Hour), 8, 10, 200), // outside [t0, t0+1h)
	}})
	end := t0.Add(time.Hour)
	if got := describe(buckets(t, s, "a", "", drainpipe.Tier1m, t0, end)); !slices.Equal(got, []string{"a/web@" + t0.Format(time.TimeOnly) + ":1", "a/worker@" + t0.Format(time.TimeOnly) + ":2"}) {
		t.Errorf("app a: %v", got)
	}
	if got := buckets(t, s, "a", "worker", drainpipe.Tier1m, t0, end); len(got) != 1 || got[0].Bucket.Requests != 2 {
		t.Errorf("a/worker: %v", describe(got))
	}
	all := buckets(t, s, "", "", drainpipe.Tier10m, t0, end)
	if len(all) != 3 {
		t.Errorf("every app: %v", describe(all))
	}
	if got := buckets(t, s, "", "", drainpipe.Tier1h, t0, t0.Add(2*time.Hour)); len(got) != 4 || !got[3].Time.Equal(end) {
		t.Errorf("every app, 2 h: %v", describe(got))
	}
	if got := buckets(t, s, "c", "", drainpipe.Tier1m, t0, end); len(got) != 0 {
		t.Errorf("unknown app: %v", describe(got))
	}
	counts, err := s.RequestCounts(c, drainpipe.Tier10m, t0, end)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(counts, func(x, y metrics.RequestCount) int { return compareStrings(x.App, y.App) })
	if len(counts) != 2 || counts[0].App != "a" || counts[0].Requests != 3 || counts[1].Errors5xx != 4 {
		t.Errorf("request counts per app: %+v", counts)
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testConcurrentApplyAddsUp(t *testing.T, cfg Config) {
	s := cfg.Open(t, nil)
	t0 := Now().Add(-time.Hour)
	const writers, flushes = 4, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range flushes {
				// Every writer touches the same rows, new ones included.
				f := &metrics.Flush{Position: int64(w*flushes + i), Rows: []metrics.Row{
					Delta("a", "web", t0, 1, 10, 200),
					Delta("a", "web", t0.Add(time.Duration(i)*time.Minute), 1, 10, 200),
				}}
				if err := s.Apply(context.Background(), f); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rows := buckets(t, s, "a", "web", drainpipe.Tier1h, t0, t0.Add(time.Hour))
	if len(rows) != 1 || rows[0].Bucket.Requests != 2*writers*flushes {
		t.Fatalf("1h after concurrent applies: %v, want %d requests", describe(rows), 2*writers*flushes)
	}
	if rows := buckets(t, s, "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Minute)); len(rows) != 1 || rows[0].Bucket.Requests != writers*(flushes+1) {
		t.Fatalf("first minute: %v, want %d", describe(rows), writers*(flushes+1))
	}
}

func testEvents(t *testing.T, cfg Config) {
	s := cfg.Open(t, nil)
	c := ctx(t)
	t0 := Now().Add(-time.Hour)
	ev := func(d time.Duration, dyno string, kind drainpipe.EventKind, detail string) drainpipe.Event {
		return drainpipe.Event{Time: t0.Add(d), App: "a", ProcessType: "web", Dyno: dyno, Kind: kind, Detail: detail}
	}
	apply(t, s, &metrics.Flush{Position: 1, Events: []drainpipe.Event{
		ev(3*time.Minute+123456789, "web.2", drainpipe.EventCrash, "crashed"),
		ev(time.Minute, "web.1", drainpipe.EventRestart, "restart"),
		ev(2*time.Minute, "", drainpipe.EventDeploy, "deploy v2"),
		ev(2*time.Hour, "web.1", drainpipe.EventStart, "later"),
		{Time: t0.Add(time.Minute), App: "b", Kind: drainpipe.EventScale, Detail: "other app"},
	}})
	got, err := s.Events(c, "a", t0, t0.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, e := range got {
		details = append(details, e.Detail)
	}
	if !slices.Equal(details, []string{"restart", "deploy v2", "crashed"}) {
		t.Fatalf("events oldest first: %v", details)
	}
	if e := got[2]; !e.Time.Equal(t0.Add(3*time.Minute+123456789)) || e.Time.Location() != time.UTC || e.Kind != drainpipe.EventCrash || e.Dyno != "web.2" || e.ProcessType != "web" || e.App != "a" {
		t.Fatalf("event read back as %+v", e)
	}
	got, err = s.Events(c, "a", t0, t0.Add(time.Hour), "web.1")
	if err != nil {
		t.Fatal(err)
	}
	details = details[:0]
	for _, e := range got {
		details = append(details, e.Detail)
	}
	if !slices.Equal(details, []string{"restart", "deploy v2"}) {
		t.Fatalf("web.1 and app-wide events: %v", details)
	}
}

func testLastEvents(t *testing.T, cfg Config) {
	s := cfg.Open(t, nil)
	c := ctx(t)
	t0 := Now().Add(-time.Hour)
	apply(t, s, &metrics.Flush{Position: 1, Events: []drainpipe.Event{
		{Time: t0, App: "a", Kind: drainpipe.EventDeploy, Detail: "old deploy"},
		{Time: t0.Add(time.Minute), App: "a", Kind: drainpipe.EventRestart, Detail: "restart"},
		{Time: t0.Add(2 * time.Minute), App: "a", Kind: drainpipe.EventScale, Detail: "not a last event"},
		{Time: t0.Add(time.Minute), App: "b", Kind: drainpipe.EventCrash, Detail: "crash"},
		{Time: t0, App: "c", Kind: drainpipe.EventStart, Detail: "none"},
	}})
	last, err := s.LastEvents(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 2 || last["a"].Detail != "restart" || last["b"].Detail != "crash" || !last["b"].Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("last events %+v", last)
	}
}

func testFormationAndCustomMetrics(t *testing.T, cfg Config) {
	s := cfg.Open(t, nil)
	c := ctx(t)
	t0 := Now().Add(-time.Hour)
	row := func(ptype string, dynos ...string) metrics.Row {
		r := Delta("a", ptype, t0, 1, 10, 200)
		for _, d := range dynos {
			r.Bucket.Dyno([]byte(d)).Add(logline.GaugeMemRSS, 1, 1)
		}
		return r
	}
	custom := Delta("a", "worker", t0, 0, 0, 0)
	custom.Bucket.AddCustom("jobs", logline.CustomCount, 3, 0)
	custom.Bucket.AddCustom("jobs", logline.CustomMeasure, 4, 0)
	custom.Bucket.AddCustom("depth", logline.CustomSample, 1, 1)
	loss := metrics.Row{App: "a", Time: t0, Bucket: new(metrics.Bucket)}
	loss.Bucket.AddLogLoss([]byte("L10"), 3)
	old := row("clock", "clock.1")
	old.Time = time.Now().Add(-8 * 24 * time.Hour).Truncate(time.Minute)
	apply(t, s, &metrics.Flush{Position: 1, Rows: []metrics.Row{
		row("web", "web.10", "web.2"), row("web", "web.1"), row("worker"), custom, loss, old,
		{App: "b", ProcessType: "web", Time: t0, Bucket: new(metrics.Bucket)},
	}})
	form, err := s.Formation(c, "a")
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(form)
	if want := "[{web [web.1 web.2 web.10]} {worker []}]"; got != want {
		t.Fatalf("formation %s, want %s (app-wide rows and dynos unseen for over a week are not listed)", got, want)
	}
	cm, err := s.CustomMetrics(c, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(cm), "[{depth sample} {jobs count} {jobs measure}]"; got != want {
		t.Fatalf("custom metrics %s, want %s", got, want)
	}
	if cm, err := s.CustomMetrics(c, "b"); err != nil || cm == nil || len(cm) != 0 {
		t.Fatalf("custom metrics of an app without any: %#v, %v (want an empty, non-nil list)", cm, err)
	}
}

func testQuarantine(t *testing.T, cfg Config) {
	if cfg.Corrupt == nil {
		t.Skip("the store gives no way to corrupt a row")
	}
	s := cfg.Open(t, nil)
	t0 := Now().Add(-time.Hour)
	apply(t, s, &metrics.Flush{Position: 1, Rows: []metrics.Row{Delta("a", "web", t0, 5, 10, 200), Delta("a", "web", t0.Add(time.Minute), 1, 10, 200)}})
	cfg.Corrupt(t, s, "a", "web", t0)
	// A corrupt row is left out of answers, never read as data.
	if rows := buckets(t, s, "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Hour)); len(rows) != 1 || !rows[0].Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("with a corrupt row: %v", describe(rows))
	}
	// The next flush touching it moves it aside and starts it afresh;
	// the other rows of the flush are written.
	apply(t, s, &metrics.Flush{Position: 2, Rows: []metrics.Row{Delta("a", "web", t0, 2, 10, 200), Delta("b", "web", t0, 7, 10, 200)}})
	if n := cfg.Quarantined(t, s); n != 1 {
		t.Fatalf("%d rows in quarantine, want 1", n)
	}
	if rows := buckets(t, s, "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Minute)); len(rows) != 1 || rows[0].Bucket.Requests != 2 {
		t.Fatalf("row after quarantine: %v", describe(rows))
	}
	if rows := buckets(t, s, "b", "", drainpipe.Tier1m, t0, t0.Add(time.Minute)); len(rows) != 1 || rows[0].Bucket.Requests != 7 {
		t.Fatalf("other row of the flush: %v", describe(rows))
	}
}

func testRetention(t *testing.T, cfg Config) {
	s := cfg.Open(t, map[drainpipe.Tier]time.Duration{
		drainpipe.Tier1m:  2 * 24 * time.Hour,
		drainpipe.Tier10m: 10 * 24 * time.Hour,
		drainpipe.Tier1h:  40 * 24 * time.Hour,
	})
	c := ctx(t)
	now := Now()
	old := now.Add(-5 * 24 * time.Hour)
	ancient := now.Add(-100 * 24 * time.Hour)
	apply(t, s, &metrics.Flush{Position: 1,
		Rows: []metrics.Row{Delta("a", "web", ancient, 1, 10, 200), Delta("a", "web", old, 1, 10, 200), Delta("a", "web", now.Add(-time.Hour), 1, 10, 200)},
		Events: []drainpipe.Event{
			{Time: ancient, App: "a", Kind: drainpipe.EventDeploy, Detail: "ancient"},
			{Time: old, App: "a", Kind: drainpipe.EventDeploy, Detail: "old"},
		},
	})
	dropped, err := s.DropExpired(c, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) == 0 {
		t.Fatal("nothing dropped")
	}
	if got := describe(buckets(t, s, "a", "", drainpipe.Tier1m, ancient, now)); len(got) != 1 {
		t.Errorf("1m rows after retention: %v, want only the last hour's", got)
	}
	if got := describe(buckets(t, s, "a", "", drainpipe.Tier10m, ancient, now)); len(got) != 2 {
		t.Errorf("10m rows after retention: %v, want 5 days old and recent", got)
	}
	if got := describe(buckets(t, s, "a", "", drainpipe.Tier1h, ancient, now)); len(got) != 2 {
		t.Errorf("1h rows after retention: %v", got)
	}
	evs, err := s.Events(c, "a", ancient.Add(-time.Hour), now, "")
	if err != nil || len(evs) != 1 || evs[0].Detail != "old" {
		t.Errorf("events after retention: %+v, %v (want those within the longest retention)", evs, err)
	}
	// A second run finds nothing more to do, and writing after a drop
	// works (partitions come back on demand).
	if again, err := s.DropExpired(c, now); err != nil || len(again) != 0 {
		t.Errorf("second DropExpired: %v, %v", again, err)
	}
	apply(t, s, &metrics.Flush{Position: 2, Rows: []metrics.Row{Delta("a", "web", ancient, 1, 10, 200)}})
	if got := buckets(t, s, "a", "", drainpipe.Tier1m, ancient, ancient.Add(time.Minute)); len(got) != 1 {
		t.Errorf("late write into a dropped range: %v", describe(got))
	}
}

func partitionSink(t *testing.T, s Store) aggregate.PartitionSink {
	ps, ok := s.(aggregate.PartitionSink)
	if !ok {
		t.Skip("the store is not an aggregate.PartitionSink")
	}
	return ps
}

func testPartitionFencing(t *testing.T, cfg Config) {
	s := cfg.Open(t, nil)
	ps := partitionSink(t, s)
	c := ctx(t)
	t0 := Now().Add(-time.Hour)
	if off, err := ps.PartitionOffset(c, "g", "logs", 3); err != nil || off != -1 {
		t.Fatalf("fresh offset = %d, %v; want -1", off, err)
	}
	flush := func(from, to int64, requests int, frames ...string) *aggregate.PartitionFlush {
		p := &aggregate.PartitionFlush{Group: "g", Topic: "logs", Partition: 3, From: from, To: to,
			Flush: &metrics.Flush{Rows: []metrics.Row{Delta("a", "web", t0, requests, 10, 200)},
				Events: []drainpipe.Event{{Time: t0, App: "a", Kind: drainpipe.EventDeploy, Detail: fmt.Sprint(from)}}}}
		for _, f := range frames {
			p.Frames = append(p.Frames, aggregate.FrameKey{App: "a", FrameID: f})
		}
		return p
	}
	// A partition with no stored offset accepts any From.
	if err := ps.ApplyPartition(c, flush(100, 110, 1, "f1")); err != nil {
		t.Fatal(err)
	}
	if err := ps.ApplyPartition(c, flush(110, 125, 2, "f2")); err != nil {
		t.Fatal(err)
	}
	if off, err := ps.PartitionOffset(c, "g", "logs", 3); err != nil || off != 125 {
		t.Fatalf("offset = %d, %v; want 125", off, err)
	}
	// A flush from an aggregator that lost the partition is refused whole.
	for _, from := range []int64{110, 100, 130} {
		err := ps.ApplyPartition(c, flush(from, from+5, 50, fmt.Sprint("stale", from)))
		if !errors.Is(err, aggregate.ErrFenced) {
			t.Fatalf("flush from %d: %v, want ErrFenced", from, err)
		}
	}
	if rows := buckets(t, s, "a", "", drainpipe.Tier1m, t0, t0.Add(time.Minute)); len(rows) != 1 || rows[0].Bucket.Requests != 3 {
		t.Fatalf("a fenced flush changed the buckets: %v", describe(rows))
	}
	if rows := buckets(t, s, "a", "", drainpipe.Tier1h, t0, t0.Add(time.Hour)); len(rows) != 1 || rows[0].Bucket.Requests != 3 {
		t.Fatalf("a fenced flush changed the rollups: %v", describe(rows))
	}
	if evs, _ := s.Events(c, "a", t0, t0.Add(time.Minute), ""); len(evs) != 2 {
		t.Fatalf("a fenced flush added events: %d", len(evs))
	}
	seen, err := ps.SeenFrames(c, []aggregate.FrameKey{{App: "a", FrameID: "stale110"}, {App: "a", FrameID: "f2"}})
	if err != nil || seen[aggregate.FrameKey{App: "a", FrameID: "stale110"}] || !seen[aggregate.FrameKey{App: "a", FrameID: "f2"}] {
		t.Fatalf("frames after a fenced flush: %v, %v", seen, err)
	}
	if off, _ := ps.PartitionOffset(c, "g", "logs", 3); off != 125 {
		t.Fatalf("a fenced flush moved the offset to %d", off)
	}
	// Offsets are kept per group, topic and partition.
	for _, k := range []struct {
		g, topic string
		p        int32
	}{{"other", "logs", 3}, {"g", "other", 3}, {"g", "logs", 4}} {
		if off, err := ps.PartitionOffset(c, k.g, k.topic, k.p); err != nil || off != -1 {
			t.Errorf("offset of %v = %d, %v; want -1", k, off, err)
		}
	}
	// Concurrent flushes from the same offset: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ps.ApplyPartition(context.Background(), flush(125, 130, 10))
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, aggregate.ErrFenced):
			t.Errorf("concurrent flush: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent flushes from one offset won, want 1", won)
	}
	if rows := buckets(t, s, "a", "", drainpipe.Tier1m, t0, t0.Add(time.Minute)); len(rows) != 1 || rows[0].Bucket.Requests != 13 {
		t.Fatalf("after the concurrent flushes: %v, want 13 requests", describe(rows))
	}
}

func testSeenFrames(t *testing.T, cfg Config) {
	s := cfg.Open(t, nil)
	ps := partitionSink(t, s)
	c := ctx(t)
	keys := []aggregate.FrameKey{{App: "a", FrameID: "1"}, {App: "a", FrameID: "2"}, {App: "b", FrameID: "1"}}
	if seen, err := ps.SeenFrames(c, keys); err != nil || len(seen) != 0 {
		t.Fatalf("fresh store has seen %v, %v", seen, err)
	}
	if seen, err := ps.SeenFrames(c, nil); err != nil || len(seen) != 0 {
		t.Fatalf("no keys: %v, %v", seen, err)
	}
	err := ps.ApplyPartition(c, &aggregate.PartitionFlush{Group: "g", Topic: "t", From: 0, To: 2,
		Flush: &metrics.Flush{}, Frames: keys[:2]})
	if err != nil {
		t.Fatal(err)
	}
	seen, err := ps.SeenFrames(c, keys)
	if err != nil {
		t.Fatal(err)
	}
	if !seen[keys[0]] || !seen[keys[1]] || seen[keys[2]] {
		t.Fatalf("seen = %v; want a/1 and a/2, not b/1 (frame IDs are per app)", seen)
	}
	// Frame IDs are forgotten after a day.
	if _, err := s.DropExpired(c, time.Now().Add(25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if seen, err := ps.SeenFrames(c, keys); err != nil || len(seen) != 0 {
		t.Fatalf("frames a day later: %v, %v", seen, err)
	}
}
