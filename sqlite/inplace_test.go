package sqlite

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// TestEachLatencyLeavesOutCorruptRows damages a stored bucket while the
// store is open (as storage can after the start-up check): the in-place
// latency read leaves it out and logs it, as Buckets does, and reads
// every other row with the counts Buckets decodes.
func TestEachLatencyLeavesOutCorruptRows(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	s, err := OpenStore(ctx, t.TempDir()+"/m.db", nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(5, 6))
	f := &metrics.Flush{Position: 1}
	for i := range 10 {
		f.Rows = append(f.Rows, metrics.Row{App: "a", ProcessType: "web", Time: t0.Add(time.Duration(i) * time.Minute), Bucket: minuteBucket(rng)})
	}
	if err := s.Apply(ctx, f); err != nil {
		t.Fatal(err)
	}
	table := s.partitionsIn(drainpipe.Tier1m, t0, t0.Add(time.Hour))[0]
	bad := t0.Add(4 * time.Minute).Unix()
	// Flip a byte in the middle of the bucket: its checksum no longer holds.
	if _, err := s.db.ExecContext(ctx, `UPDATE `+table+` SET data = substr(data, 1, 100) || x'ff' || substr(data, 102) WHERE ts = ?`, bad); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Buckets(ctx, "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 9 {
		t.Fatalf("Buckets returned %d rows, want 9", len(rows))
	}
	logs.Reset()
	i := 0
	err = s.EachLatency(ctx, "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Hour), func(ts time.Time, v *metrics.LatencyView) {
		if ts.Unix() == bad {
			t.Errorf("the damaged row was read")
		}
		if i >= len(rows) || !ts.Equal(rows[i].Time) || v.Requests != rows[i].Bucket.Requests || v.Service.Count != rows[i].Bucket.Service().Count {
			t.Errorf("row %d at %v differs from Buckets'", i, ts)
		}
		i++
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != 9 {
		t.Fatalf("EachLatency read %d rows, want 9", i)
	}
	if !strings.Contains(logs.String(), "corrupt bucket left out of a query") || !strings.Contains(logs.String(), "checksum") {
		t.Fatalf("the damaged row was not reported: %s", logs.String())
	}
}
