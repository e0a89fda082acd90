package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/internal/batchcodec"
	"github.com/drainpipe/drainpipe/metrics"
)

// logBuffer is a slog destination tests can read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// writeJournal creates a journal at path holding one record per body and
// closes it (which checkpoints the WAL into the file).
func writeJournal(t *testing.T, path string, bodies ...string) {
	t.Helper()
	ctx := context.Background()
	j, err := OpenJournal(ctx, path, quiet)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bodies {
		if _, _, err := j.Append(ctx, drainpipe.Batch{App: "a", FrameID: fmt.Sprint(i), ReceivedAt: time.Now(), Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Fatalf("the WAL was not checkpointed on close")
	}
}

// flipByteAt flips every bit of the byte at the first occurrence of marker
// in the file and returns its offset.
func flipByteAt(t *testing.T, path, marker string) int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(marker))
	if i < 0 {
		t.Fatalf("%q not found in %s", marker, path)
	}
	data[i+len(marker)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return int64(i + len(marker)/2)
}

// TestJournalFlippedByteIsQuarantinedAtStartup flips one byte of one
// record's body in the file. The next start names the file and the
// record's offset, keeps every intact record, moves the damaged one bytes
// intact to journal_quarantine and hands it to the reader as Damaged (the
// aggregator counts it as rejected.corrupt) instead of its wrong bytes.
func TestJournalFlippedByteIsQuarantinedAtStartup(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	writeJournal(t, path, "first-record-body", "SECOND-RECORD-BODY", "third-record-body")
	flipped := flipByteAt(t, path, "SECOND-RECORD-BODY")

	var logs logBuffer
	j, err := OpenJournal(ctx, path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("open after a flipped byte: %v", err)
	}
	defer j.Close()
	out := logs.String()
	if !strings.Contains(out, "file="+path) || !strings.Contains(out, "seq=2") || !strings.Contains(out, "offset=") {
		t.Fatalf("start-up report does not name the file, record and offset:\n%s", out)
	}
	var offset int64
	if _, err := fmt.Sscanf(out[strings.Index(out, "offset="):], "offset=%d", &offset); err != nil {
		t.Fatal(err)
	}
	// The offset is where the record starts (its header, app, frame id,
	// then the body).
	if flipped < offset || flipped >= offset+64 {
		t.Fatalf("reported record offset %d is not just before the flipped byte at %d", offset, flipped)
	}
	if j.Quarantined() != 1 {
		t.Fatalf("quarantined %d records, want 1", j.Quarantined())
	}
	recs, err := j.Read(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records after recovery, want 3", len(recs))
	}
	if string(recs[0].Body) != "first-record-body" || string(recs[2].Body) != "third-record-body" || recs[0].Damaged || recs[2].Damaged {
		t.Fatalf("intact records changed: %+v %+v", recs[0], recs[2])
	}
	if !recs[1].Damaged || len(recs[1].Body) != 0 {
		t.Fatalf("damaged record served: %+v", recs[1])
	}
	var kept []byte
	if err := j.db.QueryRow(`SELECT body FROM journal_quarantine WHERE seq = 2`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if len(kept) != len("SECOND-RECORD-BODY") || string(kept) == "SECOND-RECORD-BODY" {
		t.Fatalf("quarantine does not hold the damaged bytes: %q", kept)
	}
}

// TestJournalDamageAfterStartupIsCaughtOnRead changes a record behind the
// journal's back while it runs: Read checks every CRC, so the changed
// record is never handed out as data.
func TestJournalDamageAfterStartupIsCaughtOnRead(t *testing.T) {
	ctx := context.Background()
	j, err := OpenJournal(ctx, filepath.Join(t.TempDir(), "journal.db"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := range 3 {
		if _, _, err := j.Append(ctx, drainpipe.Batch{App: "a", FrameID: fmt.Sprint(i), ReceivedAt: time.Now(), Body: []byte("body")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.db.Exec(`UPDATE journal SET lost = 7 WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	// Records read right after their commit come from memory (see
	// TestJournalHandoff...); this one is read from the file, as after a
	// restart of the aggregator or when it is behind.
	j.handoff.Invalidate()
	recs, err := j.Read(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Damaged || recs[1].Damaged || !recs[2].Damaged || recs[2].Lost != 0 {
		t.Fatalf("records: %+v", recs)
	}
}

// TestDamagedFileRefusesToStart damages a file's structure (a b-tree
// page header; a file cut short): the journal, and the store, refuse to
// open with a *CorruptError that names the file and an offset and says
// what to do.
func TestDamagedFileRefusesToStart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"page header overwritten", func(t *testing.T, path string) {
			scribblePage(t, path, 2) // the first table's root
		}},
		{"truncated", func(t *testing.T, path string) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run("journal "+tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			var bodies []string
			for i := range 200 {
				bodies = append(bodies, strings.Repeat(fmt.Sprint(i%10), 300))
			}
			writeJournal(t, path, bodies...)
			tc.damage(t, path)
			j, err := OpenJournal(context.Background(), path, quiet)
			if err == nil {
				j.Close()
				t.Fatal("opened a damaged journal")
			}
			checkCorruptError(t, err, path)
			// The segment-file journal's frame index is the same file.
			x, err := OpenFrameIndex(context.Background(), path)
			if err == nil {
				x.Close()
				t.Fatal("opened a damaged frame index")
			}
			checkCorruptError(t, err, path)
		})
		t.Run("store "+tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "metrics.db")
			s, err := OpenStore(ctx, path, nil, quiet)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			var rows []metrics.Row
			for i := range 300 {
				rows = append(rows, delta(fmt.Sprint("app-", i), "web", t0.Add(time.Duration(i%60)*time.Minute), 50, float64(i)))
			}
			if err := s.Apply(ctx, &metrics.Flush{Position: 1, Rows: rows}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, path)
			for _, atOpen := range []bool{true, false} {
				if s, err := OpenStoreWith(ctx, path, StoreOptions{CheckAtOpen: atOpen}, quiet); err == nil {
					s.Close()
					t.Fatalf("opened a damaged store (check at open %v)", atOpen)
				} else {
					checkCorruptError(t, err, path)
				}
			}
		})
	}
}

// checkCorruptError checks err is a *CorruptError naming path, a byte
// offset and the way out.
func checkCorruptError(t *testing.T, err error, path string) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("error is not a CorruptError: %v", err)
	}
	msg := err.Error()
	if ce.File != path || !strings.Contains(msg, path) || !strings.Contains(msg, "restore it from a backup") {
		t.Fatalf("error does not name the file and the way out: %v", err)
	}
	if ce.Offset < 0 || !strings.Contains(msg, fmt.Sprintf("byte offset %d", ce.Offset)) {
		t.Fatalf("error does not name an offset: %v", err)
	}
	t.Log(msg)
}

// TestStoreDamageIsFoundAtStartup flips a byte inside one stored bucket
// and changes another row's plain request count, with the store closed.
// The check at open (CheckAtOpen), and without it the Scrub that follows,
// names the file and offset of the damaged bucket, moves it to quarantine
// (so no answer includes it), rewrites the plain count from its
// checksummed bucket, and keeps every other row as it was.
func TestStoreDamageIsFoundAtStartup(t *testing.T) {
	for _, atOpen := range []bool{true, false} {
		t.Run(fmt.Sprintf("check at open %v", atOpen), func(t *testing.T) {
			ctx := context.Background()
			path, table, t0 := damagedBuckets(t)
			var logs logBuffer
			s, err := OpenStoreWith(ctx, path, StoreOptions{CheckAtOpen: atOpen}, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			if atOpen {
				if s.Damaged() < 2 {
					t.Fatalf("Damaged() = %d, want at least 2", s.Damaged())
				}
			} else {
				if s.Damaged() != 0 || strings.Contains(logs.String(), "damaged") {
					t.Fatalf("the open without CheckAtOpen read the buckets: Damaged() = %d\n%s", s.Damaged(), logs.String())
				}
				r, err := s.Scrub(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if r.Quarantined != 1 || r.Repaired != 1 || r.Buckets < 3 || r.Partitions < 3 || len(r.Damaged) != 0 {
					t.Fatalf("scrub report %+v, want 1 quarantined, 1 repaired, every partition read", r)
				}
				if again, err := s.Scrub(ctx); err != nil || again.Quarantined != 0 || again.Repaired != 0 {
					t.Fatalf("a second scrub found more: %+v %v", again, err)
				}
			}
			out := logs.String()
			if !strings.Contains(out, "damaged bucket moved to quarantine") || !strings.Contains(out, "file="+path) || !strings.Contains(out, "offset=") {
				t.Fatalf("damage report:\n%s", out)
			}
			if !strings.Contains(out, "rewritten from it") {
				t.Fatalf("plain count repair not reported:\n%s", out)
			}
			counts, err := s.RequestCounts(ctx, drainpipe.Tier1m, t0, t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, c := range counts {
				got[c.App] = c.Requests
			}
			if got["a"] != 0 || got["b"] != 7 || got["c"] != 9 {
				t.Fatalf("request counts after recovery: %v (want a gone, b 7, c 9)", got)
			}
			rows, err := s.Buckets(ctx, "", "web", drainpipe.Tier1m, t0, t0.Add(time.Minute))
			if err != nil || len(rows) != 2 {
				t.Fatalf("buckets after recovery: %d, %v", len(rows), err)
			}
			var n int
			if err := s.db.QueryRow(`SELECT COUNT(*) FROM quarantine WHERE app = 'a' AND tbl = ?`, table).Scan(&n); err != nil || n != 1 {
				t.Fatalf("quarantine rows for a: %d %v", n, err)
			}
		})
	}
}

// damagedBuckets writes apps a, b and c's buckets of one minute, then,
// with the store closed, flips a byte inside a's 1-minute bucket in the
// file and sets c's plain request count to 1000. It returns the file, the
// 1-minute partition and the minute.
func damagedBuckets(t *testing.T) (path, table string, t0 time.Time) {
	t.Helper()
	ctx := context.Background()
	path = filepath.Join(t.TempDir(), "metrics.db")
	s, err := OpenStore(ctx, path, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	if err := s.Apply(ctx, &metrics.Flush{Position: 1, Rows: []metrics.Row{
		delta("a", "web", t0, 5, 1), delta("b", "web", t0, 7, 1), delta("c", "web", t0, 9, 1)}}); err != nil {
		t.Fatal(err)
	}
	table = s.partitionsIn(drainpipe.Tier1m, t0, t0.Add(time.Minute))[0]
	var blob []byte
	if err := s.db.QueryRow(`SELECT data FROM ` + table + ` WHERE app = 'a'`).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`UPDATE ` + table + ` SET requests = 1000 WHERE app = 'c'`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, blob)
	if at < 0 {
		t.Fatalf("bucket bytes not found in the file")
	}
	data[at+len(blob)/2] ^= 0x10
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, table, t0
}

// BenchmarkRecordCRC is what the journal's checksum adds to an append and
// to a read: one CRC-32C over a 256 KiB drain body (about 2,000 lines).
func BenchmarkRecordCRC(b *testing.B) {
	body := bytes.Repeat([]byte("83 <40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\n"), 256<<10/88)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		batchcodec.RecordCRC("storefront", "0f2b7c1e-5e7c-4b6e-9c1a-3d2f6a8b9c0d", 1764028800000000000, 0, 0, body)
	}
}
