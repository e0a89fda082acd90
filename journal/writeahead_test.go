package journal_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/journal"
	"github.com/drainpipe/drainpipe/journaltest"
)

const aheadSize = 16 << 10

func aheadOpts() journal.Options {
	return journal.Options{WriteAhead: true, ZeroFillAfter: -1, SegmentSize: aheadSize}
}

// appendRolling appends n batches to j, waiting for a spare segment
// before each so that every segment it starts is one written ahead.
func appendRolling(t *testing.T, j *journal.Journal, n, salt int) []drainpipe.Batch {
	t.Helper()
	var out []drainpipe.Batch
	for i := range n {
		journal.SpareReady(t, j)
		b := batch("shop", fmt.Sprint("f", salt+i), 20, salt+i)
		mustAppend(t, j, b)
		out = append(out, b)
	}
	return out
}

func spares(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "journal", "*.spare"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func quarantineFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "journal", "quarantine", "*"))
	return m
}

// noQuarantine fails unless j has quarantined nothing and dir's
// quarantine directory is empty.
func noQuarantine(t *testing.T, j *journal.Journal, dir string) {
	t.Helper()
	if j.Quarantined() != 0 || len(quarantineFiles(t, dir)) != 0 {
		t.Fatalf("%d quarantined: %v", j.Quarantined(), quarantineFiles(t, dir))
	}
}

// checkRecords reads j whole and compares with want, numbered from
// first on.
func checkRecords(t *testing.T, j *journal.Journal, first int64, want []drainpipe.Batch) {
	t.Helper()
	recs := readAll(t, j)
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if r.Seq != first+int64(i) || r.Damaged || r.FrameID != want[i].FrameID || !bytes.Equal(r.Body, want[i].Body) {
			t.Fatalf("record %d: seq %d frame %q damaged %v", i, r.Seq, r.FrameID, r.Damaged)
		}
	}
}

