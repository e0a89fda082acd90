package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// The coarser tiers (10 minutes, 1 hour) are rolled up from the 1-minute
// tier behind a cursor instead of being rewritten by every flush.
//
// A flush merges its deltas into the 1-minute tier. Deltas of minutes
// behind the cursor (late data, replays, imported history) are merged
// into the coarser tiers right away, as before; deltas of minutes at or
// after it reach only the 1-minute tier, and the rollup later merges
// their whole 1-minute rows into the coarser tiers, once, and moves the
// cursor past them. Each flush rolls up a share of the closed minutes
// (whole apps at a time, minutes more than rollupLag old) in its own
// transaction, which also records the cursor, so a crash loses or repeats
// nothing. Queries of a coarser tier read the rows behind the cursor from
// that tier and add the 1-minute rows at or after it (pending rows), in
// one read transaction, so every tier is as fresh as the 1-minute one.
//
// Before, the open minute's three rows were all rewritten by every flush;
// at 10,000 apps the two coarser rows were two thirds of a flush's cost
// (docs/BENCHMARKS.md, Store flush).

const rollupSchema = `
CREATE TABLE IF NOT EXISTS rollup (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	ts  INTEGER NOT NULL,
	app TEXT NOT NULL
);
`

// rollupLag is how old a minute must be before it is rolled up: lines
// keep arriving for a minute a few seconds after it closed, and those of
// a minute not yet rolled up cost a flush only their 1-minute row.
const rollupLag = 2 * time.Minute

// rollupCursor marks how far 1-minute rows have been merged into the
// coarser tiers: the row of an app's minute ts is in them when ts < Ts,
// or ts == Ts and app <= App.
type rollupCursor struct {
	Ts  int64
	App string
}

// rolled reports whether the 1-minute row of app at minute ts is in the
// coarser tiers.
func (c rollupCursor) rolled(ts int64, app string) bool {
	return ts < c.Ts || ts == c.Ts && app <= c.App
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readCursor(ctx context.Context, q querier) (rollupCursor, error) {
	var c rollupCursor
	if err := q.QueryRowContext(ctx, `SELECT ts, app FROM rollup WHERE id = 1`).Scan(&c.Ts, &c.App); err != nil {
		return c, fmt.Errorf("store: read rollup cursor: %w", err)
	}
	return c, nil
}

// initRollup sets the cursor of a store that has none (a new one, or one
// written before the cursor existed, when every flush wrote every tier)
// past every stored 1-minute row and the current minute's start.
func (s *Store) initRollup(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM rollup`).Scan(&n); err != nil {
		return fmt.Errorf("read rollup cursor: %w", err)
	}
	if n > 0 {
		return nil
	}
	w := s.now().Truncate(time.Minute).Unix()
	for _, table := range s.partitionsIn(drainpipe.Tier1m, time.Unix(math.MinInt32, 0), time.Unix(math.MaxInt64/2, 0)) {
		var last sql.NullInt64
		if err := s.db.QueryRowContext(ctx, `SELECT max(ts) FROM `+table).Scan(&last); err != nil {
			return fmt.Errorf("init rollup cursor: %w", err)
		}
		if last.Valid {
			w = max(w, last.Int64+60)
		}
	}
	if _, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO rollup(id, ts, app) VALUES (1, ?, '')`, w); err != nil {
		return fmt.Errorf("init rollup cursor: %w", err)
	}
	return nil
}

// tierGroups sums deltas per row of one tier. A group borrows the first
// bucket added to it and copies it only when a second one is merged in:
// the buckets added are never changed (a flush's buckets go on to the
// monitor evaluator).
type tierGroups struct {
	tier     drainpipe.Tier
	m        map[groupKey]*metrics.Bucket
	borrowed map[groupKey]bool
	order    []groupKey
}

func newTierGroups(tier drainpipe.Tier) *tierGroups {
	return &tierGroups{tier: tier, m: map[groupKey]*metrics.Bucket{}, borrowed: map[groupKey]bool{}}
}

// add merges b, a bucket of the minute starting at ts (Unix seconds),
// into its row of the tier.
func (g *tierGroups) add(app, ptype string, ts int64, b *metrics.Bucket) {
	k := groupKey{app, ptype, time.Unix(ts, 0).Truncate(g.tier.Duration()).Unix()}
	d, ok := g.m[k]
	if !ok {
		g.m[k] = b
		g.borrowed[k] = true
		g.order = append(g.order, k)
		return
	}
	if g.borrowed[k] {
		c := new(metrics.Bucket)
		c.Merge(d)
		d = c
		g.m[k] = d
		delete(g.borrowed, k)
	}
	d.Merge(b)
}

