package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/drainpipe/drainpipe"
)

const journalSchema = `
CREATE TABLE IF NOT EXISTS journal (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	app         TEXT NOT NULL,
	frame_id    TEXT NOT NULL,
	received_at INTEGER NOT NULL,
	body        BLOB NOT NULL,
	dropped     INTEGER NOT NULL DEFAULT 0,
	lost        INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS frames (
	app      TEXT NOT NULL,
	frame_id TEXT NOT NULL,
	seen_at  INTEGER NOT NULL,
	PRIMARY KEY (app, frame_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS frames_seen ON frames(seen_at);
`

// FrameIDRetention is how long a Logplex-Frame-Id is remembered for
// deduplication. Logplex retries within seconds; a day is far beyond any
// retry and bounds the table.
const FrameIDRetention = 24 * time.Hour

// maxGroup bounds how many appends share one commit (group commit).
const maxGroup = 256

// Journal is the embedded, durable journal: drain batches in a SQLite
// table. Concurrent appends are grouped into one transaction and one fsync,
// and each caller returns only after that commit.
type Journal struct {
	db     *sql.DB
	log    *slog.Logger
	reqs   chan *appendReq
	notify chan struct{}
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the writer has returned
	wg     sync.WaitGroup
	once   sync.Once
}

type appendReq struct {
	b    drainpipe.Batch
	seq  int64
	dup  bool
	err  error
	done chan struct{}
}

var _ drainpipe.Journal = (*Journal)(nil)

// OpenJournal opens or creates the journal database at path.
func OpenJournal(ctx context.Context, path string, log *slog.Logger) (*Journal, error) {
	db, err := open(ctx, path, journalSchema)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{
		db:     db,
		log:    log,
		reqs:   make(chan *appendReq, maxGroup),
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	j.wg.Add(1)
	go j.writer()
	return j, nil
}

// Notify returns a channel that receives a value after appends, so a
// reader can wait instead of polling.
func (j *Journal) Notify() <-chan struct{} { return j.notify }

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("journal closed")

// Append stores b durably and returns its sequence number. A batch whose
// (App, FrameID) was appended before is not stored again: duplicate is true
// and seq is 0.
func (j *Journal) Append(ctx context.Context, b drainpipe.Batch) (int64, bool, error) {
	r := &appendReq{b: b, done: make(chan struct{})}
	select {
	case j.reqs <- r:
	case <-j.done:
		return 0, false, ErrClosed
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
	// Once handed over, wait for the commit even if ctx ends, so the caller
	// never answers before knowing whether the batch was kept.
	select {
	case <-r.done:
	case <-j.exited:
		select {
		case <-r.done:
		default:
			return 0, false, ErrClosed // the writer stopped before taking r
		}
	}
	return r.seq, r.dup, r.err
}

func (j *Journal) writer() {
	defer j.wg.Done()
	defer close(j.exited)
	group := make([]*appendReq, 0, maxGroup)
	for {
		select {
		case r := <-j.reqs:
			group = append(group[:0], r)
		case <-j.done:
			// Fail whatever is still queued.
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
	more:
		for len(group) < maxGroup {
			select {
			case r := <-j.reqs:
				group = append(group, r)
			default:
				break more
			}
		}
		err := j.commit(group)
		for _, r := range group {
			if err != nil {
				r.err, r.seq, r.dup = err, 0, false
			}
			close(r.done)
		}
		if err == nil {
			select {
			case j.notify <- struct{}{}:
			default:
			}
		}
	}
}

func (j *Journal) commit(group []*appendReq) error {
	ctx := context.Background()
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("journal: begin: %w", err)
	}
	defer tx.Rollback()
	for _, r := range group {
		b := &r.b
		if b.FrameID != "" {
			res, err := tx.ExecContext(ctx,
				`INSERT OR IGNORE INTO frames(app, frame_id, seen_at) VALUES (?, ?, ?)`,
				b.App, b.FrameID, b.ReceivedAt.UnixNano())
			if err != nil {
				return fmt.Errorf("journal: record frame id: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				r.dup = true
				continue
			}
		}
		err := tx.QueryRowContext(ctx,
			`INSERT INTO journal(app, frame_id, received_at, body, dropped, lost) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq`,
			b.App, b.FrameID, b.ReceivedAt.UnixNano(), b.Body, b.Dropped, b.Lost).Scan(&r.seq)
		if err != nil {
			return fmt.Errorf("journal: append: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("journal: commit: %w", err)
	}
	return nil
}

// MaxReadBytes bounds the bodies one Read returns (at least one record is
// always returned), so catching up on large batches cannot take unbounded
// memory.
const MaxReadBytes = 32 << 20

// Read returns up to max records with Seq > after, in order, stopping
// early once MaxReadBytes of bodies are read.
func (j *Journal) Read(ctx context.Context, after int64, max int) ([]drainpipe.Record, error) {
	rows, err := j.db.QueryContext(ctx,
		`SELECT seq, app, frame_id, received_at, body, dropped, lost FROM journal WHERE seq > ? ORDER BY seq LIMIT ?`,
		after, max)
	if err != nil {
		return nil, fmt.Errorf("journal: read after %d: %w", after, err)
	}
	defer rows.Close()
	var out []drainpipe.Record
	size := 0
	for size < MaxReadBytes && rows.Next() {
		var r drainpipe.Record
		var recv int64
		if err := rows.Scan(&r.Seq, &r.App, &r.FrameID, &recv, &r.Body, &r.Dropped, &r.Lost); err != nil {
			return nil, fmt.Errorf("journal: scan: %w", err)
		}
		r.ReceivedAt = time.Unix(0, recv).UTC()
		out = append(out, r)
		size += len(r.Body)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: read: %w", err)
	}
	return out, nil
}

// Trim deletes records up to and including upTo, and forgets frame ids
// older than FrameIDRetention.
func (j *Journal) Trim(ctx context.Context, upTo int64) error {
	if _, err := j.db.ExecContext(ctx, `DELETE FROM journal WHERE seq <= ?`, upTo); err != nil {
		return fmt.Errorf("journal: trim to %d: %w", upTo, err)
	}
	cutoff := time.Now().Add(-FrameIDRetention).UnixNano()
	if _, err := j.db.ExecContext(ctx, `DELETE FROM frames WHERE seen_at < ?`, cutoff); err != nil {
		return fmt.Errorf("journal: forget old frame ids: %w", err)
	}
	return nil
}

// Len returns the number of records currently kept (for /metrics).
func (j *Journal) Len(ctx context.Context) (int64, error) {
	var n int64
	err := j.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM journal`).Scan(&n)
	return n, err
}

// Close stops the writer, failing pending appends, and closes the database.
func (j *Journal) Close() error {
	j.once.Do(func() { close(j.done) })
	j.wg.Wait()
	return j.db.Close()
}
