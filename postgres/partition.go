package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/drainpipe/drainpipe"
)

// partitionSpan is the time one partition of a tier covers: a day for the
// minute tier, as the bulk of the data; a week and 30 days for the 10m and
// 1h tiers, which hold 10 and 60 times fewer rows, so that every tier has
// a handful of partitions of like size rather than 400 tiny ones. Spans
// are aligned on multiples of themselves since the Unix epoch, as in the
// SQLite store. Retention drops whole partitions, so a tier keeps up to
// one span more than its retention.
func partitionSpan(t drainpipe.Tier) time.Duration {
	switch t {
	case drainpipe.Tier1m:
		return 24 * time.Hour
	case drainpipe.Tier10m:
		return 7 * 24 * time.Hour
	default:
		return 30 * 24 * time.Hour
	}
}

// AheadDays is how far ahead of now Maintain (and Open) create
// partitions, so that writes at a day's turn never wait for DDL.
const AheadDays = 3

// partKey names one partition: a tier and the Unix second it starts at.
type partKey struct {
	tier  drainpipe.Tier
	start int64
}

// partitionOf returns the key of tier's partition holding t.
func partitionOf(tier drainpipe.Tier, t time.Time) partKey {
	span := int64(partitionSpan(tier) / time.Second)
	u := t.Unix()
	start := u - u%span
	if u < 0 && u%span != 0 {
		start -= span
	}
	return partKey{tier, start}
}

// tableOf is the partitioned (parent) table of a tier.
func tableOf(t drainpipe.Tier) string { return "buckets_" + t.String() }

// name is the partition's table name: buckets_<tier>_p<YYYYMMDD>.
func (k partKey) name() string {
	return tableOf(k.tier) + "_p" + time.Unix(k.start, 0).UTC().Format("20060102")
}

func (k partKey) bounds() (from, to time.Time) {
	from = time.Unix(k.start, 0).UTC()
	return from, from.Add(partitionSpan(k.tier))
}

// partitionLock is the advisory lock key under which partitions are
// created and dropped, so that processes doing so at once do not trip
// over each other's catalog rows.
const partitionLock int64 = 0x6470706172747331

// ensure creates the partitions of keys that this process has not seen
// yet, each in a short transaction of its own: creating a partition locks
// its parent table, which must not be held through a whole flush.
func (s *Store) ensure(ctx context.Context, keys []partKey) error {
	var missing []partKey
	s.mu.Lock()
	for _, k := range keys {
		if !s.parts[k] {
			missing = append(missing, k)
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	sort.Slice(missing, func(i, j int) bool {
		if missing[i].tier != missing[j].tier {
			return missing[i].tier < missing[j].tier
		}
		return missing[i].start < missing[j].start
	})
	for _, k := range missing {
		from, to := k.bounds()
		ddl := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s') WITH (fillfactor = 80)`,
			k.name(), tableOf(k.tier), from.Format(time.RFC3339), to.Format(time.RFC3339))
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLock); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, ddl)
			return err
		})
		if err != nil {
			return fail(err, "create partition %s", k.name())
		}
		s.mu.Lock()
		s.parts[k] = true
		s.mu.Unlock()
	}
	return nil
}

// forgetPartitions empties the cache of known partitions, after a write
// found one missing (another process dropped it).
func (s *Store) forgetPartitions() {
	s.mu.Lock()
	clear(s.parts)
	s.mu.Unlock()
}

// noPartition tells whether err is PostgreSQL's "no partition of relation
// found for row".
func noPartition(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514" && strings.Contains(pgErr.Message, "no partition")
}

// EnsurePartitions creates every tier's partitions from the one holding
// now to the one holding now + AheadDays, when missing. Open calls it;
// Maintain calls it periodically.
func (s *Store) EnsurePartitions(ctx context.Context, now time.Time) error {
	var keys []partKey
	for _, tier := range drainpipe.Tiers {
		last := partitionOf(tier, now.Add(AheadDays*24*time.Hour))
		for k := partitionOf(tier, now); k.start <= last.start; k.start += int64(partitionSpan(tier) / time.Second) {
			keys = append(keys, k)
		}
	}
	return s.ensure(ctx, keys)
}

// Maintain is the periodic upkeep of the store, to run about hourly from
// one process or several (it is safe to run concurrently): it creates the
// partitions of the coming days and drops what retention no longer keeps
// (see DropExpired). It returns the dropped partitions' names.
func (s *Store) Maintain(ctx context.Context, now time.Time) ([]string, error) {
	if err := s.EnsurePartitions(ctx, now); err != nil {
		return nil, err
	}
	return s.DropExpired(ctx, now)
}

// partitions lists the existing partitions of every tier, from the
// catalog (other processes create them too).
func (s *Store) partitions(ctx context.Context) ([]partKey, error) {
	var out []partKey
	for _, tier := range drainpipe.Tiers {
		rows, err := s.pool.Query(ctx,
			`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			 WHERE i.inhparent = $1::regclass`, tableOf(tier))
		if err != nil {
			return nil, fail(err, "list partitions of %s", tableOf(tier))
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fail(err, "list partitions of %s", tableOf(tier))
		}
		for _, n := range names {
			day, ok := strings.CutPrefix(n, tableOf(tier)+"_p")
			t, err := time.Parse("20060102", day)
			if !ok || err != nil {
				continue // not one of ours: leave it alone
			}
			out = append(out, partKey{tier, t.Unix()})
		}
	}
	return out, nil
}

// DropExpired drops every partition whose whole time range lies beyond its
// tier's retention at now, deletes events and dyno names older than the
// longest retention and frame IDs older than FrameTTL. It returns the
// dropped partitions' names.
//
// Dropping a partition briefly locks its parent table; DropExpired waits
// at most 5 s for that lock and otherwise leaves the partition to its next
// run, so a long query never queues every writer behind it.
func (s *Store) DropExpired(ctx context.Context, now time.Time) ([]string, error) {
	parts, err := s.partitions(ctx)
	if err != nil {
		return nil, err
	}
	var dropped []string
	for _, k := range parts {
		_, end := k.bounds()
		if end.After(now.Add(-s.retention[k.tier])) {
			continue
		}
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLock); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+k.name())
			return err
		})
		if err != nil {
			return dropped, fail(err, "drop partition %s", k.name())
		}
		s.mu.Lock()
		delete(s.parts, k)
		s.mu.Unlock()
		dropped = append(dropped, k.name())
	}
	longest := time.Duration(0)
	for _, r := range s.retention {
		longest = max(longest, r)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM events WHERE ts_ns < $1`, now.Add(-longest).UnixNano()); err != nil {
		return dropped, fail(err, "expire events")
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM dynos WHERE last_seen < $1`, now.Add(-longest)); err != nil {
		return dropped, fail(err, "expire dynos")
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM seen_frames WHERE seen_at < $1`, now.Add(-FrameTTL)); err != nil {
		return dropped, fail(err, "expire frame IDs")
	}
	return dropped, nil
}
