package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/embedded"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/sqlite"
)

// refusingSink is a store that fails every flush.
type refusingSink struct{ aggregate.Sink }

func (refusingSink) Apply(context.Context, *metrics.Flush) error {
	return errors.New("store unavailable")
}

// stalledNode starts a node on dir whose store never applies a flush, so
// what is posted stays in the journal only.
func stalledNode(t *testing.T, dir, journal string) *embedded.Node {
	t.Helper()
	return startNodeWith(t, embedded.Config{DataDir: dir, Journal: journal, WrapSink: func(s aggregate.Sink) aggregate.Sink {
		return refusingSink{s}
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// postAll posts batches frames from..to-1 of per router lines to app's
// drain on node base, all of which must be answered 200.
func postAll(t *testing.T, drainURL string, from, to, per int, at time.Time) {
	t.Helper()
	for b := from; b < to; b++ {
		if code := postDrain(t, drainURL, fmt.Sprint("frame-", b), routerBatch(per, 200, at), per); code != 200 {
			t.Fatalf("drain POST %d: %d", b, code)
		}
	}
}

// onNode returns drainURL pointed at node n (each start listens on a new
// port).
func onNode(drainURL, oldBase string, n *embedded.Node) string {
	return strings.Replace(drainURL, strings.TrimPrefix(oldBase, "http://"), strings.TrimPrefix(n.URL, "http://"), 1)
}

// TestJournalSwitches: a data directory whose SQLite journal holds
// acknowledged records the store has not applied (an upgrade from a
// version before the file journal) starts on the file journal: the
// records are moved into segments and counted exactly once, their frame
// ids still deduplicate retries, and journal.db's table is emptied.
// Switching back to --journal sqlite once everything is applied keeps
// counting from there.
func TestJournalSwitches(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	const per = 20
	n := stalledNode(t, dir, embedded.JournalSQLite)
	app := createApp(t, n.URL, "switcher")
	base := n.URL
	postAll(t, app.DrainURL, 0, 10, per, now)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n = startNode(t, dir) // the default: the file journal
	drain := onNode(app.DrainURL, base, n)
	postAll(t, drain, 5, 15, per, now) // five retries, five new
	settled(t, n.URL)
	if got := countStatus(t, n.URL, "switcher", 200, now); got != 15*per {
		t.Fatalf("after the move to the file journal: counted %v lines, want %d", got, 15*per)
	}
	idx, err := sqlite.OpenFrameIndex(context.Background(), filepath.Join(dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	records, _, err := idx.JournalTail(context.Background())
	idx.Close()
	if err != nil || records != 0 {
		t.Fatalf("journal.db still holds %d records (%v)", records, err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n = startNodeWith(t, embedded.Config{DataDir: dir, Journal: embedded.JournalSQLite}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	drain = onNode(app.DrainURL, base, n)
	postAll(t, drain, 12, 18, per, now) // three retries, three new
	settled(t, n.URL)
	if got := countStatus(t, n.URL, "switcher", 200, now); got != 18*per {
		t.Fatalf("after the switch back to sqlite: counted %v lines, want %d", got, 18*per)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "journal", "*.seg")); len(segs) != 0 {
		t.Fatalf("segments left after the switch to sqlite: %v", segs)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir) // and to the file journal again
	drain = onNode(app.DrainURL, base, n)
	postAll(t, drain, 16, 20, per, now)
	settled(t, n.URL)
	if got := countStatus(t, n.URL, "switcher", 200, now); got != 20*per {
		t.Fatalf("back on the file journal: counted %v lines, want %d", got, 20*per)
	}
}

// TestSQLiteJournalRefusesUnappliedSegments: --journal sqlite does not
// start on segments holding acknowledged records the store lacks.
func TestSQLiteJournalRefusesUnappliedSegments(t *testing.T) {
	dir := t.TempDir()
	n := stalledNode(t, dir, embedded.JournalFile)
	app := createApp(t, n.URL, "pending")
	postAll(t, app.DrainURL, 0, 3, 5, time.Now().UTC())
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := embedded.Start(context.Background(), embedded.Config{DataDir: dir, Journal: embedded.JournalSQLite, Listen: "127.0.0.1:0", AdminToken: adminToken},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "has not applied") {
		t.Fatalf("start with --journal sqlite on unapplied segments: %v", err)
	}
}
