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

// The partitioned tables: the three tiers and the events.
const eventsTable = "events"

var partitioned = []string{tableOf(drainpipe.Tier1m), tableOf(drainpipe.Tier10m), tableOf(drainpipe.Tier1h), eventsTable}

// tableOf is the partitioned (parent) table of a tier.
func tableOf(t drainpipe.Tier) string { return "buckets_" + t.String() }

// spanOf is the time one partition of a parent table covers: a day for
// the minute tier, as the bulk of the data; a week and 30 days for the
// 10m and 1h tiers, which hold 10 and 60 times fewer rows, so that every
// tier has a handful of partitions of like size rather than 400 tiny
// ones; 30 days for events, kept as long as the longest tier. Spans are
// aligned on multiples of themselves since the Unix epoch, as in the
// SQLite store. Retention drops whole partitions, so a table keeps up to
// one span more than its retention.
func spanOf(parent string) time.Duration {
	switch parent {
	case tableOf(drainpipe.Tier1m):
		return 24 * time.Hour
	case tableOf(drainpipe.Tier10m):
		return 7 * 24 * time.Hour
	default:
		return 30 * 24 * time.Hour
	}
}

// retentionOf is how long a parent table's rows are kept: its tier's
// retention, or the longest one for events.
func (s *Store) retentionOf(parent string) time.Duration {
	for _, t := range drainpipe.Tiers {
		if tableOf(t) == parent {
			return s.retention[t]
		}
	}
	longest := time.Duration(0)
	for _, r := range s.retention {
		longest = max(longest, r)
	}
	return longest
}

// AheadDays is how far ahead of now Maintain (and Open) create
// partitions, so that writes at a day's turn never wait for DDL.
const AheadDays = 3

// partKey names one partition: its parent table and the Unix second it
// starts at.
type partKey struct {
	parent string
	start  int64
}

// partitionOf returns the key of parent's partition holding t.
func partitionOf(parent string, t time.Time) partKey {
	span := int64(spanOf(parent) / time.Second)
	u := t.Unix()
	start := u - u%span
	if u < 0 && u%span != 0 {
		start -= span
	}
	return partKey{parent, start}
}

// name is the partition's table name: <parent>_p<YYYYMMDD of its start>.
func (k partKey) name() string {
	return k.parent + "_p" + time.Unix(k.start, 0).UTC().Format("20060102")
}

func (k partKey) bounds() (from, to time.Time) {
	from = time.Unix(k.start, 0).UTC()
	return from, from.Add(spanOf(k.parent))
}

// ddl creates the partition. Bucket tables are partitioned on a
// timestamptz, events on Unix nanoseconds.
func (k partKey) ddl() string {
	from, to := k.bounds()
	lo, hi := "'"+from.Format(time.RFC3339)+"'", "'"+to.Format(time.RFC3339)+"'"
	with := " WITH (fillfactor = 80)"
	if k.parent == eventsTable {
		lo, hi, with = fmt.Sprint(from.UnixNano()), fmt.Sprint(to.UnixNano()), "" // append-only
	}
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM (%s) TO (%s)%s`,
		k.name(), k.parent, lo, hi, with)
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
		if missing[i].parent != missing[j].parent {
			return missing[i].parent < missing[j].parent
		}
		return missing[i].start < missing[j].start
	})
	for _, k := range missing {
		ddl := k.ddl()
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
	for _, parent := range partitioned {
		last := partitionOf(parent, now.Add(AheadDays*24*time.Hour))
		for k := partitionOf(parent, now); k.start <= last.start; k.start += int64(spanOf(parent) / time.Second) {
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

// partitions lists the existing partitions of every partitioned table,
// from the catalog (other processes create them too).
func (s *Store) partitions(ctx context.Context) ([]partKey, error) {
	var out []partKey
	for _, parent := range partitioned {
		rows, err := s.pool.Query(ctx,
			`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			 WHERE i.inhparent = $1::regclass`, parent)
		if err != nil {
			return nil, fail(err, "list partitions of %s", parent)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fail(err, "list partitions of %s", parent)
		}
		for _, n := range names {
			day, ok := strings.CutPrefix(n, parent+"_p")
			t, err := time.Parse("20060102", day)
			if !ok || err != nil {
				continue // not one of ours: leave it alone
			}
			out = append(out, partKey{parent, t.Unix()})
		}
	}
	return out, nil
}

// DropExpired drops every partition whose whole time range lies beyond its
// retention at now (its tier's; the longest one for events), deletes dyno
// names not seen within the longest retention and frame IDs older than
// FrameTTL. It returns the dropped partitions' names.
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
		if end.After(now.Add(-s.retentionOf(k.parent))) {
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
	if _, err := s.pool.Exec(ctx, `DELETE FROM dynos WHERE last_seen < $1`, now.Add(-s.retentionOf(eventsTable))); err != nil {
		return dropped, fail(err, "expire dynos")
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM seen_frames WHERE seen_at < $1`, now.Add(-FrameTTL)); err != nil {
		return dropped, fail(err, "expire frame IDs")
	}
	return dropped, nil
}
