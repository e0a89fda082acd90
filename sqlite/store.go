package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/server"
)

const storeSchema = `
CREATE TABLE IF NOT EXISTS apps (
	name         TEXT PRIMARY KEY,
	created_at   INTEGER NOT NULL,
	drain_user   TEXT NOT NULL,
	secret_hash  TEXT NOT NULL,
	token_hash   TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta(key, value) VALUES ('journal_position', 0);
CREATE TABLE IF NOT EXISTS partitions (
	tier  INTEGER NOT NULL,
	start INTEGER NOT NULL,
	name  TEXT NOT NULL,
	PRIMARY KEY (tier, start)
);
CREATE TABLE IF NOT EXISTS events (
	id      INTEGER PRIMARY KEY,
	app     TEXT NOT NULL,
	ts      INTEGER NOT NULL,
	ptype   TEXT NOT NULL,
	dyno    TEXT NOT NULL,
	kind    TEXT NOT NULL,
	code    TEXT NOT NULL,
	detail  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_app_ts ON events(app, ts);
CREATE TABLE IF NOT EXISTS dynos (
	app       TEXT NOT NULL,
	ptype     TEXT NOT NULL,
	dyno      TEXT NOT NULL,
	last_seen INTEGER NOT NULL,
	PRIMARY KEY (app, ptype, dyno)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (
	id        INTEGER PRIMARY KEY,
	tbl       TEXT NOT NULL,
	app       TEXT NOT NULL,
	ptype     TEXT NOT NULL,
	ts        INTEGER NOT NULL,
	data      BLOB NOT NULL,
	error     TEXT NOT NULL,
	moved_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS custom_names (
	app  TEXT NOT NULL,
	name TEXT NOT NULL,
	kind INTEGER NOT NULL,
	PRIMARY KEY (app, name, kind)
) WITHOUT ROWID;
`

// storePageSize is the page size of a new store. A bucket of a busy
// app's minute takes 1.3-1.7 KB encoded, and a row of a WITHOUT ROWID
// table keeps at most about a quarter of a page inline: with SQLite's
// default 4 KB pages every such row spilled to an overflow page of its
// own (4.5 KB of file per row, and one more page read per bucket a query
// reads). 8 KB pages keep rows of up to 2 KB inline. Stores created
// with 4 KB pages keep them and work as before (docs/RELIABILITY.md).
const storePageSize = 8192

// DefaultRetention is how long each tier is kept unless configured
// otherwise (SPEC §2).
func DefaultRetention() map[drainpipe.Tier]time.Duration { return drainpipe.DefaultRetention() }

// partitionSpan is the time one partition table of a tier covers.
// Retention drops whole partitions, so a tier keeps up to one span more
// than its retention.
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

// Store is the embedded metrics store. Each tier's buckets live in
// time-partitioned tables (b<minutes>_<unix start>); rollups into the
// coarser tiers happen on write, by merging the same deltas.
type Store struct {
	db        *sql.DB
	log       *slog.Logger
	retention map[drainpipe.Tier]time.Duration

	mu    sync.Mutex
	parts map[partKey]string // partition tables known to exist
	auth  drainpipe.DrainAuths

	path    string // the database file
	damaged int    // buckets found damaged by the check at open

	now   func() time.Time // the clock of the rollup (tests move it)
	names namesSeen

	// eventsLimit is the most events one Events call returns
	// (server.EventsLimit; tests lower it).
	eventsLimit int

	afterCommit   func() // test hook: runs after a flush commits, before remember
	afterSnapshot func() // test hook: runs once a coarser tier's query has its snapshot

	walPath string     // the database's write-ahead log
	walCap  int64      // storeWALCap (tests lower it)
	ckptMu  sync.Mutex // held by the flush that checkpoints the WAL
	// ckptRetry is when a WAL checkpoint that failed may be tried again
	// (under ckptMu).
	ckptRetry time.Time
	// readGate is held shared by the metric queries and exclusively by
	// the WAL's truncation (checkpoint.go).
	readGate sync.RWMutex
}

type partKey struct {
	tier  drainpipe.Tier
	start int64
}

var (
	_ server.Store        = (*Store)(nil)
	_ server.PartStore    = (*Store)(nil)
	_ server.LatencyStore = (*Store)(nil)
)

// OpenStore opens or creates the store database at path and checks all
// of it before it returns (StoreOptions.CheckAtOpen). A nil retention
// means DefaultRetention.
func OpenStore(ctx context.Context, path string, retention map[drainpipe.Tier]time.Duration, log *slog.Logger) (*Store, error) {
	return OpenStoreWith(ctx, path, StoreOptions{Retention: retention, CheckAtOpen: true}, log)
}

// StoreOptions are the settings of OpenStoreWith.
type StoreOptions struct {
	// Retention is how long each tier is kept (nil: DefaultRetention).
	Retention map[drainpipe.Tier]time.Duration
	// CheckAtOpen checks the whole store before OpenStoreWith returns:
	// SQLite's structural check of the file, then every bucket (Scrub).
	// The time it takes grows with the store. Without it, the open checks
	// what every write touches (the file's length, the tables that are
	// not partitions, and each tier's newest partition) and leaves the
	// rest to Scrub, which the caller runs in the background.
	CheckAtOpen bool
}

