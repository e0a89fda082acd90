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
// 84-121 MiB in 30 s of 1,000 busy apps' flushes under four query loops,
// and on (TestStoreWALBoundedUnderQueries). So after a flush that leaves
// the WAL file over storeWALCap, the store
//
//   - copies what it can beside the readers (a PASSIVE checkpoint);
//   - closes the read gate: the metric queries (eachRow, RequestCounts)
//     hold it shared, so new ones wait and those in progress finish;
//   - checkpoints with TRUNCATE, which copies the few pages committed
//     since, waits (at most walCheckpointWait) for any other reader of an
//     older snapshot, and empties the file;
//   - opens the gate again.
//
// Left to SQLite's busy handler alone, the TRUNCATE checkpoint lost to
// overlapping readers now and then (they can keep one of SQLite's few
// read marks taken for as long as they keep coming), and the WAL grew
// past the cap. With the gate, queries wait once per storeWALCap of WAL
// for the longest query in progress and a short copy, and flushes for
// that too; readers outside the gate (a dashboard's event or formation
// lookups, single short statements) can still make a checkpoint give up,
// after which the store leaves the WAL alone for walRetryAfter.
const storeWALCap = 64 << 20

// walCheckpointWait bounds how long the TRUNCATE checkpoint waits for
// locks (its busy timeout, on a connection of its own): for a writer
// (the history import's transaction) or a reader outside the read gate.
// Queries wait for it behind the gate, so it is short; after a
// checkpoint that gave up the store leaves its WAL alone for
// walRetryAfter, so that a long reader does not hold up every flush.
const (
	walCheckpointWait = time.Second
	walRetryAfter     = time.Minute
)

// boundWAL checkpoints the store's WAL down to nothing when its file is
// over the cap and no other flush is doing so (see storeWALCap). After a
// checkpoint that gave up, the flushes of the next walRetryAfter leave
// it alone; the flush that called it has committed anyway.
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
	if start.Before(s.ckptRetry) {
		return
	}
	if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
		s.ckptRetry = start.Add(walRetryAfter)
		s.log.Warn("store: WAL checkpoint failed; tried again in a minute", "file", s.walPath, "bytes", fi.Size(), "err", err)
		return
	}
	s.readGate.Lock()
	gated := time.Now()
	busy, err := s.truncateWAL(ctx)
	s.readGate.Unlock()
	if err != nil {
		s.ckptRetry = start.Add(walRetryAfter)
		s.log.Warn("store: WAL checkpoint failed; tried again in a minute", "file", s.walPath, "bytes", fi.Size(), "err", err)
		return
	}
	if busy {
		s.ckptRetry = start.Add(walRetryAfter)
		s.log.Warn("store: WAL over its cap and still in use by readers; tried again in a minute", "file", s.walPath, "bytes", fi.Size(), "took", time.Since(start))
		return
	}
	s.log.Debug("store: WAL over its cap; checkpointed and truncated", "file", s.walPath, "bytes", fi.Size(),
		"took", time.Since(start), "queries_held", time.Since(gated))
}

// truncateWAL runs wal_checkpoint(TRUNCATE) on a connection whose busy
// timeout is walCheckpointWait, and reports whether readers kept it from
// finishing.
func (s *Store) truncateWAL(ctx context.Context) (busy bool, err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, walCheckpointWait.Milliseconds())); err != nil {
		return false, err
	}
	// The connection goes back to the pool with the DSN's timeout.
	defer conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf(`PRAGMA busy_timeout = %d`, busyTimeout.Milliseconds()))
	var b, frames, done int64
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&b, &frames, &done); err != nil {
		return false, err
	}
	return b != 0, nil
}
