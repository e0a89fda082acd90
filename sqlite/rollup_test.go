package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"
)

// requestsIn sums the requests that Buckets and RequestCounts return for
// app ("" = all) in tier over [from, to), and checks that they agree.
func requestsIn(t *testing.T, s *Store, app string, tier drainpipe.Tier, from, to time.Time) int64 {
	t.Helper()
	rows, err := s.Buckets(context.Background(), app, "", tier, from, to)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	seen := map[groupKey]bool{}
	for _, r := range rows {
		k := groupKey{r.App, r.ProcessType, r.Time.Unix()}
		if seen[k] {
			t.Fatalf("%s: row %v returned twice", tier, k)
		}
		seen[k] = true
		if r.Time.Unix()%int64(tier.Duration()/time.Second) != 0 {
			t.Fatalf("%s: row at %s is not aligned", tier, r.Time)
		}
		n += r.Bucket.Requests
	}
	counts, err := s.RequestCounts(context.Background(), tier, from, to)
	if err != nil {
		t.Fatal(err)
	}
	var c int64
	for _, rc := range counts {
		if app == "" || rc.App == app {
			c += rc.Requests
		}
	}
	if c != n {
		t.Fatalf("%s: RequestCounts says %d requests, Buckets %d", tier, c, n)
	}
	return n
}

// storedRequests sums the requests column of tier's tables, as written.
func storedRequests(t *testing.T, s *Store, tier drainpipe.Tier) int64 {
	t.Helper()
	var n int64
	for _, table := range s.partitionsIn(tier, time.Unix(0, 0), time.Unix(1<<40, 0)) {
		var v int64
		if err := s.db.QueryRow(`SELECT coalesce(sum(requests), 0) FROM ` + table).Scan(&v); err != nil {
			t.Fatal(err)
		}
		n += v
	}
	return n
}

// clockedStore opens a store whose rollup clock is *now (set to the
// present), and returns the current minute.
func clockedStore(t *testing.T) (*Store, *time.Time, time.Time) {
	t.Helper()
	s := openStore(t)
	now := time.Now().UTC()
	s.now = func() time.Time { return now }
	return s, &now, now.Truncate(time.Minute)
}

// TestRollupDefersCoarseTiers: deltas of the current minute go only to the
// 1-minute tier, yet every tier answers with them at once; once the
// minute is rollupLag old a flush rolls it up, once, and late data after
// that goes straight to every tier.
func TestRollupDefersCoarseTiers(t *testing.T) {
	ctx := context.Background()
	s, now, m := clockedStore(t)
	from, to := m.Add(-2*time.Hour), m.Add(2*time.Hour)
	pos := int64(0)
	apply := func(rows ...metrics.Row) {
		t.Helper()
		pos++
		if err := s.Apply(ctx, &metrics.Flush{Position: pos, Rows: rows}); err != nil {
			t.Fatal(err)
		}
	}
	apply(delta("a", "web", m, 10, 50), delta("a", "worker", m, 3, 50), delta("b", "web", m, 7, 50))
	apply(delta("a", "web", m, 5, 60))
	if got := storedRequests(t, s, drainpipe.Tier10m) + storedRequests(t, s, drainpipe.Tier1h); got != 0 {
		t.Fatalf("the open minute was written to the coarser tiers (%d requests)", got)
	}
	for _, tier := range drainpipe.Tiers {
		if got := requestsIn(t, s, "", tier, from, to); got != 25 {
			t.Fatalf("%s before the rollup: %d requests, want 25", tier, got)
		}
		var latency, maxMS int64
		if err := s.EachLatency(ctx, "a", "web", tier, from, to, func(_ time.Time, v *metrics.LatencyView) {
			latency += v.Service.Count
			maxMS = max(maxMS, int64(v.Service.Max))
		}); err != nil {
			t.Fatal(err)
		}
		if latency != 15 || maxMS != 60 {
			t.Fatalf("%s before the rollup: latency views count %d samples up to %d ms, want 15 up to 60", tier, latency, maxMS)
		}
		if got := requestsIn(t, s, "a", tier, from, to); got != 18 {
			t.Fatalf("%s before the rollup, app a: %d requests, want 18", tier, got)
		}
	}

	// The minute closes and ages past rollupLag: the next flush (even an
	// empty one) rolls it up.
	*now = now.Add(rollupLag + time.Minute)
	apply()
	if got := storedRequests(t, s, drainpipe.Tier1h); got != 25 {
		t.Fatalf("after the rollup the hourly tier holds %d requests, want 25", got)
	}
	cur, err := readCursor(ctx, s.db)
	if err != nil {
		t.Fatal(err)
	}
	if !cur.rolled(m.Unix(), "b") {
		t.Fatalf("cursor %+v is not past minute %d", cur, m.Unix())
	}
	// Late data for the rolled-up minute goes to every tier at once.
	apply(delta("b", "web", m, 4, 70))
	for _, tier := range drainpipe.Tiers {
		if got := requestsIn(t, s, "", tier, from, to); got != 29 {
			t.Fatalf("%s after late data: %d requests, want 29", tier, got)
		}
	}
	if got := storedRequests(t, s, drainpipe.Tier10m); got != 29 {
		t.Fatalf("the 10-minute tier holds %d requests, want 29", got)
	}
}

