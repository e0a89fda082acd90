// Package sqlite implements drainpipe's embedded default: the journal and
// the metrics store, each in its own SQLite database (pure Go, through
// modernc.org/sqlite), in write-ahead-log mode with full fsync on commit.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// open opens (creating if needed) the database at path in WAL mode with
// synchronous=FULL, so that a committed transaction survives a crash and a
// power loss, and applies schema.
func open(ctx context.Context, path string, schema string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
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
