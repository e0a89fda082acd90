package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"

	"github.com/drainpipe/drainpipe"
)

// FrameTTL is how long frame IDs are remembered for deduplication: far
// longer than Logplex retries a POST.
const FrameTTL = 24 * time.Hour

// bucketKey names one stored row of a tier.
type bucketKey struct {
	app, ptype string
	ts         time.Time
}

func compareKeys(a, b bucketKey) int {
	if c := cmp.Compare(a.app, b.app); c != 0 {
		return c
	}
	if c := a.ts.Compare(b.ts); c != 0 {
		return c
	}
	return cmp.Compare(a.ptype, b.ptype)
}

// tierDeltas are a flush's rows rolled up to one tier: one merged delta
// per stored row, in key order (the order rows are locked in, so that two
// writers of overlapping rows cannot deadlock).
type tierDeltas struct {
	tier   drainpipe.Tier
	keys   []bucketKey
	deltas []*metrics.Bucket
}

// rollup groups a flush's 1-minute rows into every tier.
func rollup(f *metrics.Flush) []tierDeltas {
	out := make([]tierDeltas, 0, len(drainpipe.Tiers))
	for _, tier := range drainpipe.Tiers {
		groups := map[bucketKey]*metrics.Bucket{}
		for _, r := range f.Rows {
			k := bucketKey{r.App, r.ProcessType, r.Time.Truncate(tier.Duration()).UTC()}
			g, ok := groups[k]
			if !ok {
				g = new(metrics.Bucket)
				groups[k] = g
			}
			g.Merge(r.Bucket)
		}
		td := tierDeltas{tier: tier, keys: make([]bucketKey, 0, len(groups))}
		for k := range groups {
			td.keys = append(td.keys, k)
		}
		slices.SortFunc(td.keys, compareKeys)
		td.deltas = make([]*metrics.Bucket, len(td.keys))
		for i, k := range td.keys {
			td.deltas[i] = groups[k]
		}
		out = append(out, td)
	}
	return out
}

