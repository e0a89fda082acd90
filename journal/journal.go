// Package journal is drainpipe's embedded journal: drain batches appended
// to checksummed segment files, one fdatasync per group of appends.
//
// Records live in segment files under one directory, each named for the
// first sequence number it may hold (zero-padded) and rolled at
// Options.SegmentSize. Each record carries a CRC-32C over its segment's
// random seed (in the segment's header, never shown to a client, so that
// a record forged inside a batch body does not check) and everything
// after its length (sequence number included; the format is in
// record.go). A single writer goroutine takes every append waiting and
// writes them in one write; a syncer goroutine makes every group written
// since its last fdatasync durable with one more, and only then answers
// each append (the writer writes the next group meanwhile, see writer);
// a new segment file, its header and its directory are fsynced before
// any record in it is acknowledged. The body's part of each
// record's checksum is computed by the appending goroutine, outside the
// writer's serial section; the writer finishes it over the segment's seed
// and the header (crcCombine).
//
// Deduplication of Logplex-Frame-Ids (24 hours, across restarts) uses a
// FrameIndex (the frames table of journal.db, see package sqlite): an
// append looks its id up there and among the ids not yet written to it,
// which a background goroutine writes in batches. A segment is deleted by
// Trim only once every frame id in it is in the index.
package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/internal/batchcodec"
	"github.com/drainpipe/drainpipe/internal/groupcommit"
	"github.com/drainpipe/drainpipe/internal/handoff"
)

// DefaultSegmentSize is the size at which a segment file is rolled.
const DefaultSegmentSize = 64 << 20

// MaxReadBytes bounds the bodies one Read returns (at least one record is
// always returned).
const MaxReadBytes = 32 << 20

