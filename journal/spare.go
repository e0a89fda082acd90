package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Segments written ahead (Options.WriteAhead).
//
// An fdatasync after an append that extends a file must also write the
// file's new size and extents (a file-system journal commit); after an
// overwrite of blocks written before it only writes the data. On this
// project's ext4 disk that is 0.31-0.42 ms against 0.16-0.26 ms for a
// group of 120 KiB (BenchmarkDatasync); blocks reserved with
// fallocate(2) are no cheaper (they are "unwritten" and the write
// converts them, a metadata change too). So with WriteAhead a new
// segment is a spare file prepared beforehand: a segment that Trim
// retired (its blocks written, its old records under another seed), or a
// file of SegmentSize zeroes. The preparer goroutine writes the spare's
// header (a fresh seed) and fdatasyncs it before the spare can be used;
// a roll then only renames it into place and syncs the directory.
//
// Such a segment is longer than its records: what follows the last
// record is zeroes, or records of another segment whose checksums cover
// another seed and never check. Recovery tells it from a torn append by
// the record header at the end of the data (see tornLen).

const (
	spareExt = ".spare"
	// spareTmp ends a spare being zero-filled: removed at Open.
	spareTmp = ".spare.tmp"
	// maxSpares bounds the spare files kept (ready or not): more
	// retired segments are removed, as without WriteAhead.
	maxSpares = 3
	zeroChunk = 1 << 20
	// roomFactor: a spare is made or kept only while the file system
	// has this many times SegmentSize free (not under disk pressure,
	// where the space is worth more than a faster sync).
	roomFactor = 4
	// sizeFactor: a file larger than this many times SegmentSize (a
	// spare or segment of a journal whose segments were larger) is not
	// kept as a spare: written over and retired again and again, it
	// would never give its surplus back.
	sizeFactor = 2
)

// spareSize reports whether a file of size bytes may be kept as a spare.
func (j *Journal) spareSize(size int64) bool {
	return size <= sizeFactor*j.opt.SegmentSize
}

// roomForSpare reports whether the journal's file system has room for a
// spare segment (roomFactor times SegmentSize free).
func (j *Journal) roomForSpare() bool {
	if j.opt.free != nil {
		return j.opt.free() >= roomFactor*j.opt.SegmentSize
	}
	var st unix.Statfs_t
	if err := unix.Statfs(j.dir, &st); err != nil {
		return false
	}
	return int64(st.Bavail)*int64(st.Bsize) >= roomFactor*j.opt.SegmentSize
}

// spareFile is a spare segment file. seed is its header's CRC state once
// the preparer has written and synced that header (ready).
type spareFile struct {
	path   string
	seed   uint32
	ready  bool
	zeroed bool // made by zeroSpare (else a retired segment's file)
}

// rollKind says what a new segment was made of.
type rollKind int

const (
	rollCreated rollKind = iota // a new file, appended to
	rollRetired                 // a segment that Trim retired, written over
	rollZeroed                  // a spare the preparer wrote zeroes into
	numRollKinds
)

// RollCounts counts the segments a journal began since it was opened, by
// what each was made of (see Journal.Rolls).
type RollCounts struct {
	// Created: new files, appended to (no spare was ready, or
	// WriteAhead is off).
	Created int64
	// Retired: files of segments that Trim retired, written over, and
	// spares an earlier process left (zero-filled or not: Open cannot
	// tell).
	Retired int64
	// Zeroed: spares the preparer filled with zeroes.
	Zeroed int64
}

// Rolls counts the segments this journal began since it was opened, by
// what each was made of.
func (j *Journal) Rolls() RollCounts {
	return RollCounts{Created: j.rolls[rollCreated].Load(), Retired: j.rolls[rollRetired].Load(), Zeroed: j.rolls[rollZeroed].Load()}
}

// spares lists the spare files; the preparer readies them. Guarded by
// Journal.spmu.
type spares struct {
	files []spareFile
	next  atomic.Int64 // names new spare files
}