// write merges every group into its stored row, in key order (which is
// the tables' primary-key order, so neighbouring rows share pages).
// Groups in a partition past its retention at now are left out (Import);
// a zero now keeps everything.
func (s *Store) write(ctx context.Context, stmts *stmtCache, g *tierGroups, created map[partKey]string, now time.Time) error {
	slices.SortFunc(g.order, func(a, b groupKey) int {
		if c := strings.Compare(a.app, b.app); c != 0 {
			return c
		}
		if c := strings.Compare(a.ptype, b.ptype); c != 0 {
			return c
		}
		return int(a.ts - b.ts)
	})
	for _, k := range g.order {
		if !now.IsZero() && s.expired(g.tier, k.ts, now) {
			continue
		}
		if err := stmts.alive(); err != nil {
			return err
		}
		table, err := s.partition(ctx, stmts.tx, g.tier, time.Unix(k.ts, 0), created)
		if err != nil {
			return err
		}
		if err := s.mergeRow(ctx, stmts, table, k, g.m[k]); err != nil {
			return err
		}
	}
	return nil
}

// oneMinutePartition returns the 1-minute partition holding ts, or ""
// and the start of the next existing one after ts (math.MaxInt64 when
// there is none). It reads the partitions table through the flush's
// transaction, not the store's cache of it (s.parts): another writer
// (Import, a flush) records the partitions it created in the cache only
// after its commit, and a rollup that went by the cache in between would
// move the cursor past the new partition's minutes for good.
func (s *Store) oneMinutePartition(ctx context.Context, stmts *stmtCache, ts int64) (string, int64, error) {
	span := int64(partitionSpan(drainpipe.Tier1m) / time.Second)
	q, err := stmts.get(ctx, `SELECT start, name FROM partitions WHERE tier = ? AND start > ? ORDER BY start LIMIT 1`)
	if err != nil {
		return "", 0, err
	}
	var start int64
	var name string
	switch err := q.QueryRowContext(ctx, int64(drainpipe.Tier1m), ts-span).Scan(&start, &name); {
	case errors.Is(err, sql.ErrNoRows):
		return "", math.MaxInt64, nil
	case err != nil:
		return "", 0, fmt.Errorf("store: roll up: find partition: %w", err)
	case start <= ts:
		return name, start + span, nil
	default:
		return "", start, nil
	}
}

// rollup hands the 1-minute rows after cur of minutes before limit to add
// (one decoded row each, for the coarser tiers), whole apps at a time, up
// to maxApps apps' minutes, and returns the cursor past them.
func (s *Store) rollup(ctx context.Context, stmts *stmtCache, cur rollupCursor, limit int64, maxApps int, add func(metrics.Row)) (rollupCursor, error) {
	for maxApps > 0 && cur.Ts < limit {
		table, end, err := s.oneMinutePartition(ctx, stmts, cur.Ts)
		if err != nil {
			return cur, err
		}
		if table == "" {
			cur = rollupCursor{Ts: min(end, limit)}
			continue
		}
		apps, err := s.rollupApps(ctx, stmts, table, cur, maxApps)
		if err != nil {
			return cur, err
		}
		if len(apps) == 0 {
			// This minute is done: on to the next one that has rows.
			next, err := s.nextMinute(ctx, stmts, table, cur.Ts, min(end, limit))
			if err != nil {
				return cur, err
			}
			cur = rollupCursor{Ts: next}
			continue
		}
		last := apps[len(apps)-1]
		q, err := stmts.get(ctx, `SELECT app, ptype, data FROM `+table+` WHERE ts = ? AND app > ? AND app <= ?`)
		if err != nil {
			return cur, err
		}
		rows, err := q.QueryContext(ctx, cur.Ts, cur.App, last)
		if err != nil {
			return cur, fmt.Errorf("store: roll up %s: %w", table, err)
		}
		for rows.Next() {
			var app, ptype string
			var data sql.RawBytes
			if err := rows.Scan(&app, &ptype, &data); err != nil {
				rows.Close()
				return cur, fmt.Errorf("store: roll up %s: %w", table, err)
			}
			b, err := metrics.Decode(data)
			if err != nil {
				// Quarantined by the next flush that touches the row; its
				// minute is missing from the coarser tiers.
				s.log.Error("store: corrupt bucket left out of the rollup", "table", table, "app", app, "process_type", ptype, "ts", cur.Ts, "err", err)
				continue
			}
			add(metrics.Row{App: app, ProcessType: ptype, Time: time.Unix(cur.Ts, 0), Bucket: b})
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return cur, fmt.Errorf("store: roll up %s: %w", table, err)
		}
		cur.App = last
		maxApps -= len(apps)
	}
	return cur, nil
}

