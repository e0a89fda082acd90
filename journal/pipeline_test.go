package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/journal"
)

// gate holds the segment files' fdatasyncs when armed, one at a time, so
// a test can act while a group's sync is in flight and then let it
// succeed or fail; it also counts the writes and the files opened.
type gate struct {
	mu    sync.Mutex
	armed int             // how many of the next syncs to hold
	held  chan chan error // a held sync sends its release here
	// writes counts the segment writes that returned, files the
	// segment files opened for writing.
	writes, files atomic.Int64
	full          atomic.Bool // writes fail with ENOSPC, half done
}

func newGate() *gate { return &gate{held: make(chan chan error)} }

func (g *gate) arm(n int) {
	g.mu.Lock()
	g.armed += n
	g.mu.Unlock()
}

// hold waits for a sync to be held and returns its release: nil lets it
// sync, an error fails it.
func (g *gate) hold(t *testing.T) chan<- error {
	t.Helper()
	select {
	case r := <-g.held:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no fdatasync was held")
		return nil
	}
}

func (g *gate) wrap(opt journal.Options) journal.Options {
	return journal.WithWrap(opt, func(f journal.SegFile) journal.SegFile {
		g.files.Add(1)
		return gatedFile{f, g}
	})
}

type gatedFile struct {
	journal.SegFile
	g *gate
}

func (f gatedFile) Datasync() error {
	f.g.mu.Lock()
	hold := f.g.armed > 0
	if hold {
		f.g.armed--
	}
	f.g.mu.Unlock()
	if hold {
		release := make(chan error)
		f.g.held <- release
		if err := <-release; err != nil {
			return err
		}
	}
	return f.SegFile.Datasync()
}

func (f gatedFile) WritevAt(bufs [][]byte, off int64) (int, error) {
	defer f.g.writes.Add(1)
	if f.g.full.Load() {
		p := bytes.Join(bufs, nil)
		n, _ := f.SegFile.WritevAt([][]byte{p[:len(p)/2]}, off)
		return n, &os.PathError{Op: "pwritev", Path: "segment", Err: syscall.ENOSPC}
	}
	return f.SegFile.WritevAt(bufs, off)
}

type result struct {
	seq int64
	dup bool
	err error
}

// appendAsync appends b in a goroutine; the result arrives on the
// channel once the journal has answered.
func appendAsync(j *journal.Journal, b drainpipe.Batch) <-chan result {
	c := make(chan result, 1)
	go func() {
		seq, dup, err := j.Append(context.Background(), b)
		c <- result{seq, dup, err}
	}()
	return c
}

func answered(c <-chan result) bool { return len(c) > 0 }

