package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/internal/batchcodec"
	"github.com/drainpipe/drainpipe/internal/groupcommit"
	"github.com/drainpipe/drainpipe/internal/handoff"
)

const journalSchema = `
CREATE TABLE IF NOT EXISTS journal (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	app         TEXT NOT NULL,
	frame_id    TEXT NOT NULL,
	received_at INTEGER NOT NULL,
	body        BLOB NOT NULL,
	dropped     INTEGER NOT NULL DEFAULT 0,
	lost        INTEGER NOT NULL DEFAULT 0,
	crc         INTEGER,
	damaged     INTEGER NOT NULL DEFAULT 0,
	codec       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS frames (
	app      TEXT NOT NULL,
	frame_id TEXT NOT NULL,
	seen_at  INTEGER NOT NULL,
	PRIMARY KEY (app, frame_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS frames_seen ON frames(seen_at);
CREATE TABLE IF NOT EXISTS journal_quarantine (
	seq         INTEGER PRIMARY KEY,
	file_offset INTEGER NOT NULL,
	app         TEXT NOT NULL,
	frame_id    TEXT NOT NULL,
	received_at INTEGER NOT NULL,
	body        BLOB NOT NULL,
	dropped     INTEGER NOT NULL,
	lost        INTEGER NOT NULL,
	crc         INTEGER NOT NULL,
	reason      TEXT NOT NULL,
	moved_at    INTEGER NOT NULL,
	codec       INTEGER NOT NULL DEFAULT 0
);
`

// maxGroup bounds how many appends share one commit (group commit).
const maxGroup = 256

// Journal is the embedded, durable journal: drain batches in a SQLite
// table. Concurrent appends are grouped into one transaction and one fsync,
// and each caller returns only after that commit.
type Journal struct {
	db     *sql.DB
	path   string
	log    *slog.Logger
	reqs   chan *appendReq
	trims  chan *trimReq
	notify chan struct{}
	ckpt   chan struct{} // the writer asks the checkpointer for a checkpoint
	// ckptEvery and walCap are checkpointEvery and walCapFrames (tests
	// lower them).
	ckptEvery int
	walCap    int64
	// insFrame and insRecord are the commit's statements, prepared once
	// (a Tx reuses them on the connection they were prepared on).
	insFrame, insRecord *sql.Stmt
	// commitMu is held by the writer for each group commit, and by the
	// checkpointer to hold the writer (see checkpointer).
	commitMu sync.Mutex
	done     chan struct{} // closed by Close
	exited   chan struct{} // closed when the writer has returned
	wg       sync.WaitGroup
	once     sync.Once
	// packBufs holds the buffers Append compresses bodies into; a buffer
	// goes back only once the writer is done with the request using it.
	packBufs sync.Pool
	// handoff holds the newest committed records for Read, so the
	// aggregator need not read back and decompress what was just written.
	handoff *handoff.Handoff

	quarantined atomic.Int64
	lastSeq     atomic.Int64 // the highest sequence number committed
}

type appendReq struct {
	b drainpipe.Batch
	// crc, codec and stored are computed by Append's caller, so the single
	// writer goroutine only runs SQL and the fsync.
	crc    uint32
	codec  int64
	stored []byte
	seq    int64
	dup    bool
	err    error
	done   chan struct{}
}

// trimReq asks the writer to delete the records up to upTo.
type trimReq struct {
	upTo int64
	err  error
	done chan struct{}
}

var _ drainpipe.Journal = (*Journal)(nil)

// OpenJournal opens or creates the journal database at path.
func OpenJournal(ctx context.Context, path string, log *slog.Logger) (*Journal, error) {
	db, err := open(ctx, path, journalSchema, 0, "wal_autocheckpoint(0)") // see checkpointer
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{
		db:        db,
		path:      path,
		log:       log,
		reqs:      make(chan *appendReq, maxGroup),
		trims:     make(chan *trimReq),
		notify:    make(chan struct{}, 1),
		ckpt:      make(chan struct{}, 1),
		ckptEvery: checkpointEvery,
		walCap:    walCapFrames,
		done:      make(chan struct{}),
		exited:    make(chan struct{}),
	}
	j.packBufs.New = func() any { return new([]byte) }
	if err := j.verify(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	var last int64
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'journal'`).Scan(&last); err != nil {
		db.Close()
		return nil, fmt.Errorf("journal: read last sequence number: %w", err)
	}
	j.lastSeq.Store(last)
	if j.insFrame, err = db.PrepareContext(ctx, `INSERT OR IGNORE INTO frames(app, frame_id, seen_at) VALUES (?, ?, ?)`); err == nil {
		j.insRecord, err = db.PrepareContext(ctx, `INSERT INTO journal(app, frame_id, received_at, body, dropped, lost, crc, codec) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("journal: prepare statements: %w", err)
	}
	j.handoff = handoff.New(last)
	j.wg.Add(2)
	go j.writer()
	go j.checkpointer()
	return j, nil
}