// neededPartitions lists the partitions the rolled-up rows fall into.
func neededPartitions(tds []tierDeltas) []partKey {
	seen := map[partKey]bool{}
	var out []partKey
	for _, td := range tds {
		for _, k := range td.keys {
			p := partitionOf(td.tier, k.ts)
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// write runs fn in a transaction after making sure the partitions of f's
// rows exist. When a partition disappears in between (another process's
// retention dropped it), it creates it again and retries once.
func (s *Store) write(ctx context.Context, f *metrics.Flush, fn func(tx pgx.Tx, tds []tierDeltas) error) error {
	tds := rollup(f)
	for attempt := 0; ; attempt++ {
		if err := s.ensure(ctx, neededPartitions(tds)); err != nil {
			return err
		}
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(tx, tds) })
		if attempt == 0 && noPartition(err) {
			s.forgetPartitions()
			continue
		}
		return err
	}
}

// Apply merges a flush into every tier and records its local journal
// position, all in one transaction (aggregate.Sink). Deltas are merged
// into what is stored, never written over it, so late data and replays of
// partial minutes add up.
func (s *Store) Apply(ctx context.Context, f *metrics.Flush) error {
	err := s.write(ctx, f, func(tx pgx.Tx, tds []tierDeltas) error {
		if err := s.applyFlush(ctx, tx, f, tds); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE meta SET value = $1 WHERE key = 'journal_position'`, f.Position)
		return fail(err, "record journal position")
	})
	return fail(err, "apply flush")
}

// ApplyPartition merges p.Flush, records p.Frames as seen and moves the
// partition's stored offset from p.From to p.To in one transaction
// (aggregate.PartitionSink). The offset row is locked first, so two
// aggregators that both believe they own the partition are serialised and
// the second one is fenced: it gets aggregate.ErrFenced and changes
// nothing.
func (s *Store) ApplyPartition(ctx context.Context, p *aggregate.PartitionFlush) error {
	f := p.Flush
	if f == nil {
		f = &metrics.Flush{}
	}
	err := s.write(ctx, f, func(tx pgx.Tx, tds []tierDeltas) error {
		var cur int64
		err := tx.QueryRow(ctx,
			`SELECT next_offset FROM partition_offsets WHERE grp = $1 AND topic = $2 AND part = $3 FOR UPDATE`,
			p.Group, p.Topic, p.Partition).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			// Never applied: any From is accepted. A concurrent first
			// flush makes the insert a no-op; read what it stored.
			var tag pgconn.CommandTag
			tag, err = tx.Exec(ctx,
				`INSERT INTO partition_offsets(grp, topic, part, next_offset) VALUES ($1, $2, $3, $4)
				 ON CONFLICT DO NOTHING`, p.Group, p.Topic, p.Partition, p.From)
			if err != nil {
				return fail(err, "record offset")
			}
			cur = p.From
			if tag.RowsAffected() == 0 {
				err = tx.QueryRow(ctx,
					`SELECT next_offset FROM partition_offsets WHERE grp = $1 AND topic = $2 AND part = $3 FOR UPDATE`,
					p.Group, p.Topic, p.Partition).Scan(&cur)
			}
		}
		if err != nil {
			return fail(err, "read offset")
		}
		if cur != p.From {
			return fmt.Errorf("postgres: %s/%s[%d] is at offset %d, the flush starts at %d: %w",
				p.Group, p.Topic, p.Partition, cur, p.From, aggregate.ErrFenced)
		}
		if err := s.applyFlush(ctx, tx, f, tds); err != nil {
			return err
		}
		if len(p.Frames) > 0 {
			apps := make([]string, len(p.Frames))
			ids := make([]string, len(p.Frames))
			for i, k := range p.Frames {
				apps[i], ids[i] = k.App, k.FrameID
			}
			if _, err := tx.Exec(ctx,
				`INSERT INTO seen_frames(app, frame_id) SELECT * FROM unnest($1::text[], $2::text[])
				 ON CONFLICT DO NOTHING`, apps, ids); err != nil {
				return fail(err, "record frame IDs")
			}
		}
		_, err = tx.Exec(ctx,
			`UPDATE partition_offsets SET next_offset = $4, updated_at = now() WHERE grp = $1 AND topic = $2 AND part = $3`,
			p.Group, p.Topic, p.Partition, p.To)
		return fail(err, "record offset")
	})
	if errors.Is(err, aggregate.ErrFenced) {
		return err
	}
	return fail(err, "apply %s/%s[%d] offsets [%d, %d)", p.Group, p.Topic, p.Partition, p.From, p.To)
}

// PartitionOffset returns the next offset to consume, or -1 when nothing of
// the partition was ever applied.
func (s *Store) PartitionOffset(ctx context.Context, group, topic string, partition int32) (int64, error) {
	var off int64
	err := s.pool.QueryRow(ctx,
		`SELECT next_offset FROM partition_offsets WHERE grp = $1 AND topic = $2 AND part = $3`,
		group, topic, partition).Scan(&off)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, nil
	}
	return off, fail(err, "read offset of %s/%s[%d]", group, topic, partition)
}

// SeenFrames reports which of keys an earlier flush recorded (within
// FrameTTL).
func (s *Store) SeenFrames(ctx context.Context, keys []aggregate.FrameKey) (map[aggregate.FrameKey]bool, error) {
	out := make(map[aggregate.FrameKey]bool, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	apps := make([]string, len(keys))
	ids := make([]string, len(keys))
	for i, k := range keys {
		apps[i], ids[i] = k.App, k.FrameID
	}
	rows, err := s.pool.Query(ctx,
		`SELECT f.app, f.frame_id FROM seen_frames f
		 JOIN unnest($1::text[], $2::text[]) AS k(app, frame_id) USING (app, frame_id)`, apps, ids)
	if err != nil {
		return nil, fail(err, "look up frame IDs")
	}
	defer rows.Close()
	for rows.Next() {
		var k aggregate.FrameKey
		if err := rows.Scan(&k.App, &k.FrameID); err != nil {
			return nil, fail(err, "scan frame ID")
		}
		out[k] = true
	}
	return out, fail(rows.Err(), "look up frame IDs")
}

// applyFlush writes a flush's rows into every tier, its events, and the
// names (dynos, custom metrics) it carries, inside tx.
func (s *Store) applyFlush(ctx context.Context, tx pgx.Tx, f *metrics.Flush, tds []tierDeltas) error {
	for _, td := range tds {
		if err := s.mergeTier(ctx, tx, td.tier, td.keys, td.deltas, 0); err != nil {
			return err
		}
	}
	if err := insertEvents(ctx, tx, f.Events); err != nil {
		return err
	}
	return recordNames(ctx, tx, f)
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

// mergeTier merges deltas into the stored rows of keys (sorted). Stored
// rows are locked and read, merged in Go (sketches merge through the
// metrics codec) and written back; rows not stored yet are inserted, and
// the few that another transaction inserted meanwhile are merged again.
// A stored row that does not decode is moved, bytes intact, to the
// quarantine table and reported; the delta then starts the row afresh, so
// one corrupt row costs only its own history.
func (s *Store) mergeTier(ctx context.Context, tx pgx.Tx, tier drainpipe.Tier, keys []bucketKey, deltas []*metrics.Bucket, round int) error {
	if len(keys) == 0 {
		return nil
	}
	table := tableOf(tier)
	apps, ptypes, tss := keyColumns(keys)
	lo, hi := tss[0], tss[0]
	for _, t := range tss {
		lo, hi = minTime(lo, t), maxTime(hi, t)
	}
	rows, err := tx.Query(ctx, `SELECT b.app, b.ptype, b.ts, b.data FROM `+table+` b
		JOIN unnest($1::text[], $2::text[], $3::timestamptz[]) AS k(app, ptype, ts) USING (app, ptype, ts)
		WHERE b.ts >= $4 AND b.ts <= $5
		ORDER BY b.app, b.ts, b.ptype FOR UPDATE OF b`, apps, ptypes, tss, lo, hi)
	if err != nil {
		return fail(err, "read %s", table)
	}
	type stored struct {
		data []byte
	}
	have := map[bucketKey]stored{}
	for rows.Next() {
		var k bucketKey
		var data []byte
		if err := rows.Scan(&k.app, &k.ptype, &k.ts, &data); err != nil {
			rows.Close()
			return fail(err, "scan %s", table)
		}
		k.ts = k.ts.UTC()
		have[k] = stored{data}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err, "read %s", table)
	}

	var up, ins struct {
		keys           []bucketKey
		requests, errs []int64
		data           [][]byte
	}
	for i, k := range keys {
		delta := deltas[i]
		old, exists := have[k]
		target := &ins
		if exists {
			target = &up
			b, derr := metrics.Decode(old.data)
			if derr != nil {
				s.log.Error("postgres: corrupt bucket moved to quarantine", "table", table, "app", k.app, "process_type", k.ptype, "ts", k.ts, "err", derr)
				if _, err := tx.Exec(ctx,
					`INSERT INTO quarantine(tbl, app, ptype, ts, data, error) VALUES ($1, $2, $3, $4, $5, $6)`,
					table, k.app, k.ptype, k.ts, old.data, derr.Error()); err != nil {
					return fail(err, "quarantine bucket %s/%s@%s", k.app, k.ptype, k.ts)
				}
			} else {
				b.Merge(delta)
				delta = b
			}
		}
		target.keys = append(target.keys, k)
		target.requests = append(target.requests, delta.Requests)
		target.errs = append(target.errs, delta.Count5xx())
		target.data = append(target.data, delta.Encode(nil))
	}
	if len(up.keys) > 0 {
		a, p, t := keyColumns(up.keys)
		if _, err := tx.Exec(ctx, `UPDATE `+table+` b SET requests = u.requests, err5xx = u.err5xx, data = u.data
			FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bytea[])
				AS u(app, ptype, ts, requests, err5xx, data)
			WHERE b.app = u.app AND b.ptype = u.ptype AND b.ts = u.ts AND b.ts >= $7 AND b.ts <= $8`,
			a, p, t, up.requests, up.errs, up.data, lo, hi); err != nil {
			return fail(err, "update %s", table)
		}
	}
	if len(ins.keys) == 0 {
		return nil
	}
	a, p, t := keyColumns(ins.keys)
	rows, err = tx.Query(ctx, `INSERT INTO `+table+` (app, ptype, ts, requests, err5xx, data)
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bytea[])
		ON CONFLICT DO NOTHING RETURNING app, ptype, ts`,
		a, p, t, ins.requests, ins.errs, ins.data)
	if err != nil {
		return fail(err, "insert into %s", table)
	}
	inserted := map[bucketKey]bool{}
	for rows.Next() {
		var k bucketKey
		if err := rows.Scan(&k.app, &k.ptype, &k.ts); err != nil {
			rows.Close()
			return fail(err, "insert into %s", table)
		}
		k.ts = k.ts.UTC()
		inserted[k] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err, "insert into %s", table)
	}
	if len(inserted) == len(ins.keys) {
		return nil
	}
	// Another transaction inserted some of these rows since we looked:
	// merge into what it stored.
	if round >= 3 {
		return fmt.Errorf("postgres: %s: rows keep appearing under concurrent inserts", table)
	}
	var lostKeys []bucketKey
	var lostDeltas []*metrics.Bucket
	for i, k := range keys {
		if _, ok := have[k]; !ok && !inserted[k] {
			lostKeys = append(lostKeys, k)
			lostDeltas = append(lostDeltas, deltas[i])
		}
	}
	return s.mergeTier(ctx, tx, tier, lostKeys, lostDeltas, round+1)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// insertEvents appends events in one statement.
func insertEvents(ctx context.Context, tx pgx.Tx, events []drainpipe.Event) error {
	if len(events) == 0 {
		return nil
	}
	n := len(events)
	apps, ptypes, dynos := make([]string, n), make([]string, n), make([]string, n)
	kinds, codes, details := make([]string, n), make([]string, n), make([]string, n)
	ts := make([]int64, n)
	for i, e := range events {
		apps[i], ts[i], ptypes[i], dynos[i] = e.App, e.Time.UnixNano(), e.ProcessType, e.Dyno
		kinds[i], codes[i], details[i] = string(e.Kind), e.Code, e.Detail
	}
	_, err := tx.Exec(ctx, `INSERT INTO events(app, ts_ns, ptype, dyno, kind, code, detail)
		SELECT app, ts_ns, ptype, dyno, kind, code, detail
		FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
		WITH ORDINALITY AS e(app, ts_ns, ptype, dyno, kind, code, detail, n) ORDER BY n`,
		apps, ts, ptypes, dynos, kinds, codes, details)
	return fail(err, "insert events")
}

// recordNames remembers the process types, dynos and custom metric names
// a flush's rows carry.
func recordNames(ctx context.Context, tx pgx.Tx, f *metrics.Flush) error {
	type dk struct{ app, ptype, dyno string }
	seen := map[dk]time.Time{}
	type ck struct {
		app, name string
		kind      logline.CustomKind
	}
	customs := map[ck]struct{}{}
	note := func(k dk, t time.Time) {
		if old, ok := seen[k]; !ok || t.After(old) {
			seen[k] = t
		}
	}
	for _, r := range f.Rows {
		if r.ProcessType != "" { // app-wide rows (log loss) are not a process type
			t := r.Time.Truncate(time.Second).UTC()
			note(dk{r.App, r.ProcessType, ""}, t)
			for d := range r.Bucket.Dynos {
				note(dk{r.App, r.ProcessType, d}, t)
			}
		}
		for n, c := range r.Bucket.Custom {
			for _, k := range []logline.CustomKind{logline.CustomCount, logline.CustomSample, logline.CustomMeasure} {
				if c.Has(k) {
					customs[ck{r.App, n, k}] = struct{}{}
				}
			}
		}
	}
	if len(seen) > 0 {
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
		if _, err := tx.Exec(ctx, `INSERT INTO dynos(app, ptype, dyno, last_seen)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
			ON CONFLICT (app, ptype, dyno) DO UPDATE SET last_seen = greatest(dynos.last_seen, excluded.last_seen)`,
			apps, ptypes, dynos, ts); err != nil {
			return fail(err, "record dynos")
		}
	}
	if len(customs) > 0 {
		var apps, names []string
		var kinds []int16
		for k := range customs {
			apps = append(apps, k.app)
			names = append(names, k.name)
			kinds = append(kinds, int16(k.kind))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO custom_names(app, name, kind)
			SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[]) ON CONFLICT DO NOTHING`,
			apps, names, kinds); err != nil {
			return fail(err, "record custom metric names")
		}
	}
	return nil
}
