package journal_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/journal"
	"github.com/drainpipe/drainpipe/journaltest"
	"github.com/drainpipe/drainpipe/sqlite"
)

// TestImportOfAThousandRecords: an old journal.db holding more records
// than one write can carry as separate buffers (pwritev takes at most
// 1,024; each record is a header and a body) is imported whole.
func TestImportOfAThousandRecords(t *testing.T) {
	ctx := context.Background()
	dir, _, old := openOld(t)
	for i := range 1100 {
		if _, _, err := old.Append(ctx, batch("a", fmt.Sprint("f", i), 1, i)); err != nil {
			t.Fatal(err)
		}
	}
	j := openIn(t, dir, journal.Options{})
	defer j.Close()
	n, err := j.Import(ctx, old)
	old.Close()
	if err != nil || n != 1100 {
		t.Fatalf("imported %d: %v", n, err)
	}
	if recs := readAll(t, j); len(recs) != 1100 || recs[1099].Seq != 1100 {
		t.Fatalf("%d records after the import", len(recs))
	}
}

// TestAppendsAfterDamageInTheLastSegmentAreRead: records appended into
// a last segment that holds damage (found at the start, or by a read)
// are read from the file when the reader is behind the in-memory
// hand-off, also once the segment was rolled: none is skipped.
func TestAppendsAfterDamageInTheLastSegmentAreRead(t *testing.T) {
	for _, found := range []string{"at-open", "on-read"} {
		t.Run(found, func(t *testing.T) {
			dir := t.TempDir()
			_, start, end := threeRecords(t, dir)
			seg := segments(t, dir)[0]
			if found == "at-open" {
				corrupt(t, seg, (start+end)/2)
			}
			j := openIn(t, dir, journal.Options{SegmentSize: size(t, seg) + 1})
			defer j.Close()
			if found == "on-read" {
				corrupt(t, seg, (start+end)/2)
				if recs := readAll(t, j); len(recs) != 3 || !recs[1].Damaged {
					t.Fatalf("%d records before the appends", len(recs))
				}
			}
			for i := range 3 {
				mustAppend(t, j, batch("shop", fmt.Sprint("n", i), 30, 10+i))
			}
			if n := len(segments(t, dir)); n != 2 {
				t.Fatalf("%d segments, want the damaged one and one rolled after it", n)
			}
			recs := readAll(t, j) // from 0: below the hand-off, so from the files
			if len(recs) != 6 {
				t.Fatalf("read %d records, want 6", len(recs))
			}
			for i, r := range recs {
				if r.Seq != int64(i+1) || r.Damaged != (i == 1) {
					t.Fatalf("record %d: seq %d damaged %v", i, r.Seq, r.Damaged)
				}
			}
		})
	}
}

// TestSeqGoesOnAfterAFailedRollAndTrim: a segment created for an append
// whose write then failed stays empty; once Trim deleted every segment
// before it, two restarts in a row still number the next record after
// the last acknowledged one (not from 1 again, below the store's
// position).
func TestSeqGoesOnAfterAFailedRollAndTrim(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var full atomic.Bool
	opt := journal.WithWrap(journal.Options{SegmentSize: 1}, func(f journal.SegFile) journal.SegFile { return fullDisk{f, &full} })
	j := openIn(t, dir, opt)
	for i := range 3 {
		mustAppend(t, j, batch("a", fmt.Sprint("f", i), 5, i))
	}
	full.Store(true)
	if _, _, err := j.Append(ctx, batch("a", "f3", 5, 3)); err == nil {
		t.Fatal("append on a full disk succeeded")
	}
	if err := j.Trim(ctx, 3); err != nil {
		t.Fatal(err)
	}
	j.Close()
	for restart := range 2 {
		j = openIn(t, dir, journal.Options{SegmentSize: 1})
		if got := j.LastSeq(); got != 3 {
			j.Close()
			t.Fatalf("restart %d: LastSeq %d, want 3", restart+1, got)
		}
		j.Close()
	}
	j = openIn(t, dir, journal.Options{SegmentSize: 1})
	defer j.Close()
	if seq := mustAppend(t, j, batch("a", "f3", 5, 3)); seq != 4 {
		t.Fatalf("next seq %d, want 4", seq)
	}
}

