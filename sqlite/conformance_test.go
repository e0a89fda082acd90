package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/storetest"
)

// TestConformance runs the store suite shared with the PostgreSQL store.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		Open: func(t *testing.T, retention map[drainpipe.Tier]time.Duration) storetest.Store {
			s, err := OpenStore(context.Background(), filepath.Join(t.TempDir(), "m.db"), retention, quiet)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		Corrupt: func(t *testing.T, st storetest.Store, app, ptype string, ts time.Time) {
			s := st.(*Store)
			table := s.partitionsIn(drainpipe.Tier1m, ts, ts.Add(time.Minute))[0]
			if _, err := s.db.Exec(`UPDATE `+table+` SET data = x'00ff' WHERE app = ? AND ptype = ? AND ts = ?`, app, ptype, ts.Unix()); err != nil {
				t.Fatal(err)
			}
		},
		Quarantined: func(t *testing.T, st storetest.Store) int {
			var n int
			if err := st.(*Store).db.QueryRow(`SELECT count(*) FROM quarantine`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
	})
}