// loadSpares lists the spare files in the journal's directory (none is
// ready: each gets a new header before use) and removes the zero-fills
// a stop cut short, and spares beyond maxSpares, too large for this
// journal's segments (sizeFactor), or any while the file system is short
// of room (roomForSpare).
func (j *Journal) loadSpares() error {
	des, err := os.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("list spare segments: %w", err)
	}
	// Under disk pressure no spare is kept, as none is made or retired.
	keep := j.opt.WriteAhead && j.roomForSpare()
	for _, de := range des {
		name := de.Name()
		switch {
		case !de.Type().IsRegular():
		case strings.HasSuffix(name, spareTmp):
			if err := os.Remove(filepath.Join(j.dir, name)); err != nil {
				return fmt.Errorf("remove an unfinished spare segment: %w", err)
			}
		case strings.HasSuffix(name, spareExt):
			fi, err := de.Info()
			if err != nil {
				return fmt.Errorf("list spare segments: %w", err)
			}
			if !keep || len(j.spare.files) >= maxSpares || !j.spareSize(fi.Size()) {
				if err := os.Remove(filepath.Join(j.dir, name)); err != nil {
					return fmt.Errorf("remove a spare segment: %w", err)
				}
				continue
			}
			j.spare.files = append(j.spare.files, spareFile{path: filepath.Join(j.dir, name)})
		}
	}
	return nil
}

// spareName returns a path for a new spare file: named for the time
// and a counter, so that no name of an earlier process (whose spares
// this one keeps) comes again, as a process id could.
func (j *Journal) spareName(ext string) string {
	return filepath.Join(j.dir, fmt.Sprintf("%d-%d%s", time.Now().UnixNano(), j.spare.next.Add(1), ext))
}

// kickPreparer wakes the preparer.
func (j *Journal) kickPreparer() {
	select {
	case j.prepKick <- struct{}{}:
	default:
	}
}

// WantsTrim reports whether Trim(upTo) would give the journal a segment
// to write over: with WriteAhead, while fewer than maxSpares spares are
// kept and its oldest segment is wholly at or below upTo. The aggregator
// then trims at once rather than at its TrimEvery: a fast drain fills a
// segment in well under a second, and without retired segments every
// new one would be zero-filled (docs/architecture.md).
func (j *Journal) WantsTrim(upTo int64) bool {
	if !j.opt.WriteAhead {
		return false
	}
	j.smu.RLock()
	behind := len(j.segs) > 1 && j.segs[0].last <= upTo
	j.smu.RUnlock()
	if !behind {
		return false
	}
	j.spmu.Lock()
	defer j.spmu.Unlock()
	return len(j.spare.files) < maxSpares
}

// takeSpare returns a ready spare, removed from the list, if there is one.
func (j *Journal) takeSpare() (spareFile, bool) {
	j.spmu.Lock()
	defer j.spmu.Unlock()
	for i, sp := range j.spare.files {
		if sp.ready {
			j.spare.files = append(j.spare.files[:i], j.spare.files[i+1:]...)
			return sp, true
		}
	}
	return spareFile{}, false
}

// retire keeps a trimmed segment's file as a spare when fewer than
// maxSpares are kept and it is not too large (sizeFactor), and reports
// whether it did; the caller removes it otherwise. The caller holds
// rmu: no read is in the file.
func (j *Journal) retire(path string) bool {
	if !j.opt.WriteAhead {
		return false
	}
	j.spmu.Lock()
	defer j.spmu.Unlock()
	if len(j.spare.files) >= maxSpares || !j.roomForSpare() {
		return false
	}
	if fi, err := os.Stat(path); err != nil || !j.spareSize(fi.Size()) {
		return false
	}
	to := j.spareName(spareExt)
	if err := os.Rename(path, to); err != nil {
		j.log.Warn("journal: cannot keep a trimmed segment as a spare; removing it", "file", path, "err", err)
		return false
	}
	j.spare.files = append(j.spare.files, spareFile{path: to})
	j.kickPreparer()
	return true
}