// syncFails is a real segment file whose fdatasync fails.
type syncFails struct{ journal.SegFile }

func (syncFails) Datasync() error { return syscall.EIO }

// TestOpenSyncsTheLastSegment: the last segment may end in records a
// killed process wrote but never synced (its appends were not
// acknowledged). Open makes them durable before it trusts them (reads
// them, remembers their frame ids, so that a retry is answered as a
// duplicate), and refuses to start when it cannot: a power loss would
// otherwise take records whose retries were acknowledged.
func TestOpenSyncsTheLastSegment(t *testing.T) {
	dir := t.TempDir()
	j := openIn(t, dir, journal.Options{})
	mustAppend(t, j, batch("a", "f1", 5, 1))
	j.Close()
	idx, err := sqlite.OpenFrameIndex(context.Background(), filepath.Join(dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	opt := journal.WithWrap(journal.Options{Frames: idx, Log: quiet}, func(f journal.SegFile) journal.SegFile { return syncFails{f} })
	if j, err := journal.Open(context.Background(), filepath.Join(dir, "journal"), opt); err == nil {
		j.Close()
		t.Fatal("Open trusted a last segment it could not sync")
	}
}

// legacySegment writes the segment file a build from before segment
// headers wrote for three records of app shop (seq 1 to 3), then extra,
// into data directory dir, and returns the records' bodies.
func legacySegment(t *testing.T, dir string, extra []byte) [][]byte {
	t.Helper()
	var data []byte
	var bodies [][]byte
	for i := range 3 {
		b := journaltest.RouterBody(5, i)
		bodies = append(bodies, b)
		data = append(data, journal.RecordBytes(int64(i+1), "shop", fmt.Sprint("f", i), 0, b)...)
	}
	if err := os.MkdirAll(filepath.Join(dir, "journal"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "journal", "00000000000000000001.seg"), append(data, extra...), 0o640); err != nil {
		t.Fatal(err)
	}
	return bodies
}

// TestRecordWhoseBodyDoesNotExpandIsDamaged: a record whose checksum
// matches but whose packed body does not expand (never written so by
// the journal: in a segment from before headers, a batch body can hold
// bytes that form a whole record, which a resynchronising scan may take
// for one) is read as Damaged and quarantined; it does not fail every
// later read, which would stop the aggregator for good.
func TestRecordWhoseBodyDoesNotExpandIsDamaged(t *testing.T) {
	dir := t.TempDir()
	legacySegment(t, dir, journal.RecordBytes(4, "shop", "f3", 1, []byte("\xff\xff\xff\xff\x0fnot s2")))
	j := openIn(t, dir, journal.Options{})
	defer j.Close()
	mustAppend(t, j, batch("shop", "f4", 3, 4))
	recs := readAll(t, j) // from 0: from the file
	if len(recs) != 5 || !recs[3].Damaged || recs[3].Seq != 4 || recs[3].App != "shop" || recs[4].Seq != 5 || recs[4].Damaged {
		t.Fatalf("%d records", len(recs))
	}
	if j.Quarantined() != 1 {
		t.Fatalf("%d quarantined, want 1", j.Quarantined())
	}
}

// TestSegmentFromBeforeHeaders: a segment written by a build from
// before segment headers (its first bytes are a record) is read as
// seed-less, its torn tail cut off like any last segment's; nothing is
// appended to it: the next append starts a new segment, with a header,
// and both are read after a restart.
func TestSegmentFromBeforeHeaders(t *testing.T) {
	dir := t.TempDir()
	torn := journal.RecordBytes(4, "shop", "f3", 0, journaltest.RouterBody(5, 3))
	bodies := legacySegment(t, dir, torn[:len(torn)/2])
	old := segments(t, dir)[0]
	whole := size(t, old)
	j := openIn(t, dir, journal.Options{})
	if j.LastSeq() != 3 {
		t.Fatalf("LastSeq %d, want 3", j.LastSeq())
	}
	b := batch("shop", "f3", 5, 3)
	if seq := mustAppend(t, j, b); seq != 4 {
		t.Fatalf("next seq %d, want 4", seq)
	}
	bodies = append(bodies, b.Body)
	j.Close()
	segs := segments(t, dir)
	if len(segs) != 2 || segs[0] != old || filepath.Base(segs[1]) != "00000000000000000004.seg" {
		t.Fatalf("segments %v, want the old one and a new one from seq 4", segs)
	}
	if got := size(t, old); got != whole-int64(len(torn)/2) {
		t.Fatalf("old segment %d bytes, want %d (its torn tail cut off)", got, whole-int64(len(torn)/2))
	}
	j = openIn(t, dir, journal.Options{})
	defer j.Close()
	recs := readAll(t, j)
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	for i, r := range recs {
		if r.Seq != int64(i+1) || r.Damaged || r.App != "shop" || !bytes.Equal(r.Body, bodies[i]) {
			t.Fatalf("record %d: seq %d damaged %v", i, r.Seq, r.Damaged)
		}
	}
	if j.Quarantined() != 0 {
		t.Fatalf("%d quarantined", j.Quarantined())
	}
}

// TestForgedRecordInABodyIsNotRead: a batch body may hold any bytes,
// among them a whole record with a checksum valid in the format of the
// segments before they had a seed, for another app, numbered just after
// its own record or far beyond. Once the real record's header is torn,
// the reader resynchronises past it; it must not take the forged record
// for one (one app's credentials never write another app's data), and
// the real records after it must still be read.
func TestForgedRecordInABodyIsNotRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  int64
	}{{"next-seq", 3}, {"huge-seq", 1 << 40}} {
		for _, tear := range []struct {
			name string
			at   int64 // from the real record's start
		}{{"magic", 0}, {"length", 5}, {"checksum", 9}} {
			t.Run(tc.name+"/"+tear.name, func(t *testing.T) {
				dir := t.TempDir()
				j := openIn(t, dir, journal.Options{})
				forged := journal.RecordBytes(tc.seq, "victim", "forged", 0, []byte("83 <158>1 2026-11-25T10:00:00+00:00 host heroku router - at=error code=H12 status=503\n"))
				mustAppend(t, j, batch("shop", "f0", 5, 0))
				start := size(t, segments(t, dir)[0])
				body := append(append([]byte("1 x"), forged...), batch("shop", "", 5, 1).Body...)
				mustAppend(t, j, drainpipe.Batch{App: "shop", FrameID: "f1", ReceivedAt: time.Now().UTC(), Body: body})
				want := []drainpipe.Batch{batch("shop", "f2", 5, 2), batch("shop", "f3", 5, 3)}
				for _, b := range want {
					mustAppend(t, j, b)
				}
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
				corrupt(t, segments(t, dir)[0], start+tear.at)
				j = openIn(t, dir, journal.Options{})
				defer j.Close()
				recs := readAll(t, j)
				var real []int64
				for _, r := range recs {
					if r.App != "shop" {
						t.Fatalf("read a record of app %q, seq %d, forged in another app's body", r.App, r.Seq)
					}
					if !r.Damaged {
						real = append(real, r.Seq)
					}
				}
				if len(real) != 3 || real[0] != 1 || real[1] != 3 || real[2] != 4 {
					t.Fatalf("intact records %v, want [1 3 4]", real)
				}
				if !bytes.Equal(recs[len(recs)-1].Body, want[1].Body) {
					t.Fatal("the last record's body differs")
				}
				if seq := mustAppend(t, j, batch("shop", "f4", 5, 4)); seq != 5 {
					t.Fatalf("next seq %d, want 5", seq)
				}
			})
		}
	}
}