// verify is the start-up check: SQLite's structural check of the file,
// then every record's CRC-32C. A record that fails is moved, bytes
// intact, to journal_quarantine and left in the journal as a damaged
// marker that the aggregator counts as lost (rejected.corrupt), so every
// intact record is kept and the loss is reported. A file that fails the
// structural check is refused (*CorruptError).
func (j *Journal) verify(ctx context.Context) error {
	if err := migrateJournal(ctx, j.db); err != nil {
		return err
	}
	if err := checkStructure(ctx, j.db, j.path); err != nil {
		return err
	}
	rows, err := j.db.QueryContext(ctx,
		`SELECT seq, app, frame_id, received_at, body, dropped, lost, crc, codec FROM journal WHERE damaged = 0 AND crc IS NOT NULL ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("verify records: %w", err)
	}
	var bad []int64
	n := 0
	for rows.Next() {
		var seq, recv, dropped, lost, crc, codec int64
		var app, frameID string
		var stored []byte
		if err := rows.Scan(&seq, &app, &frameID, &recv, &stored, &dropped, &lost, &crc, &codec); err != nil {
			rows.Close()
			return fmt.Errorf("verify records: %w", err)
		}
		n++
		body, derr := batchcodec.Expand(codec, stored)
		if derr != nil || uint32(crc) != batchcodec.RecordCRC(app, frameID, recv, dropped, lost, body) || crc>>32 != 0 {
			bad = append(bad, seq)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("verify records: %w", err)
	}
	for _, seq := range bad {
		if err := j.quarantine(ctx, seq, "checksum mismatch at start-up"); err != nil {
			return err
		}
	}
	j.log.Info("journal verified", "file", j.path, "records", n, "damaged", len(bad))
	return nil
}

// migrateJournal adds the checksum columns to a journal created before
// records carried them; such old records stay unchecked (crc NULL).
func migrateJournal(ctx context.Context, db *sql.DB) error {
	have := map[string]bool{}
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info('journal')`)
	if err != nil {
		return fmt.Errorf("read journal columns: %w", err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("read journal columns: %w", err)
		}
		have[name] = true
	}
	rows.Close()
	for _, c := range []struct{ name, def string }{{"crc", "INTEGER"}, {"damaged", "INTEGER NOT NULL DEFAULT 0"}, {"codec", "INTEGER NOT NULL DEFAULT 0"}} {
		if !have[c.name] {
			if _, err := db.ExecContext(ctx, `ALTER TABLE journal ADD COLUMN `+c.name+` `+c.def); err != nil {
				return fmt.Errorf("add journal column %s: %w", c.name, err)
			}
		}
	}
	var quarantineCodec int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('journal_quarantine') WHERE name = 'codec'`).Scan(&quarantineCodec); err != nil {
		return fmt.Errorf("read journal_quarantine columns: %w", err)
	}
	if quarantineCodec == 0 {
		if _, err := db.ExecContext(ctx, `ALTER TABLE journal_quarantine ADD COLUMN codec INTEGER NOT NULL DEFAULT 0`); err != nil {
			return fmt.Errorf("add journal_quarantine column codec: %w", err)
		}
	}
	return nil
}

// quarantine moves record seq, bytes intact, to journal_quarantine and
// leaves a damaged marker in its place (empty body, damaged=1), logging
// the file and the byte offset of the record's body.
func (j *Journal) quarantine(ctx context.Context, seq int64, reason string) error {
	tx, err := begin(ctx, j.db)
	if err != nil {
		return fmt.Errorf("quarantine record %d: %w", seq, err)
	}
	defer tx.Rollback()
	var offset int64
	var app string
	if err := tx.QueryRowContext(ctx, `SELECT sqlite_offset(body), app FROM journal WHERE seq = ?`, seq).Scan(&offset, &app); err != nil {
		return fmt.Errorf("quarantine record %d: %w", seq, err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT OR REPLACE INTO journal_quarantine(seq, file_offset, app, frame_id, received_at, body, dropped, lost, crc, reason, moved_at, codec)
		 SELECT seq, ?, app, frame_id, received_at, body, dropped, lost, COALESCE(crc, 0), ?, ?, codec FROM journal WHERE seq = ?`,
		offset, reason, time.Now().Unix(), seq); err != nil {
		return fmt.Errorf("quarantine record %d: %w", seq, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE journal SET body = x'', dropped = 0, lost = 0, damaged = 1, codec = 0 WHERE seq = ?`, seq); err != nil {
		return fmt.Errorf("quarantine record %d: %w", seq, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("quarantine record %d: %w", seq, err)
	}
	j.quarantined.Add(1)
	j.log.Error("journal: damaged record moved to journal_quarantine; its lines are counted as rejected.corrupt",
		"file", j.path, "offset", offset, "seq", seq, "app", app, "reason", reason)
	return nil
}

// Quarantined returns how many damaged records this Journal has moved to
// quarantine since it was opened.
func (j *Journal) Quarantined() int64 { return j.quarantined.Load() }

// Notify returns a channel that receives a value after appends, so a
// reader can wait instead of polling.
func (j *Journal) Notify() <-chan struct{} { return j.notify }

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("journal closed")

// Append stores b durably and returns its sequence number. A batch whose
// (App, FrameID) was appended before is not stored again: duplicate is true
// and seq is 0.
//
// The journal keeps b.Body in memory until Read has handed it out, so the
// caller must not change it afterwards (Read checks it against the
// record's checksum and reads the file instead if it was).
func (j *Journal) Append(ctx context.Context, b drainpipe.Batch) (int64, bool, error) {
	r := &appendReq{b: b, done: make(chan struct{})}
	r.crc = batchcodec.RecordCRC(b.App, b.FrameID, b.ReceivedAt.UnixNano(), b.Dropped, b.Lost, b.Body)
	buf := j.packBufs.Get().(*[]byte)
	defer j.packBufs.Put(buf)
	r.codec, r.stored = batchcodec.Pack(*buf, b.Body)
	if r.codec == batchcodec.S2 {
		*buf = r.stored[:0]
	}
	if err := groupcommit.Submit(ctx, j.reqs, r, r.done, j.done, j.exited, ErrClosed); err != nil {
		return 0, false, err
	}
	return r.seq, r.dup, r.err
}

func (j *Journal) writer() {
	defer j.wg.Done()
	defer close(j.exited)
	group := make([]*appendReq, 0, maxGroup)
	entries := make([]handoff.Entry, 0, maxGroup)
	written := 0 // bytes committed since the last checkpoint request
	for {
		select {
		case r := <-j.reqs:
			group = append(group[:0], r)
		case t := <-j.trims:
			j.commitMu.Lock()
			t.err = j.trim(t.upTo)
			j.commitMu.Unlock()
			close(t.done)
			continue
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
		j.commitMu.Lock()
		err := j.commit(group)
		j.commitMu.Unlock()
		if err != nil {
			j.handoff.Invalidate()
		} else {
			entries = entries[:0]
			for _, r := range group {
				if !r.dup {
					entries = append(entries, handoff.Entry{Rec: drainpipe.Record{Seq: r.seq, Batch: r.b}, CRC: r.crc})
				}
			}
			j.handoff.Add(entries)
			clear(entries)
			for _, r := range group {
				if !r.dup {
					written += len(r.stored)
				}
			}
			if written >= j.ckptEvery {
				select {
				case j.ckpt <- struct{}{}:
					written = 0
				default: // one is running; ask again after the next commit
				}
			}
		}
		for _, r := range group {
			if err != nil {
				r.err, r.seq, r.dup = err, 0, false
			}
			if r.seq > j.lastSeq.Load() {
				j.lastSeq.Store(r.seq)
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
	tx, err := begin(ctx, j.db)
	if err != nil {
		return fmt.Errorf("journal: begin: %w", err)
	}
	defer tx.Rollback()
	insFrame, insRecord := tx.StmtContext(ctx, j.insFrame), tx.StmtContext(ctx, j.insRecord)
	for _, r := range group {
		b := &r.b
		if b.FrameID != "" {
			res, err := insFrame.ExecContext(ctx, b.App, b.FrameID, b.ReceivedAt.UnixNano())
			if err != nil {
				return fmt.Errorf("journal: record frame id: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				r.dup = true
				continue
			}
		}
		err := insRecord.QueryRowContext(ctx, b.App, b.FrameID, b.ReceivedAt.UnixNano(), r.stored, b.Dropped, b.Lost, int64(r.crc), r.codec).Scan(&r.seq)
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
// early once MaxReadBytes of bodies are read. Every record's checksum is
// checked; one that fails (damaged since start-up) is quarantined like at
// start-up and returned with Damaged set and no body.
//
// Records committed lately come from memory (the hand-off, see handoff):
// the bodies Append was given, checked against the checksums computed
// from them, never read back from the file. The journal has one reader:
// Read(after) also tells it that the records up to after are no longer
// needed in memory.
func (j *Journal) Read(ctx context.Context, after int64, max int) ([]drainpipe.Record, error) {
	if recs, crcs, ok := j.handoff.Read(after, max, MaxReadBytes); ok {
		intact := true
		for i := range recs {
			r := &recs[i]
			if crcs[i] != batchcodec.RecordCRC(r.App, r.FrameID, r.ReceivedAt.UnixNano(), r.Dropped, r.Lost, r.Body) {
				intact = false
				j.log.Error("journal: a record's body changed in memory after Append (its caller reused the buffer); reading from the file",
					"seq", r.Seq, "app", r.App)
				break
			}
		}
		if intact {
			return recs, nil
		}
		j.handoff.Invalidate()
	}
	out, bad, err := j.read(ctx, after, max)
	if err != nil {
		return nil, err
	}
	for _, i := range bad {
		if err := j.quarantine(ctx, out[i].Seq, "checksum mismatch on read"); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		out[i].Body, out[i].Dropped, out[i].Lost, out[i].Damaged = nil, 0, 0, true
	}
	return out, nil
}

// read returns the records and the indexes of those failing their CRC.
func (j *Journal) read(ctx context.Context, after int64, max int) ([]drainpipe.Record, []int, error) {
	rows, err := j.db.QueryContext(ctx,
		`SELECT seq, app, frame_id, received_at, body, dropped, lost, crc, damaged, codec FROM journal WHERE seq > ? ORDER BY seq LIMIT ?`,
		after, max)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: read after %d: %w", after, err)
	}
	defer rows.Close()
	var out []drainpipe.Record
	var bad []int
	size := 0
	for size < MaxReadBytes && rows.Next() {
		var r drainpipe.Record
		var recv int64
		var crc sql.NullInt64
		var codec int64
		var stored []byte
		if err := rows.Scan(&r.Seq, &r.App, &r.FrameID, &recv, &stored, &r.Dropped, &r.Lost, &crc, &r.Damaged, &codec); err != nil {
			return nil, nil, fmt.Errorf("journal: scan: %w", err)
		}
		body, derr := batchcodec.Expand(codec, stored)
		r.Body = body
		if !r.Damaged && (derr != nil || crc.Valid && (uint32(crc.Int64) != batchcodec.RecordCRC(r.App, r.FrameID, recv, r.Dropped, r.Lost, r.Body) || crc.Int64>>32 != 0)) {
			bad = append(bad, len(out))
		}
		r.ReceivedAt = time.Unix(0, recv).UTC()
		out = append(out, r)
		size += len(r.Body)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("journal: read: %w", err)
	}
	return out, bad, nil
}

// Trim deletes records up to and including upTo, and forgets frame ids
// older than drainpipe.FrameIDRetention. The journal's writer does it between two
// group commits: as the only writer of journal.db it never waits on
// SQLite's lock (whose busy handler sleeps). Appends that arrive during a
// trim wait for it like for any group commit (its DELETE and fsync), but
// never on SQLite's busy handler.
func (j *Journal) Trim(ctx context.Context, upTo int64) error {
	j.handoff.Forget(upTo)
	t := &trimReq{upTo: upTo, done: make(chan struct{})}
	select {
	case j.trims <- t:
	case <-j.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	<-t.done // the writer always finishes a trim it took
	return t.err
}

// trim runs a Trim, in one transaction.
func (j *Journal) trim(upTo int64) error {
	ctx := context.Background()
	tx, err := begin(ctx, j.db)
	if err != nil {
		return fmt.Errorf("journal: trim to %d: %w", upTo, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM journal WHERE seq <= ?`, upTo); err != nil {
		return fmt.Errorf("journal: trim to %d: %w", upTo, err)
	}
	cutoff := time.Now().Add(-drainpipe.FrameIDRetention).UnixNano()
	if _, err := tx.ExecContext(ctx, `DELETE FROM frames WHERE seen_at < ?`, cutoff); err != nil {
		return fmt.Errorf("journal: forget old frame ids: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("journal: trim to %d: %w", upTo, err)
	}
	return nil
}

// LastSeq returns the highest sequence number committed so far (0 for an
// empty journal); LastSeq minus the store's position is the backlog.
func (j *Journal) LastSeq() int64 { return j.lastSeq.Load() }

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
	j.insFrame.Close()
	j.insRecord.Close()
	return j.db.Close()
}
