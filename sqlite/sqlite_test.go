package sqlite

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/journal"
	"github.com/drainpipe/drainpipe/metrics"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestJournalDedupSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := OpenJournal(ctx, path, quiet)
	if err != nil {
		t.Fatal(err)
	}
	b := drainpipe.Batch{App: "a", FrameID: "f1", ReceivedAt: time.Now(), Body: []byte("x")}
	seq, dup, err := j.Append(ctx, b)
	if err != nil || dup || seq == 0 {
		t.Fatalf("first append: seq=%d dup=%v err=%v", seq, dup, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = OpenJournal(ctx, path, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, dup, err := j.Append(ctx, b); err != nil || !dup {
		t.Fatalf("retry after restart: dup=%v err=%v", dup, err)
	}
	// The same frame id for another app is not a duplicate.
	b.App = "other"
	if _, dup, err := j.Append(ctx, b); err != nil || dup {
		t.Fatalf("other app: dup=%v err=%v", dup, err)
	}
	recs, err := j.Read(ctx, 0, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("read: %d records, err=%v", len(recs), err)
	}
}

func TestJournalConcurrentAppendsAreOrderedAndComplete(t *testing.T) {
	ctx := context.Background()
	j, err := OpenJournal(ctx, filepath.Join(t.TempDir(), "j.db"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var wg sync.WaitGroup
	const n = 400
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every batch is sent twice, as a retrying client would.
			b := drainpipe.Batch{App: "a", FrameID: fmt.Sprint(i % (n / 2)), ReceivedAt: time.Now(), Body: []byte{byte(i)}}
			if _, _, err := j.Append(ctx, b); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	recs, err := j.Read(ctx, 0, 10*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n/2 {
		t.Fatalf("%d records kept, want %d", len(recs), n/2)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq <= recs[i-1].Seq {
			t.Fatalf("records out of order at %d", i)
		}
	}
	if err := j.Trim(ctx, recs[len(recs)/2].Seq); err != nil {
		t.Fatal(err)
	}
	rest, _ := j.Read(ctx, 0, 10*n)
	if len(rest) != len(recs)-len(recs)/2-1 {
		t.Fatalf("after trim %d records, want %d", len(rest), len(recs)-len(recs)/2-1)
	}
}

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), filepath.Join(t.TempDir(), "m.db"), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func delta(app, ptype string, at time.Time, requests int, latency float64) metrics.Row {
	b := new(metrics.Bucket)
	for i := 0; i < requests; i++ {
		b.AddStatus(200)
		b.AddService(latency)
	}
	return metrics.Row{App: app, ProcessType: ptype, Time: at, Bucket: b}
}

func TestApplyMergesLateDataIntoEveryTier(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f1 := &metrics.Flush{Position: 5, Rows: []metrics.Row{
		delta("a", "web", t0, 10, 100),
		delta("a", "web", t0.Add(time.Minute), 5, 200),
	}}
	if err := s.Apply(ctx, f1); err != nil {
		t.Fatal(err)
	}
	// Late data for the first minute, after it was flushed.
	f2 := &metrics.Flush{Position: 9, Rows: []metrics.Row{delta("a", "web", t0.Add(30*time.Second), 3, 300)}}
	if err := s.Apply(ctx, f2); err != nil {
		t.Fatal(err)
	}
	if pos, _ := s.Position(ctx); pos != 9 {
		t.Fatalf("position = %d, want 9", pos)
	}
	rows, err := s.Buckets(ctx, "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Hour))
	if err != nil || len(rows) != 2 {
		t.Fatalf("1m rows: %d, err %v", len(rows), err)
	}
	if rows[0].Bucket.Requests != 13 || rows[1].Bucket.Requests != 5 {
		t.Fatalf("1m requests = %d, %d; want 13, 5", rows[0].Bucket.Requests, rows[1].Bucket.Requests)
	}
	if rows[0].Bucket.Service().Max != 300 {
		t.Fatalf("late max lost: %v", rows[0].Bucket.Service().Max)
	}
	for _, tier := range []drainpipe.Tier{drainpipe.Tier10m, drainpipe.Tier1h} {
		rows, err := s.Buckets(ctx, "a", "", tier, t0, t0.Add(time.Hour))
		if err != nil || len(rows) != 1 || rows[0].Bucket.Requests != 18 {
			t.Fatalf("%v: rows=%d err=%v", tier, len(rows), err)
		}
	}
	counts, err := s.RequestCounts(ctx, drainpipe.Tier1m, t0, t0.Add(time.Hour))
	if err != nil || len(counts) != 2 || counts[0].Requests+counts[1].Requests != 18 {
		t.Fatalf("request counts %+v err %v", counts, err)
	}
}

func TestDropExpiredDropsWholePartitions(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	old := now.Add(-5 * 24 * time.Hour)
	if err := s.Apply(ctx, &metrics.Flush{Position: 1, Rows: []metrics.Row{
		delta("a", "web", old, 1, 1), delta("a", "web", now, 1, 1),
	}}); err != nil {
		t.Fatal(err)
	}
	dropped, err := s.DropExpired(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 1 {
		t.Fatalf("dropped %v, want the one old 1m partition", dropped)
	}
	rows, _ := s.Buckets(ctx, "a", "web", drainpipe.Tier1m, old.Add(-time.Hour), now.Add(time.Hour))
	if len(rows) != 1 || !rows[0].Time.Equal(now) {
		t.Fatalf("1m rows after retention: %+v", rows)
	}
	rows, _ = s.Buckets(ctx, "a", "web", drainpipe.Tier1h, old.Add(-time.Hour), now.Add(time.Hour))
	if len(rows) != 2 {
		t.Fatalf("hourly tier must keep both hours, has %d", len(rows))
	}
}

func TestCorruptBucketIsQuarantined(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	if err := s.Apply(ctx, &metrics.Flush{Position: 1, Rows: []metrics.Row{delta("a", "web", t0, 5, 1), delta("b", "web", t0, 7, 1)}}); err != nil {
		t.Fatal(err)
	}
	table := s.partitionsIn(drainpipe.Tier1m, t0, t0.Add(time.Minute))[0]
	if _, err := s.db.Exec(`UPDATE ` + table + ` SET data = x'0102030405' WHERE app = 'a'`); err != nil {
		t.Fatal(err)
	}
	// The corrupt row is left out of answers; its neighbour is not.
	rows, err := s.Buckets(ctx, "", "web", drainpipe.Tier1m, t0, t0.Add(time.Minute))
	if err != nil || len(rows) != 1 || rows[0].App != "b" {
		t.Fatalf("query with a corrupt row: %d rows, err %v", len(rows), err)
	}
	// A flush touching it moves it to quarantine and goes on.
	if err := s.Apply(ctx, &metrics.Flush{Position: 2, Rows: []metrics.Row{delta("a", "web", t0, 1, 1)}}); err != nil {
		t.Fatal(err)
	}
	if pos, _ := s.Position(ctx); pos != 2 {
		t.Fatalf("position %d after the flush, want 2", pos)
	}
	var n int
	var data []byte
	if err := s.db.QueryRow(`SELECT COUNT(*), MAX(data) FROM quarantine WHERE app = 'a'`).Scan(&n, &data); err != nil || n != 1 || string(data) != "\x01\x02\x03\x04\x05" {
		t.Fatalf("quarantine: %d rows, data %x, err %v", n, data, err)
	}
	rows, _ = s.Buckets(ctx, "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Minute))
	if len(rows) != 1 || rows[0].Bucket.Requests != 1 {
		t.Fatalf("row after quarantine: %+v", rows)
	}
}

func TestAppsAndCredentials(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	_, cred, err := s.CreateApp(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateApp(ctx, "shop"); !errors.Is(err, drainpipe.ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if err := s.VerifyDrain(ctx, "shop", cred.DrainUser, cred.DrainSecret); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyDrain(ctx, "shop", cred.DrainUser, "wrong"); !errors.Is(err, drainpipe.ErrUnauthorized) {
		t.Fatalf("wrong secret: %v", err)
	}
	if err := s.VerifyDrain(ctx, "nope", cred.DrainUser, cred.DrainSecret); !errors.Is(err, drainpipe.ErrNotFound) {
		t.Fatalf("unknown app: %v", err)
	}
	if app, err := s.AppForToken(ctx, cred.APIToken); err != nil || app != "shop" {
		t.Fatalf("token: %q %v", app, err)
	}
	if _, err := s.AppForToken(ctx, "dpa_nope"); !errors.Is(err, drainpipe.ErrNotFound) {
		t.Fatalf("bad token: %v", err)
	}
}

func TestFormationForgetsOldDynos(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Now().UTC().Truncate(time.Minute)
	withDyno := func(at time.Time, dyno string) metrics.Row {
		r := delta("a", "run", at, 0, 0)
		r.Bucket.Dyno([]byte(dyno)).Add(0, 1, at.UnixNano())
		return r
	}
	if err := s.Apply(ctx, &metrics.Flush{Position: 1, Rows: []metrics.Row{
		withDyno(now.Add(-10*24*time.Hour), "run.1"), withDyno(now.Add(-time.Hour), "run.2"),
	}}); err != nil {
		t.Fatal(err)
	}
	f, err := s.Formation(ctx, "a")
	if err != nil || len(f) != 1 || len(f[0].Dynos) != 1 || f[0].Dynos[0] != "run.2" {
		t.Fatalf("formation = %+v, %v; want only run.2", f, err)
	}
}

// TestCredentialsAreRandomAndStoredAsHashes: drain secrets and API tokens
// carry 32 random bytes (256 bits), differ between apps, and the store
// file holds only their SHA-256, never the secrets themselves.
func TestCredentialsAreRandomAndStoredAsHashes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := OpenStore(ctx, path, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var secrets []string
	for _, name := range []string{"one", "two"} {
		_, cr, err := s.CreateApp(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{cr.DrainSecret, strings.TrimPrefix(cr.APIToken, "dpa_")} {
			raw, err := base64.RawURLEncoding.DecodeString(v)
			if err != nil || len(raw) < 32 {
				t.Fatalf("credential %q: %d random bytes (%v), want 32", v, len(raw), err)
			}
			if seen[v] {
				t.Fatal("two credentials are equal")
			}
			seen[v] = true
		}
		secrets = append(secrets, cr.DrainSecret, cr.APIToken)
		var secretHash, tokenHash string
		if err := s.db.QueryRow(`SELECT secret_hash, token_hash FROM apps WHERE name = ?`, name).Scan(&secretHash, &tokenHash); err != nil {
			t.Fatal(err)
		}
		if secretHash != drainpipe.HashSecret(cr.DrainSecret) || tokenHash != drainpipe.HashSecret(cr.APIToken) {
			t.Fatal("stored values are not the credentials' SHA-256")
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets {
		if bytes.Contains(data, []byte(sec)) {
			t.Fatalf("the store file holds a credential in clear")
		}
	}
}

// endsAfter is a context that reports context.Canceled from the n-th call
// of Err on: a cancellation that arrives in the middle of a flush.
type endsAfter struct {
	context.Context
	n *int
}

func (c endsAfter) Err() error {
	if *c.n--; *c.n <= 0 {
		return context.Canceled
	}
	return nil
}

// TestApplyCancelledMidwayCommitsNothing: a flush's statements run
// detached from its context (beginDetached), which is checked between
// rows and before the commit instead; one cancelled midway fails with
// the context's error and leaves nothing of itself behind.
func TestApplyCancelledMidwayCommitsNothing(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f := &metrics.Flush{Position: 7}
	for i := range 20 {
		f.Rows = append(f.Rows, delta("a", "web", t0.Add(time.Duration(i)*time.Minute), 1, 10))
	}
	for _, n := range []int{2, 10, 21} { // before a row, midway, before the commit
		left := n
		if err := s.Apply(endsAfter{ctx, &left}, f); !errors.Is(err, context.Canceled) {
			t.Fatalf("n=%d: Apply = %v, want context.Canceled", n, err)
		}
		rows, err := s.Buckets(ctx, "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Hour))
		if err != nil || len(rows) != 0 {
			t.Fatalf("n=%d: %d rows after a cancelled flush (err %v)", n, len(rows), err)
		}
		if pos, _ := s.Position(ctx); pos != 0 {
			t.Fatalf("n=%d: position %d after a cancelled flush", n, pos)
		}
	}
	if err := s.Apply(ctx, f); err != nil {
		t.Fatal(err)
	}
	if rows, err := s.Buckets(ctx, "a", "web", drainpipe.Tier1m, t0, t0.Add(time.Hour)); err != nil || len(rows) != 20 {
		t.Fatalf("%d rows, err %v", len(rows), err)
	}
}

// TestRememberCancelledMidwayStoresNothing: FrameIndex.Remember checks
// its context between frames (beginDetached) and, cancelled midway,
// stores none of the group's ids.
func TestRememberCancelledMidwayStoresNothing(t *testing.T) {
	ctx := context.Background()
	x, err := OpenFrameIndex(ctx, filepath.Join(t.TempDir(), "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	now := time.Now()
	frames := []journal.Frame{{App: "a", ID: "1", SeenAt: now}, {App: "a", ID: "2", SeenAt: now}, {App: "a", ID: "3", SeenAt: now}}
	for _, n := range []int{2, 4} { // midway, before the commit
		left := n
		if err := x.Remember(endsAfter{ctx, &left}, frames); !errors.Is(err, context.Canceled) {
			t.Fatalf("n=%d: Remember = %v, want context.Canceled", n, err)
		}
		for _, f := range frames {
			if seen, err := x.Seen(ctx, f.App, f.ID); err != nil || seen {
				t.Fatalf("n=%d: frame %s seen=%v err=%v after a cancelled Remember", n, f.ID, seen, err)
			}
		}
	}
	if err := x.Remember(ctx, frames); err != nil {
		t.Fatal(err)
	}
	if seen, err := x.Seen(ctx, "a", "3"); err != nil || !seen {
		t.Fatalf("seen=%v err=%v", seen, err)
	}
}
