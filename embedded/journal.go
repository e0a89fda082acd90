package embedded

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/drainpipe/drainpipe/journal"
	"github.com/drainpipe/drainpipe/sqlite"
)

// openJournal opens the journal cfg.Journal names.
//
// The file journal keeps its segments in DATA/journal and its frame ids
// in DATA/journal.db. A journal.db whose journal table still holds
// records (a data directory from before the file journal, or one last
// served with --journal sqlite) has them moved into the segments first,
// sequence numbers kept.
//
// The SQLite journal refuses a data directory whose segments hold
// records the store has not applied yet (they would be lost); when the
// store has them all, the SQLite journal's numbering is moved past
// theirs and the segments are removed, so that a later switch back to
// the file journal imports the SQLite journal's records instead of
// finding stale segments.
func openJournal(ctx context.Context, cfg Config, st *sqlite.Store, log *slog.Logger) (Journal, error) {
	dbPath := filepath.Join(cfg.DataDir, "journal.db")
	segDir := filepath.Join(cfg.DataDir, "journal")
	switch cfg.Journal {
	case JournalSQLite:
		if err := retireSegments(ctx, segDir, dbPath, st, log); err != nil {
			return nil, err
		}
		return sqlite.OpenJournal(ctx, dbPath, log)
	case "", JournalFile:
	default:
		return nil, fmt.Errorf("unknown journal %q: want %s or %s", cfg.Journal, JournalFile, JournalSQLite)
	}
	idx, err := sqlite.OpenFrameIndex(ctx, dbPath)
	if err != nil {
		return nil, err
	}
	records, last, err := idx.JournalTail(ctx)
	if err != nil {
		idx.Close()
		return nil, err
	}
	j, err := journal.Open(ctx, segDir, journal.Options{Frames: idx, Log: log, Compress: cfg.JournalCompress, SerialCommit: cfg.JournalSerialCommit,
		WriteAhead: !cfg.JournalAppendOnly, SegmentSize: cfg.JournalSegmentSize})
	if err != nil {
		idx.Close()
		return nil, err
	}
	if records > 0 || last > j.LastSeq() {
		src, err := sqlite.OpenJournal(ctx, dbPath, log)
		if err == nil {
			_, err = j.Import(ctx, src)
			err = errors.Join(err, src.Close())
		}
		if err != nil {
			j.Close()
			return nil, fmt.Errorf("move journal.db's records into %s: %w", segDir, err)
		}
	}
	return j, nil
}

// retireSegments checks, before the SQLite journal starts, that the
// segment files in dir hold nothing the store lacks, and removes them.
func retireSegments(ctx context.Context, dir, dbPath string, st *sqlite.Store, log *slog.Logger) error {
	// Spare segment files (the file journal's segments written ahead)
	// hold no record: they go first.
	spares, _ := filepath.Glob(filepath.Join(dir, "*.spare*"))
	for _, s := range spares {
		if err := os.Remove(s); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove spare segment: %w", err)
		}
	}
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) == 0 {
		return err
	}
	idx, err := sqlite.OpenFrameIndex(ctx, dbPath)
	if err != nil {
		return err
	}
	j, err := journal.Open(ctx, dir, journal.Options{Frames: idx, Log: log})
	if err != nil {
		idx.Close()
		return err
	}
	last := j.LastSeq()
	if err := j.Close(); err != nil {
		return err
	}
	pos, err := st.Position(ctx)
	if err != nil {
		return err
	}
	if last > pos {
		return fmt.Errorf("%s holds journal records up to %d that the store has not applied yet (it is at %d): start with --journal %s until they are, then switch", dir, last, pos, JournalFile)
	}
	if idx, err = sqlite.OpenFrameIndex(ctx, dbPath); err != nil {
		return err
	}
	err = idx.AdvanceJournal(ctx, last)
	if err = errors.Join(err, idx.Close()); err != nil {
		return err
	}
	for _, s := range segs {
		if err := os.Remove(s); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove applied segment: %w", err)
		}
	}
	log.Info("journal: switched to the SQLite journal; the file journal's segments, all applied, were removed", "dir", dir, "last_seq", last)
	return nil
}
