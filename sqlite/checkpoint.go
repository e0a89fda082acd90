package sqlite

import (
	"context"
	"fmt"
	"os"
	"time"
)

// The journal's WAL is checkpointed (its pages copied into journal.db) by
// a goroutine of its own, not by SQLite's automatic checkpoint, which runs
// inside the COMMIT that crosses 1,000 WAL pages: every drain POST of that
// group commit, and every one queued behind it, waited for the copy and
// the database file's fsync. The journal opens its connections with
// wal_autocheckpoint=0; the writer asks for a checkpoint every
// checkpointEvery bytes of committed bodies, and a PASSIVE checkpoint
// copies what it can without blocking the writer.
//
// SQLite starts the WAL again from its beginning only at a commit that
// begins when every frame has been copied, which a checkpoint running
// beside a busy writer rarely achieves: the WAL would grow without bound.
// So when it reaches walCapFrames pages, the checkpointer holds the writer
// between two group commits (commitMu) while it copies the frames the
// last PASSIVE checkpoint left (few: the ones committed while it ran); the
// next commit starts the WAL again. The WAL so stays at about walCapFrames
// pages, and the writer waits once per walCapFrames pages instead of once
// per 1,000.
const (
	checkpointEvery = 4 << 20
	walCapFrames    = 16384 // 64 MiB of 4 KiB pages
)

// checkpointer runs the checkpoints the writer asks for until Close.
func (j *Journal) checkpointer() {
	defer j.wg.Done()
	for {
		select {
		case <-j.done:
			return
		case <-j.ckpt:
		}
		if err := j.checkpoint(context.Background()); err != nil {
			// A full disk, an I/O error: the WAL keeps the committed
			// records (they are durable there), and grows until the
			// next checkpoint succeeds or a commit fails (a 503).
			j.log.Warn("journal: WAL checkpoint failed; will retry", "file", j.path, "err", err)
		}
	}
}

// checkpoint copies the WAL into the database file: PASSIVE beside the
// writer, then, if the WAL is over its cap, once more with the writer
// held. The cap holds once no reader keeps an older snapshot: a read of
// the file (the aggregator catching up after a restart) in progress at
// that moment leaves part of the WAL uncopied, and the next checkpoint,
// after checkpointEvery more bytes, copies it.
func (j *Journal) checkpoint(ctx context.Context) error {
	frames, err := j.walCheckpoint(ctx)
	if err != nil || frames < j.walCap {
		return err
	}
	start := time.Now()
	j.commitMu.Lock()
	defer j.commitMu.Unlock()
	if _, err := j.walCheckpoint(ctx); err != nil {
		return err
	}
	j.log.Debug("journal: WAL at its cap; checkpointed the rest while holding the writer",
		"file", j.path, "pages", frames, "took", time.Since(start))
	return nil
}

// walCheckpoint runs PRAGMA wal_checkpoint(PASSIVE) and returns the WAL's
// size in pages.
func (j *Journal) walCheckpoint(ctx context.Context) (frames int64, err error) {
	var busy, done int64
	if err := j.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &done); err != nil {
		return 0, fmt.Errorf("journal: wal_checkpoint: %w", err)
	}
	return frames, nil
}

// The store's WAL is checkpointed by SQLite's automatic checkpoint (every
// 1,000 pages, in the commit of the flush that crosses them), and SQLite
// starts it again from its beginning at a commit that finds it all
// copied and no reader on it. Under dashboard queries that never stop,
// some read snapshot overlaps every commit (a coarser tier's query holds
// one read transaction across its partitions; every statement holds
// one), the WAL was never started again and grew by every flush's pages:
// 160 MiB in 20 s of 1,000 busy apps' flushes under four query loops
// (TestStoreWALBoundedUnderQueries). So after a flush that leaves the WAL
// file over storeWALCap, the store checkpoints it with TRUNCATE: that
// copies every page, holds writers off while the readers of older
// snapshots finish (new readers read the database file, the WAL being
// all copied, and do not hold it up), and empties the file. Flushes wait
// for it at most as long as the longest query in progress; readers never
// wait.
const storeWALCap = 64 << 20

// boundWAL checkpoints the store's WAL with TRUNCATE when its file is
// over the cap and no other flush is doing so. A failure (readers that outlast the busy timeout) leaves
// it for the next flush; the flush that called it has committed anyway.
func (s *Store) boundWAL(ctx context.Context) {
	fi, err := os.Stat(s.walPath)
	if err != nil || fi.Size() <= s.walCap {
		return
	}
	// One at a time: a second writer (the history import beside the
	// aggregator) would only find SQLite's checkpoint lock taken.
	if !s.ckptMu.TryLock() {
		return
	}
	defer s.ckptMu.Unlock()
	start := time.Now()
	var busy, frames, done int64
	if err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done); err != nil {
		s.log.Warn("store: WAL checkpoint failed; the next flush tries again", "file", s.walPath, "bytes", fi.Size(), "err", err)
		return
	}
	if busy != 0 {
		s.log.Warn("store: WAL over its cap and still in use by readers; the next flush tries again", "file", s.walPath, "bytes", fi.Size())
		return
	}
	s.log.Debug("store: WAL over its cap; checkpointed and truncated", "file", s.walPath, "bytes", fi.Size(), "took", time.Since(start))
}