// TestRollupInShares: a flush rolls up only a share of the closed
// minutes, whole apps at a time; every answer stays exact while the
// rollup is part-way, and the minutes are all rolled up in the end.
func TestRollupInShares(t *testing.T) {
	ctx := context.Background()
	s, now, m := clockedStore(t)
	from, to := m.Add(-2*time.Hour), m.Add(2*time.Hour)
	apps := 3*rollupAppsPerFlush(0) + 5
	var rows []metrics.Row
	var want int64
	for i := range apps {
		for j, minute := range []time.Time{m, m.Add(time.Minute), m.Add(2 * time.Minute)} {
			rows = append(rows, delta(fmt.Sprintf("app%04d", i), "web", minute, 1+i%3+j, 10))
			want += int64(1 + i%3 + j)
		}
		rows = append(rows, delta(fmt.Sprintf("app%04d", i), "worker", m, 2, 10))
		want += 2
	}
	pos := int64(1)
	if err := s.Apply(ctx, &metrics.Flush{Position: pos, Rows: rows}); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(rollupLag + 3*time.Minute)
	for flushes := 1; ; flushes++ {
		pos++
		if err := s.Apply(ctx, &metrics.Flush{Position: pos}); err != nil {
			t.Fatal(err)
		}
		for _, tier := range drainpipe.Tiers {
			if got := requestsIn(t, s, "", tier, from, to); got != want {
				t.Fatalf("%s after %d rollup flushes: %d requests, want %d", tier, flushes, got, want)
			}
		}
		if got := requestsIn(t, s, "app0007", drainpipe.Tier10m, from, to); got != 2+3+4+2 {
			t.Fatalf("app0007 at 10m: %d requests", got)
		}
		if got := storedRequests(t, s, drainpipe.Tier1h); got == want {
			// Three minutes of every app: at least 9 shares.
			if flushes < 9 {
				t.Fatalf("rolled up in %d flushes; each should take only a share", flushes)
			}
			break
		}
		if flushes > 30 {
			t.Fatalf("not rolled up after %d flushes: %d of %d requests", flushes, storedRequests(t, s, drainpipe.Tier1h), want)
		}
	}
}