// OpenStoreWith opens or creates the store database at path. A file whose
// structure fails the check is refused with a *CorruptError.
func OpenStoreWith(ctx context.Context, path string, opt StoreOptions, log *slog.Logger) (*Store, error) {
	db, err := open(ctx, path, storeSchema+rollupSchema+monitorSchema, storePageSize)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	retention := opt.Retention
	if retention == nil {
		retention = DefaultRetention()
	}
	s := &Store{db: db, path: path, log: log, retention: retention, parts: map[partKey]string{}, now: time.Now, eventsLimit: server.EventsLimit,
		walPath: path + "-wal", walCap: storeWALCap}
	rows, err := db.QueryContext(ctx, `SELECT tier, start, name FROM partitions`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: list partitions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k partKey
		var name string
		var tier int64
		if err := rows.Scan(&tier, &k.start, &name); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: scan partition: %w", err)
		}
		k.tier = drainpipe.Tier(tier)
		s.parts[k] = name
	}
	if err := rows.Err(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: list partitions: %w", err)
	}
	rows.Close()
	if err := s.initRollup(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	check := s.checkWritten
	if opt.CheckAtOpen {
		check = s.verify
	}
	if err := check(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return s, nil
}

// verify is the whole check at open: SQLite's structural check of the
// file (a failure refuses the store), then Scrub's check of every bucket.
func (s *Store) verify(ctx context.Context) error {
	if err := checkStructure(ctx, s.db, s.path); err != nil {
		return err
	}
	r, err := s.scrub(ctx, false)
	if err != nil {
		return err
	}
	s.damaged = r.Quarantined + r.Repaired
	s.log.Info("store verified", "file", s.path, "buckets", r.Buckets, "damaged", s.damaged)
	return nil
}

// checkWritten is the open's check without CheckAtOpen: the file's length
// against its header, and SQLite's structural check of what every write
// touches (the tables other than partitions, and the newest partition
// of each tier). Its time does not grow with the days stored.
func (s *Store) checkWritten(ctx context.Context) error {
	if size := cutShort(s.path); size >= 0 {
		return &CorruptError{File: s.path, Offset: size, Detail: "the file ends before its last page"}
	}
	var tables []string
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT IN (SELECT name FROM partitions)`)
	if err != nil {
		return &CorruptError{File: s.path, Offset: locateDamage(ctx, s.path), Detail: err.Error()}
	}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return &CorruptError{File: s.path, Offset: locateDamage(ctx, s.path), Detail: err.Error()}
		}
		tables = append(tables, t)
	}
	rows.Close()
	s.mu.Lock()
	newest := map[drainpipe.Tier]partKey{}
	for k := range s.parts {
		if n, ok := newest[k.tier]; !ok || k.start > n.start {
			newest[k.tier] = k
		}
	}
	for _, k := range newest {
		tables = append(tables, s.parts[k])
	}
	s.mu.Unlock()
	for _, t := range tables {
		if err := checkTable(ctx, s.db, s.path, t); err != nil {
			return err
		}
	}
	return nil
}

// allPartitions names every partition table, in no particular order.
func (s *Store) allPartitions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.parts))
	for _, name := range s.parts {
		out = append(out, name)
	}
	return out
}

// Damaged returns how many buckets the check at open (CheckAtOpen) found
// damaged (quarantined or repaired from their checksummed bytes).
func (s *Store) Damaged() int { return s.damaged }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Retention tells how long each tier is kept.
func (s *Store) Retention() map[drainpipe.Tier]time.Duration { return s.retention }

// Position returns the journal position the store has absorbed.
func (s *Store) Position(ctx context.Context) (int64, error) {
	var p int64
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'journal_position'`).Scan(&p); err != nil {
		return 0, fmt.Errorf("store: read journal position: %w", err)
	}
	return p, nil
}

