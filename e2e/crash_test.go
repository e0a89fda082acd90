package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles cmd/drainpipe once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DRAINPIPE_BIN"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "drainpipe")
	cmd := exec.Command("go", "build", "-o", out, "../cmd/drainpipe")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build drainpipe: %v", err)
	}
	return out
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// lockedBuffer collects a child's output; the os/exec copier goroutine
// writes while the test may read.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// child is a drainpipe serve process.
type child struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
}

func startChild(t *testing.T, bin, dir, addr string) *child {
	t.Helper()
	return startChildArgs(t, bin, "serve", "--data", dir, "--listen", addr, "--admin-token", adminToken)
}

// startChildArgs starts the binary with args (a serve command listening
// on 127.0.0.1) and waits until it answers /healthz.
func startChildArgs(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	addr := ""
	for i, a := range args {
		if a == "--listen" && i+1 < len(args) {
			addr = args[i+1]
		}
	}
	c := &child{logs: new(lockedBuffer)}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = append(os.Environ(), "DRAINPIPE_LOG_LEVEL=debug")
	c.cmd.Stdout = c.logs
	c.cmd.Stderr = c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) {
			c.cmd.Process.Kill()
			t.Fatalf("server did not come up: %s", c.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *child) kill9() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

// crashIterations is how many SIGKILLs TestCrashExactlyOnce deals:
// $DRAINPIPE_CRASH_ITERATIONS, default 20 (what CI runs).
func crashIterations(t *testing.T) int {
	if v := os.Getenv("DRAINPIPE_CRASH_ITERATIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("DRAINPIPE_CRASH_ITERATIONS=%q: want a positive integer", v)
		}
		return n
	}
	return 20
}

// drainTarget is where and as whom senders post.
type drainTarget struct {
	endpoint, user, secret string
}

func targetOf(t *testing.T, drainURL string) drainTarget {
	u, err := url.Parse(drainURL)
	if err != nil {
		t.Fatal(err)
	}
	d := drainTarget{user: u.User.Username()}
	d.secret, _ = u.User.Password()
	u.User = nil
	d.endpoint = u.String()
	return d
}

// post sends one batch once; it reports whether it was acknowledged (200)
// and fails the test on a 4xx, which would make Logplex drop the batch.
func (d drainTarget) post(t *testing.T, hc *http.Client, frameID string, body []byte, n int) bool {
	req, _ := http.NewRequest("POST", d.endpoint, bytes.NewReader(body))
	req.SetBasicAuth(d.user, d.secret)
	req.Header.Set("Content-Type", "application/logplex-1")
	req.Header.Set("Logplex-Msg-Count", strconv.Itoa(n))
	req.Header.Set("Logplex-Frame-Id", frameID)
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		t.Errorf("batch %s: %d; a 4xx makes Logplex drop the batch for good", frameID, resp.StatusCode)
	}
	return resp.StatusCode == http.StatusOK
}

// settled waits until the node's store holds everything its journal
// acknowledged (the /healthz backlog is 0).
func settled(t *testing.T, base string) {
	t.Helper()
	eventually(t, "journal backlog drained into the store", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200 && strings.Contains(string(b), "journal_backlog_records 0\n")
	})
}

