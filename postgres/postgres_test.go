package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/postgres/pgtest"
	"github.com/drainpipe/drainpipe/server"
	"github.com/drainpipe/drainpipe/storetest"
)

func count(t *testing.T, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestMigrationsApplyOnceOnReopen(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("embedded migrations: %v, %v", ms, err)
	}
	s, err := Open(ctx, url, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateApp(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, url, nil, quiet)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if n := count(t, s, `SELECT count(*) FROM schema_migrations`); n != len(ms) {
		t.Fatalf("%d migrations recorded, want %d", n, len(ms))
	}
	if _, err := s.App(ctx, "kept"); err != nil {
		t.Fatalf("data lost on reopen: %v", err)
	}
	applied, err := migrate(ctx, s.pool)
	if err != nil || len(applied) != 0 {
		t.Fatalf("migrating a migrated database applied %v, %v", applied, err)
	}
}

func TestConcurrentOpenOnAFreshDatabase(t *testing.T) {
	url := pgtest.DB(t)
	const n = 6
	var wg sync.WaitGroup
	stores := make([]*Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(context.Background(), url, nil, quiet)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	ms, _ := loadMigrations()
	if got := count(t, stores[0], `SELECT count(*) FROM schema_migrations`); got != len(ms) {
		t.Fatalf("%d migrations recorded, want %d", got, len(ms))
	}
	// Every process can write at once into partitions they all created.
	t0 := storetest.Now()
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Apply(context.Background(), &metrics.Flush{Rows: []metrics.Row{storetest.Delta("a", "web", t0, 1, 5, 200)}})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rows, err := stores[0].Buckets(context.Background(), "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Minute))
	if err != nil || len(rows) != 1 || rows[0].Bucket.Requests != n {
		t.Fatalf("rows %v, %v; want one with %d requests", rows, err, n)
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := openURL(t, url)
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations(version, name) VALUES (9999, 'from_the_future')`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, url, nil, quiet); err == nil || !strings.Contains(err.Error(), "newer than this binary") {
		t.Fatalf("open with a newer schema: %v", err)
	}
}

func openURL(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPartitionsAreCreatedAheadAndDroppedWhole(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	parts, err := s.partitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	var names []string
	for _, k := range parts {
		names = append(names, k.name())
	}
	for d := range AheadDays + 1 {
		want := "buckets_1m_p" + today.AddDate(0, 0, d).Format("20060102")
		if !slices.Contains(names, want) {
			t.Errorf("partition %s missing; have %v", want, names)
		}
	}
	for _, tier := range []drainpipe.Tier{drainpipe.Tier10m, drainpipe.Tier1h} {
		if want := partitionOf(tableOf(tier), time.Now()).name(); !slices.Contains(names, want) {
			t.Errorf("partition %s missing; have %v", want, names)
		}
	}
	if want := partitionOf(eventsTable, time.Now()).name(); !slices.Contains(names, want) {
		t.Errorf("events partition %s missing; have %v", want, names)
	}
	// Each is a native partition with its own primary key.
	if n := count(t, s, `SELECT count(*) FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%UNIQUE%'`, "buckets_1m_p"+today.Format("20060102")); n != 1 {
		t.Errorf("today's partition has %d unique indexes, want its primary key", n)
	}
	// A late row 20 days back gets its partition on demand; retention
	// drops it whole, and says so.
	late := today.AddDate(0, 0, -20).Add(13 * time.Hour)
	if err := s.Apply(ctx, &metrics.Flush{Rows: []metrics.Row{storetest.Delta("a", "web", late, 1, 5, 200)}}); err != nil {
		t.Fatal(err)
	}
	name := "buckets_1m_p" + late.Format("20060102")
	if n := count(t, s, `SELECT count(*) FROM pg_class WHERE relname = $1`, name); n != 1 {
		t.Fatalf("partition %s not created on demand", name)
	}
	dropped, err := s.Maintain(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dropped, name) {
		t.Fatalf("dropped %v, want %s among them", dropped, name)
	}
	if n := count(t, s, `SELECT count(*) FROM pg_class WHERE relname = $1`, name); n != 0 {
		t.Fatalf("partition %s still exists", name)
	}
}

func TestWriteAfterAnotherProcessDroppedThePartition(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	a, b := openURL(t, url), openURL(t, url)
	at := time.Now().UTC().AddDate(0, 0, -10)
	row := storetest.Delta("a", "web", at, 1, 5, 200)
	if err := a.Apply(ctx, &metrics.Flush{Rows: []metrics.Row{row}}); err != nil {
		t.Fatal(err)
	}
	// b drops the day; a still believes the partition exists.
	if dropped, err := b.DropExpired(ctx, time.Now()); err != nil || len(dropped) == 0 {
		t.Fatalf("drop: %v, %v", dropped, err)
	}
	if err := a.Apply(ctx, &metrics.Flush{Rows: []metrics.Row{row}}); err != nil {
		t.Fatalf("write into a partition another process dropped: %v", err)
	}
}

func TestUnavailableWhileTheServerIsDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := pgtest.StartCluster(t)
	s, err := Open(ctx, c.URL, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, cr, err := s.CreateApp(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	t0 := storetest.Now()
	flush := func(from int64) *aggregate.PartitionFlush {
		return &aggregate.PartitionFlush{Group: "g", Topic: "t", From: from, To: from + 1,
			Flush: &metrics.Flush{Rows: []metrics.Row{storetest.Delta("a", "web", t0, 1, 5, 200)}}}
	}
	if err := s.ApplyPartition(ctx, flush(0)); err != nil {
		t.Fatal(err)
	}

	c.Stop()
	calls := map[string]func() error{
		"Buckets": func() error {
			_, err := s.Buckets(ctx, "a", "", drainpipe.Tier1m, t0, t0.Add(time.Hour))
			return err
		},
		"RequestCounts": func() error {
			_, err := s.RequestCounts(ctx, drainpipe.Tier10m, t0, t0.Add(time.Hour))
			return err
		},
		"App":            func() error { _, err := s.App(ctx, "a"); return err },
		"ListApps":       func() error { _, err := s.ListApps(ctx); return err },
		"AppForToken":    func() error { _, err := s.AppForToken(ctx, cr.APIToken); return err },
		"CreateApp":      func() error { _, _, err := s.CreateApp(ctx, "b"); return err },
		"Events":         func() error { _, err := s.Events(ctx, "a", t0, t0.Add(time.Hour), ""); return err },
		"LastEvents":     func() error { _, err := s.LastEvents(ctx); return err },
		"Formation":      func() error { _, err := s.Formation(ctx, "a"); return err },
		"CustomMetrics":  func() error { _, err := s.CustomMetrics(ctx, "a"); return err },
		"ApplyPartition": func() error { return s.ApplyPartition(ctx, flush(1)) },
		"Apply":          func() error { return s.Apply(ctx, &metrics.Flush{Rows: flush(1).Flush.Rows}) },
		"PartitionOffset": func() error {
			_, err := s.PartitionOffset(ctx, "g", "t", 0)
			return err
		},
		"SeenFrames": func() error {
			_, err := s.SeenFrames(ctx, []aggregate.FrameKey{{App: "a", FrameID: "x"}})
			return err
		},
		"Position":    func() error { _, err := s.Position(ctx); return err },
		"Maintain":    func() error { _, err := s.Maintain(ctx, time.Now()); return err },
		"DropExpired": func() error { _, err := s.DropExpired(ctx, time.Now()); return err },
		"Ping":        func() error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, drainpipe.ErrUnavailable) {
			t.Errorf("%s while the server is down: %v, want ErrUnavailable", name, err)
		}
	}
	if _, err := Open(ctx, c.URL, nil, quiet); !errors.Is(err, drainpipe.ErrUnavailable) {
		t.Errorf("Open while the server is down: %v, want ErrUnavailable", err)
	}
	// The API answers 503 with a clear message, not 500.
	srv := server.New(server.Config{AdminToken: "admin"}, nil, s, quiet, prometheus.NewRegistry())
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	for _, path := range []string{"/api/apps", "/api/apps/a/router-metrics/latency"} {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(body), "unavailable") {
			t.Errorf("GET %s while PostgreSQL is down: %d %s", path, resp.StatusCode, body)
		}
	}

	c.Start()
	// The pool reconnects: calls work again without reopening the store.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.ApplyPartition(ctx, flush(1))
		if err == nil {
			break
		}
		if !errors.Is(err, drainpipe.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rows, err := s.Buckets(ctx, "a", "", drainpipe.Tier1m, t0, t0.Add(time.Hour))
	if err != nil || len(rows) != 1 || rows[0].Bucket.Requests != 2 {
		t.Fatalf("after restart: %v, %v; want the two flushes", rows, err)
	}
	if off, err := s.PartitionOffset(ctx, "g", "t", 0); err != nil || off != 2 {
		t.Fatalf("offset after restart %d, %v", off, err)
	}
}

func TestUnavailableClassification(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true},
		{&pgconn.PgError{Code: "57P03"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "25006"}, true},
		{&pgconn.PgError{Code: "23505"}, false}, // unique violation: a bug, not an outage
		{&pgconn.PgError{Code: "42P01"}, false},
		{fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF), true},
		{pgconn.ErrConnClosed, true},
		{context.Canceled, false},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{errors.New("something else"), false},
	} {
		if got := unavailable(tc.err); got != tc.want {
			t.Errorf("unavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
		err := fail(tc.err, "op")
		if errors.Is(err, drainpipe.ErrUnavailable) != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("fail(%v) = %v", tc.err, err)
		}
	}
	// Wrapping twice adds the context once and keeps the classification.
	twice := fail(fail(io.ErrUnexpectedEOF, "inner"), "outer")
	if got, want := twice.Error(), "postgres: outer: inner: store unavailable: unexpected EOF"; got != want || !errors.Is(twice, drainpipe.ErrUnavailable) || !errors.Is(twice, io.ErrUnexpectedEOF) {
		t.Errorf("fail twice = %q, want %q, still ErrUnavailable", got, want)
	}
	if fail(nil, "op") != nil {
		t.Error("fail(nil) is not nil")
	}
}

// TestInsertRaceMergesIntoTheOtherWritersRow makes a flush find its rows
// missing, then lose the insert to a transaction that inserted them
// meanwhile: the flush must merge into that row, not skip or overwrite it.
func TestInsertRaceMergesIntoTheOtherWritersRow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, nil)
	t0 := storetest.Now()
	first := &metrics.Flush{Rows: []metrics.Row{storetest.Delta("a", "web", t0, 3, 5, 200)}}
	second := &metrics.Flush{Rows: []metrics.Row{storetest.Delta("a", "web", t0, 4, 5, 500)}}
	tds := rollup(first)
	if err := s.ensure(ctx, neededPartitions(tds, nil)); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := s.applyFlush(ctx, tx, first, tds, nil); err != nil { // inserted, not committed
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Apply(ctx, second) }()
	// Wait until the second flush waits on our uncommitted insert.
	for {
		var waiting int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the second flush did not wait for the first: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, tier := range drainpipe.Tiers {
		rows, err := s.Buckets(ctx, "a", "web", tier, t0, t0.Add(time.Hour))
		if err != nil || len(rows) != 1 || rows[0].Bucket.Requests != 7 || rows[0].Bucket.Count5xx() != 4 {
			t.Fatalf("%v after the race: %+v, %v; want both flushes merged (7 requests, 4 5xx)", tier, rows, err)
		}
	}
}