// TestWriteAheadSegments: with WriteAhead every segment is a spare file
// of zeroes prepared beforehand, so it is longer than its records; the
// records are read back exactly, before and after a restart, the free
// space after them is neither a record nor damage nor a torn append,
// and appends after the restart go into that free space.
func TestWriteAheadSegments(t *testing.T) {
	dir := t.TempDir()
	j := openIn(t, dir, aheadOpts())
	want := appendRolling(t, j, 30, 0)
	segs := segments(t, dir)
	for size(t, segs[len(segs)-1])-journal.CommittedSize(j, segs[len(segs)-1]) < 2<<10 {
		// Until the last segment has free space for the append below.
		want = append(want, appendRolling(t, j, 1, len(want))...)
		segs = segments(t, dir)
	}
	checkRecords(t, j, 1, want)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	for _, s := range segs {
		if size(t, s) < aheadSize {
			t.Fatalf("segment %s is %d bytes: not written ahead", s, size(t, s))
		}
	}
	last := segs[len(segs)-1]
	free := journal.CommittedSize(j, last)
	n := int64(len(want))
	journal.SpareReady(t, j)
	if n := len(spares(t, dir)); n < 1 || n > 2 {
		t.Fatalf("%d spare files, want 1 or 2", n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openIn(t, dir, aheadOpts())
	if j.LastSeq() != n || j.Quarantined() != 0 || len(quarantineFiles(t, dir)) != 0 {
		t.Fatalf("after a restart: LastSeq %d, %d quarantined, quarantine %v", j.LastSeq(), j.Quarantined(), quarantineFiles(t, dir))
	}
	checkRecords(t, j, 1, want)
	b := batch("shop", "after", 3, 99)
	if seq := mustAppend(t, j, b); seq != n+1 {
		t.Fatalf("next seq %d, want %d", seq, n+1)
	}
	if got := journal.CommittedSize(j, last); got <= free || size(t, last) < aheadSize {
		t.Fatalf("the append after the restart did not go into the free space (records end at %d, were %d)", got, free)
	}
	want = append(want, b)
	j.Close()
	j = openIn(t, dir, aheadOpts())
	defer j.Close()
	checkRecords(t, j, 1, want)
	noQuarantine(t, j, dir)
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestRetiredSegmentsAreReused: Trim keeps the files of trimmed
// segments (two at most) as spares, and later segments are those files,
// their old records still in them beyond the new ones. The old records
// (under another seed) are never read, neither in the last segment nor
// in a segment before it whose file is longer than its records, nor
// taken for damage, before or after a restart.
func TestRetiredSegmentsAreReused(t *testing.T) {
	dir := t.TempDir()
	j := openIn(t, dir, aheadOpts())
	appendRolling(t, j, 12, 0)
	old := map[uint64]bool{}
	segs := segments(t, dir)
	for _, s := range segs[:len(segs)-1] {
		old[inode(t, s)] = true
	}
	if err := j.Trim(context.Background(), j.LastSeq()); err != nil {
		t.Fatal(err)
	}
	if n := len(spares(t, dir)); n != 2 {
		t.Fatalf("%d spare files after the trim, want 2", n)
	}
	if n := len(segments(t, dir)); n != 1 {
		t.Fatalf("%d segments after the trim, want 1", n)
	}
	want := appendRolling(t, j, 12, 100)
	reused := 0
	for _, s := range segments(t, dir) {
		if old[inode(t, s)] {
			reused++
		}
	}
	if reused == 0 {
		t.Fatal("no segment written after the trim is a retired segment's file")
	}
	checkRecords(t, j, 13, want)
	j.Close()
	j = openIn(t, dir, aheadOpts())
	defer j.Close()
	if err := j.Trim(context.Background(), 12); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, j, 13, want)
	noQuarantine(t, j, dir)
	if seq := mustAppend(t, j, batch("shop", "next", 3, 1)); seq != 25 {
		t.Fatalf("next seq %d, want 25", seq)
	}
}

// TestTornOverwriteInWrittenAheadSegment: a crash in the middle of an
// append that overwrites free space (zeroes, or a retired segment's
// records) leaves the start of a record after the last one: it is taken
// for a torn append (never acknowledged), copied to quarantine once and
// zeroed, the file keeps its length, and the next append goes there.
func TestTornOverwriteInWrittenAheadSegment(t *testing.T) {
	for _, retired := range []bool{false, true} {
		t.Run(fmt.Sprintf("retired=%v", retired), func(t *testing.T) {
			dir := t.TempDir()
			j := openIn(t, dir, aheadOpts())
			old := map[uint64]bool{}
			if retired {
				appendRolling(t, j, 12, 0)
				segs := segments(t, dir)
				for _, s := range segs[:len(segs)-1] {
					old[inode(t, s)] = true
				}
				if err := j.Trim(context.Background(), j.LastSeq()); err != nil {
					t.Fatal(err)
				}
			}
			// Appends until one starts a segment from a spare of the
			// kind wanted: that segment's records are want.
			var want []drainpipe.Batch
			var first int64
			for i := 0; ; i++ {
				segs := segments(t, dir)
				before := ""
				if len(segs) > 0 {
					before = segs[len(segs)-1]
				}
				want = appendRolling(t, j, 1, 50+i)
				segs = segments(t, dir)
				if s := segs[len(segs)-1]; s != before && (!retired || old[inode(t, s)]) {
					first = j.LastSeq()
					break
				}
				if i > 100 {
					t.Fatal("no segment from a spare of that kind")
				}
			}
			want = append(want, batch("shop", "g1", 3, 1), batch("shop", "g2", 3, 2))
			mustAppend(t, j, want[1])
			mustAppend(t, j, want[2])
			segs := segments(t, dir)
			seg := segs[len(segs)-1]
			end := journal.CommittedSize(j, seg)
			last := j.LastSeq()
			j.Close()
			fileSize := size(t, seg)
			if fileSize <= end {
				t.Fatalf("segment not written ahead: %d bytes, records end at %d", fileSize, end)
			}
			torn := journal.RecordBytes(last+1, "shop", "torn", 0, journaltest.RouterBody(10, 7))
			whole := len(torn)
			torn = torn[:len(torn)/2]
			f, err := os.OpenFile(seg, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(torn, end)
			f.Close()

			j = openIn(t, dir, aheadOpts())
			if j.LastSeq() != last || j.Quarantined() != 0 {
				t.Fatalf("LastSeq %d want %d, %d quarantined", j.LastSeq(), last, j.Quarantined())
			}
			q := quarantineFiles(t, dir)
			if len(q) != 1 {
				t.Fatalf("quarantine holds %v, want the torn append", q)
			}
			// The copy is of the length the torn record's header
			// claims: its torn half, then free space.
			if got, _ := os.ReadFile(q[0]); !bytes.HasPrefix(got, torn) || len(got) != whole {
				t.Fatalf("quarantine copy is %d bytes, want the record's %d from the torn ones", len(got), whole)
			}
			if got := size(t, seg); got != fileSize {
				t.Fatalf("segment %d bytes after the cut, want %d (still written ahead)", got, fileSize)
			}
			data, _ := os.ReadFile(seg)
			if !bytes.Equal(data[end:end+int64(len(torn))], make([]byte, len(torn))) {
				t.Fatal("torn bytes not zeroed")
			}
			b := batch("shop", "g3", 3, 3)
			if seq := mustAppend(t, j, b); seq != last+1 {
				t.Fatalf("next seq %d, want %d", seq, last+1)
			}
			want = append(want, b)
			j.Close()
			j = openIn(t, dir, aheadOpts())
			defer j.Close()
			if err := j.Trim(context.Background(), first-1); err != nil {
				t.Fatal(err)
			}
			recs := readAll(t, j)
			if len(recs) < len(want) {
				t.Fatalf("%d records, want at least %d", len(recs), len(want))
			}
			recs = recs[len(recs)-len(want):]
			for i, r := range recs {
				if r.Damaged || r.FrameID != want[i].FrameID || !bytes.Equal(r.Body, want[i].Body) {
					t.Fatalf("record %d: seq %d frame %q damaged %v", i, r.Seq, r.FrameID, r.Damaged)
				}
			}
			if q := quarantineFiles(t, dir); len(q) != 1 || j.Quarantined() != 0 {
				t.Fatalf("after a second restart: quarantine %v, %d quarantined", q, j.Quarantined())
			}
		})
	}
}

// TestDamagedRecordInWrittenAheadSegment: a record damaged in the
// middle of a segment written ahead is quarantined and reported as
// Damaged, and the records after it are read: the free space after them
// does not make the damage look like the end.
func TestDamagedRecordInWrittenAheadSegment(t *testing.T) {
	for _, final := range []bool{true, false} {
		t.Run(fmt.Sprintf("last-segment=%v", final), func(t *testing.T) {
			dir := t.TempDir()
			j := openIn(t, dir, aheadOpts())
			journal.SpareReady(t, j)
			var want []drainpipe.Batch
			var offs []int64
			for i := range 5 {
				b := batch("shop", fmt.Sprint("f", i), 3, i)
				segs := segments(t, dir)
				if len(segs) > 0 {
					offs = append(offs, journal.CommittedSize(j, segs[0]))
				} else {
					offs = append(offs, journal.SegmentHeaderSize)
				}
				mustAppend(t, j, b)
				want = append(want, b)
			}
			seg := segments(t, dir)[0]
			if !final {
				// Fill it so that the next append starts a segment.
				for journal.CommittedSize(j, seg) < aheadSize {
					want = append(want, batch("shop", fmt.Sprint("x", len(want)), 20, len(want)))
					mustAppend(t, j, want[len(want)-1])
				}
				journal.SpareReady(t, j)
				want = append(want, batch("shop", "next", 3, 9))
				mustAppend(t, j, want[len(want)-1])
			}
			j.Close()
			corrupt(t, seg, offs[2]+60) // the third record's body
			j = openIn(t, dir, aheadOpts())
			defer j.Close()
			recs := readAll(t, j)
			if len(recs) != len(want) {
				t.Fatalf("%d records, want %d", len(recs), len(want))
			}
			for i, r := range recs {
				if r.Seq != int64(i+1) || r.Damaged != (i == 2) || (i != 2 && !bytes.Equal(r.Body, want[i].Body)) {
					t.Fatalf("record %d: seq %d damaged %v", i, r.Seq, r.Damaged)
				}
			}
			if j.Quarantined() != 1 || len(quarantineFiles(t, dir)) != 1 {
				t.Fatalf("%d quarantined: %v", j.Quarantined(), quarantineFiles(t, dir))
			}
		})
	}
}

// TestOldSegmentsWithWriteAhead: segments from before segment headers
// and segments of a journal that did not write ahead are read as before
// by one that does; its appends go to a new segment written ahead (after
// the old-format one) or on at the end of the last one.
func TestOldSegmentsWithWriteAhead(t *testing.T) {
	t.Run("before-headers", func(t *testing.T) {
		dir := t.TempDir()
		bodies := legacySegment(t, dir, nil)
		j := openIn(t, dir, aheadOpts())
		journal.SpareReady(t, j)
		b := batch("shop", "f3", 5, 3)
		if seq := mustAppend(t, j, b); seq != 4 {
			t.Fatalf("next seq %d, want 4", seq)
		}
		j.Close()
		segs := segments(t, dir)
		if len(segs) != 2 || size(t, segs[1]) < aheadSize {
			t.Fatalf("segments %v: want the old one and one written ahead", segs)
		}
		j = openIn(t, dir, aheadOpts())
		defer j.Close()
		recs := readAll(t, j)
		if len(recs) != 4 || !bytes.Equal(recs[3].Body, b.Body) || !bytes.Equal(recs[0].Body, bodies[0]) || j.Quarantined() != 0 {
			t.Fatalf("%d records, %d quarantined", len(recs), j.Quarantined())
		}
	})
	t.Run("append-only", func(t *testing.T) {
		dir := t.TempDir()
		j := openIn(t, dir, journal.Options{SegmentSize: aheadSize})
		var want []drainpipe.Batch
		for i := range 8 {
			want = append(want, batch("shop", fmt.Sprint("f", i), 20, i))
			mustAppend(t, j, want[i])
		}
		j.Close()
		j = openIn(t, dir, aheadOpts())
		checkRecords(t, j, 1, want)
		more := appendRolling(t, j, 6, 10)
		want = append(want, more...)
		j.Close()
		j = openIn(t, dir, aheadOpts())
		defer j.Close()
		checkRecords(t, j, 1, want)
		noQuarantine(t, j, dir)
	})
}

// TestLeftoverSpares: at open, a zero-fill a stop cut short (*.spare.tmp)
// is removed; a spare file left by an earlier process is given a new
// header and used for the next segment (whatever it held: here the
// bytes of a record under no seed of this journal, which is never read);
// a journal that does not write ahead removes spare files.
func TestLeftoverSpares(t *testing.T) {
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	if err := os.MkdirAll(jdir, 0o750); err != nil {
		t.Fatal(err)
	}
	tmp, spare := filepath.Join(jdir, "1-1.spare.tmp"), filepath.Join(jdir, "1-2.spare")
	old := bytes.Repeat(journal.RecordBytes(1, "shop", "old", 0, journaltest.RouterBody(20, 1)), 10)
	for _, p := range []string{tmp, spare} {
		if err := os.WriteFile(p, old, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	ino := inode(t, spare)
	j := openIn(t, dir, aheadOpts())
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("unfinished spare still there: %v", err)
	}
	journal.SpareReady(t, j)
	b := batch("shop", "new", 3, 2)
	mustAppend(t, j, b)
	segs := segments(t, dir)
	if len(segs) != 1 || inode(t, segs[0]) != ino {
		t.Fatalf("segments %v: want the left spare as the first", segs)
	}
	checkRecords(t, j, 1, []drainpipe.Batch{b})
	j.Close()
	j = openIn(t, dir, aheadOpts())
	checkRecords(t, j, 1, []drainpipe.Batch{b})
	noQuarantine(t, j, dir)
	journal.SpareReady(t, j)
	j.Close()
	j = openIn(t, dir, journal.Options{})
	defer j.Close()
	if left := spares(t, dir); len(left) != 0 {
		t.Fatalf("spare files %v left by a journal that does not write ahead", left)
	}
	checkRecords(t, j, 1, []drainpipe.Batch{b})
}

// TestDamagedLastRecordHeaderIsNotFreeSpace: the last record of the last
// segment with a byte of its magic or of its length flipped is not taken
// for free space (which never holds the next seq): it is cut off with a
// copy kept in quarantine, as a torn append is, with the journal writing
// ahead or appending.
func TestDamagedLastRecordHeaderIsNotFreeSpace(t *testing.T) {
	for _, ahead := range []bool{true, false} {
		for _, field := range []struct {
			name string
			off  int64
		}{{"magic", 0}, {"length", 7}} {
			t.Run(fmt.Sprintf("write-ahead=%v/%s", ahead, field.name), func(t *testing.T) {
				dir := t.TempDir()
				opt := journal.Options{}
				if ahead {
					opt = aheadOpts()
				}
				j := openIn(t, dir, opt)
				if ahead {
					journal.SpareReady(t, j)
				}
				var want []drainpipe.Batch
				var offs []int64
				for i := range 3 {
					if segs := segments(t, dir); len(segs) > 0 {
						offs = append(offs, journal.CommittedSize(j, segs[0]))
					} else {
						offs = append(offs, journal.SegmentHeaderSize)
					}
					want = append(want, batch("shop", fmt.Sprint("f", i), 3, i))
					mustAppend(t, j, want[i])
				}
				j.Close()
				corrupt(t, segments(t, dir)[0], offs[2]+field.off)
				j = openIn(t, dir, opt)
				defer j.Close()
				if q := quarantineFiles(t, dir); len(q) != 1 {
					t.Fatalf("quarantine holds %v, want a copy of the damaged last record", q)
				}
				recs := readAll(t, j)
				if len(recs) != 2 || !bytes.Equal(recs[1].Body, want[1].Body) {
					t.Fatalf("%d records, want the 2 intact", len(recs))
				}
				if seq := mustAppend(t, j, batch("shop", "f3", 3, 3)); seq != 3 {
					t.Fatalf("next seq %d, want 3", seq)
				}
				if recs := readAll(t, j); len(recs) != 3 {
					t.Fatalf("%d records after an append, want 3", len(recs))
				}
			})
		}
	}
}

// TestRollsCountWhatSegmentsAreMadeOf: Rolls counts each new segment as
// a zero-filled spare, a retired segment's file or a created file.
func TestRollsCountWhatSegmentsAreMadeOf(t *testing.T) {
	dir := t.TempDir()
	j := openIn(t, dir, aheadOpts())
	defer j.Close()
	appendRolling(t, j, 24, 0)
	c := j.Rolls()
	if c.Zeroed < 2 || c.Retired != 0 || c.Created != 0 {
		t.Fatalf("before any trim: %+v, want only zero-filled spares", c)
	}
	if err := j.Trim(context.Background(), j.LastSeq()); err != nil {
		t.Fatal(err)
	}
	appendRolling(t, j, 24, 100)
	if d := j.Rolls(); d.Retired == 0 || d.Created != 0 {
		t.Fatalf("after a trim: %+v, want retired segments reused", d)
	}

	plain := openIn(t, t.TempDir(), journal.Options{SegmentSize: aheadSize})
	defer plain.Close()
	for i := range 24 {
		mustAppend(t, plain, batch("shop", fmt.Sprint("p", i), 20, i))
	}
	if c := plain.Rolls(); c.Created < 2 || c.Retired != 0 || c.Zeroed != 0 {
		t.Fatalf("append-only: %+v, want only created segments", c)
	}
}

// TestWantsTrim: the journal asks for a trim when one would give it a
// segment to write over (WriteAhead, its oldest segment wholly at or
// below the position, fewer spares than it keeps), and only then.
func TestWantsTrim(t *testing.T) {
	dir := t.TempDir()
	j := openIn(t, dir, aheadOpts())
	defer j.Close()
	mustAppend(t, j, batch("shop", "a", 20, 0))
	if j.WantsTrim(j.LastSeq()) {
		t.Fatal("one segment: a trim frees nothing, yet WantsTrim")
	}
	appendRolling(t, j, 24, 1)
	if !j.WantsTrim(j.LastSeq()) {
		t.Fatal("whole segments behind the position: WantsTrim is false")
	}
	if j.WantsTrim(0) {
		t.Fatal("nothing applied: WantsTrim is true")
	}
	if err := j.Trim(context.Background(), j.LastSeq()); err != nil {
		t.Fatal(err)
	}
	if j.WantsTrim(j.LastSeq()) {
		t.Fatal("after the trim: WantsTrim is still true")
	}

	plain := openIn(t, t.TempDir(), journal.Options{SegmentSize: aheadSize})
	defer plain.Close()
	for i := range 6 {
		mustAppend(t, plain, batch("shop", fmt.Sprint("p", i), 20, i))
	}
	if plain.WantsTrim(plain.LastSeq()) {
		t.Fatal("append-only journal: WantsTrim is true")
	}
}

// TestZeroFillWaitsAfterARoll: no spare is zero-filled until the last
// roll is ZeroFillAfter old; then one is. Also with syncs as slow as a
// loaded disk's: the time is measured from before the append that rolls
// (the roll is at or after it), not from its answer, which comes a sync
// after the roll.
func TestZeroFillWaitsAfterARoll(t *testing.T) {
	for _, slow := range []time.Duration{0, 300 * time.Millisecond} {
		t.Run(fmt.Sprint("sync+", slow), func(t *testing.T) {
			dir := t.TempDir()
			opt := journal.WithWrap(aheadOpts(), func(f journal.SegFile) journal.SegFile { return slowSync{f, slow} })
			opt.ZeroFillAfter = 1500 * time.Millisecond
			j := openIn(t, dir, opt)
			defer j.Close()
			journal.SpareReady(t, j) // none rolled yet: made at once
			var before time.Time
			for i := 0; j.Rolls().Zeroed == 0; i++ {
				before = time.Now()
				mustAppend(t, j, batch("shop", fmt.Sprint("f", i), 20, i))
			}
			m, _ := filepath.Glob(filepath.Join(dir, "journal", "*.spare*"))
			if len(m) != 0 && time.Since(before) < opt.ZeroFillAfter {
				t.Fatalf("right after a roll: spare files %v, want none before %v", m, opt.ZeroFillAfter)
			}
			journal.SpareReady(t, j)
			if took := time.Since(before); took < opt.ZeroFillAfter {
				t.Fatalf("a spare was ready %v after the roll, before ZeroFillAfter (%v)", took, opt.ZeroFillAfter)
			}
		})
	}
}

// slowSync is a segment file whose fdatasync takes d longer.
type slowSync struct {
	journal.SegFile
	d time.Duration
}

func (f slowSync) Datasync() error {
	time.Sleep(f.d)
	return f.SegFile.Datasync()
}

// TestSparesOfLargerSegmentsGo: a journal keeps no spare file larger
// than twice its segment size, from Open (spares a journal with larger
// segments left) or from Trim (its segments): written over as segments
// and retired again, such files would hold their surplus for good, and a
// smaller --journal-segment-size would never give the disk back.
func TestSparesOfLargerSegmentsGo(t *testing.T) {
	dir := t.TempDir()
	big := aheadOpts()
	big.SegmentSize = 8 * aheadSize
	j := openIn(t, dir, big)
	for i := range 240 {
		mustAppend(t, j, batch("shop", fmt.Sprint("b", i), 20, i))
	}
	if err := j.Trim(context.Background(), j.LastSeq()); err != nil {
		t.Fatal(err)
	}
	journal.SpareReady(t, j)
	j.Close()
	large := func(paths []string) (out []string) {
		for _, p := range paths {
			if fi, err := os.Stat(p); err == nil && fi.Size() > 2*aheadSize {
				out = append(out, fmt.Sprintf("%s (%d bytes)", filepath.Base(p), fi.Size()))
			}
		}
		return out
	}
	if len(large(spares(t, dir))) == 0 || len(large(segments(t, dir))) == 0 {
		t.Fatalf("setup: spares %v, segments %v: want large ones of both", spares(t, dir), segments(t, dir))
	}

	j = openIn(t, dir, aheadOpts())
	defer j.Close()
	if l := large(spares(t, dir)); len(l) != 0 {
		t.Fatalf("after Open with %d-byte segments: spares %v", aheadSize, l)
	}
	appendRolling(t, j, 24, 1000)
	if err := j.Trim(context.Background(), j.LastSeq()); err != nil {
		t.Fatal(err)
	}
	if l := large(spares(t, dir)); len(l) != 0 {
		t.Fatalf("after a Trim of the larger segments: spares %v", l)
	}
	noQuarantine(t, j, dir)
}

// TestNoSpareKeptUnderDiskPressure: while the file system has less than
// four segments' worth free, spares left by an earlier process are
// removed at Open, no trimmed segment is retired as a spare and none is
// zero-filled; with room, the same leftovers are kept.
func TestNoSpareKeptUnderDiskPressure(t *testing.T) {
	for _, short := range []bool{true, false} {
		t.Run(fmt.Sprintf("short=%v", short), func(t *testing.T) {
			dir := t.TempDir()
			jdir := filepath.Join(dir, "journal")
			if err := os.MkdirAll(jdir, 0o750); err != nil {
				t.Fatal(err)
			}
			left := filepath.Join(jdir, "1-1.spare")
			if err := os.WriteFile(left, make([]byte, aheadSize), 0o640); err != nil {
				t.Fatal(err)
			}
			free := int64(4 * aheadSize)
			if short {
				free--
			}
			j := openIn(t, dir, journal.WithFree(aheadOpts(), func() int64 { return free }))
			defer j.Close()
			if _, err := os.Stat(left); short != os.IsNotExist(err) {
				t.Fatalf("short of room %v: the leftover spare's stat says %v", short, err)
			}
			if !short {
				return
			}
			for i := range 24 {
				mustAppend(t, j, batch("shop", fmt.Sprint("f", i), 20, i))
			}
			if err := j.Trim(context.Background(), j.LastSeq()); err != nil {
				t.Fatal(err)
			}
			if got := spares(t, dir); len(got) != 0 {
				t.Fatalf("spare files %v while short of room", got)
			}
			if c := j.Rolls(); c.Retired != 0 || c.Zeroed != 0 || c.Created < 2 {
				t.Fatalf("while short of room: %+v, want only created segments", c)
			}
		})
	}
}
