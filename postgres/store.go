// Package postgres implements drainpipe's scale-out store on PostgreSQL
// (through github.com/jackc/pgx/v5): the same tiers, rollups, events and
// app registry as the embedded SQLite store, in natively range-partitioned
// tables whose partitions are created ahead of time and dropped whole for
// retention, plus the Kafka side's exactly-once bookkeeping (consumed
// offsets and frame IDs written in the aggregates' transaction).
//
// The schema lives in embedded migrations applied by Open. Errors that
// mean the server is out of reach wrap drainpipe.ErrUnavailable.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/server"
)

// Store is the PostgreSQL metrics store. It is safe for concurrent use by
// many goroutines and by many processes sharing the database.
type Store struct {
	pool      *pgxpool.Pool
	log       *slog.Logger
	retention map[drainpipe.Tier]time.Duration
	// eventsLimit is the most events one Events call returns.
	eventsLimit int

	mu    sync.Mutex
	parts map[partKey]bool // partitions known to exist
	auth  drainpipe.DrainAuths
}

var (
	_ server.Store            = (*Store)(nil)
	_ aggregate.Sink          = (*Store)(nil)
	_ aggregate.PartitionSink = (*Store)(nil)
)

// Open connects to the database at databaseURL (a postgres:// URL or a
// libpq key=value string, as Heroku's DATABASE_URL), applies the embedded
// migrations it lacks and creates the partitions of the coming days. A nil
// retention means drainpipe.DefaultRetention. Open fails, wrapping
// drainpipe.ErrUnavailable, when the server cannot be reached.
func Open(ctx context.Context, databaseURL string, retention map[drainpipe.Tier]time.Duration, log *slog.Logger) (*Store, error) {
	cfg, err := parseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "drainpipe"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fail(err, "connect")
	}
	if retention == nil {
		retention = drainpipe.DefaultRetention()
	}
	s := &Store{
		pool: pool, log: log, retention: retention, eventsLimit: server.EventsLimit,
		parts: map[partKey]bool{},
	}
	applied, err := migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, fail(err, "migrate schema")
	}
	if len(applied) > 0 {
		log.Info("postgres: schema migrated", "versions", applied)
	}
	if err := s.EnsurePartitions(ctx, time.Now()); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// CheckURL tells whether Open can parse databaseURL, without connecting.
func CheckURL(databaseURL string) error {
	_, err := parseURL(databaseURL)
	return err
}

func parseURL(databaseURL string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// The parse error may quote the URL; say nothing of its password.
		return nil, errors.New("postgres: the database URL is not valid (want postgres://user:password@host:port/dbname)")
	}
	return cfg, nil
}

// Close closes every connection.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Pool is the connection pool, for callers that need the database for
// something of their own (tests, health checks).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	return fail(s.pool.Ping(ctx), "ping")
}

// Retention tells how long each tier is kept.
func (s *Store) Retention() map[drainpipe.Tier]time.Duration { return s.retention }

// Position returns the local journal position the store has absorbed
// through Apply.
func (s *Store) Position(ctx context.Context) (int64, error) {
	var p int64
	err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'journal_position'`).Scan(&p)
	return p, fail(err, "read journal position")
}

// CreateApp registers an app with fresh credentials; only their SHA-256
// hashes are kept (secrets are 32 random bytes: nothing to brute-force).
func (s *Store) CreateApp(ctx context.Context, name string) (drainpipe.App, drainpipe.Credentials, error) {
	cr, err := drainpipe.NewCredentials()
	if err != nil {
		return drainpipe.App{}, drainpipe.Credentials{}, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	tag, err := s.pool.Exec(ctx,
		`INSERT INTO apps(name, created_at, drain_user, secret_hash, token_hash) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (name) DO NOTHING`,
		name, now, cr.DrainUser, drainpipe.HashSecret(cr.DrainSecret), drainpipe.HashSecret(cr.APIToken))
	if err != nil {
		return drainpipe.App{}, drainpipe.Credentials{}, fail(err, "create app %q", name)
	}
	if tag.RowsAffected() == 0 {
		return drainpipe.App{}, drainpipe.Credentials{}, fmt.Errorf("postgres: create app %q: %w", name, drainpipe.ErrExists)
	}
	return drainpipe.App{Name: name, CreatedAt: now}, cr, nil
}

// ListApps returns every app ordered by name.
func (s *Store) ListApps(ctx context.Context) ([]drainpipe.App, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, created_at FROM apps ORDER BY name`)
	if err != nil {
		return nil, fail(err, "list apps")
	}
	defer rows.Close()
	var out []drainpipe.App
	for rows.Next() {
		var a drainpipe.App
		if err := rows.Scan(&a.Name, &a.CreatedAt); err != nil {
			return nil, fail(err, "scan app")
		}
		a.CreatedAt = a.CreatedAt.UTC()
		out = append(out, a)
	}
	return out, fail(rows.Err(), "list apps")
}

// App returns one app, or drainpipe.ErrNotFound.
func (s *Store) App(ctx context.Context, name string) (drainpipe.App, error) {
	a := drainpipe.App{Name: name}
	err := s.pool.QueryRow(ctx, `SELECT created_at FROM apps WHERE name = $1`, name).Scan(&a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("app %q: %w", name, drainpipe.ErrNotFound)
	}
	if err != nil {
		return a, fail(err, "look up app %q", name)
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return a, nil
}

// VerifyDrain checks a drain's basic-auth pair against the stored hash, in
// constant time.
func (s *Store) VerifyDrain(ctx context.Context, app, user, secret string) error {
	return s.auth.Verify(ctx, app, user, secret, func(ctx context.Context, app string) (u, hash string, err error) {
		err = s.pool.QueryRow(ctx, `SELECT drain_user, secret_hash FROM apps WHERE name = $1`, app).Scan(&u, &hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", "", fmt.Errorf("app %q: %w", app, drainpipe.ErrNotFound)
		}
		if err != nil {
			return "", "", fail(err, "look up app %q", app)
		}
		return u, hash, nil
	})
}

// AppForToken returns the app whose API token this is.
func (s *Store) AppForToken(ctx context.Context, token string) (string, error) {
	var name string
	err := s.pool.QueryRow(ctx, `SELECT name FROM apps WHERE token_hash = $1`, drainpipe.HashSecret(token)).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("token: %w", drainpipe.ErrNotFound)
	}
	if err != nil {
		return "", fail(err, "look up token")
	}
	return name, nil
}