func wait(t *testing.T, c <-chan result) result {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("append not answered")
		return result{}
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// writtenDuringSync appends b with its fdatasync held, then c, and
// returns once c is written (the writer does not wait for b's sync):
// their answers, and the release of b's sync.
func writtenDuringSync(t *testing.T, j *journal.Journal, g *gate, b, c drainpipe.Batch) (bc, cc <-chan result, release chan<- error) {
	t.Helper()
	g.arm(1)
	bc = appendAsync(j, b)
	release = g.hold(t)
	w := g.writes.Load()
	cc = appendAsync(j, c)
	waitFor(t, "C's write during B's sync", func() bool { return g.writes.Load() > w })
	return bc, cc, release
}

// TestGroupWrittenDuringASyncWaitsForItsOwnSync: a group written while
// the sync of the group before it runs is not acknowledged, nor readable,
// by that sync (it started before the write): only after a second sync.
func TestGroupWrittenDuringASyncWaitsForItsOwnSync(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	j := openIn(t, dir, g.wrap(journal.Options{}))
	defer j.Close()
	a := mustAppend(t, j, batch("a", "a", 10, 0))

	bc, cc, releaseB := writtenDuringSync(t, j, g, batch("a", "b", 10, 1), batch("a", "c", 10, 2))
	g.arm(1) // hold the next sync too
	releaseB <- nil
	b := wait(t, bc)
	if b.err != nil || b.seq != a+1 {
		t.Fatalf("B: %+v", b)
	}
	releaseC := g.hold(t) // C's own sync, started after its write
	if answered(cc) {
		t.Fatal("C was acknowledged by the sync that started before its write")
	}
	if j.LastSeq() != b.seq {
		t.Fatalf("LastSeq %d while C's sync is in flight, want %d", j.LastSeq(), b.seq)
	}
	if recs := readAll(t, j); len(recs) != 2 || recs[1].Seq != b.seq {
		t.Fatalf("read %d records while C's sync is in flight, want A and B", len(recs))
	}
	releaseC <- nil
	if c := wait(t, cc); c.err != nil || c.seq != b.seq+1 {
		t.Fatalf("C: %+v", c)
	}
	if recs := readAll(t, j); len(recs) != 3 {
		t.Fatalf("read %d records, want 3", len(recs))
	}
}

// TestFailedSyncFailsTheGroupsWrittenAfterIt: when the fdatasync of group
// B fails, group C, written while it ran, fails too (its bytes follow
// B's, which may be lost); neither is read, the segment is cut back to
// the last synced byte, the next append reuses B's seq, and a restart
// reads exactly the acknowledged records.
func TestFailedSyncFailsTheGroupsWrittenAfterIt(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	j := openIn(t, dir, g.wrap(journal.Options{}))
	a := batch("a", "a", 10, 0)
	mustAppend(t, j, a)
	seg := segments(t, dir)[0]
	good := size(t, seg)

	bc, cc, releaseB := writtenDuringSync(t, j, g, batch("a", "b", 10, 1), batch("a", "c", 10, 2))
	waitFor(t, "C's group queued", func() bool { return journal.Queued(j) == 1 })
	releaseB <- syscall.EIO
	for name, c := range map[string]<-chan result{"B": bc, "C": cc} {
		if r := wait(t, c); !errors.Is(r.err, syscall.EIO) || r.seq != 0 || r.dup {
			t.Errorf("%s after B's failed sync: %+v, want EIO", name, r)
		}
	}
	if j.LastSeq() != 1 {
		t.Fatalf("LastSeq %d after the failed sync, want 1", j.LastSeq())
	}
	if recs := readAll(t, j); len(recs) != 1 {
		t.Fatalf("read %d records after the failed sync, want 1", len(recs))
	}
	if got := size(t, seg); got != good {
		t.Fatalf("segment is %d bytes after the failed sync, want %d", got, good)
	}
	// The retries are stored: the failed groups' frame ids were dropped.
	c := batch("a", "c", 10, 2)
	if seq := mustAppend(t, j, c); seq != 2 {
		t.Fatalf("retry of C got seq %d, want 2", seq)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openIn(t, dir, journal.Options{})
	defer j.Close()
	recs := readAll(t, j)
	if len(recs) != 2 || recs[0].FrameID != "a" || recs[1].FrameID != "c" || !bytes.Equal(recs[1].Body, c.Body) {
		t.Fatalf("after restart: %d records", len(recs))
	}
}

// TestDuplicateOfAGroupInFlightFailsWithIt: the retry of a batch whose
// group is still being synced is a duplicate only once that sync
// succeeds; when it fails, the retry fails too (it was never stored).
func TestDuplicateOfAGroupInFlightFailsWithIt(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			g := newGate()
			j := openIn(t, t.TempDir(), g.wrap(journal.Options{}))
			defer j.Close()
			mustAppend(t, j, batch("a", "a", 10, 0)) // the first segment
			b := batch("a", "b", 10, 1)
			g.arm(1)
			bc := appendAsync(j, b)
			release := g.hold(t)
			rc := appendAsync(j, b) // the retry, a duplicate in pending
			waitFor(t, "the retry's group queued", func() bool { return journal.Queued(j) == 1 })
			if answered(rc) {
				t.Fatal("the retry was answered before the first's sync returned")
			}
			if fail {
				release <- syscall.EIO
				for _, c := range []<-chan result{bc, rc} {
					if r := wait(t, c); !errors.Is(r.err, syscall.EIO) || r.dup {
						t.Fatalf("after the failed sync: %+v", r)
					}
				}
				if seq := mustAppend(t, j, b); seq != 2 {
					t.Fatalf("the next retry got seq %d, want 2", seq)
				}
				return
			}
			release <- nil
			if r := wait(t, bc); r.err != nil || r.seq != 2 {
				t.Fatalf("first: %+v", r)
			}
			if r := wait(t, rc); r.err != nil || !r.dup {
				t.Fatalf("retry: %+v, want a duplicate", r)
			}
		})
	}
}

