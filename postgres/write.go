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

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/metrics"
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

// neededPartitions lists the partitions the rolled-up rows and the
// events fall into.
func neededPartitions(tds []tierDeltas, events []drainpipe.Event) []partKey {
	seen := map[partKey]bool{}
	var out []partKey
	add := func(p partKey) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, td := range tds {
		for _, k := range td.keys {
			add(partitionOf(tableOf(td.tier), k.ts))
		}
	}
	for _, e := range events {
		add(partitionOf(eventsTable, e.Time))
	}
	return out
}

// write runs fn in a transaction after making sure the partitions of f's
// rows exist. When a partition disappears in between (another process's
// retention dropped it), it creates it again and retries once.
func (s *Store) write(ctx context.Context, f *metrics.Flush, fn func(tx pgx.Tx, tds []tierDeltas) error) error {
	tds := rollup(f)
	for attempt := 0; ; attempt++ {
		if err := s.ensure(ctx, neededPartitions(tds, f.Events)); err != nil {
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
		return s.applyFlush(ctx, tx, f, tds, func(b *pgx.Batch) {
			b.Queue(`UPDATE meta SET value = $1 WHERE key = 'journal_position'`, f.Position)
		})
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
		return s.applyFlush(ctx, tx, f, tds, func(b *pgx.Batch) {
			if len(p.Frames) > 0 {
				apps := make([]string, len(p.Frames))
				ids := make([]string, len(p.Frames))
				for i, k := range p.Frames {
					apps[i], ids[i] = k.App, k.FrameID
				}
				b.Queue(`INSERT INTO seen_frames(app, frame_id) SELECT * FROM unnest($1::text[], $2::text[])
					ON CONFLICT DO NOTHING`, apps, ids)
			}
			b.Queue(`UPDATE partition_offsets SET next_offset = $4, updated_at = now()
				WHERE grp = $1 AND topic = $2 AND part = $3`, p.Group, p.Topic, p.Partition, p.To)
		})
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