// rollupApps returns up to n apps after cur.App with a row at minute
// cur.Ts, in order.
func (s *Store) rollupApps(ctx context.Context, stmts *stmtCache, table string, cur rollupCursor, n int) ([]string, error) {
	q, err := stmts.get(ctx, `SELECT DISTINCT app FROM `+table+` WHERE ts = ? AND app > ? ORDER BY app LIMIT ?`)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, cur.Ts, cur.App, n)
	if err != nil {
		return nil, fmt.Errorf("store: roll up %s: %w", table, err)
	}
	defer rows.Close()
	var apps []string
	for rows.Next() {
		var app string
		if err := rows.Scan(&app); err != nil {
			return nil, fmt.Errorf("store: roll up %s: %w", table, err)
		}
		apps = append(apps, app)
	}
	return apps, rows.Err()
}

// nextMinute returns the first minute after ts and before end with a row
// in table, or end.
func (s *Store) nextMinute(ctx context.Context, stmts *stmtCache, table string, ts, end int64) (int64, error) {
	q, err := stmts.get(ctx, `SELECT min(ts) FROM `+table+` WHERE ts > ? AND ts < ?`)
	if err != nil {
		return 0, err
	}
	var next sql.NullInt64
	if err := q.QueryRowContext(ctx, ts, end).Scan(&next); err != nil {
		return 0, fmt.Errorf("store: roll up %s: %w", table, err)
	}
	if !next.Valid {
		return end, nil
	}
	return next.Int64, nil
}

// rollupApps is how many apps' closed minutes one flush rolls up: about a
// quarter of the rows the flush itself writes (each app has one or two
// process types), so that a minute is rolled up within a few flushes and
// no flush pays for a whole minute's rollup at once. At a flush every
// 15 s or less that keeps up with every minute's rows.
func rollupAppsPerFlush(rows int) int { return rows/8 + 64 }

// RollUp rolls up every closed minute not yet in the coarser tiers, in one
// transaction. Flushes roll up a share each; this catches up after a long
// pause, before the 1-minute partitions that hold them expire.
func (s *Store) RollUp(ctx context.Context, now time.Time) error {
	return s.apply(ctx, &metrics.Flush{}, applyOpts{rollApps: math.MaxInt, rollNow: now})
}

// rollupLimit is the first minute that is not rolled up yet at now.
func rollupLimit(now time.Time) int64 {
	return now.Add(-rollupLag).Truncate(time.Minute).Unix() + 60
}

func saveCursor(ctx context.Context, stmts *stmtCache, c rollupCursor) error {
	if _, err := stmts.tx.ExecContext(ctx, `UPDATE rollup SET ts = ?, app = ? WHERE id = 1`, c.Ts, c.App); err != nil {
		return fmt.Errorf("store: record rollup cursor: %w", err)
	}
	return nil
}

// remember records the partitions a committed transaction created.
func (s *Store) remember(created map[partKey]string) {
	if len(created) == 0 {
		return
	}
	s.mu.Lock()
	for k, name := range created {
		s.parts[k] = name
	}
	s.mu.Unlock()
}

