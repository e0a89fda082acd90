package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/drainpipe/drainpipe/metrics"
)

// ScrubReport is what one Scrub found.
type ScrubReport struct {
	Partitions  int     // partition tables checked
	Buckets     int     // buckets read
	Quarantined int     // damaged buckets moved to the quarantine table
	Repaired    int     // rows whose plain counts were rewritten from their bucket
	Damaged     []error // a *CorruptError per partition whose structure failed
}

// scrubChunk is how many buckets one read of Scrub takes: each read is
// its own short snapshot, so a scrub never holds the WAL back for long.
const scrubChunk = 256

// Scrub checks every partition of the store while it is in use: SQLite's
// structural check of the table, then every bucket's CRC-32C (over all its
// bytes) and its plain request and 5xx columns against the checksummed
// bucket. Only the status part is decoded: the checksum is what finds
// damage. A bucket that fails is moved, bytes intact, to the quarantine
// table, reported with the file and the row's byte offset, and left out
// of every answer; plain columns that disagree with their (intact) bucket
// are rewritten from it. Each fix applies only if the row still holds the
// bytes that were read, so a flush that rewrote the row in between wins.
// A partition whose structure fails is reported (ScrubReport.Damaged and
// the log) and skipped; the others are still checked. Partitions dropped
// by retention meanwhile are skipped.
func (s *Store) Scrub(ctx context.Context) (ScrubReport, error) {
	return s.scrub(ctx, true)
}

// scrub is Scrub; structure=false leaves out the structural check of each
// partition (verify has checked the whole file).
func (s *Store) scrub(ctx context.Context, structure bool) (ScrubReport, error) {
	var r ScrubReport
	tables := s.allPartitions()
	slices.Sort(tables)
	for _, table := range tables {
		if structure {
			err := checkTable(ctx, s.db, s.path, table)
			var ce *CorruptError
			switch {
			case errors.As(err, &ce) && s.knows(table):
				ce.Table = table
				s.log.Error("store: partition damaged; its buckets are left as they are, queries skip what they cannot read",
					"table", table, "err", err)
				r.Damaged = append(r.Damaged, err)
				continue
			case err != nil && !s.knows(table):
				continue // dropped by retention meanwhile
			case err != nil:
				return r, fmt.Errorf("scrub %s: %w", table, err)
			}
		}
		if err := s.scrubPartition(ctx, table, &r); err != nil {
			if !s.knows(table) {
				continue
			}
			return r, fmt.Errorf("scrub %s: %w", table, err)
		}
		r.Partitions++
	}
	return r, nil
}

// knows reports whether table is still one of the store's partitions.
func (s *Store) knows(table string) bool {
	return slices.Contains(s.allPartitions(), table)
}

// scrubbed is one bucket as Scrub read it.
type scrubbed struct {
	offset           int64
	app, ptype       string
	ts               int64
	requests, err5xx int64
	data             []byte
}

// scrubPartition checks table's buckets, scrubChunk at a time in key
// order, and fixes what fails.
func (s *Store) scrubPartition(ctx context.Context, table string, r *ScrubReport) error {
	after := scrubbed{ts: math.MinInt64}
	for {
		chunk, err := s.scrubRead(ctx, table, after)
		if err != nil {
			return err
		}
		for i := range chunk {
			b := &chunk[i]
			r.Buckets++
			d, derr := metrics.DecodeParts(b.data, metrics.PartStatus)
			switch {
			case derr != nil:
				ok, err := s.quarantine(ctx, table, b, derr)
				if err != nil {
					return err
				}
				if ok {
					r.Quarantined++
				}
			case d.Requests != b.requests || d.Count5xx() != b.err5xx:
				ok, err := s.repairCounts(ctx, table, b, d.Requests, d.Count5xx())
				if err != nil {
					return err
				}
				if ok {
					r.Repaired++
				}
			}
		}
		if len(chunk) < scrubChunk {
			return nil
		}
		after = chunk[len(chunk)-1]
	}
}

// scrubRead reads up to scrubChunk buckets of table after the key of
// after, in one short read.
func (s *Store) scrubRead(ctx context.Context, table string, after scrubbed) ([]scrubbed, error) {
	s.readGate.RLock()
	defer s.readGate.RUnlock()
	rows, err := s.db.QueryContext(ctx, `SELECT sqlite_offset(data), app, ptype, ts, requests, err5xx, data FROM `+table+
		` WHERE (app, ptype, ts) > (?, ?, ?) ORDER BY app, ptype, ts LIMIT ?`, after.app, after.ptype, after.ts, scrubChunk)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]scrubbed, 0, scrubChunk)
	for rows.Next() {
		var b scrubbed
		if err := rows.Scan(&b.offset, &b.app, &b.ptype, &b.ts, &b.requests, &b.err5xx, &b.data); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// quarantine moves the damaged bucket b to the quarantine table, if its
// row still holds the bytes read, and reports whether it did.
func (s *Store) quarantine(ctx context.Context, table string, b *scrubbed, cause error) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("quarantine bucket in %s: %w", table, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE app = ? AND ptype = ? AND ts = ? AND data = ?`, b.app, b.ptype, b.ts, b.data)
	if err != nil {
		return false, fmt.Errorf("quarantine bucket in %s: %w", table, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err // rewritten since it was read
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO quarantine(tbl, app, ptype, ts, data, error, moved_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		table, b.app, b.ptype, b.ts, b.data, cause.Error(), time.Now().Unix()); err != nil {
		return false, fmt.Errorf("quarantine bucket in %s: %w", table, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("quarantine bucket in %s: %w", table, err)
	}
	s.log.Error("store: damaged bucket moved to quarantine and left out of every answer",
		"file", s.path, "offset", b.offset, "table", table, "app", b.app, "process_type", b.ptype, "ts", b.ts, "err", cause)
	return true, nil
}

// repairCounts rewrites b's plain request and 5xx columns from its
// checksummed bucket, if its row still holds the bytes read, and reports
// whether it did.
func (s *Store) repairCounts(ctx context.Context, table string, b *scrubbed, requests, err5xx int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE `+table+` SET requests = ?, err5xx = ? WHERE app = ? AND ptype = ? AND ts = ? AND data = ?`,
		requests, err5xx, b.app, b.ptype, b.ts, b.data)
	if err != nil {
		return false, fmt.Errorf("repair counts in %s: %w", table, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	s.log.Error("store: request counts disagreed with their checksummed bucket; rewritten from it",
		"file", s.path, "offset", b.offset, "table", table, "app", b.app, "process_type", b.ptype, "ts", b.ts)
	return true, nil
}
