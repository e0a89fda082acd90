package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/postgres"
	"github.com/drainpipe/drainpipe/postgres/pgtest"
	"github.com/drainpipe/drainpipe/sqlite"
	"github.com/drainpipe/drainpipe/storetest"
)

// TestSameAnswersAsSQLite applies the same random flushes to the embedded
// store and to PostgreSQL and compares every answer, bucket bytes
// included.
func TestSameAnswersAsSQLite(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lite, err := sqlite.OpenStore(ctx, filepath.Join(t.TempDir(), "m.db"), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	pg, err := postgres.Open(ctx, pgtest.DB(t), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()

	now := storetest.Now()
	flushes := storetest.RandomFlushes(7, 60, now)
	for _, f := range flushes {
		if err := lite.Apply(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := pg.Apply(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	start, end := now.Add(-2*time.Hour), now.Add(time.Hour)
	for _, tier := range drainpipe.Tiers {
		for _, app := range []string{"", "alpha", "beta"} {
			for _, pt := range []string{"", "web", "worker"} {
				a, err := lite.Buckets(ctx, app, pt, tier, start, end)
				if err != nil {
					t.Fatal(err)
				}
				b, err := pg.Buckets(ctx, app, pt, tier, start, end)
				if err != nil {
					t.Fatal(err)
				}
				if len(a) == 0 {
					t.Fatalf("no %v rows for %q/%q: the comparison would prove nothing", tier, app, pt)
				}
				if ea, eb := encodeRows(a), encodeRows(b); !reflect.DeepEqual(ea, eb) {
					t.Errorf("%v %q/%q: sqlite %d rows, postgres %d rows differ", tier, app, pt, len(ea), len(eb))
				}
			}
		}
		a, err := lite.RequestCounts(ctx, tier, start, end)
		if err != nil {
			t.Fatal(err)
		}
		b, err := pg.RequestCounts(ctx, tier, start, end)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(countSet(a), countSet(b)) {
			t.Errorf("%v request counts differ:\nsqlite   %v\npostgres %v", tier, a, b)
		}
	}
	for _, app := range []string{"alpha", "beta", "gamma"} {
		for _, dyno := range []string{"", "web.1"} {
			a, err := lite.Events(ctx, app, start, end, dyno)
			if err != nil {
				t.Fatal(err)
			}
			b, err := pg.Events(ctx, app, start, end, dyno)
			if err != nil {
				t.Fatal(err)
			}
			if len(a) == 0 || !reflect.DeepEqual(a, b) {
				t.Errorf("events of %s/%q: sqlite %d, postgres %d", app, dyno, len(a), len(b))
			}
		}
		fa, _ := lite.Formation(ctx, app)
		fb, err := pg.Formation(ctx, app)
		if err != nil || !reflect.DeepEqual(fa, fb) {
			t.Errorf("formation of %s: sqlite %v, postgres %v (%v)", app, fa, fb, err)
		}
		ca, _ := lite.CustomMetrics(ctx, app)
		cb, err := pg.CustomMetrics(ctx, app)
		if err != nil || !reflect.DeepEqual(ca, cb) {
			t.Errorf("custom metrics of %s: sqlite %v, postgres %v (%v)", app, ca, cb, err)
		}
	}
	la, _ := lite.LastEvents(ctx)
	lb, err := pg.LastEvents(ctx)
	if err != nil || len(la) == 0 || !reflect.DeepEqual(la, lb) {
		t.Errorf("last events: sqlite %v, postgres %v (%v)", la, lb, err)
	}
	pa, _ := lite.Position(ctx)
	pb, _ := pg.Position(ctx)
	if pa != pb || pa != int64(len(flushes)) {
		t.Errorf("positions: sqlite %d, postgres %d", pa, pb)
	}
}

// encodeRows keys each row's encoded bucket by app, process type and time:
// equal maps mean equal answers whatever the order of rows within a time.
func encodeRows(rows []metrics.Row) map[string]string {
	out := map[string]string{}
	for _, r := range rows {
		out[r.App+"/"+r.ProcessType+"@"+r.Time.Format(time.RFC3339)] = string(r.Bucket.Encode(nil))
	}
	return out
}

func countSet(cs []metrics.RequestCount) map[metrics.RequestCount]bool {
	out := map[metrics.RequestCount]bool{}
	for _, c := range cs {
		c.Time = c.Time.UTC()
		out[c] = true
	}
	return out
}
