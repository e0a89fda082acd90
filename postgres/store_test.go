package postgres

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/postgres/pgtest"
	"github.com/drainpipe/drainpipe/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openTest opens a store on a fresh database of the shared test server.
func openTest(t testing.TB, retention map[drainpipe.Tier]time.Duration) *Store {
	t.Helper()
	s, err := Open(context.Background(), pgtest.DB(t), retention, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the store suite shared with the SQLite store.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		Open: func(t *testing.T, retention map[drainpipe.Tier]time.Duration) storetest.Store {
			return openTest(t, retention)
		},
		Corrupt: func(t *testing.T, st storetest.Store, app, ptype string, ts time.Time) {
			tag, err := st.(*Store).pool.Exec(context.Background(),
				`UPDATE buckets_1m SET data = '\x00ff' WHERE app = $1 AND ptype = $2 AND ts = $3`, app, ptype, ts)
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("corrupt %s/%s@%s: %v, %d rows", app, ptype, ts, err, tag.RowsAffected())
			}
		},
		Quarantined: func(t *testing.T, st storetest.Store) int {
			var n int
			if err := st.(*Store).pool.QueryRow(context.Background(), `SELECT count(*) FROM quarantine`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
	})
}