// CreateApp registers an app with fresh credentials. Secrets are 32 random
// bytes, so a plain SHA-256 of them is enough to keep (no slow KDF needed:
// there is nothing to brute-force).
func (s *Store) CreateApp(ctx context.Context, name string) (drainpipe.App, drainpipe.Credentials, error) {
	cr, err := drainpipe.NewCredentials()
	if err != nil {
		return drainpipe.App{}, drainpipe.Credentials{}, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	res, err := s.db.ExecContext(ctx,
		`INSERT OR IGNORE INTO apps(name, created_at, drain_user, secret_hash, token_hash) VALUES (?, ?, ?, ?, ?)`,
		name, now.Unix(), cr.DrainUser, drainpipe.HashSecret(cr.DrainSecret), drainpipe.HashSecret(cr.APIToken))
	if err != nil {
		return drainpipe.App{}, drainpipe.Credentials{}, fmt.Errorf("store: create app %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return drainpipe.App{}, drainpipe.Credentials{}, fmt.Errorf("store: create app %q: %w", name, drainpipe.ErrExists)
	}
	return drainpipe.App{Name: name, CreatedAt: now}, cr, nil
}

// ListApps returns every app ordered by name.
func (s *Store) ListApps(ctx context.Context) ([]drainpipe.App, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, created_at FROM apps ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list apps: %w", err)
	}
	defer rows.Close()
	var out []drainpipe.App
	for rows.Next() {
		var a drainpipe.App
		var created int64
		if err := rows.Scan(&a.Name, &created); err != nil {
			return nil, fmt.Errorf("store: scan app: %w", err)
		}
		a.CreatedAt = time.Unix(created, 0).UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}

// App returns one app, or drainpipe.ErrNotFound.
func (s *Store) App(ctx context.Context, name string) (drainpipe.App, error) {
	a := drainpipe.App{Name: name}
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT created_at FROM apps WHERE name = ?`, name).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("app %q: %w", name, drainpipe.ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("store: look up app %q: %w", name, err)
	}
	a.CreatedAt = time.Unix(created, 0).UTC()
	return a, nil
}

// VerifyDrain checks a drain's basic-auth pair against the stored hash.
func (s *Store) VerifyDrain(ctx context.Context, app, user, secret string) error {
	return s.auth.Verify(ctx, app, user, secret, func(ctx context.Context, app string) (u, hash string, err error) {
		err = s.db.QueryRowContext(ctx, `SELECT drain_user, secret_hash FROM apps WHERE name = ?`, app).Scan(&u, &hash)
		if errors.Is(err, sql.ErrNoRows) {
			return "", "", fmt.Errorf("app %q: %w", app, drainpipe.ErrNotFound)
		}
		if err != nil {
			return "", "", fmt.Errorf("store: look up app %q: %w", app, err)
		}
		return u, hash, nil
	})
}

// AppForToken returns the app whose API token this is.
func (s *Store) AppForToken(ctx context.Context, token string) (string, error) {
	var name string
	err := s.db.QueryRowContext(ctx, `SELECT name FROM apps WHERE token_hash = ?`, drainpipe.HashSecret(token)).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("token: %w", drainpipe.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: look up token: %w", err)
	}
	return name, nil
}

// partition returns the name of tier's partition table holding ts,
// creating it inside tx when it does not exist yet. Tables created in tx
// are remembered in local until the transaction commits.
func (s *Store) partition(ctx context.Context, tx *sql.Tx, tier drainpipe.Tier, ts time.Time, local map[partKey]string) (string, error) {
	start := partitionStart(tier, ts.Unix())
	k := partKey{tier, start}
	s.mu.Lock()
	name, ok := s.parts[k]
	s.mu.Unlock()
	if ok {
		return name, nil
	}
	if name, ok := local[k]; ok {
		return name, nil
	}
	name = fmt.Sprintf("b%d_%d", int64(tier.Duration()/time.Minute), start)
	ddl := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s (
	app      TEXT NOT NULL,
	ptype    TEXT NOT NULL,
	ts       INTEGER NOT NULL,
	requests INTEGER NOT NULL,
	err5xx   INTEGER NOT NULL,
	data     BLOB NOT NULL,
	PRIMARY KEY (app, ptype, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS %[1]s_ts ON %[1]s(ts, app, requests, err5xx);`, name)
	if _, err := tx.ExecContext(ctx, ddl); err != nil {
		return "", fmt.Errorf("store: create partition %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO partitions(tier, start, name) VALUES (?, ?, ?)`, int64(tier), start, name); err != nil {
		return "", fmt.Errorf("store: record partition %s: %w", name, err)
	}
	local[k] = name
	return name, nil
}

type groupKey struct {
	app, ptype string
	ts         int64
}

// Apply merges a flush into every tier and records its journal position,
// all in one transaction. Deltas are merged into what is stored, never
// written over it, so late data and replays of partial minutes add up.
func (s *Store) Apply(ctx context.Context, f *metrics.Flush) error {
	return s.apply(ctx, f, applyOpts{position: true, rollApps: rollupAppsPerFlush(len(f.Rows)), rollNow: s.now()})
}

// Import merges f like Apply but leaves the journal position alone, for
// history that never went through the journal (the demo's synthetic
// backfill). Deltas that fall in a partition already past its tier's
// retention at now are left out: the next retention check would drop
// them.
func (s *Store) Import(ctx context.Context, f *metrics.Flush, now time.Time) error {
	return s.apply(ctx, f, applyOpts{expireAt: now})
}

// applyOpts tell apply what else to do besides merging a flush.
type applyOpts struct {
	position bool      // record the flush's journal position
	expireAt time.Time // when not zero, leave out deltas expired at this time
	rollApps int       // roll up at most this many apps' closed minutes
	rollNow  time.Time // the time that decides which minutes are closed
}

// expired reports whether the partition of tier holding ts lies wholly
// beyond the tier's retention at now, as DropExpired decides.
func (s *Store) expired(tier drainpipe.Tier, ts int64, now time.Time) bool {
	return partitionStart(tier, ts)+int64(partitionSpan(tier)/time.Second) <= now.Add(-s.retention[tier]).Unix()
}

// partitionStart returns the start (Unix seconds) of tier's partition
// holding ts.
func partitionStart(tier drainpipe.Tier, ts int64) int64 {
	span := int64(partitionSpan(tier) / time.Second)
	start := ts - ts%span
	if ts < 0 && ts%span != 0 {
		start -= span
	}
	return start
}

func (s *Store) apply(ctx context.Context, f *metrics.Flush, o applyOpts) error {
	// Detached: ctx is checked before each row is written and before the
	// commit, not watched by a goroutine per statement.
	tx, ctx, err := beginDetached(ctx, s.db)
	if err != nil {
		return fmt.Errorf("store: begin flush: %w", err)
	}
	defer tx.Rollback()
	stmts := newStmtCache(tx.Tx)
	stmts.alive = tx.alive
	defer stmts.close()
	created := map[partKey]string{}
	// Every delta goes into the 1-minute tier; into the coarser tiers
	// only those of minutes already rolled up (late data, replays,
	// history), the others through the rollup (rollup.go).
	cur, err := readCursor(ctx, tx)
	if err != nil {
		return err
	}
	// One tier's groups at a time, each borrowing the flush's buckets
	// until two rows share a group: at most one tier's merged copies are
	// held at once (a catch-up flush holds tens of thousands of rows).
	one := newTierGroups(drainpipe.Tier1m)
	var rolled []metrics.Row // rows of minutes behind the cursor
	for _, r := range f.Rows {
		ts := r.Time.Truncate(time.Minute).Unix()
		one.add(r.App, r.ProcessType, ts, r.Bucket)
		if cur.rolled(ts, r.App) {
			rolled = append(rolled, r)
		}
	}
	if err := s.write(ctx, stmts, one, created, o.expireAt); err != nil {
		return err
	}
	one = nil
	if o.rollApps > 0 {
		next, err := s.rollup(ctx, stmts, cur, rollupLimit(o.rollNow), o.rollApps, func(r metrics.Row) {
			rolled = append(rolled, r)
		})
		if err != nil {
			return err
		}
		if next != cur {
			if err := saveCursor(ctx, stmts, next); err != nil {
				return err
			}
		}
	}
	for _, tier := range []drainpipe.Tier{drainpipe.Tier10m, drainpipe.Tier1h} {
		g := newTierGroups(tier)
		for _, r := range rolled {
			g.add(r.App, r.ProcessType, r.Time.Unix(), r.Bucket)
		}
		if err := s.write(ctx, stmts, g, created, o.expireAt); err != nil {
			return err
		}
	}
	if err := insertEvents(ctx, stmts, f.Events); err != nil {
		return err
	}
	dynos, customs, err := s.recordNames(ctx, stmts, f)
	if err != nil {
		return err
	}
	if o.position {
		if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = 'journal_position'`, f.Position); err != nil {
			return fmt.Errorf("store: record journal position: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit flush: %w", err)
	}
	if s.afterCommit != nil {
		s.afterCommit()
	}
	s.remember(created)
	s.names.remember(dynos, customs)
	s.boundWAL(ctx)
	return nil
}

// mergeRow merges delta into the stored row of k. A stored row that fails
// its checksum or does not decode is moved, bytes intact, to the
// quarantine table and reported; the delta then starts the row afresh, so
// one corrupt row costs only its own history, never the flushes of every
// other app.
func (s *Store) mergeRow(ctx context.Context, stmts *stmtCache, table string, k groupKey, delta *metrics.Bucket) error {
	tx := stmts.tx
	sel, err := stmts.get(ctx, `SELECT data FROM `+table+` WHERE app = ? AND ptype = ? AND ts = ?`)
	if err != nil {
		return err
	}
	rows, err := sel.QueryContext(ctx, k.app, k.ptype, k.ts)
	if err != nil {
		return fmt.Errorf("store: read bucket %s/%s@%d: %w", k.app, k.ptype, k.ts, err)
	}
	// The stored bytes are decoded in place (Decode copies what it keeps)
	// and copied only to quarantine them.
	var corrupt bool
	var old sql.RawBytes
	var derr error
	if rows.Next() {
		if err := rows.Scan(&old); err != nil {
			rows.Close()
			return fmt.Errorf("store: read bucket %s/%s@%d: %w", k.app, k.ptype, k.ts, err)
		}
		var b *metrics.Bucket
		if b, derr = metrics.Decode(old); derr != nil {
			corrupt = true
			old = bytes.Clone(old)
		} else {
			b.Merge(delta)
			delta = b
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("store: read bucket %s/%s@%d: %w", k.app, k.ptype, k.ts, err)
	}
	if corrupt {
		s.log.Error("store: corrupt bucket moved to quarantine", "table", table, "app", k.app, "process_type", k.ptype, "ts", k.ts, "err", derr)
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO quarantine(tbl, app, ptype, ts, data, error, moved_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			table, k.app, k.ptype, k.ts, []byte(old), derr.Error(), time.Now().Unix()); err != nil {
			return fmt.Errorf("store: quarantine bucket %s/%s@%d: %w", k.app, k.ptype, k.ts, err)
		}
	}
	ins, err := stmts.get(ctx, `INSERT OR REPLACE INTO `+table+`(requests, err5xx, data, app, ptype, ts) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	stmts.buf = delta.Encode(stmts.buf[:0])
	_, err = ins.ExecContext(ctx, delta.Requests, delta.Count5xx(), stmts.buf, k.app, k.ptype, k.ts)
	if err != nil {
		return fmt.Errorf("store: write bucket %s/%s@%d: %w", k.app, k.ptype, k.ts, err)
	}
	return nil
}

// stmtCache prepares each statement once per transaction. modernc's
// driver prepares the SQL text of every Exec and Query again otherwise,
// which was a quarter of a flush's CPU (BenchmarkApply's profile).
type stmtCache struct {
	tx   *sql.Tx
	m    map[string]*sql.Stmt
	buf  []byte // encoding buffer, reused: a statement has run when Exec returns
	args []any  // argument buffer, reused likewise
	// alive reports the end of a detached transaction's context
	// (txn.alive), checked before each row; never nil.
	alive func() error
}

func newStmtCache(tx *sql.Tx) *stmtCache {
	return &stmtCache{tx: tx, m: map[string]*sql.Stmt{}, alive: func() error { return nil }}
}

func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := c.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("store: prepare %q: %w", query, err)
	}
	c.m[query] = st
	return st, nil
}

// close closes the prepared statements (the transaction's end would too).
func (c *stmtCache) close() {
	for _, st := range c.m {
		st.Close()
	}
}

type (
	dynoKey   struct{ app, ptype, dyno string }
	customKey struct {
		app, name string
		kind      logline.CustomKind
	}
)

// namesSeen remembers what recordNames committed lately: each dyno's (and
// process type's, under dyno "") last_seen minute and the custom metric
// names, each with the minute it was last written. A flush then writes
// only what changed: a custom metric name once, and a dyno's last_seen
// when it moves by lastSeenStep or more. last_seen only decides whether a
// dyno is still in the formation (seen within FormationWindow, 7 days),
// so being up to lastSeenStep behind changes nothing a user sees; at
// 10,000 apps the upserts of every row's dynos were a large share of each
// flush. Entries not written for recentNames are forgotten (they cost
// one write more).
type namesSeen struct {
	mu      sync.Mutex
	dynos   map[dynoKey]int64
	customs map[customKey]int64
}

const (
	recentNames  = time.Hour
	lastSeenStep = 10 * 60 // seconds
)

// remember records the names of a committed flush.
func (n *namesSeen) remember(dynos map[dynoKey]int64, customs map[customKey]int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dynos == nil {
		n.dynos, n.customs = map[dynoKey]int64{}, map[customKey]int64{}
	}
	for k, t := range dynos {
		n.dynos[k] = max(n.dynos[k], t)
	}
	for k, t := range customs {
		n.customs[k] = max(n.customs[k], t)
	}
}

// forget drops the entries last written before cutoff (Unix seconds).
func (n *namesSeen) forget(cutoff int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	maps.DeleteFunc(n.dynos, func(_ dynoKey, t int64) bool { return t < cutoff })
	maps.DeleteFunc(n.customs, func(_ customKey, t int64) bool { return t < cutoff })
}

// recordNames writes the dynos, process types and custom metric names of
// f's rows that namesSeen does not hold yet, and returns them for
// namesSeen.remember once the flush commits.
func (s *Store) recordNames(ctx context.Context, stmts *stmtCache, f *metrics.Flush) (map[dynoKey]int64, map[customKey]int64, error) {
	seen := map[dynoKey]int64{}
	customs := map[customKey]int64{}
	for _, r := range f.Rows {
		t := r.Time.Unix()
		if r.ProcessType != "" { // app-wide rows (log loss) are not a process type
			k := dynoKey{r.App, r.ProcessType, ""}
			seen[k] = max(seen[k], t)
			for _, d := range r.Bucket.Dynos {
				k.dyno = d.Name
				seen[k] = max(seen[k], t)
			}
		}
		for c := range r.Bucket.Custom() {
			for _, k := range []logline.CustomKind{logline.CustomCount, logline.CustomSample, logline.CustomMeasure} {
				if c.Has(k) {
					ck := customKey{r.App, c.Name, k}
					customs[ck] = max(customs[ck], t)
				}
			}
		}
	}
	s.names.mu.Lock()
	maps.DeleteFunc(seen, func(k dynoKey, t int64) bool { last, ok := s.names.dynos[k]; return ok && last > t-lastSeenStep })
	maps.DeleteFunc(customs, func(k customKey, t int64) bool { _, ok := s.names.customs[k]; return ok })
	s.names.mu.Unlock()
	for k, t := range seen {
		st, err := stmts.get(ctx, `INSERT INTO dynos(app, ptype, dyno, last_seen) VALUES (?, ?, ?, ?)
			 ON CONFLICT(app, ptype, dyno) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)`)
		if err != nil {
			return nil, nil, err
		}
		if _, err := st.ExecContext(ctx, k.app, k.ptype, k.dyno, t); err != nil {
			return nil, nil, fmt.Errorf("store: record dyno: %w", err)
		}
	}
	for k := range customs {
		st, err := stmts.get(ctx, `INSERT OR IGNORE INTO custom_names(app, name, kind) VALUES (?, ?, ?)`)
		if err != nil {
			return nil, nil, err
		}
		if _, err := st.ExecContext(ctx, k.app, k.name, int(k.kind)); err != nil {
			return nil, nil, fmt.Errorf("store: record custom metric name: %w", err)
		}
	}
	return seen, customs, nil
}

// partitionsIn returns the existing partition tables of tier that overlap
// [start, end), oldest first.
func (s *Store) partitionsIn(tier drainpipe.Tier, start, end time.Time) []string {
	span := int64(partitionSpan(tier) / time.Second)
	type p struct {
		start int64
		name  string
	}
	var ps []p
	s.mu.Lock()
	for k, name := range s.parts {
		if k.tier == tier && k.start < end.Unix() && k.start+span > start.Unix() {
			ps = append(ps, p{k.start, name})
		}
	}
	s.mu.Unlock()
	sort.Slice(ps, func(i, j int) bool { return ps[i].start < ps[j].start })
	names := make([]string, len(ps))
	for i, x := range ps {
		names[i] = x.name
	}
	return names
}

// partitionsOf returns the partition tables of tier that overlap
// [start, end), oldest first, as q sees them. A read transaction (the
// query of a coarser tier) lists them from its own snapshot: the store's
// list of partitions (s.parts) may name one created after the snapshot
// began, which the snapshot has not ("no such table"), or lack one
// committed before it that its writer has not added yet. A plain query
// runs each statement on a snapshot newer than anything s.parts names,
// and uses it.
func (s *Store) partitionsOf(ctx context.Context, q querier, tier drainpipe.Tier, start, end time.Time) ([]string, error) {
	if _, ok := q.(*sql.DB); ok {
		return s.partitionsIn(tier, start, end), nil
	}
	span := int64(partitionSpan(tier) / time.Second)
	rows, err := q.QueryContext(ctx, `SELECT name FROM partitions WHERE tier = ? AND start < ? AND start > ? ORDER BY start`,
		int64(tier), end.Unix(), start.Unix()-span)
	if err != nil {
		return nil, fmt.Errorf("store: list partitions: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("store: list partitions: %w", err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list partitions: %w", err)
	}
	return names, nil
}

// Buckets returns the stored rows of tier for app in [start, end).
func (s *Store) Buckets(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time) ([]metrics.Row, error) {
	return s.BucketParts(ctx, app, processType, tier, start, end, metrics.AllParts)
}

// BucketParts is Buckets with only parts of each bucket decoded (see
// metrics.DecodeParts); every bucket's checksum is still verified.
func (s *Store) BucketParts(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time, parts metrics.Part) ([]metrics.Row, error) {
	var out []metrics.Row
	var lastApp, lastPT string
	err := s.eachRow(ctx, app, processType, tier, start, end, func(table string, rapp, rpt []byte, ts int64, data []byte) {
		// The names repeat from row to row and are copied only when they
		// change.
		if string(rapp) != lastApp {
			lastApp = string(rapp)
		}
		if string(rpt) != lastPT {
			lastPT = string(rpt)
		}
		// DecodeParts copies what it keeps, so data needs no copy.
		b, err := metrics.DecodeParts(data, parts)
		if err != nil {
			s.leftOut(table, lastApp, lastPT, ts, err)
			return
		}
		out = append(out, metrics.Row{App: lastApp, ProcessType: lastPT, Time: time.Unix(ts, 0).UTC(), Bucket: b})
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// EachLatency calls fn with the latency view of every row Buckets would
// return, ordered by time (server.LatencyStore). The view reads the
// driver's row buffer (sql.RawBytes) in place: beyond the driver's own
// copy of each blob, nothing is copied or decoded into memory.
func (s *Store) EachLatency(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time, fn func(t time.Time, v *metrics.LatencyView)) error {
	var v metrics.LatencyView
	return s.eachRow(ctx, app, processType, tier, start, end, func(table string, rapp, rpt []byte, ts int64, data []byte) {
		if err := metrics.ViewLatency(data, &v); err != nil {
			s.leftOut(table, string(rapp), string(rpt), ts, err)
			return
		}
		fn(time.Unix(ts, 0).UTC(), &v)
	})
}

// leftOut reports a row that fails its checksum or does not decode. It is
// never silently read: the row is left out of the answer and moved to
// quarantine by the next flush that touches it.
func (s *Store) leftOut(table, app, processType string, ts int64, err error) {
	s.log.Error("store: corrupt bucket left out of a query", "table", table, "app", app, "process_type", processType, "ts", ts, "err", err)
}

// eachStored calls fn with every stored row of tier for app ("" = every
// app) and processType ("" = every one) in [start, end), read through q:
// partition by partition, oldest first, each in time order. The names
// and data point into the driver's row buffer (sql.RawBytes) and are
// valid only during the call.
func (s *Store) eachStored(ctx context.Context, q querier, app, processType string, tier drainpipe.Tier, start, end time.Time, fn func(table string, app, processType []byte, ts int64, data []byte)) error {
	// The names are read only when the query does not fix them; the scan's
	// destinations are shared by the rows (Scan takes pointers, so each
	// row's own would be allocated).
	var (
		ts              int64
		data, rapp, rpt sql.RawBytes
		cols            = `app, ptype, `
		where           = ``
		args            = []any{start.Unix(), end.Unix()}
		dest            = []any{&rapp, &rpt, &ts, &data}
	)
	switch {
	case app != "" && processType != "":
		rapp, rpt = sql.RawBytes(app), sql.RawBytes(processType)
		cols, where, dest = ``, ` AND app = ? AND ptype = ?`, dest[2:]
		args = append(args, app, processType)
	case app != "":
		where = ` AND app = ?`
		args = append(args, app)
	case processType != "":
		where = ` AND ptype = ?`
		args = append(args, processType)
	}
	tables, err := s.partitionsOf(ctx, q, tier, start, end)
	if err != nil {
		return err
	}
	for _, table := range tables {
		sq := `SELECT ` + cols + `ts, data FROM ` + table + ` WHERE ts >= ? AND ts < ?` + where + ` ORDER BY ts`
		rows, err := q.QueryContext(ctx, sq, args...)
		if err != nil {
			return fmt.Errorf("store: query %s: %w", table, err)
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return fmt.Errorf("store: scan %s: %w", table, err)
			}
			fn(table, rapp, rpt, ts, data)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("store: query %s: %w", table, err)
		}
	}
	return nil
}

// RequestCounts returns per-bucket request and 5xx counts of every app.
func (s *Store) RequestCounts(ctx context.Context, tier drainpipe.Tier, start, end time.Time) ([]metrics.RequestCount, error) {
	s.readGate.RLock()
	defer s.readGate.RUnlock()
	if tier == drainpipe.Tier1m {
		return s.requestCounts(ctx, s.db, tier, start, end)
	}
	// A coarser tier: its rows and the pending 1-minute rows, from one
	// snapshot.
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	cur, err := readCursor(ctx, tx)
	if err != nil {
		return nil, err
	}
	if s.afterSnapshot != nil {
		s.afterSnapshot()
	}
	out, err := s.requestCounts(ctx, tx, tier, start, end)
	if err != nil {
		return nil, err
	}
	if out, err = s.pendingCounts(ctx, tx, cur, tier, start, end, out); err != nil {
		return nil, err
	}
	return out, tx.Commit()
}

func (s *Store) requestCounts(ctx context.Context, q querier, tier drainpipe.Tier, start, end time.Time) ([]metrics.RequestCount, error) {
	var out []metrics.RequestCount
	tables, err := s.partitionsOf(ctx, q, tier, start, end)
	if err != nil {
		return nil, err
	}
	for _, table := range tables {
		rows, err := q.QueryContext(ctx,
			`SELECT app, ts, SUM(requests), SUM(err5xx) FROM `+table+` WHERE ts >= ? AND ts < ? GROUP BY app, ts`,
			start.Unix(), end.Unix())
		if err != nil {
			return nil, fmt.Errorf("store: request counts in %s: %w", table, err)
		}
		for rows.Next() {
			var c metrics.RequestCount
			var ts int64
			if err := rows.Scan(&c.App, &ts, &c.Requests, &c.Errors5xx); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: scan request counts: %w", err)
			}
			c.Time = time.Unix(ts, 0).UTC()
			out = append(out, c)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: request counts in %s: %w", table, err)
		}
	}
	return out, nil
}

// Events returns app's events in [start, end), oldest first: the newest
// 100,000 of them when there are more.
func (s *Store) Events(ctx context.Context, app string, start, end time.Time, dyno string) ([]drainpipe.Event, error) {
	q := `SELECT ts, ptype, dyno, kind, code, detail FROM events WHERE app = ? AND ts >= ? AND ts < ?`
	args := []any{app, start.UnixNano(), end.UnixNano()}
	if dyno != "" {
		q += ` AND (dyno = ? OR dyno = '')`
		args = append(args, dyno)
	}
	q += ` ORDER BY ts DESC, id DESC LIMIT ?`
	args = append(args, s.eventsLimit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: events of %q: %w", app, err)
	}
	defer rows.Close()
	var out []drainpipe.Event
	for rows.Next() {
		e := drainpipe.Event{App: app}
		var ts int64
		var kind string
		if err := rows.Scan(&ts, &e.ProcessType, &e.Dyno, &kind, &e.Code, &e.Detail); err != nil {
			return nil, fmt.Errorf("store: scan event: %w", err)
		}
		e.Time = time.Unix(0, ts).UTC()
		e.Kind = drainpipe.EventKind(kind)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: events of %q: %w", app, err)
	}
	slices.Reverse(out) // newest first → oldest first
	return out, nil
}

// LastEvents returns each app's latest deploy, release, restart or crash.
func (s *Store) LastEvents(ctx context.Context) (map[string]drainpipe.Event, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT e.app, e.ts, e.ptype, e.dyno, e.kind, e.code, e.detail
		FROM events e JOIN (
			SELECT app, MAX(ts) AS m FROM events
			WHERE kind IN ('deploy', 'release', 'restart', 'crash')
			GROUP BY app
		) x ON e.app = x.app AND e.ts = x.m
		WHERE e.kind IN ('deploy', 'release', 'restart', 'crash')`)
	if err != nil {
		return nil, fmt.Errorf("store: last events: %w", err)
	}
	defer rows.Close()
	out := map[string]drainpipe.Event{}
	for rows.Next() {
		var e drainpipe.Event
		var ts int64
		var kind string
		if err := rows.Scan(&e.App, &ts, &e.ProcessType, &e.Dyno, &kind, &e.Code, &e.Detail); err != nil {
			return nil, fmt.Errorf("store: scan last event: %w", err)
		}
		e.Time = time.Unix(0, ts).UTC()
		e.Kind = drainpipe.EventKind(kind)
		out[e.App] = e
	}
	return out, rows.Err()
}

// dropPartition drops the partition table name of k and its entry in
// the partitions table, in one transaction.
func (s *Store) dropPartition(ctx context.Context, k partKey, name string) error {
	tx, err := begin(ctx, s.db)
	if err != nil {
		return fmt.Errorf("store: begin drop %s: %w", name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+name); err != nil {
		return fmt.Errorf("store: drop %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM partitions WHERE tier = ? AND start = ?`, int64(k.tier), k.start); err != nil {
		return fmt.Errorf("store: forget %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit drop %s: %w", name, err)
	}
	return nil
}

// FormationWindow is how far back Formation looks: process types and
// dynos not seen for longer (old one-off run.1234 dynos, removed process
// types) drop out of the formation.
const FormationWindow = 7 * 24 * time.Hour

// Formation returns the process types and dynos seen for app within
// FormationWindow.
func (s *Store) Formation(ctx context.Context, app string) ([]server.ProcessType, error) {
	since := time.Now().Add(-FormationWindow).Unix()
	rows, err := s.db.QueryContext(ctx, `SELECT ptype, dyno FROM dynos WHERE app = ? AND last_seen >= ? ORDER BY ptype, dyno`, app, since)
	if err != nil {
		return nil, fmt.Errorf("store: formation of %q: %w", app, err)
	}
	defer rows.Close()
	var out []server.ProcessType
	for rows.Next() {
		var ptype, dyno string
		if err := rows.Scan(&ptype, &dyno); err != nil {
			return nil, fmt.Errorf("store: scan formation: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Name != ptype {
			out = append(out, server.ProcessType{Name: ptype, Dynos: []string{}})
		}
		if dyno != "" {
			p := &out[len(out)-1]
			p.Dynos = append(p.Dynos, dyno)
		}
	}
	for i := range out {
		sortDynos(out[i].Dynos)
	}
	return out, rows.Err()
}

// sortDynos orders "web.2" before "web.10".
func sortDynos(d []string) {
	sort.Slice(d, func(i, j int) bool {
		a, b := d[i], d[j]
		if len(a) != len(b) {
			return len(a) < len(b)
		}
		return a < b
	})
}

var customKindNames = map[logline.CustomKind]string{
	logline.CustomCount:   "count",
	logline.CustomSample:  "sample",
	logline.CustomMeasure: "measure",
}

// CustomMetrics returns the custom metric names seen for app.
func (s *Store) CustomMetrics(ctx context.Context, app string) ([]server.CustomMetric, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, kind FROM custom_names WHERE app = ? ORDER BY name, kind`, app)
	if err != nil {
		return nil, fmt.Errorf("store: custom metrics of %q: %w", app, err)
	}
	defer rows.Close()
	out := []server.CustomMetric{}
	for rows.Next() {
		var m server.CustomMetric
		var kind int
		if err := rows.Scan(&m.Name, &kind); err != nil {
			return nil, fmt.Errorf("store: scan custom metric: %w", err)
		}
		m.Kind = customKindNames[logline.CustomKind(kind)]
		out = append(out, m)
	}
	return out, rows.Err()
}

// DropExpired drops every partition whose whole time range lies beyond its
// tier's retention at now, and deletes events older than the longest
// retention. It returns the dropped tables' names.
func (s *Store) DropExpired(ctx context.Context, now time.Time) ([]string, error) {
	// Minutes not rolled up yet reach the coarser tiers before their
	// 1-minute partition can go.
	if err := s.RollUp(ctx, now); err != nil {
		return nil, err
	}
	var dropped []string
	s.mu.Lock()
	var victims []partKey
	names := map[partKey]string{}
	for k, name := range s.parts {
		end := time.Unix(k.start, 0).Add(partitionSpan(k.tier))
		if !end.After(now.Add(-s.retention[k.tier])) {
			victims = append(victims, k)
			names[k] = name
		}
	}
	s.mu.Unlock()
	for _, k := range victims {
		name := names[k]
		// Out of the list before the table goes: a query that runs on
		// its own snapshot after the drop must not name it.
		s.mu.Lock()
		delete(s.parts, k)
		s.mu.Unlock()
		if err := s.dropPartition(ctx, k, name); err != nil {
			s.mu.Lock()
			s.parts[k] = name
			s.mu.Unlock()
			return dropped, err
		}
		dropped = append(dropped, name)
	}
	longest := time.Duration(0)
	for _, r := range s.retention {
		longest = max(longest, r)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM events WHERE ts < ?`, now.Add(-longest).UnixNano()); err != nil {
		return dropped, fmt.Errorf("store: expire events: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM dynos WHERE last_seen < ?`, now.Add(-longest).Unix()); err != nil {
		return dropped, fmt.Errorf("store: expire dynos: %w", err)
	}
	s.names.forget(now.Add(-recentNames).Unix())
	return dropped, nil
}