// TestRollupCursorOfAnOlderStore: a store written before the cursor
// existed has every minute in every tier; the cursor it gets starts past
// all of them, so nothing is rolled up twice.
func TestRollupCursorOfAnOlderStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := OpenStore(ctx, path, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	m := time.Now().UTC().Truncate(time.Minute)
	// As the old flushes did: every tier written at once (the cursor
	// ahead of the rows makes Apply write them all).
	if _, err := s.db.Exec(`UPDATE rollup SET ts = ?`, m.Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, &metrics.Flush{Position: 1, Rows: []metrics.Row{delta("a", "web", m.Add(3*time.Minute), 6, 10)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`DELETE FROM rollup`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenStore(ctx, path, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.now = func() time.Time { return m.Add(time.Hour) }
	if err := s.Apply(ctx, &metrics.Flush{Position: 2}); err != nil {
		t.Fatal(err)
	}
	for _, tier := range drainpipe.Tiers {
		if got := requestsIn(t, s, "a", tier, m.Add(-time.Hour), m.Add(time.Hour)); got != 6 {
			t.Fatalf("%s: %d requests, want 6", tier, got)
		}
	}
}

// TestDropExpiredRollsUpFirst: minutes not rolled up yet (no flush since)
// reach the coarser tiers before retention may drop their 1-minute
// partition.
func TestDropExpiredRollsUpFirst(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	m := time.Now().UTC().Truncate(time.Minute)
	if err := s.Apply(ctx, &metrics.Flush{Position: 1, Rows: []metrics.Row{delta("a", "web", m, 9, 10)}}); err != nil {
		t.Fatal(err)
	}
	later := m.Add(4 * 24 * time.Hour)
	if _, err := s.DropExpired(ctx, later); err != nil {
		t.Fatal(err)
	}
	if got := storedRequests(t, s, drainpipe.Tier1h); got != 9 {
		t.Fatalf("hourly tier holds %d requests after DropExpired, want 9", got)
	}
	if got := storedRequests(t, s, drainpipe.Tier1m); got != 0 {
		t.Fatalf("the 1-minute partition was kept (%d requests)", got)
	}
}

// TestNamesWrittenWhenTheyChange: a dyno's last_seen and a custom metric
// name are written by the first flush that carries them; namesSeen skips
// them in the next flushes until last_seen has moved by lastSeenStep; a
// failed flush remembers nothing.
func TestNamesWrittenWhenTheyChange(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	m := time.Now().UTC().Truncate(time.Minute)
	row := func(at time.Time) metrics.Row {
		r := delta("a", "web", at, 1, 10)
		r.Bucket.Dyno([]byte("web.1")).Add(0, 1, at.UnixNano())
		r.Bucket.AddCustom("jobs", logline.CustomCount, 1, 0)
		return r
	}
	lastSeen := func() int64 {
		t.Helper()
		var v int64
		if err := s.db.QueryRow(`SELECT last_seen FROM dynos WHERE app = 'a' AND ptype = 'web' AND dyno = 'web.1'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := s.Apply(ctx, &metrics.Flush{Position: 1, Rows: []metrics.Row{row(m)}}); err != nil {
		t.Fatal(err)
	}
	// Rows written behind namesSeen's back are not written again within
	// the minute: proof that the second flush skipped them.
	if _, err := s.db.Exec(`UPDATE dynos SET last_seen = 7`); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, &metrics.Flush{Position: 2, Rows: []metrics.Row{row(m), row(m.Add(9 * time.Minute))}}); err != nil {
		t.Fatal(err)
	}
	if got := lastSeen(); got != 7 {
		t.Fatalf("last_seen rewritten by a flush less than lastSeenStep later (%d)", got)
	}
	later := m.Add(lastSeenStep * time.Second)
	if err := s.Apply(ctx, &metrics.Flush{Position: 3, Rows: []metrics.Row{row(later)}}); err != nil {
		t.Fatal(err)
	}
	if got := lastSeen(); got != later.Unix() {
		t.Fatalf("last_seen = %d, want %d", got, later.Unix())
	}
	names, err := s.CustomMetrics(ctx, "a")
	if err != nil || len(names) != 1 || names[0].Name != "jobs" {
		t.Fatalf("custom metrics = %+v, %v", names, err)
	}
	// A flush that fails remembers none of its names.
	ctxDone, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Apply(ctxDone, &metrics.Flush{Position: 4, Rows: []metrics.Row{row(later.Add(time.Hour))}}); err == nil {
		t.Fatal("a flush with a cancelled context succeeded")
	}
	s.names.mu.Lock()
	remembered := s.names.dynos[dynoKey{"a", "web", "web.1"}]
	s.names.mu.Unlock()
	if remembered != later.Unix() {
		t.Fatalf("namesSeen holds %d after a failed flush, want %d", remembered, later.Unix())
	}
}

// TestRollupSeesPartitionsNotYetRemembered: a writer (the demo's history
// import) commits a new 1-minute partition, and before it records the
// partition in the store's cache, another flush rolls up. The rollup must
// not move its cursor past the new partition's minutes, or they would
// never reach the coarser tiers.
func TestRollupSeesPartitionsNotYetRemembered(t *testing.T) {
	ctx := context.Background()
	s, now, m := clockedStore(t)
	// A day not stored yet: the import creates its 1-minute partition.
	day := time.Unix(partitionStart(drainpipe.Tier1m, m.Unix())+24*60*60, 0).UTC()
	at := day.Add(5 * time.Minute)
	later := day.Add(30 * time.Minute)
	raced := false
	s.afterCommit = func() {
		if raced {
			return
		}
		raced = true
		// Between the import's commit and its s.remember: a flush whose
		// rollup runs with the clock past the imported minute.
		*now = later
		if err := s.Apply(ctx, &metrics.Flush{Position: 1}); err != nil {
			t.Error(err)
		}
	}
	if err := s.Import(ctx, &metrics.Flush{Rows: []metrics.Row{delta("a", "web", at, 7, 10)}}, later); err != nil {
		t.Fatal(err)
	}
	if !raced {
		t.Fatal("the hook did not run")
	}
	if err := s.RollUp(ctx, later); err != nil {
		t.Fatal(err)
	}
	if got := storedRequests(t, s, drainpipe.Tier1h); got != 7 {
		t.Fatalf("hourly tier holds %d requests, want 7", got)
	}
	for _, tier := range drainpipe.Tiers {
		if got := requestsIn(t, s, "a", tier, day, day.Add(time.Hour)); got != 7 {
			t.Fatalf("%s: %d requests, want 7", tier, got)
		}
	}
}

// TestCoarseQueryDuringPartitionCreation: a flush creates a partition
// (a new day's 1-minute one) while a query of a coarser tier runs on an
// older snapshot. The query must answer from its snapshot, not fail on
// a table the store's partition list names and the snapshot lacks.
func TestCoarseQueryDuringPartitionCreation(t *testing.T) {
	ctx := context.Background()
	s, _, m := clockedStore(t)
	day := time.Unix(partitionStart(drainpipe.Tier1m, m.Unix())+24*60*60, 0).UTC()
	if err := s.Apply(ctx, &metrics.Flush{Position: 1, Rows: []metrics.Row{delta("a", "web", m, 3, 10)}}); err != nil {
		t.Fatal(err)
	}
	pos, committed := int64(1), int64(3)
	s.afterSnapshot = func() {
		// The next day's flushes (the first creates its partition),
		// between the query's snapshot and its reads.
		pos++
		if err := s.Apply(ctx, &metrics.Flush{Position: pos, Rows: []metrics.Row{delta("a", "web", day.Add(time.Duration(pos)*time.Minute), 5, 10)}}); err != nil {
			t.Error(err)
		}
	}
	from, to := m.Add(-time.Hour), day.Add(2*time.Hour)
	for _, tier := range []drainpipe.Tier{drainpipe.Tier10m, drainpipe.Tier1h} {
		// Each answer holds what was committed before its snapshot.
		rows, err := s.Buckets(ctx, "a", "", tier, from, to)
		if err != nil {
			t.Fatalf("%s: Buckets: %v", tier, err)
		}
		var n int64
		for _, r := range rows {
			n += r.Bucket.Requests
		}
		if n != committed {
			t.Fatalf("%s: Buckets answers %d requests, want %d", tier, n, committed)
		}
		committed += 5
		counts, err := s.RequestCounts(ctx, tier, from, to)
		if err != nil {
			t.Fatalf("%s: RequestCounts: %v", tier, err)
		}
		n = 0
		for _, c := range counts {
			n += c.Requests
		}
		if n != committed {
			t.Fatalf("%s: RequestCounts answers %d requests, want %d", tier, n, committed)
		}
		committed += 5
	}
}