// preparer keeps one spare ready: it readies a spare file there is, or,
// when there is none at all and the last roll is Options.ZeroFillAfter
// old, zero-fills a new one. Retired segments (Trim, WantsTrim) are the
// usual spares under load: zero-filling one per segment of a fast drain
// cost more than the cheaper syncs saved.
func (j *Journal) preparer() {
	defer j.wg.Done()
	for {
		j.spmu.Lock()
		ready, raw := false, ""
		for _, sp := range j.spare.files {
			if sp.ready {
				ready = true
			} else if raw == "" {
				raw = sp.path
			}
		}
		n := len(j.spare.files)
		j.spmu.Unlock()
		var err error
		var later <-chan time.Time
		switch {
		case ready:
		case raw != "":
			err = j.readySpare(raw)
		case n == 0 && j.roomForSpare():
			if wait := j.opt.ZeroFillAfter - time.Since(time.Unix(0, j.lastRoll.Load())); wait > 0 {
				later, ready = time.After(wait), true
				break
			}
			err = j.zeroSpare()
		default:
			ready = true // nothing to do until a roll or a trim
		}
		if err != nil {
			if errors.Is(err, errStopping) {
				return
			}
			// Not fatal: the next roll creates a segment as without
			// WriteAhead. Tried again at the next roll.
			j.log.Warn("journal: cannot prepare a spare segment; segments are appended to until one is", "err", err)
			ready = true
		}
		if ready {
			select {
			case <-j.done:
				return
			case <-j.prepKick:
			case <-later:
			}
		}
	}
}

var errStopping = errors.New("journal closing")

// readySpare writes a fresh header into the spare file at path and
// syncs it (and the directory, so that a retired segment's rename is
// durable before its header changes: after a crash its old name must not
// come back with a new seed over its records).
func (j *Journal) readySpare(path string) error {
	fail := func(err error) error {
		j.spmu.Lock()
		for i, sp := range j.spare.files {
			if sp.path == path {
				j.spare.files = append(j.spare.files[:i], j.spare.files[i+1:]...)
				break
			}
		}
		j.spmu.Unlock()
		os.Remove(path)
		return fmt.Errorf("ready spare segment %s: %w", path, err)
	}
	if err := syncDir(j.dir); err != nil {
		return fail(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	hdr, seed, err := newSegmentHeader()
	if err == nil {
		_, err = f.WriteAt(hdr, 0)
	}
	if err == nil {
		err = datasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	j.spmu.Lock()
	for i := range j.spare.files {
		if j.spare.files[i].path == path {
			j.spare.files[i].seed, j.spare.files[i].ready = seed, true
		}
	}
	j.spmu.Unlock()
	return nil
}

// zeroSpare makes a new spare file: SegmentSize bytes of zeroes, written
// (FALLOC_FL_WRITE_ZEROES when the file system can, else write(2)) and
// synced, then its header.
func (j *Journal) zeroSpare() error {
	tmp := j.spareName(spareTmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	size := j.opt.SegmentSize
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_WRITE_ZEROES, 0, size)
	if err != nil {
		zero := make([]byte, min(zeroChunk, size))
		err = nil
		for off := int64(0); off < size && err == nil; off += int64(len(zero)) {
			select {
			case <-j.done:
				err = errStopping
				continue
			default:
			}
			_, err = f.WriteAt(zero[:min(int64(len(zero)), size-off)], off)
		}
	}
	if err == nil {
		err = datasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		to := strings.TrimSuffix(tmp, spareTmp) + spareExt
		if err = os.Rename(tmp, to); err == nil {
			j.spmu.Lock()
			full := len(j.spare.files) >= maxSpares // Trim retired some meanwhile
			if !full {
				j.spare.files = append(j.spare.files, spareFile{path: to, zeroed: true})
			}
			j.spmu.Unlock()
			if full {
				return os.Remove(to)
			}
			return j.readySpare(to)
		}
	}
	os.Remove(tmp)
	return err
}
