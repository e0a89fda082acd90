package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"
)

// applyFlush writes a flush's rows into every tier, its events and the
// names (dynos, custom metrics) it carries, inside tx, plus whatever more
// queues. Each tier takes two round trips whatever the size of the flush:
// one locks and reads the stored rows, the next writes the merged rows
// (the last tier's also carries everything else). Rows another
// transaction inserted in between are merged in a further round.
//
// Tiers are done one after the other, each in key order, so that every
// writer takes its row locks (and waits on others' inserts) in one global
// order: concurrent writers of the same rows queue, never deadlock.
func (s *Store) applyFlush(ctx context.Context, tx pgx.Tx, f *metrics.Flush, tds []tierDeltas, more func(*pgx.Batch)) error {
	rest := func(b *pgx.Batch) {
		queueEvents(b, f.Events)
		queueNames(b, f)
		if more != nil {
			more(b)
		}
	}
	var ws []*tierWrite
	for _, td := range tds {
		if len(td.keys) > 0 {
			ws = append(ws, newTierWrite(td.tier, td.keys, td.deltas))
		}
	}
	if len(ws) == 0 {
		return s.mergeRound(ctx, tx, nil, rest)
	}
	for i, w := range ws {
		var extra func(*pgx.Batch)
		if i == len(ws)-1 {
			extra = rest
		}
		for round := 0; ; round++ {
			if err := s.mergeRound(ctx, tx, w, extra); err != nil {
				return err
			}
			extra = nil
			keys, deltas := w.lost()
			if len(keys) == 0 {
				break
			}
			if round == 3 {
				return fmt.Errorf("postgres: %s: rows keep appearing under concurrent inserts", w.table)
			}
			w = newTierWrite(w.tier, keys, deltas)
		}
	}
	return nil
}

// mergeRound reads and locks the stored rows of w (when not nil) in one
// round trip, then writes the merges, with what more queues, in a second.
func (s *Store) mergeRound(ctx context.Context, tx pgx.Tx, w *tierWrite, more func(*pgx.Batch)) error {
	b := &pgx.Batch{}
	if w != nil {
		w.queueRead(b)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fail(err, "read %s", w.table)
		}
		b = &pgx.Batch{}
		s.queueWrite(b, w)
	}
	if more != nil {
		more(b)
	}
	if b.Len() == 0 {
		return nil
	}
	return fail(tx.SendBatch(ctx, b).Close(), "write flush")
}

// tierWrite is the merge of deltas into one tier's stored rows.
type tierWrite struct {
	tier   drainpipe.Tier
	table  string
	keys   []bucketKey // sorted: rows are locked in this order
	deltas []*metrics.Bucket
	lo, hi time.Time // the keys' time range, for partition pruning

	stored   map[bucketKey][]byte // rows found, locked
	inserted map[bucketKey]bool   // rows this round inserted
}

func newTierWrite(tier drainpipe.Tier, keys []bucketKey, deltas []*metrics.Bucket) *tierWrite {
	w := &tierWrite{tier: tier, table: tableOf(tier), keys: keys, deltas: deltas, lo: keys[0].ts, hi: keys[0].ts,
		stored: map[bucketKey][]byte{}, inserted: map[bucketKey]bool{}}
	for _, k := range keys {
		if k.ts.Before(w.lo) {
			w.lo = k.ts
		}
		if k.ts.After(w.hi) {
			w.hi = k.ts
		}
	}
	return w
}

// queueRead locks and reads the stored rows of w's keys.
func (w *tierWrite) queueRead(b *pgx.Batch) {
	apps, ptypes, tss := keyColumns(w.keys)
	b.Queue(`SELECT b.app, b.ptype, b.ts, b.data FROM `+w.table+` b
		JOIN unnest($1::text[], $2::text[], $3::timestamptz[]) AS k(app, ptype, ts) USING (app, ptype, ts)
		WHERE b.ts >= $4 AND b.ts <= $5
		ORDER BY b.app, b.ts, b.ptype FOR UPDATE OF b`, apps, ptypes, tss, w.lo, w.hi).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k bucketKey
			var data []byte
			if err := rows.Scan(&k.app, &k.ptype, &k.ts, &data); err != nil {
				return err
			}
			k.ts = k.ts.UTC()
			w.stored[k] = data
		}
		return rows.Err()
	})
}

// queueWrite merges each delta into its stored row (quarantining stored
// rows that do not decode) and queues the updates and the inserts.
func (s *Store) queueWrite(b *pgx.Batch, w *tierWrite) {
	var up, ins rowColumns
	for i, k := range w.keys {
		delta := w.deltas[i]
		old, exists := w.stored[k]
		target := &ins
		if exists {
			target = &up
			if merged, err := metrics.Decode(old); err != nil {
				// The delta starts the row afresh: one corrupt row costs
				// only its own history.
				s.log.Error("postgres: corrupt bucket moved to quarantine", "table", w.table, "app", k.app, "process_type", k.ptype, "ts", k.ts, "err", err)
				b.Queue(`INSERT INTO quarantine(tbl, app, ptype, ts, data, error) VALUES ($1, $2, $3, $4, $5, $6)`,
					w.table, k.app, k.ptype, k.ts, old, err.Error())
			} else {
				merged.Merge(delta)
				delta = merged
			}
		}
		target.add(k, delta)
	}
	if len(up.keys) > 0 {
		a, p, t := keyColumns(up.keys)
		b.Queue(`UPDATE `+w.table+` b SET requests = u.requests, err5xx = u.err5xx, data = u.data
			FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bytea[])
				AS u(app, ptype, ts, requests, err5xx, data)
			WHERE b.app = u.app AND b.ptype = u.ptype AND b.ts = u.ts AND b.ts >= $7 AND b.ts <= $8`,
			a, p, t, up.requests, up.errs, up.data, w.lo, w.hi)
	}
	if len(ins.keys) > 0 {
		a, p, t := keyColumns(ins.keys)
		// A row another transaction inserted since the read is skipped
		// here and merged in the next round (see lost).
		b.Queue(`INSERT INTO `+w.table+` (app, ptype, ts, requests, err5xx, data)
			SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bytea[])
			ON CONFLICT DO NOTHING RETURNING app, ptype, ts`,
			a, p, t, ins.requests, ins.errs, ins.data).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k bucketKey
				if err := rows.Scan(&k.app, &k.ptype, &k.ts); err != nil {
					return err
				}
				k.ts = k.ts.UTC()
				w.inserted[k] = true
			}
			return rows.Err()
		})
	}
}

