package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/drainpipe/drainpipe/journal"
)

// FrameIndex is journal.db's frames table as the segment-file journal's
// persistent index of Logplex-Frame-Ids (a journal.FrameIndex): the same
// table, and the same 24-hour window, as the SQLite journal's.
type FrameIndex struct {
	db   *sql.DB
	seen *sql.Stmt
}

var (
	_ journal.FrameIndex  = (*FrameIndex)(nil)
	_ journal.FrameLister = (*FrameIndex)(nil)
)

// OpenFrameIndex opens (creating) the journal database at path for its
// frames table. Like OpenJournal it runs SQLite's structural check first
// and refuses a damaged file (*CorruptError): a frames table that lost
// rows would let a Logplex retry be counted twice.
func OpenFrameIndex(ctx context.Context, path string) (*FrameIndex, error) {
	db, err := open(ctx, path, journalSchema, 0)
	if err != nil {
		return nil, fmt.Errorf("frame index: %w", err)
	}
	if err := migrateJournal(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("frame index: %w", err)
	}
	if err := checkStructure(ctx, db, path); err != nil {
		db.Close()
		return nil, err
	}
	seen, err := db.PrepareContext(ctx, `SELECT 1 FROM frames WHERE app = ? AND frame_id = ?`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("frame index: prepare: %w", err)
	}
	return &FrameIndex{db: db, seen: seen}, nil
}

// Seen reports whether (app, id) is in the table.
func (x *FrameIndex) Seen(ctx context.Context, app, id string) (bool, error) {
	var one int
	err := x.seen.QueryRowContext(ctx, app, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("frame index: look up: %w", err)
	}
	return true, nil
}

// EachFrame calls fn with every frame in the table, stopping at fn's
// first error, which it returns. The journal reads them once at open for
// its filter of new ids.
func (x *FrameIndex) EachFrame(ctx context.Context, fn func(app, id string, seenAt int64) error) error {
	rows, err := x.db.QueryContext(ctx, `SELECT app, frame_id, seen_at FROM frames`)
	if err != nil {
		return fmt.Errorf("frame index: list: %w", err)
	}
	defer rows.Close()
	var app, id string
	var at int64
	for rows.Next() {
		if err := rows.Scan(&app, &id, &at); err != nil {
			return fmt.Errorf("frame index: list: %w", err)
		}
		if err := fn(app, id, at); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("frame index: list: %w", err)
	}
	return nil
}

// Remember adds frames in one transaction, durable when it returns.
// ctx is checked before each frame (a detached transaction, see
// beginDetached: no goroutine per insert).
func (x *FrameIndex) Remember(ctx context.Context, frames []journal.Frame) error {
	tx, run, err := beginDetached(ctx, x.db)
	if err != nil {
		return fmt.Errorf("frame index: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(run, `INSERT OR IGNORE INTO frames(app, frame_id, seen_at) VALUES (?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("frame index: %w", err)
	}
	defer ins.Close()
	for _, f := range frames {
		if err := tx.alive(); err != nil {
			return fmt.Errorf("frame index: %w", err)
		}
		if _, err := ins.ExecContext(run, f.App, f.ID, f.SeenAt.UnixNano()); err != nil {
			return fmt.Errorf("frame index: insert: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("frame index: commit: %w", err)
	}
	return nil
}

// Forget deletes the frames seen before t.
func (x *FrameIndex) Forget(ctx context.Context, before time.Time) error {
	if _, err := x.db.ExecContext(ctx, `DELETE FROM frames WHERE seen_at < ?`, before.UnixNano()); err != nil {
		return fmt.Errorf("frame index: forget: %w", err)
	}
	return nil
}

// JournalTail reports what the journal table of the same file still
// holds: its records and the highest sequence number it ever gave. A
// data directory from before the segment-file journal has them; the
// segment journal imports them (journal.Journal.Import).
func (x *FrameIndex) JournalTail(ctx context.Context) (records, lastSeq int64, err error) {
	err = x.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM journal), COALESCE((SELECT MAX(seq) FROM sqlite_sequence WHERE name = 'journal'), 0)`).Scan(&records, &lastSeq)
	if err != nil {
		return 0, 0, fmt.Errorf("frame index: read the journal table: %w", err)
	}
	return records, lastSeq, nil
}

// AdvanceJournal makes the journal table number its next record after
// seq at least (the file journal's records went up to seq).
func (x *FrameIndex) AdvanceJournal(ctx context.Context, seq int64) error {
	tx, err := begin(ctx, x.db)
	if err != nil {
		return fmt.Errorf("frame index: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO sqlite_sequence(name, seq) SELECT 'journal', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'journal')`); err != nil {
		return fmt.Errorf("frame index: advance the journal's numbering: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'journal'`, seq); err != nil {
		return fmt.Errorf("frame index: advance the journal's numbering: %w", err)
	}
	return tx.Commit()
}

// Close closes the database.
func (x *FrameIndex) Close() error {
	x.seen.Close()
	return x.db.Close()
}