// TestRollWaitsForTheSyncInFlight: a group that needs a new segment is
// written only once the groups in flight in the last one are synced (the
// roll closes that file).
func TestRollWaitsForTheSyncInFlight(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	j := openIn(t, dir, g.wrap(journal.Options{SegmentSize: 1}))
	defer j.Close()
	mustAppend(t, j, batch("a", "a", 10, 0))
	g.arm(2)
	bc := appendAsync(j, batch("a", "b", 10, 1)) // rolls: syncs the new file
	release := g.hold(t)
	release <- nil      // the roll's sync
	release = g.hold(t) // B's sync
	files := g.files.Load()
	cc := appendAsync(j, batch("a", "c", 10, 2))
	time.Sleep(20 * time.Millisecond)
	if g.files.Load() != files || answered(cc) {
		t.Fatal("a new segment was opened while the last one's sync was in flight")
	}
	release <- nil
	if r := wait(t, bc); r.err != nil || r.seq != 2 {
		t.Fatalf("B: %+v", r)
	}
	if r := wait(t, cc); r.err != nil || r.seq != 3 {
		t.Fatalf("C: %+v", r)
	}
	if n := len(segments(t, dir)); n != 3 {
		t.Fatalf("%d segments, want 3", n)
	}
	if recs := readAll(t, j); len(recs) != 3 {
		t.Fatalf("read %d records, want 3", len(recs))
	}
}

// TestFailedWriteDuringASyncKeepsTheGroupBefore: a write that fails
// while the group before it is being synced fails only its own group;
// the one before is acknowledged by its sync and kept when the segment is
// cut back.
func TestFailedWriteDuringASyncKeepsTheGroupBefore(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	j := openIn(t, dir, g.wrap(journal.Options{}))
	mustAppend(t, j, batch("a", "a", 10, 0))
	g.arm(1)
	b := batch("a", "b", 10, 1)
	bc := appendAsync(j, b)
	release := g.hold(t)
	g.full.Store(true)
	w := g.writes.Load()
	cc := appendAsync(j, batch("a", "c", 10, 2))
	waitFor(t, "C's failed write", func() bool { return g.writes.Load() > w })
	g.full.Store(false)
	release <- nil
	if r := wait(t, bc); r.err != nil || r.seq != 2 {
		t.Fatalf("B: %+v", r)
	}
	if r := wait(t, cc); !errors.Is(r.err, syscall.ENOSPC) {
		t.Fatalf("C: %+v, want ENOSPC", r)
	}
	d := batch("a", "d", 10, 3)
	if seq := mustAppend(t, j, d); seq != 3 {
		t.Fatalf("D got seq %d, want 3", seq)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openIn(t, dir, journal.Options{})
	defer j.Close()
	recs := readAll(t, j)
	if len(recs) != 3 || recs[1].FrameID != "b" || recs[2].FrameID != "d" || !bytes.Equal(recs[1].Body, b.Body) || j.Quarantined() != 0 {
		t.Fatalf("after restart: %d records, %d quarantined", len(recs), j.Quarantined())
	}
}

// TestCloseWaitsForTheGroupsInFlight: Close lets the groups written
// before it finish their sync and answers them; they are read after a
// restart.
func TestCloseWaitsForTheGroupsInFlight(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	j := openIn(t, dir, g.wrap(journal.Options{}))
	mustAppend(t, j, batch("a", "a", 10, 0))
	bc, cc, release := writtenDuringSync(t, j, g, batch("a", "b", 10, 1), batch("a", "c", 10, 2))
	closed := make(chan error, 1)
	go func() { closed <- j.Close() }()
	time.Sleep(20 * time.Millisecond)
	if len(closed) > 0 {
		t.Fatal("Close returned while a sync was in flight")
	}
	release <- nil
	for _, c := range []<-chan result{bc, cc} {
		if r := wait(t, c); r.err != nil {
			t.Fatalf("append before Close: %+v", r)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	j = openIn(t, dir, journal.Options{})
	defer j.Close()
	if recs := readAll(t, j); len(recs) != 3 {
		t.Fatalf("after restart: %d records, want 3", len(recs))
	}
}

// TestSerialCommitWritesAfterTheSync: with SerialCommit the writer does
// not write a group while the sync of the one before runs.
func TestSerialCommitWritesAfterTheSync(t *testing.T) {
	g := newGate()
	j := openIn(t, t.TempDir(), g.wrap(journal.Options{SerialCommit: true}))
	defer j.Close()
	mustAppend(t, j, batch("a", "a", 10, 0))
	g.arm(1)
	bc := appendAsync(j, batch("a", "b", 10, 1))
	release := g.hold(t)
	w := g.writes.Load()
	cc := appendAsync(j, batch("a", "c", 10, 2))
	time.Sleep(20 * time.Millisecond)
	if g.writes.Load() != w {
		t.Fatal("C was written while B's sync ran")
	}
	release <- nil
	if r := wait(t, bc); r.err != nil || r.seq != 2 {
		t.Fatalf("B: %+v", r)
	}
	if r := wait(t, cc); r.err != nil || r.seq != 3 {
		t.Fatalf("C: %+v", r)
	}
}