// lost returns the keys (and deltas) that were neither stored nor
// inserted: another transaction inserted them first.
func (w *tierWrite) lost() ([]bucketKey, []*metrics.Bucket) {
	var keys []bucketKey
	var deltas []*metrics.Bucket
	for i, k := range w.keys {
		if _, ok := w.stored[k]; !ok && !w.inserted[k] {
			keys = append(keys, k)
			deltas = append(deltas, w.deltas[i])
		}
	}
	return keys, deltas
}

// rowColumns are bucket rows as the column arrays unnest reads.
type rowColumns struct {
	keys           []bucketKey
	requests, errs []int64
	data           [][]byte
}

func (c *rowColumns) add(k bucketKey, b *metrics.Bucket) {
	c.keys = append(c.keys, k)
	c.requests = append(c.requests, b.Requests)
	c.errs = append(c.errs, b.Count5xx())
	c.data = append(c.data, b.Encode(nil))
}

// keyColumns splits keys into the column arrays that unnest reads.
func keyColumns(keys []bucketKey) (apps, ptypes []string, ts []time.Time) {
	apps = make([]string, len(keys))
	ptypes = make([]string, len(keys))
	ts = make([]time.Time, len(keys))
	for i, k := range keys {
		apps[i], ptypes[i], ts[i] = k.app, k.ptype, k.ts
	}
	return apps, ptypes, ts
}

// queueEvents appends events in one statement, in their order.
func queueEvents(b *pgx.Batch, events []drainpipe.Event) {
	if len(events) == 0 {
		return
	}
	n := len(events)
	apps, ptypes, dynos := make([]string, n), make([]string, n), make([]string, n)
	kinds, codes, details := make([]string, n), make([]string, n), make([]string, n)
	ts := make([]int64, n)
	for i, e := range events {
		apps[i], ts[i], ptypes[i], dynos[i] = e.App, e.Time.UnixNano(), e.ProcessType, e.Dyno
		kinds[i], codes[i], details[i] = string(e.Kind), e.Code, e.Detail
	}
	b.Queue(`INSERT INTO events(app, ts_ns, ptype, dyno, kind, code, detail)
		SELECT app, ts_ns, ptype, dyno, kind, code, detail
		FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
		WITH ORDINALITY AS e(app, ts_ns, ptype, dyno, kind, code, detail, n) ORDER BY n`,
		apps, ts, ptypes, dynos, kinds, codes, details)
}

// queueNames remembers the process types, dynos and custom metric names a
// flush's rows carry. App-wide rows (log loss) are not a process type.
func queueNames(b *pgx.Batch, f *metrics.Flush) {
	type dk struct{ app, ptype, dyno string }
	seen := map[dk]time.Time{}
	type ck struct {
		app, name string
		kind      logline.CustomKind
	}
	customs := map[ck]bool{}
	note := func(k dk, t time.Time) {
		if old, ok := seen[k]; !ok || t.After(old) {
			seen[k] = t
		}
	}
	for _, r := range f.Rows {
		if r.ProcessType != "" {
			t := r.Time.Truncate(time.Second).UTC()
			note(dk{r.App, r.ProcessType, ""}, t)
			for _, d := range r.Bucket.Dynos {
				note(dk{r.App, r.ProcessType, d.Name}, t)
			}
		}
		for c := range r.Bucket.Custom() {
			for _, k := range []logline.CustomKind{logline.CustomCount, logline.CustomSample, logline.CustomMeasure} {
				if c.Has(k) {
					customs[ck{r.App, c.Name, k}] = true
				}
			}
		}
	}
	if len(seen) > 0 {
		// Sorted, so that concurrent upserts lock rows in one order.
		keys := make([]dk, 0, len(seen))
		for k := range seen {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b dk) int {
			return cmp.Or(cmp.Compare(a.app, b.app), cmp.Compare(a.ptype, b.ptype), cmp.Compare(a.dyno, b.dyno))
		})
		apps, ptypes, dynos := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
		ts := make([]time.Time, len(keys))
		for i, k := range keys {
			apps[i], ptypes[i], dynos[i], ts[i] = k.app, k.ptype, k.dyno, seen[k]
		}
		b.Queue(`INSERT INTO dynos(app, ptype, dyno, last_seen)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
			ON CONFLICT (app, ptype, dyno) DO UPDATE SET last_seen = greatest(dynos.last_seen, excluded.last_seen)
			WHERE dynos.last_seen < excluded.last_seen`,
			apps, ptypes, dynos, ts)
	}
	if len(customs) > 0 {
		var apps, names []string
		var kinds []int16
		for k := range customs {
			apps = append(apps, k.app)
			names = append(names, k.name)
			kinds = append(kinds, int16(k.kind))
		}
		b.Queue(`INSERT INTO custom_names(app, name, kind)
			SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[]) ON CONFLICT DO NOTHING`,
			apps, names, kinds)
	}
}
