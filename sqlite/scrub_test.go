package sqlite

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// TestScrubReportsDamagedPartition breaks the b-tree of an old 1-minute
// partition, with the store closed. The open without CheckAtOpen does not
// read that partition and starts; Scrub then reports the partition with a
// *CorruptError naming the file and an offset, goes on with the other
// partitions, and the newest day still answers.
func TestScrubReportsDamagedPartition(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "metrics.db")
	s, err := OpenStore(ctx, path, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	recent := old.Add(48 * time.Hour)
	if err := s.Apply(ctx, &metrics.Flush{Position: 1, Rows: []metrics.Row{
		delta("a", "web", old, 5, 1), delta("a", "web", recent, 7, 1)}}); err != nil {
		t.Fatal(err)
	}
	oldTable := s.partitionsIn(drainpipe.Tier1m, old, old.Add(time.Minute))[0]
	var root int64
	if err := s.db.QueryRow(`SELECT rootpage FROM sqlite_schema WHERE name = ?`, oldTable).Scan(&root); err != nil {
		t.Fatal(err)
	}
	all := len(s.allPartitions())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scribblePage(t, path, root)

	s, err = OpenStoreWith(ctx, path, StoreOptions{}, quiet)
	if err != nil {
		t.Fatalf("open without CheckAtOpen refused a store whose old partition is damaged: %v", err)
	}
	defer s.Close()
	r, err := s.Scrub(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Damaged) != 1 || r.Partitions != all-1 {
		t.Fatalf("scrub report %+v, want the one damaged partition of %d and every other one checked", r, all)
	}
	var ce *CorruptError
	if !errors.As(r.Damaged[0], &ce) || ce.File != path || ce.Offset < 0 || !strings.Contains(r.Damaged[0].Error(), oldTable) {
		t.Fatalf("damage not named with the file, an offset and the table: %v", r.Damaged[0])
	}
	counts, err := s.RequestCounts(ctx, drainpipe.Tier1m, recent, recent.Add(time.Minute))
	if err != nil || len(counts) != 1 || counts[0].Requests != 7 {
		t.Fatalf("the newest day after the scrub: %+v %v", counts, err)
	}
}

// scribblePage overwrites the b-tree page header of page pgno (counted
// from 1) in the closed database file at path.
func scribblePage(t *testing.T, path string, pgno int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var size [2]byte
	if _, err := f.ReadAt(size[:], 16); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xA5, 0xA5, 0xA5, 0xA5, 0xA5, 0xA5, 0xA5, 0xA5}, (pgno-1)*int64(binary.BigEndian.Uint16(size[:]))); err != nil {
		t.Fatal(err)
	}
}

// TestScrubLeavesRewrittenRowsAlone: a fix applies only to the bytes the
// scrub read. A row rewritten between the read and the fix (by a flush)
// is neither quarantined nor has its counts changed.
func TestScrubLeavesRewrittenRowsAlone(t *testing.T) {
	ctx := context.Background()
	s, err := OpenStore(ctx, filepath.Join(t.TempDir(), "metrics.db"), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	if err := s.Apply(ctx, &metrics.Flush{Position: 1, Rows: []metrics.Row{delta("a", "web", t0, 5, 1)}}); err != nil {
		t.Fatal(err)
	}
	table := s.partitionsIn(drainpipe.Tier1m, t0, t0.Add(time.Minute))[0]
	read, err := s.scrubRead(ctx, table, scrubbed{ts: -1 << 63})
	if err != nil || len(read) != 1 {
		t.Fatalf("read %d buckets: %v", len(read), err)
	}
	// A flush merges more into the bucket after the scrub read it.
	if err := s.Apply(ctx, &metrics.Flush{Position: 2, Rows: []metrics.Row{delta("a", "web", t0, 3, 1)}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.quarantine(ctx, table, &read[0], errors.New("test")); err != nil || ok {
		t.Fatalf("quarantined a rewritten row: %v %v", ok, err)
	}
	if ok, err := s.repairCounts(ctx, table, &read[0], 1, 1); err != nil || ok {
		t.Fatalf("repaired a rewritten row: %v %v", ok, err)
	}
	counts, err := s.RequestCounts(ctx, drainpipe.Tier1m, t0, t0.Add(time.Minute))
	if err != nil || len(counts) != 1 || counts[0].Requests != 8 {
		t.Fatalf("counts after the stale fixes: %+v %v, want 8 requests", counts, err)
	}
	// With the bytes it holds now, the same fix applies.
	now, err := s.scrubRead(ctx, table, scrubbed{ts: -1 << 63})
	if err != nil || len(now) != 1 {
		t.Fatalf("read %d buckets: %v", len(now), err)
	}
	if ok, err := s.repairCounts(ctx, table, &now[0], 8, 0); err != nil || !ok {
		t.Fatalf("a fix of the current bytes did not apply: %v %v", ok, err)
	}
}