const (
	maxGroup      = 256      // appends in one group commit, at most
	maxGroupBytes = 16 << 20 // stop adding appends to a group past this
	maxFreeGroups = 16       // answered groups kept for reuse
	// persistEvery and persistPending say when the frame ids of new
	// records are written to the index: every second, or sooner once this
	// many wait (they are in memory until then).
	persistEvery   = time.Second
	persistPending = 8192
	forgetEvery    = time.Minute
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("journal closed")

// Frame is one remembered Logplex-Frame-Id.
type Frame struct {
	App, ID string
	SeenAt  time.Time
}

// FrameIndex is the persistent index of frame ids (journal.db's frames
// table in the embedded server).
type FrameIndex interface {
	// Seen reports whether (app, id) is in the index.
	Seen(ctx context.Context, app, id string) (bool, error)
	// Remember adds frames (ignoring those already there), durably
	// before it returns.
	Remember(ctx context.Context, frames []Frame) error
	// Forget removes the frames seen before t.
	Forget(ctx context.Context, before time.Time) error
	Close() error
}

// Options configure a Journal.
type Options struct {
	// Frames is the frame id index; the Journal closes it on Close.
	Frames FrameIndex
	Log    *slog.Logger
	// SegmentSize is the size at which a segment is rolled
	// (DefaultSegmentSize when 0).
	SegmentSize int64
	// Compress stores bodies of 4 KiB and more S2-packed (see
	// docs/architecture.md for why the default is not to).
	Compress bool
	// WriteAhead has new segments prepared ahead (spare.go): a trimmed
	// segment's file kept and reused, or a file of SegmentSize zeroes,
	// so that appends overwrite written blocks, whose fdatasync need not
	// commit the file's size (about half the latency on ext4,
	// BenchmarkDatasync). Up to maxSpares spare files of about
	// SegmentSize each are kept beside the segments.
	WriteAhead bool
	// ZeroFillAfter is how long after the last roll the preparer waits
	// before it zero-fills a new spare (WriteAhead); default 2 s,
	// negative for no wait. While segments roll faster than that (a
	// fast drain fills 64 MiB in under a second), new segments come
	// from Trim's retired ones (the aggregator trims as soon as one is
	// wanted, WantsTrim), or are created and appended to: zero-filling
	// 64 MiB per segment cost as much CPU and twice the disk writes as
	// the cheaper syncs gave back (docs/BENCHMARKS.md).
	ZeroFillAfter time.Duration
	// SerialCommit has the writer wait for each group's fdatasync before
	// it writes the next (the commit before session 5) instead of
	// writing it while that sync runs. Measured in session 5, the
	// serial commit's appends waited about 10% longer and it used about
	// 4% less CPU, at the same rate (docs/BENCHMARKS.md).
	SerialCommit bool

	// wrap, when set, wraps each segment file opened for writing (tests
	// inject write failures with it).
	wrap func(segFile) segFile
	// remove removes a file (os.Remove unless a test fails it).
	remove func(name string) error
	// free, when set, stands in for the free bytes of the journal's file
	// system (roomForSpare), for the tests.
	free func() int64
}

// segFile is a segment file open for writing.
type segFile interface {
	// WritevAt writes bufs, one after the other, at off (pwritev).
	WritevAt(bufs [][]byte, off int64) (int, error)
	Truncate(size int64) error
	// Datasync makes the written bytes durable (fdatasync).
	Datasync() error
	Close() error
}

type osFile struct{ *os.File }

func (f osFile) Datasync() error { return datasync(f.File) }

// openSegFile opens path for writing with flag.
func (j *Journal) openSegFile(path string, flag int) (segFile, error) {
	f, err := os.OpenFile(path, flag, 0o640)
	if err != nil {
		return nil, err
	}
	var sf segFile = osFile{f}
	if j.opt.wrap != nil {
		sf = j.opt.wrap(sf)
	}
	return sf, nil
}

// Journal is the segment-file journal. It implements drainpipe.Journal.
type Journal struct {
	dir, qdir string
	opt       Options
	log       *slog.Logger
	idx       FrameIndex
	// filter rules out most new frame ids without asking idx (nil when
	// idx is not a FrameLister).
	filter *idFilter

	reqs   chan *appendReq
	notify chan struct{}
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the writer has returned
	wg     sync.WaitGroup
	once   sync.Once
	// closeErr is Close's outcome, for every call.
	closeErr error

	// wmu is held by the writer while it numbers and writes a group
	// (and by Import, and by the syncer to cut back after a failed
	// sync): whoever holds it owns the end of the last segment.
	wmu    sync.Mutex
	active segFile // the last segment, open for writing
	broken error   // a failed write that could not be undone yet
	// wend and wlast are the writer's position: the end of the bytes
	// written to the last segment and the highest seq numbered, synced
	// or not. The committed position (what readers see) is the last
	// segment's size and lastSeq, moved on by the syncer.
	wend, wlast int64
	hdrs        []byte   // the group's record headers
	spans       []int    // where each header ends in hdrs
	iov         [][]byte // headers and bodies, in file order
	kickPersist bool

	// qmu guards the pipeline between the writer and the syncer: the
	// groups written and waiting for a sync (queue, in file order),
	// whether a sync is running, the error of a failed sync that the
	// segment has not been cut back from yet, and the free groups.
	qmu      sync.Mutex
	qcond    *sync.Cond // signalled whenever any of those changes
	queue    []*group
	syncing  bool
	syncErr  error
	wexited  bool // the writer has returned: the syncer ends once idle
	freeList []*group

	// smu guards segs and the size and last of each.
	smu  sync.RWMutex
	segs []*segment

	lastSeq atomic.Int64
	// trimmed is the highest Trim: Read returns nothing at or below it,
	// though Trim deletes only whole segments.
	trimmed atomic.Int64
	handoff *handoff.Handoff

	// fmu guards pending, the frame ids of committed (or being
	// committed) records not yet in the index, and gen, which counts
	// the times ids left pending for the index.
	fmu        sync.Mutex
	pending    map[frameKey]pendingFrame
	gen        atomic.Uint64
	pmu        sync.Mutex // one persist at a time
	persisted  atomic.Int64
	kick       chan struct{}
	lastForget time.Time // guarded by pmu

	rmu sync.Mutex // the reader's cursor into the files
	cur cursor

	// spmu guards spare, the spare segment files (WriteAhead); the
	// preparer goroutine readies them, prepKick wakes it.
	spmu     sync.Mutex
	spare    spares
	prepKick chan struct{}

	packBufs    sync.Pool
	bodies      chan []byte // body buffers for BodyBuffer, taken back
	quarantined atomic.Int64
	rolls       [numRollKinds]atomic.Int64 // by rollKind
	lastRoll    atomic.Int64               // when the last segment began, Unix ns
}

type frameKey struct{ app, id string }

type pendingFrame struct {
	seq int64
	at  int64
}

// cursor remembers where the last read from the files ended.
type cursor struct {
	seg, after, off int64
}

type appendReq struct {
	b      drainpipe.Batch
	codec  uint8
	stored []byte
	crc    uint32 // batchcodec.RecordCRC when bodies may be packed (Options.Compress)
	// storedCRC is the CRC-32C of stored, computed by Append's caller
	// so that the writer only finishes the record's checksum
	// (crcCombine); hasStoredCRC says it was (not for Import's records).
	storedCRC    uint32
	hasStoredCRC bool
	owned        bool   // b.Body is from BodyBuffer and given up (AppendOwned)
	gen          uint64 // Journal.gen when the index said the id was new
	fixed        bool   // seq is given (Import) and the id is not checked
	damaged      bool   // a marker for a record lost before (Import)
	seq          int64
	dup          bool
	err          error
	done         chan struct{} // nil for Import's records
}

// group is one group commit: the appends the writer took together,
// written with one pwritev and acknowledged after an fdatasync that
// started once the write had returned.
type group struct {
	reqs    []*appendReq
	entries []handoff.Entry // the records written, for the hand-off
	added   []frameKey      // the frame ids it put in pending
	seg     *segment        // the segment written to (when size > 0)
	file    segFile
	size    int   // bytes written
	last    int64 // the highest seq written (when size > 0)
	err     error // the outcome, set before the appends are answered
	pooled  bool  // from newGroup, kept for reuse once answered
}

var _ drainpipe.Journal = (*Journal)(nil)

// Open opens the journal in dir (creating it), checking every record's
// checksum: a torn tail of the last segment (never acknowledged) is cut
// off, a damaged record elsewhere is copied to dir/quarantine, logged and
// counted, and reported by Read as Damaged when its app can be read; the
// records around it are kept. The frame ids of the records kept are
// written to the index again.
func Open(ctx context.Context, dir string, opt Options) (*Journal, error) {
	if opt.Frames == nil {
		return nil, errors.New("journal: no frame index")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.ZeroFillAfter == 0 {
		opt.ZeroFillAfter = 2 * time.Second
	}
	if opt.SegmentSize <= 0 {
		opt.SegmentSize = DefaultSegmentSize
	}
	if opt.remove == nil {
		opt.remove = os.Remove
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{
		dir: dir, qdir: filepath.Join(dir, "quarantine"), opt: opt, log: opt.Log, idx: opt.Frames,
		reqs:     make(chan *appendReq, maxGroup),
		notify:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
		pending:  map[frameKey]pendingFrame{},
		kick:     make(chan struct{}, 1),
		bodies:   make(chan []byte, keptBodies),
		prepKick: make(chan struct{}, 1),
	}
	j.packBufs.New = func() any { return new([]byte) }
	if err := j.loadSpares(); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := j.recover(ctx); err != nil {
		if j.active != nil {
			j.active.Close()
		}
		return nil, fmt.Errorf("journal: %w", err)
	}
	if x, ok := opt.Frames.(FrameLister); ok {
		f := newIDFilter(time.Now())
		if err := f.load(ctx, x, time.Now()); err != nil {
			if j.active != nil {
				j.active.Close()
			}
			return nil, fmt.Errorf("journal: read the frame index: %w", err)
		}
		j.filter = f
	}
	j.handoff = handoff.New(j.lastSeq.Load())
	j.handoff.Release = j.reuseBody

	j.persisted.Store(j.lastSeq.Load())
	j.lastForget = time.Now()
	j.wlast = j.lastSeq.Load()
	if n := len(j.segs); n > 0 {
		j.wend = j.segs[n-1].size
	}
	j.qcond = sync.NewCond(&j.qmu)
	j.wg.Add(3)
	go j.writer()
	go j.syncer()
	go j.persister()
	if opt.WriteAhead {
		j.wg.Add(1)
		go j.preparer()
	}
	return j, nil
}

// recover is Open's check of the segments.
func (j *Journal) recover(ctx context.Context) error {
	segs, err := listSegments(j.dir)
	if err != nil {
		return err
	}
	var last int64
	records, damaged := 0, 0
	for i, s := range segs {
		data, err := os.ReadFile(s.path)
		if err != nil {
			return fmt.Errorf("read segment: %w", err)
		}
		final := i == len(segs)-1
		next := int64(1<<63 - 1)
		if !final {
			next = segs[i+1].first
		} else {
			// A process killed between a write and its fdatasync left
			// those records in the page cache only (their appends were
			// not acknowledged). They are made durable before they are
			// trusted: read, and their frame ids remembered so that a
			// retry is answered as a duplicate.
			if j.active, err = j.openSegFile(s.path, os.O_RDWR); err != nil {
				return fmt.Errorf("open segment: %w", err)
			}
			if err := j.active.Datasync(); err != nil {
				return fmt.Errorf("fdatasync %s: %w", s.path, err)
			}
		}
		kind, base, seed := segmentHeader(data)
		s.base, s.seed, s.writable = int64(base), seed, kind == segSeeded
		var frames []Frame
		var slots []slot
		var bad []int
		switch kind {
		case segEmpty:
			// Fewer bytes than a header: a creation cut short (or an
			// empty file from before headers), so no record was ever
			// acknowledged in it. The writer gives it a header before
			// its first append (roll).
			s.size = int64(len(data))
			last = max(last, s.last)
			continue
		case segBadHeader:
			// Damage in the header: the records are checked against
			// the seed as found (spared, they check). Its end is not
			// taken for a torn append: that is told by the checksums,
			// which may all fail here.
			damaged++
			j.quarantine(s, 0, data[:base], "segment header damaged")
			final = false
		}
		end := scan(data, base, s.first-1, seed, func(e *entry, off, n int) {
			records++
			s.last = e.Seq
			slots = append(slots, slot{seq: e.Seq, off: int64(off), n: n})
			if e.FrameID != "" && e.Flags&flagDamaged == 0 {
				frames = append(frames, Frame{App: e.App, ID: e.FrameID, SeenAt: time.Unix(0, e.ReceivedAt)})
			}
		}, func(off, end int, prev, nx int64) {
			damaged++
			bad = append(bad, len(slots))
			if m, ok := marker(data[off:end], prev, nx); ok {
				slots = append(slots, m)
			}
			j.quarantine(s, int64(off), data[off:end], "checksum mismatch at start-up")
		})
		s.size = int64(end)
		if tail := data[end:]; len(tail) > 0 {
			// What follows the last intact record: free space of a
			// segment written ahead (WriteAhead), or an append that a
			// crash tore, or damage (tornLen).
			torn, what := tornLen(tail, s.last), "an incomplete append (never acknowledged)"
			if torn == 0 && final {
				torn, what = damagedNext(tail, s.last), "the next record, its header damaged"
			}
			switch {
			case torn == 0 && (final || s.last >= next-1):
				// Free space: zeroes, or records of the segment this
				// file was before it was retired (numbered before this
				// one, their checksums over another seed). In a segment
				// before the last, only when no seq is missing before
				// the next segment's first.
			case final:
				// An append the crash interrupted before its fdatasync
				// returned, so never acknowledged, or the next record
				// with its header damaged (damagedNext). A copy is kept
				// in quarantine, in case it is damage; then it is
				// cut off: truncated when it ends the file, else
				// zeroed, so that the next start does not take it for
				// a torn append again.
				if _, err := quarantineCopy(j.qdir, s, int64(end), tail[:torn]); err != nil {
					j.log.Warn("journal: cannot keep a copy of the torn tail; cutting it off all the same", "file", s.path, "err", err)
				}
				if err := cutTorn(s.path, int64(end), torn, len(tail)); err != nil {
					return fmt.Errorf("cut the torn tail of %s: %w", s.path, err)
				}
				j.log.Warn("journal: cut off the bytes after the last intact record of the last segment; a copy is in the quarantine directory",
					"file", s.path, "offset", end, "bytes", torn, "found", what)
			default:
				damaged++
				bad = append(bad, len(slots))
				if m, ok := marker(tail, s.last, next); ok {
					slots = append(slots, m)
					s.last = m.seq
				}
				j.quarantine(s, int64(end), tail, "checksum mismatch at start-up")
				s.size = int64(len(data))
			}
		}
		if kind == segBadHeader {
			bad = append(bad, 0)
			if len(data) > base {
				// The records its damage hides may have been
				// acknowledged: numbering goes on after the highest
				// seq their headers claim.
				s.last = max(s.last, min(claimedLast(data[base:], s.last), next-1))
				if s.last < s.first {
					// None claimed: one seq is left out, so that
					// the next segment is not named as this one.
					s.last = min(s.first, next-1)
				}
			}
		}
		if len(bad) > 0 {
			if slots == nil {
				slots = []slot{}
			}
			s.slots, s.scanned = slots, s.size
		}
		if len(frames) > 0 {
			if err := j.idx.Remember(ctx, frames); err != nil {
				return fmt.Errorf("remember the frame ids of %s: %w", s.path, err)
			}
		}
		last = max(last, s.last)
	}
	// A last segment without records (created, then the process stopped
	// before its first append, or that append's write failed) is kept
	// and appended to: once Trim has deleted every segment before it,
	// its name is all that is left of the numbering.
	if n := len(segs); n > 0 {
		last = max(last, segs[n-1].first-1)
	}
	j.segs = segs
	j.lastSeq.Store(last)
	j.log.Info("journal verified", "dir", j.dir, "segments", len(segs), "records", records, "damaged", damaged, "last_seq", last)
	return nil
}

// quarantine copies damaged bytes aside, counts and logs them.
func (j *Journal) quarantine(s *segment, off int64, bad []byte, reason string) {
	fresh, err := quarantineCopy(j.qdir, s, off, bad)
	if err != nil {
		j.log.Error("journal: cannot copy a damaged record to quarantine", "file", s.path, "offset", off, "err", err)
	}
	if fresh {
		j.quarantined.Add(1)
	}
	j.log.Error("journal: damaged record skipped (copied to the quarantine directory); its lines are counted as rejected.corrupt when its app can be read",
		"file", s.path, "offset", off, "bytes", len(bad), "reason", reason)
}

// cutTorn cuts off the torn bytes of the file at path: n bytes at off,
// of the tail of rest bytes there: the file is truncated at off when
// they end it, else they are zeroed (the rest is free space written
// ahead, kept allocated).
func cutTorn(path string, off int64, n, rest int) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if n >= rest {
		err = f.Truncate(off)
	} else {
		_, err = f.WriteAt(make([]byte, n), off)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Quarantined returns how many damaged records this Journal has copied to
// quarantine since it was opened.
func (j *Journal) Quarantined() int64 { return j.quarantined.Load() }

// Notify returns a channel that receives a value after appends, so a
// reader can wait instead of polling.
func (j *Journal) Notify() <-chan struct{} { return j.notify }

// LastSeq returns the highest sequence number committed so far.
func (j *Journal) LastSeq() int64 { return j.lastSeq.Load() }

// Append stores b durably and returns its sequence number. A batch whose
// (App, FrameID) was appended before is not stored again: duplicate is
// true and seq is 0.
//
// The journal keeps b.Body in memory until Read has handed it out, so the
// caller must not change it afterwards (Read checks it against the
// record's checksum and reads the file instead if it was).
func (j *Journal) Append(ctx context.Context, b drainpipe.Batch) (int64, bool, error) {
	return j.append(ctx, b, false)
}

// bodyRound is what BodyBuffer rounds capacities up to, so that a buffer
// serves the next body of about the same size.
const bodyRound = 16 << 10

// keptBodies and keptBodySize bound the body buffers kept for reuse:
// enough for the POSTs in flight and a group commit of them, so about
// 4 MiB at most of buffers of Logplex's size (a read batch of records
// passed at once would otherwise be kept whole).
const (
	keptBodies   = 32
	keptBodySize = 1 << 20
)

// BodyBuffer returns a buffer of n bytes (not zeroed) for a body to give
// to AppendOwned: one taken back from an earlier AppendOwned when one is
// large enough, or a new one.
func (j *Journal) BodyBuffer(n int) []byte {
	select {
	case b := <-j.bodies:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n, (n+bodyRound-1)/bodyRound*bodyRound)
}

// reuseBody keeps b for BodyBuffer, unless enough are kept already or it
// is large.
func (j *Journal) reuseBody(b []byte) {
	if cap(b) > keptBodySize {
		return
	}
	select {
	case j.bodies <- b[:0]:
	default:
	}
}

// AppendOwned is Append for a body from BodyBuffer that the caller gives
// up when it calls: it must not use b.Body again (whatever the outcome).
// The journal reuses the buffer once its reader has passed the record
// (handoff.Handoff.Release), or at once for a duplicate.
func (j *Journal) AppendOwned(ctx context.Context, b drainpipe.Batch) (int64, bool, error) {
	seq, dup, err := j.append(ctx, b, true)
	if dup && err == nil {
		// Not stored: neither the writer nor the hand-off holds it.
		j.reuseBody(b.Body)
	}
	return seq, dup, err
}

func (j *Journal) append(ctx context.Context, b drainpipe.Batch, owned bool) (int64, bool, error) {
	if len(b.App) > 0xffff || len(b.FrameID) > 0xffff {
		return 0, false, errors.New("journal: app name or frame id too long")
	}
	if len(b.Body)+fixedSize+len(b.App)+len(b.FrameID) > maxPayload {
		return 0, false, fmt.Errorf("journal: body of %d bytes is too large", len(b.Body))
	}
	r := &appendReq{b: b, stored: b.Body, owned: owned, done: make(chan struct{})}
	if j.opt.Compress {
		buf := j.packBufs.Get().(*[]byte)
		defer j.packBufs.Put(buf)
		codec, stored := batchcodec.Pack(*buf, b.Body)
		r.codec, r.stored = uint8(codec), stored
		if codec == batchcodec.S2 {
			*buf = stored[:0]
		}
		r.crc = batchcodec.RecordCRC(b.App, b.FrameID, b.ReceivedAt.UnixNano(), b.Dropped, b.Lost, b.Body)
	}
	select {
	case <-j.done:
		return 0, false, ErrClosed
	default:
	}
	r.storedCRC, r.hasStoredCRC = crc32.Checksum(r.stored, batchcodec.Castagnoli), true
	if b.FrameID != "" {
		r.gen = j.gen.Load()
		seen, err := j.seen(ctx, b.App, b.FrameID)
		if err != nil {
			return 0, false, fmt.Errorf("journal: look up frame id: %w", err)
		}
		if seen {
			return 0, true, nil
		}
	}
	if err := groupcommit.Submit(ctx, j.reqs, r, r.done, j.done, j.exited, ErrClosed); err != nil {
		return 0, false, err
	}
	return r.seq, r.dup, r.err
}

// seen reports whether (app, id) is in the index, asking the index only
// when the filter cannot rule it out.
func (j *Journal) seen(ctx context.Context, app, id string) (bool, error) {
	if j.filter != nil && !j.filter.mayHave(app, id) {
		return false, nil
	}
	return j.idx.Seen(ctx, app, id)
}

// The group commit is a pipeline of two goroutines. The writer numbers
// a group of appends and writes it (one pwritev at the end of the bytes
// written so far) while the syncer's fdatasync of the groups before it
// runs. The syncer takes every group written since its last sync, syncs
// once, and only then makes them visible (the segment's size, LastSeq,
// the hand-off, Notify) and answers their appends: a group is
// acknowledged only after a sync that started once its write had
// returned. A failed sync fails every group written since the last sync
// that succeeded (those it covered and those written while it ran), and
// the segment is cut back to its last synced byte before anything more
// is written to it.

// writer takes the appends waiting, in groups, and writes them.
func (j *Journal) writer() {
	defer j.wg.Done()
	defer func() {
		j.qmu.Lock()
		j.wexited = true
		j.qcond.Broadcast()
		j.qmu.Unlock()
	}()
	for {
		var first *appendReq
		select {
		case first = <-j.reqs:
		case <-j.done:
			for {
				select {
				case r := <-j.reqs:
					r.err = ErrClosed
					close(r.done)
				default:
					return
				}
			}
		}
		g := j.newGroup()
		g.reqs = append(g.reqs, first)
		size := len(first.stored)
	more:
		for len(g.reqs) < maxGroup && size < maxGroupBytes {
			select {
			case r := <-j.reqs:
				g.reqs = append(g.reqs, r)
				size += len(r.stored)
			default:
				break more
			}
		}
		j.wmu.Lock()
		err := j.commit(g)
		if err == nil {
			err = j.enqueue(g)
		}
		kick := j.kickPersist
		j.wmu.Unlock()
		if err != nil {
			g.err = err
			j.answer(g)
		} else if j.opt.SerialCommit {
			j.qmu.Lock()
			for len(j.queue) > 0 || j.syncing {
				j.qcond.Wait()
			}
			j.qmu.Unlock()
		}
		if kick {
			select {
			case j.kick <- struct{}{}:
			default:
			}
		}
	}
}

// syncer makes the groups the writer has written durable, in order, one
// fdatasync for all those written since the last, and answers them.
func (j *Journal) syncer() {
	defer j.wg.Done()
	defer close(j.exited)
	var batch []*group
	for {
		j.qmu.Lock()
		for len(j.queue) == 0 && !j.wexited {
			j.qcond.Wait()
		}
		if len(j.queue) == 0 {
			j.qmu.Unlock()
			return
		}
		batch = append(batch[:0], j.queue...)
		clear(j.queue)
		j.queue = j.queue[:0]
		j.syncing = true
		j.qmu.Unlock()
		// Every group in flight is in the last segment: a roll waits
		// until none is.
		var err error
		for _, g := range batch {
			if g.size > 0 {
				if err = g.file.Datasync(); err != nil {
					err = fmt.Errorf("journal: fdatasync %s: %w", g.seg.path, err)
				}
				break
			}
		}
		if err != nil {
			batch = j.syncFailed(batch, err)
		} else {
			j.synced(batch)
		}
		clear(batch)
	}
}

// synced makes the groups of a successful sync visible and answers them.
func (j *Journal) synced(batch []*group) {
	var seg *segment
	var size, last int64
	for _, g := range batch {
		if g.size > 0 {
			seg, last = g.seg, g.last
			size += int64(g.size)
		}
	}
	if seg != nil {
		j.smu.Lock()
		seg.size += size
		seg.last = last
		j.smu.Unlock()
		j.lastSeq.Store(last)
		for _, g := range batch {
			j.handoff.Add(g.entries)
		}
	}
	j.qmu.Lock()
	j.syncing = false
	j.qcond.Broadcast()
	j.qmu.Unlock()
	for _, g := range batch {
		j.answer(g)
	}
	if seg != nil {
		select {
		case j.notify <- struct{}{}:
		default:
		}
	}
}

// syncFailed fails the groups of a failed sync and every group written
// after them, cuts the segment back to its last synced byte (unless the
// writer has already), and answers them. It returns batch, grown.
func (j *Journal) syncFailed(batch []*group, err error) []*group {
	j.qmu.Lock()
	batch = append(batch, j.queue...)
	clear(j.queue)
	j.queue = j.queue[:0]
	for _, g := range batch {
		j.dropPending(g)
		g.err = err
	}
	j.syncErr = err
	j.syncing = false
	j.qcond.Broadcast()
	j.qmu.Unlock()
	j.handoff.Invalidate()
	j.log.Error("journal: fdatasync failed; the appends written since the last one fail", "err", err)
	j.wmu.Lock()
	j.qmu.Lock()
	mine := j.syncErr == err
	j.qmu.Unlock()
	if mine {
		j.undo() // logged; the writer tries again before its next write
	}
	j.wmu.Unlock()
	for _, g := range batch {
		j.answer(g)
	}
	return batch
}

// newGroup returns an empty group, one answered before when there is.
func (j *Journal) newGroup() *group {
	j.qmu.Lock()
	defer j.qmu.Unlock()
	if n := len(j.freeList); n > 0 {
		g := j.freeList[n-1]
		j.freeList = j.freeList[:n-1]
		return g
	}
	return &group{pooled: true}
}

// answer gives g's outcome to its appends and keeps g for reuse (unless
// it is Import's, which reads g.err after).
func (j *Journal) answer(g *group) {
	for _, r := range g.reqs {
		if g.err != nil {
			r.err, r.seq, r.dup = g.err, 0, false
		}
		if r.done != nil {
			close(r.done)
		}
	}
	if !g.pooled {
		return
	}
	clear(g.reqs)
	clear(g.entries)
	*g = group{reqs: g.reqs[:0], entries: g.entries[:0], added: g.added[:0], pooled: true}
	j.qmu.Lock()
	if len(j.freeList) < maxFreeGroups {
		j.freeList = append(j.freeList, g)
	}
	j.qmu.Unlock()
}

// enqueue hands a written group to the syncer. After a failed sync that
// the segment is not cut back from yet the group fails instead (it was
// written after the last sync that succeeded), and is cut off with the
// others.
func (j *Journal) enqueue(g *group) error {
	j.qmu.Lock()
	err := j.syncErr
	if err == nil {
		j.queue = append(j.queue, g)
		j.qcond.Broadcast()
	}
	j.qmu.Unlock()
	if err != nil {
		j.dropPending(g)
		if uerr := j.undo(); uerr != nil {
			return uerr
		}
	}
	return err
}

// dropPending forgets the frame ids g put in pending (g failed).
func (j *Journal) dropPending(g *group) {
	j.fmu.Lock()
	for _, k := range g.added {
		delete(j.pending, k)
	}
	j.fmu.Unlock()
	g.added = g.added[:0]
}

// settle makes the writer's position good to write at: after a failed
// write or sync, once the groups in flight are synced (they were all
// written before the failure) or failed, the segment is cut back to its
// last synced byte. With drain it also waits for every group in flight
// (before a roll closes the file they are in). The caller holds wmu.
func (j *Journal) settle(drain bool) error {
	j.qmu.Lock()
	failed := j.broken != nil || j.syncErr != nil
	if drain || failed {
		for len(j.queue) > 0 || j.syncing {
			j.qcond.Wait()
		}
		failed = j.broken != nil || j.syncErr != nil
	}
	j.qmu.Unlock()
	if !failed {
		return nil
	}
	return j.undo()
}

// commit numbers and writes one group: ids checked, sequence numbers
// given, every record in one pwritev at the writer's position. The
// syncer syncs it. When the write fails nothing of the group stays in
// pending nor, once the groups before it are synced, in the file, and
// the error is every append's.
func (j *Journal) commit(g *group) error {
	if err := j.settle(false); err != nil {
		return err
	}
	// The segment the group goes to, rolled first when needed: each
	// record's checksum covers that segment's seed.
	seg, err := j.target(g)
	if err != nil {
		return err
	}
	next := j.wlast + 1
	j.hdrs, j.spans, j.iov = j.hdrs[:0], j.spans[:0], j.iov[:0]
	j.fmu.Lock()
	for _, r := range g.reqs {
		if r.fixed {
			next = r.seq
		} else if r.b.FrameID != "" {
			k := frameKey{r.b.App, r.b.FrameID}
			if _, ok := j.pending[k]; ok {
				// Appended before, in a group synced or in flight: this
				// group is answered after that one's sync, and fails
				// with it.
				r.dup = true
				continue
			}
			if j.gen.Load() != r.gen {
				// Ids were moved from pending to the index since
				// Append looked there: look again.
				j.fmu.Unlock()
				seen, err := j.seen(context.Background(), r.b.App, r.b.FrameID)
				j.fmu.Lock()
				if err != nil || seen {
					r.dup, r.err = seen, err
					continue
				}
			}
			j.pending[k] = pendingFrame{seq: next, at: r.b.ReceivedAt.UnixNano()}
			g.added = append(g.added, k)
		}
		r.seq = next
		next++
		e := entry{Seq: r.seq, ReceivedAt: r.b.ReceivedAt.UnixNano(), Dropped: r.b.Dropped, Lost: r.b.Lost,
			Codec: r.codec, App: r.b.App, FrameID: r.b.FrameID, Stored: r.stored}
		if r.damaged {
			e.Flags, e.Stored = flagDamaged, nil
		}
		start := len(j.hdrs)
		j.hdrs = appendHeader(j.hdrs, &e)
		var c uint32
		if r.hasStoredCRC && !r.damaged {
			// The same CRC-32C as payloadCRC, the body's part done by
			// the appending goroutine.
			c = crcCombine(crc32.Update(seg.seed, batchcodec.Castagnoli, j.hdrs[start+headerSize:]), r.storedCRC, len(e.Stored))
		} else {
			c = payloadCRC(j.hdrs[start:], e.Stored, seg.seed)
		}
		binary.LittleEndian.PutUint32(j.hdrs[start+8:], c)
		j.spans = append(j.spans, len(j.hdrs))
		j.iov = append(j.iov, e.Stored) // the header goes before it, below
		crc := r.crc
		if r.damaged {
			crc = 0
		} else if !j.opt.Compress {
			crc = c
		}
		g.entries = append(g.entries, handoff.Entry{Rec: drainpipe.Record{Seq: r.seq, Batch: r.b, Damaged: e.Flags&flagDamaged != 0}, CRC: crc, Owned: r.owned && !r.damaged})
	}
	j.kickPersist = len(j.pending) >= persistPending
	j.fmu.Unlock()
	if len(j.spans) == 0 {
		return nil
	}
	// Each record is its header (in hdrs) and its body (as received):
	// one pwritev, no copy of the bodies.
	bodies := len(j.iov)
	size := 0
	for i, end := range j.spans {
		start := 0
		if i > 0 {
			start = j.spans[i-1]
		}
		j.iov = append(j.iov, j.hdrs[start:end:end])
		if b := j.iov[i]; len(b) > 0 {
			j.iov = append(j.iov, b)
		}
		size += end - start + len(j.iov[i])
	}
	j.iov = append(j.iov[:0], j.iov[bodies:]...)
	err = j.write(seg, size)
	clear(j.iov)
	if err != nil {
		j.dropPending(g)
		clear(g.entries)
		g.entries = g.entries[:0]
		j.handoff.Invalidate()
		// The groups before it are synced (or failed) before the
		// segment is cut back to its last synced byte.
		if uerr := j.settle(false); uerr != nil {
			return uerr
		}
		return err
	}
	g.seg, g.file, g.size, g.last = seg, j.active, size, next-1
	j.wlast = next - 1
	return nil
}

// target returns the last segment, for group g, rolling to a new one
// when there is none, it is full, or it cannot take appends (no intact
// header).
func (j *Journal) target(g *group) (*segment, error) {
	j.smu.RLock()
	var s *segment
	if n := len(j.segs); n > 0 {
		s = j.segs[n-1]
	}
	j.smu.RUnlock()
	if s != nil && s.writable && j.wend < j.opt.SegmentSize {
		return s, nil
	}
	// The groups in flight are synced (or failed and cut off) before the
	// roll closes their file.
	if err := j.settle(true); err != nil {
		return nil, err
	}
	first := j.wlast + 1
	if g.reqs[0].fixed {
		first = g.reqs[0].seq
	}
	return j.roll(first)
}

// write appends j.iov (size bytes) to s, the last segment, at the
// writer's position. It does not sync: the syncer does.
func (j *Journal) write(s *segment, size int) error {
	if n, err := j.active.WritevAt(j.iov, j.wend); err != nil || n != size {
		if err == nil {
			err = io.ErrShortWrite
		}
		j.broken = fmt.Errorf("journal: write %s: %w", s.path, err)
		return j.broken
	}
	j.wend += int64(size)
	return nil
}

// undo cuts the last segment back to its last synced byte after a failed
// write or sync (the bytes after it may be there in part, or their sync
// failed) and moves the writer's position back there. No group may be in
// flight; the caller holds wmu. While it fails, every group fails.
func (j *Journal) undo() error {
	j.qmu.Lock()
	cause := j.syncErr
	j.qmu.Unlock()
	if j.broken != nil {
		cause = j.broken
	}
	j.smu.RLock()
	s := j.segs[len(j.segs)-1]
	size := s.size
	j.smu.RUnlock()
	err := j.active.Truncate(size)
	if err == nil {
		err = j.active.Datasync()
	}
	if err != nil {
		j.log.Error("journal: cannot cut a failed append off the last segment; appends fail until it can", "file", s.path, "err", err)
		return fmt.Errorf("%w (and cutting it off failed: %v)", cause, err)
	}
	j.broken = nil
	j.qmu.Lock()
	j.syncErr = nil
	j.qmu.Unlock()
	j.wend, j.wlast = size, j.lastSeq.Load()
	return nil
}

// roll starts a new segment for records from first on: the file, its
// header (with the segment's random seed) and the directory entry are
// durable before any record in it is acknowledged.
//
// A file of that name may be there already: one a failed roll could not
// remove, or the last segment left without an intact header by a
// creation cut short (or from before headers, empty). No record can be
// in it: none has been numbered first or above, and it is smaller than a
// header (a record is bigger). Such a file is given a new header and
// used; one holding more is an error and is left alone.
func (j *Journal) roll(first int64) (*segment, error) {
	s := &segment{first: first, last: first - 1, path: filepath.Join(j.dir, segmentName(first)), writable: true}
	if j.opt.WriteAhead {
		// The preparer makes the next spare, once rolled has set
		// lastRoll (deferred calls run after the return's): kicked
		// before, it could take the last roll for an old one and
		// zero-fill at once, ZeroFillAfter unheeded.
		defer j.kickPreparer()
	}
	if f, seed, kind, ok := j.rollSpare(s.path); ok {
		j.rolls[kind].Add(1)
		return j.rolled(s, f, seed), nil
	}
	f, err := j.openSegFile(s.path, os.O_RDWR|os.O_CREATE|os.O_EXCL)
	existed := errors.Is(err, fs.ErrExist)
	if existed {
		f, err = j.reuse(s.path)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: create segment: %w", err)
	}
	hdr, seed, err := newSegmentHeader()
	if err == nil {
		var n int
		if n, err = f.WritevAt([][]byte{hdr}, 0); err == nil && n != len(hdr) {
			err = io.ErrShortWrite
		}
	}
	if err == nil {
		err = f.Datasync()
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil {
		f.Close()
		// A file this roll created goes again; one that was there is
		// left as it was found (its name may be what carries the
		// numbering on). Either way the next roll can use it.
		if !existed {
			if rerr := j.opt.remove(s.path); rerr != nil {
				j.log.Warn("journal: cannot remove a segment whose creation failed; the next roll uses it", "file", s.path, "err", rerr)
			}
		}
		return nil, fmt.Errorf("journal: create segment %s: %w", s.path, err)
	}
	j.rolls[rollCreated].Add(1)
	return j.rolled(s, f, seed), nil
}

// rollSpare makes a ready spare the segment at path (one with its header
// written and synced, see spare.go): renamed into place, the directory
// synced; kind says where the spare came from. ok is false when there
// is none, or a file is at path already (roll deals with it), or the
// rename fails.
func (j *Journal) rollSpare(path string) (segFile, uint32, rollKind, bool) {
	if !j.opt.WriteAhead {
		return nil, 0, 0, false
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil, 0, 0, false
	}
	sp, ok := j.takeSpare()
	if !ok {
		return nil, 0, 0, false
	}
	kind := rollRetired
	if sp.zeroed {
		kind = rollZeroed
	}
	err := os.Rename(sp.path, path)
	var f segFile
	if err == nil {
		err = syncDir(j.dir)
	}
	if err == nil {
		f, err = j.openSegFile(path, os.O_RDWR)
	}
	if err != nil {
		j.log.Warn("journal: cannot use a spare segment; creating one", "file", sp.path, "err", err)
		os.Remove(sp.path)
		if f == nil {
			// Renamed but not opened: a segment without records, which
			// roll's reuse would refuse (it is large). Remove it.
			os.Remove(path)
		}
		return nil, 0, 0, false
	}
	return f, sp.seed, kind, true
}

// rolled makes s, open as f with header seed seed, the last segment.
func (j *Journal) rolled(s *segment, f segFile, seed uint32) *segment {
	s.seed, s.base, s.size = seed, segHeaderSize, segHeaderSize
	j.lastRoll.Store(time.Now().UnixNano())
	if j.active != nil {
		j.active.Close()
	}
	j.active = f
	j.wend = s.size
	j.smu.Lock()
	if n := len(j.segs); n > 0 && j.segs[n-1].first == s.first {
		// The same file, with its header now. A new array: readers
		// hold the old one without the lock.
		j.segs = append(j.segs[:n-1:n-1], s)
	} else {
		j.segs = append(j.segs, s)
	}
	j.smu.Unlock()
	return s
}

// reuse opens path, a segment file for seq numbers not given yet, to be
// made a new segment, after checking that it cannot hold a record; it
// is emptied.
func (j *Journal) reuse(path string) (segFile, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > segHeaderSize {
		return nil, fmt.Errorf("%s exists and may hold records (%d bytes); not overwriting it", path, fi.Size())
	}
	f, err := j.openSegFile(path, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Read returns up to max records with Seq > after, in order, stopping
// early once MaxReadBytes of bodies are read. Records committed lately
// come from memory (the hand-off), checked against their checksums; the
// others are read from the segment files, each record's checksum checked.
// A damaged record is skipped (copied to quarantine once) and, when its
// sequence number and app can be read, returned with Damaged set.
func (j *Journal) Read(ctx context.Context, after int64, max int) ([]drainpipe.Record, error) {
	if t := j.trimmed.Load(); after < t {
		after = t
	}
	if recs, crcs, ok := j.handoff.Read(after, max, MaxReadBytes); ok {
		intact := true
		j.smu.RLock()
		segs := j.segs // each one's first and seed never change
		j.smu.RUnlock()
		k := 0
		for i := range recs {
			// The segment that holds the record: the last one whose
			// first is not above its seq.
			for k+1 < len(segs) && segs[k+1].first <= recs[i].Seq {
				k++
			}
			if len(segs) == 0 || segs[k].first > recs[i].Seq {
				intact = false // trimmed meanwhile: the files say what is left
				break
			}
			if crcs[i] != j.memoryCRC(&recs[i], segs[k].seed) {
				intact = false
				j.log.Error("journal: a record's body changed in memory after Append (its caller reused the buffer); reading from the file",
					"seq", recs[i].Seq, "app", recs[i].App)
				break
			}
		}
		if intact {
			return recs, nil
		}
		j.handoff.Invalidate()
	}
	return j.readFiles(ctx, after, max)
}

// memoryCRC is the checksum a hand-off record is checked by: the record's
// own CRC-32C (from seed, its segment's) when bodies are stored raw,
// batchcodec.RecordCRC when they may be packed (then the stored bytes are
// not the body).
func (j *Journal) memoryCRC(r *drainpipe.Record, seed uint32) uint32 {
	if r.Damaged {
		return 0
	}
	if j.opt.Compress {
		return batchcodec.RecordCRC(r.App, r.FrameID, r.ReceivedAt.UnixNano(), r.Dropped, r.Lost, r.Body)
	}
	e := entry{Seq: r.Seq, ReceivedAt: r.ReceivedAt.UnixNano(), Dropped: r.Dropped, Lost: r.Lost, App: r.App, FrameID: r.FrameID}
	var hdr [headerSize + fixedSize + 256]byte
	return payloadCRC(appendHeader(hdr[:0], &e), r.Body, seed)
}

// Trim deletes the segments whose records all have Seq <= upTo, once the
// frame ids in them are in the index, and forgets frame ids older than
// drainpipe.FrameIDRetention. The last segment is never deleted. Within this
// process Read returns no record at or below upTo even where its segment
// is kept.
func (j *Journal) Trim(ctx context.Context, upTo int64) error {
	for t := j.trimmed.Load(); upTo > t && !j.trimmed.CompareAndSwap(t, upTo); t = j.trimmed.Load() {
	}
	j.handoff.Forget(upTo)
	persisted, err := j.persist(ctx)
	if err != nil {
		return fmt.Errorf("journal: trim: %w", err)
	}
	upTo = min(upTo, persisted)
	j.smu.Lock()
	var gone []*segment
	for len(j.segs) > 1 && j.segs[0].last <= upTo {
		gone = append(gone, j.segs[0])
		j.segs = j.segs[1:]
	}
	j.smu.Unlock()
	if len(gone) > 0 {
		// A reader that took the list before may be in one of them:
		// a retired file is written over once it is a spare.
		j.rmu.Lock()
		for _, s := range gone {
			if j.retire(s.path) {
				continue
			}
			if err := os.Remove(s.path); err != nil {
				j.rmu.Unlock()
				return fmt.Errorf("journal: trim: %w", err)
			}
		}
		j.rmu.Unlock()
	}
	j.pmu.Lock()
	defer j.pmu.Unlock()
	if time.Since(j.lastForget) >= forgetEvery {
		if err := j.idx.Forget(ctx, time.Now().Add(-drainpipe.FrameIDRetention)); err != nil {
			return fmt.Errorf("journal: forget old frame ids: %w", err)
		}
		j.lastForget = time.Now()
	}
	return nil
}

// persist writes the pending frame ids of committed records to the index
// and returns the seq up to which every committed record's id is there.
func (j *Journal) persist(ctx context.Context) (int64, error) {
	j.pmu.Lock()
	defer j.pmu.Unlock()
	j.fmu.Lock()
	upTo := j.lastSeq.Load()
	var frames []Frame
	var seqs []int64
	for k, p := range j.pending {
		if p.seq <= upTo {
			frames = append(frames, Frame{App: k.app, ID: k.id, SeenAt: time.Unix(0, p.at)})
			seqs = append(seqs, p.seq)
		}
	}
	j.fmu.Unlock()
	if len(frames) > 0 {
		if j.filter != nil {
			// Before the index has them and they leave pending: the
			// filter must never say "no" to an id in either.
			j.filter.add(time.Now(), frames)
		}
		if err := j.idx.Remember(ctx, frames); err != nil {
			return j.persisted.Load(), fmt.Errorf("remember frame ids: %w", err)
		}
		j.fmu.Lock()
		for i, f := range frames {
			k := frameKey{f.App, f.ID}
			if p, ok := j.pending[k]; ok && p.seq == seqs[i] {
				delete(j.pending, k)
			}
		}
		j.gen.Add(1)
		j.fmu.Unlock()
	}
	j.persisted.Store(upTo)
	return upTo, nil
}

// persister writes new frame ids to the index now and then, so that the
// ones in memory stay few.
func (j *Journal) persister() {
	defer j.wg.Done()
	t := time.NewTicker(persistEvery)
	defer t.Stop()
	for {
		select {
		case <-j.done:
			return
		case <-t.C:
		case <-j.kick:
		}
		if _, err := j.persist(context.Background()); err != nil {
			j.log.Warn("journal: writing frame ids to the index failed; will retry", "err", err)
		}
	}
}

// Close stops the writer, failing pending appends, writes the pending
// frame ids to the index and closes the files and the index.
func (j *Journal) Close() error {
	j.once.Do(func() {
		close(j.done)
		j.wg.Wait()
		_, err := j.persist(context.Background())
		if j.active != nil {
			err = errors.Join(err, j.active.Close())
		}
		j.closeErr = errors.Join(err, j.idx.Close())
	})
	return j.closeErr
}