// pending returns, for a query of a coarser tier, the 1-minute rows at or
// after the cursor (not rolled up yet) summed per row of that tier, for
// rows of the tier in [start, end), read through q (the query's read
// transaction, so that cursor and rows agree).
func (s *Store) pending(ctx context.Context, q querier, cur rollupCursor, app, processType string, tier drainpipe.Tier, start, end time.Time) (map[groupKey]*metrics.Bucket, error) {
	from := max(start.Unix(), cur.Ts)
	to := end.Add(tier.Duration()).Unix()
	if from >= to {
		return nil, nil
	}
	out := map[groupKey]*metrics.Bucket{}
	err := s.eachStored(ctx, q, app, processType, drainpipe.Tier1m, time.Unix(from, 0), time.Unix(to, 0), func(table string, rapp, rpt []byte, ts int64, data []byte) {
		k := groupKey{string(rapp), string(rpt), time.Unix(ts, 0).Truncate(tier.Duration()).Unix()}
		if cur.rolled(ts, k.app) || k.ts < start.Unix() || k.ts >= end.Unix() {
			return
		}
		b, err := metrics.Decode(data)
		if err != nil {
			s.leftOut(table, k.app, k.ptype, ts, err)
			return
		}
		if p, ok := out[k]; ok {
			p.Merge(b)
		} else {
			out[k] = b
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readTx starts a read transaction: one snapshot of the database for the
// queries of a coarser tier (its rows, the cursor and the pending rows).
func (s *Store) readTx(ctx context.Context) (*sql.Tx, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("store: begin read: %w", err)
	}
	return tx, nil
}

// eachRow calls fn with every row of tier for app ("" = every app) and
// processType ("" = every one) in [start, end) that a query returns:
// stored rows partition by partition, oldest first, each in time order;
// for a coarser tier, rows with pending 1-minute data merged in (and
// encoded again) and then the rows that exist only as pending data, in
// time order. The names and data are valid only during the call.
func (s *Store) eachRow(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time, fn func(table string, app, processType []byte, ts int64, data []byte)) error {
	s.readGate.RLock() // see storeWALCap
	defer s.readGate.RUnlock()
	if tier == drainpipe.Tier1m {
		return s.eachStored(ctx, s.db, app, processType, tier, start, end, fn)
	}
	tx, err := s.readTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	cur, err := readCursor(ctx, tx)
	if err != nil {
		return err
	}
	if s.afterSnapshot != nil {
		s.afterSnapshot()
	}
	pend, err := s.pending(ctx, tx, cur, app, processType, tier, start, end)
	if err != nil {
		return err
	}
	var buf []byte
	err = s.eachStored(ctx, tx, app, processType, tier, start, end, func(table string, rapp, rpt []byte, ts int64, data []byte) {
		if len(pend) == 0 {
			fn(table, rapp, rpt, ts, data)
			return
		}
		k := groupKey{string(rapp), string(rpt), ts}
		p, ok := pend[k]
		if !ok {
			fn(table, rapp, rpt, ts, data)
			return
		}
		delete(pend, k)
		if b, err := metrics.Decode(data); err != nil {
			// The stored row is left out (and quarantined by the next
			// write to it); its pending minutes still count.
			s.leftOut(table, k.app, k.ptype, ts, err)
		} else {
			p.Merge(b)
		}
		buf = p.Encode(buf[:0])
		fn(table, rapp, rpt, ts, buf)
	})
	if err != nil {
		return err
	}
	keys := make([]groupKey, 0, len(pend))
	for k := range pend {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b groupKey) int {
		if a.ts != b.ts {
			return int(a.ts - b.ts)
		}
		if c := strings.Compare(a.app, b.app); c != 0 {
			return c
		}
		return strings.Compare(a.ptype, b.ptype)
	})
	for _, k := range keys {
		buf = pend[k].Encode(buf[:0])
		fn("pending", []byte(k.app), []byte(k.ptype), k.ts, buf)
	}
	return tx.Commit()
}

// pendingCounts adds the request and 5xx counts of the pending 1-minute
// rows to counts of a coarser tier in [start, end).
func (s *Store) pendingCounts(ctx context.Context, q querier, cur rollupCursor, tier drainpipe.Tier, start, end time.Time, counts []metrics.RequestCount) ([]metrics.RequestCount, error) {
	from := max(start.Unix(), cur.Ts)
	to := end.Add(tier.Duration()).Unix()
	if from >= to {
		return counts, nil
	}
	type key struct {
		app string
		ts  int64
	}
	at := map[key]int{}
	for i, c := range counts {
		at[key{c.App, c.Time.Unix()}] = i
	}
	tables, err := s.partitionsOf(ctx, q, drainpipe.Tier1m, time.Unix(from, 0), time.Unix(to, 0))
	if err != nil {
		return nil, err
	}
	for _, table := range tables {
		rows, err := q.QueryContext(ctx, `SELECT app, ts, requests, err5xx FROM `+table+` WHERE ts >= ? AND ts < ?`, from, to)
		if err != nil {
			return nil, fmt.Errorf("store: request counts in %s: %w", table, err)
		}
		for rows.Next() {
			var app string
			var ts, req, e5 int64
			if err := rows.Scan(&app, &ts, &req, &e5); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: scan request counts: %w", err)
			}
			k := key{app, time.Unix(ts, 0).Truncate(tier.Duration()).Unix()}
			if cur.rolled(ts, app) || k.ts < start.Unix() || k.ts >= end.Unix() {
				continue
			}
			i, ok := at[k]
			if !ok {
				i = len(counts)
				at[k] = i
				counts = append(counts, metrics.RequestCount{App: app, Time: time.Unix(k.ts, 0).UTC()})
			}
			counts[i].Requests += req
			counts[i].Errors5xx += e5
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: request counts in %s: %w", table, err)
		}
	}
	return counts, nil
}
