package e2e

import (
	"bytes"
	"database/sql"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/embedded"
	_ "github.com/drainpipe/drainpipe/sqlite" // the database/sql driver
)

// TestStoreScrubInBackground: a node restarted on a metrics.db with one
// stored bucket's bytes flipped (with the node stopped) starts without
// reading every bucket, and its background check then moves the bucket to
// quarantine, counts it in /metrics and logs it; the node serves
// throughout.
func TestStoreScrubInBackground(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	n := startNode(t, dir)
	app := createApp(t, n.URL, "scrubbed")
	if code := postDrain(t, app.DrainURL, "frame-1", routerBatch(20, 200, now), 20); code != 200 {
		t.Fatalf("drain POST: %d", code)
	}
	eventually(t, "the batch in the store", func() bool {
		_, body := do(t, "GET", n.URL+"/healthz", "", nil, nil)
		return strings.Contains(string(body), "journal_backlog_records 0")
	})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "metrics.db")
	blob := storedBucket(t, path, "scrubbed")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, blob)
	if at < 0 {
		t.Fatal("the bucket's bytes are not in metrics.db (still in its WAL?)")
	}
	data[at+len(blob)/2] ^= 0x10
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	var logs lockedBuffer
	n = startNodeWith(t, embedded.Config{DataDir: dir, ScrubAfter: 50 * time.Millisecond},
		slog.New(slog.NewTextHandler(&logs, nil)))
	if strings.Contains(logs.String(), "damaged bucket") {
		t.Fatalf("the start read the buckets:\n%s", logs.String())
	}
	eventually(t, "the background check quarantined the bucket", func() bool {
		_, body := do(t, "GET", n.URL+"/metrics", "", nil, nil)
		return strings.Contains(string(body), `drainpipe_store_scrub_buckets_total{action="quarantined"} 1`)
	})
	out := logs.String()
	if !strings.Contains(out, "damaged bucket moved to quarantine") || !strings.Contains(out, "store scrubbed") {
		t.Fatalf("the scrub's report is missing from the log:\n%s", out)
	}
	if code, body := do(t, "GET", n.URL+"/healthz", "", nil, nil); code != http.StatusOK || strings.Contains(string(body), "store_damaged_partitions") {
		t.Fatalf("/healthz after a bucket quarantine: %d %s", code, body)
	}
}

// storedBucket returns the bytes of one of app's stored 1-minute buckets,
// read from the stopped node's metrics.db after a checkpoint.
func storedBucket(t *testing.T, path, app string) []byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	var table string
	if err := db.QueryRow(`SELECT name FROM partitions WHERE tier = ? ORDER BY start DESC LIMIT 1`, int64(time.Minute)).Scan(&table); err != nil {
		t.Fatal(err)
	}
	var blob []byte
	if err := db.QueryRow(`SELECT data FROM `+table+` WHERE app = ? LIMIT 1`, app).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	return blob
}
