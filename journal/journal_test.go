package journal_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/journal"
	"github.com/drainpipe/drainpipe/journaltest"
	"github.com/drainpipe/drainpipe/sqlite"
)

func batch(app, frame string, n, salt int) drainpipe.Batch {
	return drainpipe.Batch{App: app, FrameID: frame, ReceivedAt: time.Now().UTC(), Body: journaltest.RouterBody(n, salt)}
}

func mustAppend(t *testing.T, j *journal.Journal, b drainpipe.Batch) int64 {
	t.Helper()
	seq, dup, err := j.Append(context.Background(), b)
	if err != nil || dup {
		t.Fatalf("append: seq %d dup %v err %v", seq, dup, err)
	}
	return seq
}

func readAll(t *testing.T, j *journal.Journal) []drainpipe.Record {
	t.Helper()
	var out []drainpipe.Record
	var pos int64
	for {
		recs, err := j.Read(context.Background(), pos, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		pos = recs[len(recs)-1].Seq
	}
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "journal", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestTornTailIsCutOff: bytes after the last whole record of the last
// segment (an append a crash cut short, never acknowledged) are cut off
// at open, kept in quarantine, and appends go on after the last record.
func TestTornTailIsCutOff(t *testing.T) {
	dir := t.TempDir()
	j := openIn(t, dir, journal.Options{})
	var want []drainpipe.Batch
	for i := range 5 {
		b := batch("a", fmt.Sprint("f", i), 50, i)
		mustAppend(t, j, b)
		want = append(want, b)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	seg := segments(t, dir)[0]
	good := size(t, seg)
	// Half of the next record, as a torn write leaves it: its header
	// (seq 6) and part of its body.
	torn := journal.RecordBytes(6, "a", "f5", 0, journaltest.RouterBody(50, 5))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(torn[:len(torn)/2])
	f.Close()

	j = openIn(t, dir, journal.Options{})
	defer j.Close()
	if got := size(t, seg); got != good {
		t.Fatalf("segment is %d bytes after open, want %d (the torn tail cut off)", got, good)
	}
	if j.Quarantined() != 0 {
		t.Fatalf("a torn tail counted as %d quarantined records", j.Quarantined())
	}
	if q, _ := filepath.Glob(filepath.Join(dir, "journal", "quarantine", "*")); len(q) != 1 {
		t.Fatalf("quarantine holds %v, want the cut tail", q)
	}
	if seq := mustAppend(t, j, batch("a", "f5", 10, 5)); seq != 6 {
		t.Fatalf("next seq %d, want 6", seq)
	}
	recs := readAll(t, j)
	if len(recs) != 6 || !bytes.Equal(recs[4].Body, want[4].Body) {
		t.Fatalf("%d records after the cut", len(recs))
	}
}

// corrupt flips the byte at off of file path.
func corrupt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// threeRecords appends three records to a fresh journal in dir and
// returns them and the offsets at which the second begins and ends.
func threeRecords(t *testing.T, dir string) ([]drainpipe.Batch, int64, int64) {
	j := openIn(t, dir, journal.Options{})
	var want []drainpipe.Batch
	var ends []int64
	for i := range 3 {
		b := batch("shop", fmt.Sprint("f", i), 30, i)
		mustAppend(t, j, b)
		want = append(want, b)
		ends = append(ends, size(t, segments(t, dir)[0]))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return want, ends[0], ends[1]
}

// TestDamagedRecordIsQuarantined: a record damaged in the middle of a
// segment is copied to quarantine, counted, and read as Damaged (so its
// app's loss is counted); the records on both sides are read intact.
// With its header damaged too (no magic), the reader resynchronises on
// the next record.
func TestDamagedRecordIsQuarantined(t *testing.T) {
	for _, tc := range []struct {
		name   string
		at     func(start, end int64) int64
		marker bool
	}{
		{"body", func(s, e int64) int64 { return (s + e) / 2 }, true},
		{"magic", func(s, e int64) int64 { return s }, false},
		{"length", func(s, e int64) int64 { return s + 5 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want, start, end := threeRecords(t, dir)
			corrupt(t, segments(t, dir)[0], tc.at(start, end))
			j := openIn(t, dir, journal.Options{})
			defer j.Close()
			if j.Quarantined() != 1 {
				t.Fatalf("%d records quarantined, want 1", j.Quarantined())
			}
			recs := readAll(t, j)
			total := len(recs)
			if tc.marker {
				if len(recs) != 3 || !recs[1].Damaged || recs[1].Seq != 2 || recs[1].App != "shop" || len(recs[1].Body) != 0 {
					t.Fatalf("got %d records, the second %+v", len(recs), recs[min(1, len(recs)-1)].Seq)
				}
				recs = []drainpipe.Record{recs[0], recs[2]}
			}
			if len(recs) != 2 || recs[0].Seq != 1 || recs[1].Seq != 3 || !bytes.Equal(recs[0].Body, want[0].Body) || !bytes.Equal(recs[1].Body, want[2].Body) || recs[0].Damaged || recs[1].Damaged {
				t.Fatalf("neighbours: %d records", len(recs))
			}
			q, _ := filepath.Glob(filepath.Join(dir, "journal", "quarantine", "*.bad"))
			if len(q) != 1 || size(t, q[0]) != end-start {
				t.Fatalf("quarantine holds %v, want the %d damaged bytes", q, end-start)
			}
			// Appends go on; a restart finds the same damage, copied once.
			if seq := mustAppend(t, j, batch("shop", "f3", 5, 3)); seq != 4 {
				t.Fatalf("next seq %d", seq)
			}
			j.Close()
			j = openIn(t, dir, journal.Options{})
			if j.Quarantined() != 0 || len(readAll(t, j)) != total+1 {
				t.Fatalf("after restart: %d new quarantined", j.Quarantined())
			}
		})
	}
}

// TestDamageAfterStartIsCaughtOnRead: a record damaged on disk after
// the start-up check is caught by the read's checksum, quarantined, and
// read as Damaged; the others are read intact.
func TestDamageAfterStartIsCaughtOnRead(t *testing.T) {
	dir := t.TempDir()
	want, start, end := threeRecords(t, dir)
	j := openIn(t, dir, journal.Options{})
	defer j.Close()
	corrupt(t, segments(t, dir)[0], (start+end)/2)
	recs := readAll(t, j)
	if len(recs) != 3 || !recs[1].Damaged || recs[1].App != "shop" || !bytes.Equal(recs[2].Body, want[2].Body) {
		t.Fatalf("%d records", len(recs))
	}
	if q, _ := filepath.Glob(filepath.Join(dir, "journal", "quarantine", "*.bad")); j.Quarantined() != 1 || len(q) != 1 {
		t.Fatalf("quarantined %d, copies %v", j.Quarantined(), q)
	}
}

// fullDisk is a real segment file whose writes fail, while full is set,
// the way a full disk fails them: part of the bytes written, then ENOSPC.
type fullDisk struct {
	journal.SegFile
	full *atomic.Bool
}

func (f fullDisk) WritevAt(bufs [][]byte, off int64) (int, error) {
	if f.full.Load() {
		p := bytes.Join(bufs, nil)
		n, _ := f.SegFile.WritevAt([][]byte{p[:len(p)/2]}, off)
		return n, &os.PathError{Op: "pwritev", Path: "segment", Err: syscall.ENOSPC}
	}
	return f.SegFile.WritevAt(bufs, off)
}

// TestFailedWriteLeavesNothing: appends whose write fails (a full disk)
// fail, leave nothing in the file (the segment is cut back), and are not
// read; once writes succeed again appends go on with the next sequence
// number, and a restart reads exactly the acknowledged records.
func TestFailedWriteLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	var full atomic.Bool
	opt := journal.WithWrap(journal.Options{}, func(f journal.SegFile) journal.SegFile { return fullDisk{f, &full} })
	j := openIn(t, dir, opt)
	var acked []drainpipe.Batch
	for i := range 3 {
		b := batch("a", fmt.Sprint("ok", i), 20, i)
		mustAppend(t, j, b)
		acked = append(acked, b)
	}
	seg := segments(t, dir)[0]
	good := size(t, seg)
	full.Store(true)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := j.Append(context.Background(), batch("a", fmt.Sprint("full", i), 20, 100+i)); err == nil || !strings.Contains(err.Error(), "no space") {
				t.Errorf("append on a full disk: %v", err)
			}
		}()
	}
	wg.Wait()
	if got := size(t, seg); got != good {
		t.Fatalf("segment is %d bytes after the failed writes, want %d", got, good)
	}
	if j.LastSeq() != 3 || len(readAll(t, j)) != 3 {
		t.Fatalf("after the failures: LastSeq %d", j.LastSeq())
	}
	full.Store(false)
	// The retry of a failed batch is kept (its frame id was not).
	b := batch("a", "full3", 20, 103)
	if seq := mustAppend(t, j, b); seq != 4 {
		t.Fatalf("first append after the disk has room again got seq %d, want 4", seq)
	}
	acked = append(acked, b)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openIn(t, dir, journal.Options{})
	defer j.Close()
	recs := readAll(t, j)
	if len(recs) != 4 || j.Quarantined() != 0 {
		t.Fatalf("after restart: %d records, %d quarantined", len(recs), j.Quarantined())
	}
	for i, r := range recs {
		if r.FrameID != acked[i].FrameID || !bytes.Equal(r.Body, acked[i].Body) {
			t.Fatalf("record %d is %q", r.Seq, r.FrameID)
		}
	}
}

// TestTrimDeletesWholeSegments: Trim deletes the segments whose records
// are all trimmed, never the last one, and a new journal on the same
// directory starts after them.
func TestTrimDeletesWholeSegments(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	opt := journal.Options{SegmentSize: 16 << 10}
	j := openIn(t, dir, opt)
	for i := range 40 {
		mustAppend(t, j, batch("a", fmt.Sprint("f", i), 30, i))
	}
	before := segments(t, dir)
	if len(before) < 5 {
		t.Fatalf("%d segments, want several", len(before))
	}
	if err := j.Trim(ctx, 20); err != nil {
		t.Fatal(err)
	}
	after := segments(t, dir)
	if len(after) >= len(before) || len(after) == 0 {
		t.Fatalf("%d segments after Trim(20), %d before", len(after), len(before))
	}
	var first int64
	fmt.Sscan(strings.TrimLeft(strings.TrimSuffix(filepath.Base(after[0]), ".seg"), "0"), &first)
	if first > 21 {
		t.Fatalf("the first segment kept starts at %d: record 21 was deleted", first)
	}
	if err := j.Trim(ctx, 40); err != nil {
		t.Fatal(err)
	}
	if n := len(segments(t, dir)); n != 1 {
		t.Fatalf("%d segments after trimming everything, want the last one", n)
	}
	j.Close()
	j = openIn(t, dir, opt)
	defer j.Close()
	if seq := mustAppend(t, j, batch("a", "new", 1, 1)); seq != 41 {
		t.Fatalf("after trim and restart: seq %d, want 41", seq)
	}
	if _, dup, _ := j.Append(ctx, batch("a", "f3", 1, 1)); !dup {
		t.Fatal("the frame id of a trimmed record was forgotten")
	}
}

// TestOpenRemembersFrameIDsOfLiveSegments: frame ids whose records are
// in the segments but not yet in the index (the process stopped before
// writing them there) are found at open.
func TestOpenRemembersFrameIDsOfLiveSegments(t *testing.T) {
	dir := t.TempDir()
	j := openIn(t, dir, journal.Options{})
	mustAppend(t, j, batch("a", "f1", 3, 1))
	// Another data directory with these segments but an empty index.
	other := t.TempDir()
	if err := os.MkdirAll(filepath.Join(other, "journal"), 0o750); err != nil {
		t.Fatal(err)
	}
	for _, s := range segments(t, dir) {
		data, _ := os.ReadFile(s)
		os.WriteFile(filepath.Join(other, "journal", filepath.Base(s)), data, 0o640)
	}
	j.Close()
	j = openIn(t, other, journal.Options{})
	defer j.Close()
	if _, dup, err := j.Append(context.Background(), batch("a", "f1", 3, 1)); err != nil || !dup {
		t.Fatalf("retry: dup %v err %v", dup, err)
	}
}

// TestImportFromSQLite: a data directory whose journal.db still holds
// records (from before the segment journal) has them moved into segments
// at open, sequence numbers kept, damaged markers kept, then deleted from
// the table; numbering and deduplication go on; a second import copies
// nothing.
func TestImportFromSQLite(t *testing.T) {
	ctx := context.Background()
	dir, dbPath, old := openOld(t)
	var want []drainpipe.Batch
	for i := range 30 {
		b := batch(fmt.Sprint("app", i%2), fmt.Sprint("f", i), 1+i*7%90, i)
		b.Dropped, b.Lost = int64(i%3), int64(i%2)
		if _, _, err := old.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
	}
	// The aggregator had applied and trimmed the first 10.
	if err := old.Trim(ctx, 10); err != nil {
		t.Fatal(err)
	}
	old.Close()
	// Record 15 is damaged on disk: the SQLite journal's start-up check
	// quarantines it, and it is imported as a damaged marker.
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE journal SET body = x'00ff' WHERE seq = 15`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	migrate := func() (*journal.Journal, int) {
		t.Helper()
		j := openIn(t, dir, journal.Options{})
		idx, err := sqlite.OpenFrameIndex(ctx, dbPath)
		if err != nil {
			t.Fatal(err)
		}
		defer idx.Close()
		records, last, err := idx.JournalTail(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if records == 0 && last <= j.LastSeq() {
			return j, 0
		}
		src, err := sqlite.OpenJournal(ctx, dbPath, quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		n, err := j.Import(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		return j, n
	}
	j, n := migrate()
	if n != 20 {
		t.Fatalf("imported %d records, want 20", n)
	}
	recs := readAll(t, j)
	if len(recs) != 20 || recs[0].Seq != 11 || recs[19].Seq != 30 {
		t.Fatalf("%d records after import, first %d", len(recs), recs[0].Seq)
	}
	for i, r := range recs {
		w := want[10+i]
		if r.Seq == 15 {
			if !r.Damaged || r.App != w.App || len(r.Body) != 0 {
				t.Fatalf("record 15 imported as %+v, want a damaged marker", r)
			}
			continue
		}
		if r.App != w.App || r.FrameID != w.FrameID || !bytes.Equal(r.Body, w.Body) || r.Dropped != w.Dropped || r.Lost != w.Lost || !r.ReceivedAt.Equal(w.ReceivedAt) {
			t.Fatalf("imported record %d differs", r.Seq)
		}
	}
	if seq := mustAppend(t, j, batch("app0", "new", 2, 2)); seq != 31 {
		t.Fatalf("first append after import: seq %d, want 31", seq)
	}
	for _, id := range []string{"f2", "f24"} { // trimmed before, and imported
		if _, dup, err := j.Append(ctx, batch("app0", id, 2, 2)); err != nil || !dup {
			t.Fatalf("retry of %s after import: dup %v err %v", id, dup, err)
		}
	}
	j.Close()
	idx, _ := sqlite.OpenFrameIndex(ctx, dbPath)
	records, _, _ := idx.JournalTail(ctx)
	idx.Close()
	if records != 0 {
		t.Fatalf("journal.db still holds %d records after the import", records)
	}
	j, n = migrate()
	defer j.Close()
	if n != 0 || len(readAll(t, j)) != 21 {
		t.Fatalf("second start imported %d", n)
	}
}

// openOld opens the SQLite journal of a new data directory.
func openOld(t *testing.T) (dir, dbPath string, old *sqlite.Journal) {
	dir = t.TempDir()
	dbPath = filepath.Join(dir, "journal.db")
	old, err := sqlite.OpenJournal(context.Background(), dbPath, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return dir, dbPath, old
}

// failingTrim is a Source whose Trim fails, as a crash between the copy
// and the delete would leave it.
type failingTrim struct{ journal.Source }

func (failingTrim) Trim(context.Context, int64) error { return fmt.Errorf("crash") }

// TestImportIsIdempotent: an import interrupted after copying (the old
// table not yet emptied) is completed by the next start without copying
// anything twice.
func TestImportIsIdempotent(t *testing.T) {
	ctx := context.Background()
	dir, _, old := openOld(t)
	for i := range 12 {
		old.Append(ctx, batch("a", fmt.Sprint("f", i), 5, i))
	}
	j := openIn(t, dir, journal.Options{})
	if _, err := j.Import(ctx, failingTrim{old}); err == nil {
		t.Fatal("import with a failing delete succeeded")
	}
	j.Close()
	j = openIn(t, dir, journal.Options{})
	defer j.Close()
	if n, err := j.Import(ctx, old); err != nil || n != 0 {
		t.Fatalf("second import copied %d (%v), want 0", n, err)
	}
	old.Close()
	if recs := readAll(t, j); len(recs) != 12 || recs[11].Seq != 12 {
		t.Fatalf("%d records", len(recs))
	}
}

// TestRetryIsADuplicateAcrossIndexAndRestart: a retried frame id is a
// duplicate while it is pending, once it is written to the index (the
// filter of new ids must not rule it out) and after a restart whose
// segments are trimmed (the filter is loaded from the index).
func TestRetryIsADuplicateAcrossIndexAndRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := openIn(t, dir, journal.Options{})
	var last int64
	for i := range 100 {
		last = mustAppend(t, j, batch("a", fmt.Sprintf("f%d", i), 2, i))
	}
	retry := func(when string) {
		t.Helper()
		for i := range 100 {
			if _, dup, err := j.Append(ctx, batch("a", fmt.Sprintf("f%d", i), 2, i)); err != nil || !dup {
				t.Fatalf("%s: retry of f%d: dup %v err %v", when, i, dup, err)
			}
		}
		if _, dup, err := j.Append(ctx, batch("b-"+when, "f0", 2, 0)); err != nil || dup {
			t.Fatalf("%s: another app's f0: dup %v err %v", when, dup, err)
		}
	}
	retry("pending")
	if err := j.Trim(ctx, last+1); err != nil {
		t.Fatal(err)
	}
	if _, dup, err := j.Append(ctx, batch("c", "f0", 2, 0)); err != nil || dup {
		t.Fatalf("new id after trim: dup %v err %v", dup, err)
	}
	if err := j.Trim(ctx, j.LastSeq()); err != nil {
		t.Fatal(err)
	}
	retry("in the index")
	j.Close()
	j = openIn(t, dir, journal.Options{})
	defer j.Close()
	if err := j.Trim(ctx, j.LastSeq()); err != nil {
		t.Fatal(err)
	}
	retry("after a restart")
}

// TestChecksumsFinishedByTheWriterReadBack: records whose body CRC the
// appending goroutine computed (the writer combines it with the header's)
// read back intact from the files after a restart, for bodies of many
// sizes, raw and packed; none is quarantined.
func TestChecksumsFinishedByTheWriterReadBack(t *testing.T) {
	for _, compress := range []bool{false, true} {
		dir := t.TempDir()
		j := openIn(t, dir, journal.Options{Compress: compress})
		var want []drainpipe.Batch
		for i, n := range []int{1, 2, 5, 40, 300, 500} {
			b := batch("a", fmt.Sprintf("f%d", i), n, i)
			mustAppend(t, j, b)
			want = append(want, b)
		}
		j.Close()
		j = openIn(t, dir, journal.Options{Compress: compress})
		got := readAll(t, j)
		if len(got) != len(want) || j.Quarantined() != 0 {
			t.Fatalf("compress=%v: read %d records, want %d; %d quarantined", compress, len(got), len(want), j.Quarantined())
		}
		for i, r := range got {
			if r.Damaged || !bytes.Equal(r.Body, want[i].Body) {
				t.Fatalf("compress=%v: record %d differs (damaged %v)", compress, i, r.Damaged)
			}
		}
		j.Close()
	}
}

// TestOwnedBodiesAreReusedOnlyOncePassed: bodies appended with
// AppendOwned are lent out again only once the reader has asked for the
// records after theirs: buffers taken while the reader holds the records
// and scribbled over leave those records intact; a duplicate's buffer
// goes back at once; and the records read back from the files after a
// restart are the bodies appended.
func TestOwnedBodiesAreReusedOnlyOncePassed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := openIn(t, dir, journal.Options{})
	var want [][]byte
	appendOwned := func(i int) {
		t.Helper()
		src := journaltest.RouterBody(3+i%5, i)
		buf := j.BodyBuffer(len(src))
		copy(buf, src)
		b := drainpipe.Batch{App: "a", FrameID: fmt.Sprintf("f%d", i), ReceivedAt: time.Now().UTC(), Body: buf}
		if _, dup, err := j.AppendOwned(ctx, b); err != nil || dup {
			t.Fatalf("append %d: dup %v err %v", i, dup, err)
		}
		want = append(want, src)
	}
	scribble := func(n int) {
		for range n {
			buf := j.BodyBuffer(4096)
			for k := range buf {
				buf[k] = 0xff
			}
		}
	}
	for i := range 10 {
		appendOwned(i)
	}
	held, err := j.Read(ctx, 0, 100)
	if err != nil || len(held) != 10 {
		t.Fatalf("read %d records, err %v", len(held), err)
	}
	scribble(20)
	for i, r := range held {
		if !bytes.Equal(r.Body, want[i]) {
			t.Fatalf("record %d changed while the reader held it", r.Seq)
		}
	}
	// A retried POST: its buffer is not stored.
	dupBuf := j.BodyBuffer(10)
	if _, dup, err := j.AppendOwned(ctx, drainpipe.Batch{App: "a", FrameID: "f0", ReceivedAt: time.Now().UTC(), Body: dupBuf}); err != nil || !dup {
		t.Fatalf("retry: dup %v err %v", dup, err)
	}
	for i := 10; i < 20; i++ {
		appendOwned(i)
	}
	// Passing the first ten lends their buffers out again.
	recs, err := j.Read(ctx, held[len(held)-1].Seq, 100)
	if err != nil || len(recs) != 10 {
		t.Fatalf("read %d records, err %v", len(recs), err)
	}
	scribble(20)
	for i, r := range recs {
		if !bytes.Equal(r.Body, want[10+i]) {
			t.Fatalf("record %d changed while the reader held it", r.Seq)
		}
	}
	j.Close()
	j = openIn(t, dir, journal.Options{})
	defer j.Close()
	all := readAll(t, j)
	if len(all) != len(want) || j.Quarantined() != 0 {
		t.Fatalf("after restart: %d records, want %d; %d quarantined", len(all), len(want), j.Quarantined())
	}
	for i, r := range all {
		if !bytes.Equal(r.Body, want[i]) {
			t.Fatalf("after restart: record %d differs", r.Seq)
		}
	}
}
