package journal_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/drainpipe/drainpipe/journal"
)

// failingSync is a real segment file whose fdatasync fails while fail
// is set.
type failingSync struct {
	journal.SegFile
	fail *atomic.Bool
}

func (f failingSync) Datasync() error {
	if f.fail.Load() {
		return syscall.EIO
	}
	return f.SegFile.Datasync()
}

// TestRollAfterALeftoverSegment: a roll whose sync failed and whose
// clean-up could not remove the new file leaves it behind; the next roll
// for the same records uses it (it holds no record) instead of failing
// on it until a restart, and every record is read, after a restart too.
func TestRollAfterALeftoverSegment(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var fail atomic.Bool
	opt := journal.WithWrap(journal.Options{SegmentSize: 1}, func(f journal.SegFile) journal.SegFile { return failingSync{f, &fail} })
	opt = journal.WithRemove(opt, func(name string) error {
		if fail.Load() {
			return &os.PathError{Op: "remove", Path: name, Err: syscall.EIO}
		}
		return os.Remove(name)
	})
	j := openIn(t, dir, opt)
	defer j.Close()
	mustAppend(t, j, batch("a", "f0", 5, 0))
	fail.Store(true)
	for range 2 {
		if _, _, err := j.Append(ctx, batch("a", "f1", 5, 1)); err == nil {
			t.Fatal("append succeeded while its segment could not be synced")
		}
	}
	if segs := segments(t, dir); len(segs) != 2 || size(t, segs[1]) != journal.SegmentHeaderSize {
		t.Fatalf("segments %v, want the first and the leftover", segs)
	}
	fail.Store(false)
	for i := 1; i < 4; i++ {
		if seq := mustAppend(t, j, batch("a", fmt.Sprint("f", i), 5, i)); seq != int64(i+1) {
			t.Fatalf("seq %d, want %d", seq, i+1)
		}
	}
	if n := len(readAll(t, j)); n != 4 {
		t.Fatalf("read %d records, want 4", n)
	}
	j.Close()
	j = openIn(t, dir, journal.Options{SegmentSize: 1})
	defer j.Close()
	if recs := readAll(t, j); len(recs) != 4 || recs[3].Seq != 4 || j.Quarantined() != 0 {
		t.Fatalf("after restart: %d records, %d quarantined", len(recs), j.Quarantined())
	}
}

// TestRollLeavesAFileThatMayHoldRecords: a file named for the next
// segment that is larger than a header (so it may hold records) is not
// overwritten: appends fail and the file stays as it was.
func TestRollLeavesAFileThatMayHoldRecords(t *testing.T) {
	dir := t.TempDir()
	j := openIn(t, dir, journal.Options{SegmentSize: 1})
	defer j.Close()
	mustAppend(t, j, batch("a", "f0", 5, 0))
	stranger := filepath.Join(dir, "journal", "00000000000000000002.seg")
	junk := bytes.Repeat([]byte("x"), 100)
	if err := os.WriteFile(stranger, junk, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.Append(context.Background(), batch("a", "f1", 5, 1)); err == nil {
		t.Fatal("append went into a file that may hold records")
	}
	if got, _ := os.ReadFile(stranger); !bytes.Equal(got, junk) {
		t.Fatal("the file was changed")
	}
}

// TestLastSegmentWithoutHeader: a last segment whose creation was cut
// short (empty, or part of its header) holds no record; the next append
// gives it a header and goes into it, and the numbering goes on from its
// name.
func TestLastSegmentWithoutHeader(t *testing.T) {
	for _, n := range []int{0, 10} {
		t.Run(fmt.Sprint(n, "-bytes"), func(t *testing.T) {
			dir := t.TempDir()
			j := openIn(t, dir, journal.Options{})
			mustAppend(t, j, batch("a", "f0", 5, 0))
			j.Close()
			first := segments(t, dir)[0]
			hdr, err := os.ReadFile(first)
			if err != nil {
				t.Fatal(err)
			}
			next := filepath.Join(dir, "journal", "00000000000000000002.seg")
			if err := os.WriteFile(next, hdr[:n], 0o640); err != nil {
				t.Fatal(err)
			}
			j = openIn(t, dir, journal.Options{})
			defer j.Close()
			if j.LastSeq() != 1 || j.Quarantined() != 0 {
				t.Fatalf("LastSeq %d, %d quarantined", j.LastSeq(), j.Quarantined())
			}
			if seq := mustAppend(t, j, batch("a", "f1", 5, 1)); seq != 2 {
				t.Fatalf("seq %d, want 2", seq)
			}
			if segs := segments(t, dir); len(segs) != 2 || size(t, next) <= journal.SegmentHeaderSize {
				t.Fatalf("segments %v", segs)
			}
			j.Close()
			j = openIn(t, dir, journal.Options{})
			if recs := readAll(t, j); len(recs) != 2 || recs[1].Seq != 2 {
				t.Fatalf("%d records after restart", len(recs))
			}
		})
	}
}

// TestDamagedSegmentHeader: damage to a segment's header is quarantined
// and counted. Where it spared the seed the records still check and are
// read; where it hit the seed they cannot be told from damage and are
// reported as such (the first as Damaged for its app), and numbering
// goes on after the seqs their headers claim. Either way nothing more is
// appended to that segment.
func TestDamagedSegmentHeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		at     int64
		intact int
	}{{"magic", 1, 3}, {"checksum", 25, 3}, {"seed", 12, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			threeRecords(t, dir)
			seg := segments(t, dir)[0]
			corrupt(t, seg, tc.at)
			j := openIn(t, dir, journal.Options{})
			defer j.Close()
			if j.Quarantined() < 1 {
				t.Fatal("the damaged header was not quarantined")
			}
			if j.LastSeq() != 3 {
				t.Fatalf("LastSeq %d, want 3", j.LastSeq())
			}
			if seq := mustAppend(t, j, batch("shop", "f3", 5, 3)); seq != 4 {
				t.Fatalf("seq %d, want 4", seq)
			}
			if segs := segments(t, dir); len(segs) != 2 {
				t.Fatalf("segments %v, want a new one after the damaged one", segs)
			}
			recs := readAll(t, j)
			intact := 0
			for _, r := range recs {
				if !r.Damaged {
					intact++
				}
			}
			if intact != tc.intact+1 || recs[len(recs)-1].Seq != 4 {
				t.Fatalf("%d intact records of %d, want %d", intact, len(recs), tc.intact+1)
			}
		})
	}
}

// TestHandoffChecksAcrossRolls: records read right after their commit
// come from memory, checked against their checksums under the seed of
// the segment each went to; across rolls none is taken for a changed
// body (which would log an error and read every record from the files).
func TestHandoffChecksAcrossRolls(t *testing.T) {
	var log bytes.Buffer
	var mu sync.Mutex
	dir := t.TempDir()
	j := openIn(t, dir, journal.Options{SegmentSize: 2 << 10, Log: slog.New(slog.NewTextHandler(lockedWriter{&log, &mu}, nil))})
	defer j.Close()
	for i := range 20 {
		mustAppend(t, j, batch("a", fmt.Sprint("f", i), 10, i))
	}
	if n := len(segments(t, dir)); n < 3 {
		t.Fatalf("%d segments, want several", n)
	}
	if recs := readAll(t, j); len(recs) != 20 {
		t.Fatalf("read %d records", len(recs))
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(log.String(), "changed in memory") {
		t.Fatalf("a hand-off record failed its check:\n%s", log.String())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
