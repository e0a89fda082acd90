package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/journal"
	"github.com/drainpipe/drainpipe/sqlite"
)

// TestSIGTERMDrainsAndResumes stops the real binary with SIGTERM while
// senders post and one request is half-way through its body. That request
// still gets its 200, the process exits 0, and the files it leaves hold
// every acknowledged line in the store (store position = last journal
// record: nothing left to replay, the open minute included). A restart
// resumes from there, and the senders' retries are counted exactly once.
func TestSIGTERMDrainsAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and signals a server; skipped with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := freePort(t)
	srv := startChild(t, bin, dir, addr)
	base := "http://" + addr
	d := targetOf(t, createApp(t, base, "termy").DrainURL)
	now := time.Now().UTC()
	const per = 30

	var stop atomic.Bool
	var acked, seq atomic.Int64
	hc := &http.Client{Timeout: 2 * time.Second}
	var wg sync.WaitGroup
	for s := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				id := fmt.Sprintf("s%d-%d", s, seq.Add(1))
				body := routerBatch(per, 200, now)
				for !d.post(t, hc, id, body, per) {
					time.Sleep(50 * time.Millisecond) // retried until acknowledged, across the restart
				}
				acked.Add(per)
			}
		}()
	}

	// One request in flight: headers and half the body sent.
	body := routerBatch(per, 200, now)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", d.endpoint, pr)
	req.SetBasicAuth(d.user, d.secret)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/logplex-1")
	req.Header.Set("Logplex-Frame-Id", "in-flight")
	inflight := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("in-flight request: %v", err)
			inflight <- 0
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // senders busy, the request in the server's hands

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := pw.Write(body[len(body)/2:]); err != nil {
		t.Fatalf("finishing the in-flight body after SIGTERM: %v", err)
	}
	pw.Close()
	if code := <-inflight; code != 200 {
		t.Fatalf("in-flight request answered %d after SIGTERM, want 200", code)
	}
	acked.Add(per)
	if err := srv.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v (want status 0)\n%s", err, srv.logs)
	}

	// What the stopped process left: the store holds the whole journal.
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	idx, err := sqlite.OpenFrameIndex(ctx, filepath.Join(dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(ctx, filepath.Join(dir, "journal"), journal.Options{Frames: idx, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	last := j.LastSeq()
	j.Close()
	st, err := sqlite.OpenStore(ctx, filepath.Join(dir, "metrics.db"), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	pos, err := st.Position(ctx)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if last == 0 || pos != last {
		t.Fatalf("after SIGTERM the store is at journal position %d of %d: the stop did not flush everything", pos, last)
	}

	srv = startChild(t, bin, dir, addr)
	defer srv.kill9()
	// Nothing to replay: the aggregator starts at the last record.
	eventually(t, "restart resumes at the last journal record", func() bool {
		return strings.Contains(srv.logs.String(), fmt.Sprintf(`msg="aggregator starting" position=%d`, last))
	})
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	settled(t, base)
	if got := countStatus(t, base, "termy", 200, now); got != float64(acked.Load()) {
		t.Fatalf("after SIGTERM and restart: counted %v lines, want exactly %d", got, acked.Load())
	}
	t.Logf("SIGTERM: in-flight request answered 200, exit 0, store at position %d = last journal record; %d lines counted exactly once after restart", pos, acked.Load())
}
