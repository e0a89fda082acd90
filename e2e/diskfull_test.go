//go:build linux

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/embedded"
)

// fullDisk makes writes under dir fail the way a full disk does, and
// undoes it. On a size-limited tmpfs (mounting needs root) it fills the
// file system and empties it again: writes fail with ENOSPC. Where mount
// is not allowed it lowers this process's RLIMIT_FSIZE to 0 instead:
// writes fail with EFBIG, which SQLite reports the same way (a failed
// write, the transaction rolled back). DRAINPIPE_DISKFULL=rlimit forces
// the second way.
type fullDisk struct {
	dir, how string
	filler   string
	saved    syscall.Rlimit
}

func newFullDisk(t *testing.T) *fullDisk {
	dir := t.TempDir()
	f := &fullDisk{dir: dir, how: "rlimit (EFBIG)"}
	if os.Getenv("DRAINPIPE_DISKFULL") != "rlimit" {
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err == nil {
			f.how = "tmpfs of 8 MiB (ENOSPC)"
			t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		} else {
			t.Logf("cannot mount a tmpfs (%v): using RLIMIT_FSIZE", err)
		}
	}
	return f
}

func (f *fullDisk) fill(t *testing.T) {
	t.Helper()
	if f.how == "rlimit (EFBIG)" {
		if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &f.saved); err != nil {
			t.Fatal(err)
		}
		lim := f.saved
		lim.Cur = 0
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Fatal(err)
		}
		return
	}
	f.filler = filepath.Join(f.dir, "filler")
	w, err := os.Create(f.filler)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := w.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the tmpfs: %v", err)
			}
			break
		}
	}
	// Leave no partial page either.
	for {
		if _, err := w.Write(chunk[:512]); err != nil {
			break
		}
	}
}

func (f *fullDisk) free(t *testing.T) {
	t.Helper()
	if f.how == "rlimit (EFBIG)" {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &f.saved); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.Remove(f.filler); err != nil {
		t.Fatal(err)
	}
}

// TestDiskFull fills the data directory's disk under a running node.
// Drains are answered 503 with Retry-After (never a 4xx, which Logplex
// would not retry), what was stored before is still answered exactly, and
// once space returns the same node accepts drains again by itself; a
// restart then finds both files intact and the count exact.
func TestDiskFull(t *testing.T) {
	disk := newFullDisk(t)
	cfg := embedded.Config{DataDir: disk.dir}
	n := startNodeWith(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	app := createApp(t, n.URL, "fullapp")
	d := targetOf(t, app.DrainURL)
	now := time.Now().UTC()
	const per = 50
	var acked int64
	for b := range 10 {
		if code := postDrain(t, app.DrainURL, fmt.Sprint("before-", b), routerBatch(per, 200, now), per); code != 200 {
			t.Fatalf("before the disk fills: %d", code)
		}
		acked += per
	}
	settled(t, n.URL)
	// Three more, filling the disk at once: their flush to the store is
	// likely to hit the full disk too (and is retried).
	for b := range 3 {
		if code := postDrain(t, app.DrainURL, fmt.Sprint("late-", b), routerBatch(per, 200, now), per); code != 200 {
			t.Fatalf("before the disk fills: %d", code)
		}
		acked += per
	}

	disk.fill(t)
	var refused int
	for b := range 5 {
		req, _ := http.NewRequest("POST", d.endpoint, bytes.NewReader(routerBatch(per, 200, now)))
		req.SetBasicAuth(d.user, d.secret)
		req.Header.Set("Content-Type", "application/logplex-1")
		req.Header.Set("Logplex-Frame-Id", fmt.Sprint("full-", b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			disk.free(t)
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
			refused++
		default:
			disk.free(t)
			t.Fatalf("drain on a full disk: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	// Stored data is still served, exactly.
	got := countStatus(t, n.URL, "fullapp", 200, now)
	disk.free(t)
	if refused == 0 {
		t.Fatalf("no drain was refused on a full disk (%s)", disk.how)
	}
	if got < float64(10*per) || got > float64(acked) {
		t.Fatalf("on a full disk the API answered %v lines, want the %d stored before (up to %d acknowledged)", got, 10*per, acked)
	}

	// Space is back: the refused batches, retried, go through on the same
	// node, without a restart.
	for b := range 5 {
		if code := postDrain(t, app.DrainURL, fmt.Sprint("full-", b), routerBatch(per, 200, now), per); code != 200 {
			t.Fatalf("retry after space returned: %d", code)
		}
	}
	acked += 5 * per
	settled(t, n.URL)
	if got := countStatus(t, n.URL, "fullapp", 200, now); got != float64(acked) {
		t.Fatalf("after space returned: counted %v lines, want %d", got, acked)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Both files pass the start-up checks.
	n = startNodeWith(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	settled(t, n.URL)
	if got := countStatus(t, n.URL, "fullapp", 200, now); got != float64(acked) {
		t.Fatalf("after restart: counted %v lines, want %d", got, acked)
	}
	t.Logf("disk full via %s: %d drains refused with 503 + Retry-After, %d lines acknowledged and counted, 0 lost", disk.how, refused, acked)
}
