package sqlite

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// busyHistory applies 200 busy minutes of one app (1.3 KB buckets).
func busyHistory(t *testing.T, s *Store, t0 time.Time) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	f := &metrics.Flush{Position: 1}
	for i := range 200 {
		f.Rows = append(f.Rows, metrics.Row{App: "busy", ProcessType: "web", Time: t0.Add(time.Duration(i) * time.Minute), Bucket: minuteBucket(rng)})
	}
	if err := s.Apply(context.Background(), f); err != nil {
		t.Fatal(err)
	}
}

func pragma(t *testing.T, db *sql.DB, name string) int64 {
	t.Helper()
	var v int64
	if err := db.QueryRow(`PRAGMA ` + name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPageSizeKeepsBusyRowsInline checks a new store's pages hold a busy
// minute's bucket inline (no overflow page per row), that a store made
// with SQLite's default 4 KB pages (every store before 8 KB pages) opens
// with its page size and answers the same, and that the conversion
// docs/RELIABILITY.md gives for such a store works.
func TestPageSizeKeepsBusyRowsInline(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	answers := func(s *Store) []metrics.Row {
		rows, err := s.Buckets(ctx, "busy", "web", drainpipe.Tier1m, t0, t0.Add(200*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 200 {
			t.Fatalf("%d rows, want 200", len(rows))
		}
		return rows
	}

	newPath := filepath.Join(t.TempDir(), "new.db")
	s, err := OpenStore(ctx, newPath, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	busyHistory(t, s, t0)
	want := answers(s)
	if n := pragma(t, s.db, "page_size"); n != storePageSize {
		t.Fatalf("new store: page size %d, want %d", n, storePageSize)
	}
	// 224 rows of about 1.3 KB in the three tiers fit in about 40 pages of
	// 8 KB; with an overflow page per row they would take over 224.
	newPages := pragma(t, s.db, "page_count")
	t.Logf("new store: %d pages", newPages)
	if newPages > 100 {
		t.Fatalf("new store: %d pages for 224 busy rows: rows overflow their pages", newPages)
	}
	s.Close()

	// A store made before: SQLite's default page size.
	oldPath := filepath.Join(t.TempDir(), "old.db")
	if err := createWithPageSize(ctx, oldPath, 4096); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore(ctx, oldPath, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	busyHistory(t, s, t0)
	s.Close()
	s, err = OpenStore(ctx, oldPath, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if n := pragma(t, s.db, "page_size"); n != 4096 {
		t.Fatalf("old store reopened with page size %d, want it kept at 4096", n)
	}
	t.Logf("old store: %d pages", pragma(t, s.db, "page_count"))
	if n := pragma(t, s.db, "page_count"); n < 224 {
		t.Fatalf("old store: %d pages: expected an overflow page per busy row", n)
	}
	if got := answers(s); !reflect.DeepEqual(got, want) {
		t.Fatal("a 4 KB-page store answers differently")
	}
	s.Close()

	// The conversion of docs/RELIABILITY.md, with drainpipe stopped.
	db, err := sql.Open("sqlite", "file:"+oldPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`PRAGMA journal_mode = DELETE`, `PRAGMA page_size = 8192`, `VACUUM`, `PRAGMA journal_mode = WAL`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s, err = OpenStore(ctx, oldPath, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := pragma(t, s.db, "page_size"); n != 8192 {
		t.Fatalf("converted store: page size %d, want 8192", n)
	}
	if n := pragma(t, s.db, "page_count"); n > 100 {
		t.Fatalf("converted store: %d pages: rows still overflow", n)
	}
	if s.Damaged() != 0 {
		t.Fatalf("converted store: %d damaged buckets", s.Damaged())
	}
	if got := answers(s); !reflect.DeepEqual(got, want) {
		t.Fatal("the converted store answers differently")
	}
}