// TestCrashExactlyOnce is the kill -9 harness. drainpipe serve runs as a
// child process; senders post batches the way Logplex does: every batch
// is posted by two senders at once with the same Logplex-Frame-Id, and
// each retries until acknowledged. A third kind of sender gives a batch up
// after its first failed attempt (as Logplex does once its retries are
// exhausted). The harness SIGKILLs the server at a random moment,
// $DRAINPIPE_CRASH_ITERATIONS times (default 20), restarting it each
// time, and in about a third of the iterations kills the new process
// again at once, while it replays the journal. After each restart it
// lets the in-flight batches finish, waits for the store to catch up,
// and checks: every acknowledged line is counted exactly once, and no
// abandoned (unacknowledged) batch is counted more than once.
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills a server; skipped with -short")
	}
	iterations := crashIterations(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := freePort(t)
	srv := startChild(t, bin, dir, addr)
	defer func() { srv.kill9() }()
	base := "http://" + addr
	d := targetOf(t, createApp(t, base, "crashy").DrainURL)
	now := time.Now().UTC()
	const pairs, per = 3, 40
	const retried, abandoned = 200, 202 // status codes that tell the kinds apart

	var (
		gate               sync.RWMutex // a sender holds it for reading while a batch is open
		stop               atomic.Bool
		acked, abandonedN  atomic.Int64 // lines
		ackedAbandonedKind atomic.Int64 // lines of give-up batches that were acknowledged
		retries            atomic.Int64
		seq                atomic.Int64
	)
	hc := &http.Client{Timeout: 2 * time.Second}
	var wg sync.WaitGroup
	// Retrying pairs: two goroutines post the same batch concurrently,
	// each until it gets a 200.
	for p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				gate.RLock()
				id := fmt.Sprintf("p%d-%d", p, seq.Add(1))
				body := routerBatch(per, retried, now)
				var both sync.WaitGroup
				var got atomic.Bool
				for range 2 {
					both.Add(1)
					go func() {
						defer both.Done()
						for attempt := 0; !d.post(t, hc, id, body, per); attempt++ {
							if attempt > 600 {
								t.Errorf("batch %s never acknowledged", id)
								return
							}
							retries.Add(1)
							time.Sleep(50 * time.Millisecond)
						}
						got.Store(true)
					}()
				}
				both.Wait()
				if got.Load() {
					acked.Add(per)
				}
				gate.RUnlock()
			}
		}()
	}
	// A sender that gives up after one failed attempt.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			gate.RLock()
			id := fmt.Sprintf("g-%d", seq.Add(1))
			if d.post(t, hc, id, routerBatch(per, abandoned, now), per) {
				ackedAbandonedKind.Add(per)
			} else {
				abandonedN.Add(per)
				time.Sleep(50 * time.Millisecond)
			}
			gate.RUnlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()

	kills := 0
	begunFrom := []string{"created", "retired", "zeroed"}
	var begun [3]int // segments begun by the processes killed, by from
	for it := 1; it <= iterations; it++ {
		time.Sleep(time.Duration(rand.IntN(600)) * time.Millisecond)
		// Every other process runs on 64 KiB segments: it rolls a segment
		// every few dozen batches, so kills also land during rolls, trims,
		// the reuse of retired segments and the zero-fill of spares, and
		// processes of either size open the other's segments.
		args := []string{"serve", "--data", dir, "--listen", addr, "--admin-token", adminToken}
		if it%2 == 1 {
			args = append(args, "--journal-segment-size", "65536")
		}
		for k, from := range begunFrom {
			v, _ := metricValue(t, base, `drainpipe_journal_segments_begun_total{from="`+from+`"}`)
			begun[k] += int(v)
		}
		srv.kill9()
		srv = startChildArgs(t, bin, args...)
		kills++
		if rand.IntN(3) == 0 {
			// Again at once, while the new process replays the journal.
			time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
			srv.kill9()
			srv = startChildArgs(t, bin, args...)
			kills++
		}
		// Let the senders run on the new process a little, then hold
		// them between batches and check.
		time.Sleep(time.Duration(50+rand.IntN(150)) * time.Millisecond)
		gate.Lock()
		settled(t, base)
		got200 := countStatus(t, base, "crashy", retried, now)
		got202 := countStatus(t, base, "crashy", abandoned, now)
		want200, ok202, lost202 := acked.Load(), ackedAbandonedKind.Load(), abandonedN.Load()
		gate.Unlock()
		if got200 != float64(want200) {
			t.Fatalf("iteration %d: counted %v acknowledged lines, want exactly %d", it, got200, want200)
		}
		if got202 < float64(ok202) || got202 > float64(ok202+lost202) || int64(got202)%per != 0 {
			t.Fatalf("iteration %d: counted %v give-up lines; %d acknowledged, %d unacknowledged: an unacknowledged batch was counted twice, or an acknowledged one lost",
				it, got202, ok202, lost202)
		}
		if t.Failed() {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	settled(t, base)
	if got := countStatus(t, base, "crashy", retried, now); got != float64(acked.Load()) {
		t.Fatalf("end: counted %v acknowledged lines, want exactly %d", got, acked.Load())
	}
	got202 := countStatus(t, base, "crashy", abandoned, now)
	if retries.Load() == 0 || abandonedN.Load() == 0 {
		t.Fatalf("the crashes never hit traffic in flight (%d retries, %d lines given up)", retries.Load(), abandonedN.Load())
	}
	t.Logf("%d iterations, %d SIGKILLs: %d lines acknowledged, %d counted, 0 lost; %d retries; %d lines given up unacknowledged, %d of them counted (journaled before the kill), none twice",
		iterations, kills, acked.Load()+ackedAbandonedKind.Load(), int64(countStatus(t, base, "crashy", retried, now))+ackedAbandonedKind.Load(),
		retries.Load(), abandonedN.Load(), int64(got202)-ackedAbandonedKind.Load())
	t.Logf("segments begun by the killed processes: %d created, %d on retired segments, %d on zero-filled spares", begun[0], begun[1], begun[2])
	if iterations >= 8 && begun[0]+begun[1]+begun[2] < iterations/2 {
		t.Fatalf("only %v segments begun in %d iterations: the 64 KiB processes should roll", begun, iterations)
	}
	sc := bufio.NewScanner(strings.NewReader(srv.logs.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "level=ERROR") {
			t.Logf("server log: %s", sc.Text())
		}
	}
}
