// Package sqlite implements drainpipe's embedded default: the journal and
// the metrics store, each in its own SQLite database (pure Go, through
// modernc.org/sqlite), in write-ahead-log mode with full fsync on commit.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// busyTimeout is how long a statement waits for a lock another
// connection holds before it fails with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// open opens (creating if needed) the database at path in WAL mode with
// synchronous=FULL, so that a committed transaction survives a crash and a
// power loss, and applies schema. pageSize (0: SQLite's default) applies
// to a new file; pragmas (such as "wal_autocheckpoint(0)") are set on
// every connection after the defaults.
func open(ctx context.Context, path string, schema string, pageSize int, pragmas ...string) (*sql.DB, error) {
	if err := createWithPageSize(ctx, path, pageSize); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(ON)")
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		if isCorrupt(err) {
			return nil, &CorruptError{File: path, Offset: locateDamage(ctx, path), Detail: err.Error()}
		}
		return nil, fmt.Errorf("create schema in %s: %w", path, err)
	}
	return db, nil
}

// createWithPageSize creates the database at path with pages of
// pageSize bytes when it does not exist yet (or is empty). SQLite fixes
// the page size when a database's first page is written, and the DSN's
// pragmas run in name order, journal_mode (which writes it) before
// page_size, so a new database gets its page size here, before open
// applies the rest. An existing database keeps the page size it has.
func createWithPageSize(ctx context.Context, path string, pageSize int) error {
	if pageSize == 0 {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		return nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, fmt.Sprintf(`PRAGMA page_size = %d; PRAGMA journal_mode = WAL`, pageSize)); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return db.Close()
}

// txn is a transaction on a connection of its own. When COMMIT or
// ROLLBACK fails, SQLite may leave the transaction open (it does after
// SQLITE_FULL or SQLITE_IOERR, a full disk), and database/sql can no
// longer roll back a Tx whose Commit failed: the connection would go back
// to the pool inside a half-done transaction, and its next user would see
// rows that were never committed (a frame id that was never stored would
// look like a duplicate). txn then issues ROLLBACK on the connection
// itself and discards a connection that cannot do even that.
type txn struct {
	*sql.Tx
	conn *sql.Conn
	done bool
	stop context.Context // a detached transaction's context (beginDetached)
}

// begin starts an immediate transaction (the DSN's _txlock) on a
// connection of its own.
func begin(ctx context.Context, db *sql.DB) (*txn, error) {
	return beginTx(ctx, ctx, db)
}

// beginDetached is begin for a transaction whose statements run under
// context.WithoutCancel(ctx): ctx bounds only the wait for a connection,
// and the caller checks ctx between statements and before committing
// (txn.alive). A statement under a context that can be cancelled makes
// database/sql (for a query in such a transaction) and the SQLite driver
// (for any statement) each start a goroutine that watches it: two or
// three per row of a flush. It returns the context to run the
// statements under.
func beginDetached(ctx context.Context, db *sql.DB) (*txn, context.Context, error) {
	run := context.WithoutCancel(ctx)
	tx, err := beginTx(ctx, run, db)
	if err != nil {
		return nil, nil, err
	}
	tx.stop = ctx
	return tx, run, nil
}

// alive returns the error of the context a detached transaction was
// begun with (nil for another, or while it has not ended).
func (t *txn) alive() error {
	if t.stop == nil {
		return nil
	}
	return t.stop.Err()
}

func beginTx(connCtx, txCtx context.Context, db *sql.DB) (*txn, error) {
	conn, err := db.Conn(connCtx)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(txCtx, nil)
	if err != nil {
		t := &txn{conn: conn, done: true}
		t.reset()
		conn.Close()
		return nil, err
	}
	return &txn{Tx: tx, conn: conn}, nil
}

// Commit commits; on failure the connection is reset (see txn).
func (t *txn) Commit() error {
	if t.done {
		return sql.ErrTxDone
	}
	if err := t.alive(); err != nil {
		return err // not committed: Rollback ends it
	}
	t.done = true
	err := t.Tx.Commit()
	if err != nil {
		t.reset()
	}
	t.conn.Close()
	return err
}

// Rollback rolls back unless already done (safe to defer).
func (t *txn) Rollback() error {
	if t.done {
		return sql.ErrTxDone
	}
	t.done = true
	err := t.Tx.Rollback()
	if err != nil {
		t.reset()
	}
	t.conn.Close()
	return err
}

// reset ends whatever transaction SQLite still holds open on the
// connection, or has the pool discard the connection.
func (t *txn) reset() {
	_, err := t.conn.ExecContext(context.Background(), `ROLLBACK`)
	if err != nil && !strings.Contains(err.Error(), "no transaction is active") {
		_ = t.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}
