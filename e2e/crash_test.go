package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/logplex"
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
	c := &child{logs: new(lockedBuffer)}
	c.cmd = exec.Command(bin, "serve", "--data", dir, "--listen", addr, "--admin-token", adminToken)
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

// TestCrashExactlyOnce runs the server as a child process, kills it with
// SIGKILL twice while several senders post, and has the senders retry every
// unacknowledged batch with the same Logplex-Frame-Id until it is
// acknowledged, as Logplex does. After the last restart the count of every
// acknowledged line must be exact: nothing lost, nothing counted twice.
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills a server; skipped with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := freePort(t)
	srv := startChild(t, bin, dir, addr)
	defer func() { srv.kill9() }()
	base := "http://" + addr
	app := createApp(t, base, "crashy")
	u, _ := url.Parse(app.DrainURL)
	user := u.User.Username()
	secret, _ := u.User.Password()
	u.User = nil
	endpoint := u.String()

	const senders, batches, perBatch = 4, 60, 50
	var acked atomic.Int64
	var retries atomic.Int64
	now := time.Now().UTC()
	hc := &http.Client{Timeout: 2 * time.Second}
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				var body []byte
				for i := 0; i < perBatch; i++ {
					body = logplex.AppendMessage(body, now.Add(time.Duration(i)*time.Millisecond), "host", "heroku", "router",
						fmt.Sprintf("at=info method=GET path=/%d dyno=web.%d connect=1ms service=%dms status=200 bytes=1", b, s+1, 5+i))
				}
				frameID := fmt.Sprintf("s%d-b%d", s, b)
				deadline := time.Now().Add(60 * time.Second)
				for attempt := 0; ; attempt++ {
					req, _ := http.NewRequest("POST", endpoint, bytes.NewReader(body))
					req.SetBasicAuth(user, secret)
					req.Header.Set("Content-Type", "application/logplex-1")
					req.Header.Set("Logplex-Msg-Count", fmt.Sprint(perBatch))
					req.Header.Set("Logplex-Frame-Id", frameID)
					resp, err := hc.Do(req)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							acked.Add(perBatch)
							break
						}
						if resp.StatusCode < 500 {
							t.Errorf("batch %s: permanent %d", frameID, resp.StatusCode)
							return
						}
					}
					if time.Now().After(deadline) {
						t.Errorf("batch %s never acknowledged", frameID)
						return
					}
					retries.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	// Two crashes while the senders are busy.
	for crash := 0; crash < 2; crash++ {
		time.Sleep(400 * time.Millisecond)
		srv.kill9()
		time.Sleep(200 * time.Millisecond)
		srv = startChild(t, bin, dir, addr)
	}
	wg.Wait()
	want := acked.Load()
	if want != senders*batches*perBatch {
		t.Fatalf("acknowledged %d lines, want all %d", want, senders*batches*perBatch)
	}
	count := func() float64 {
		q := url.Values{"start_time": {now.Add(-time.Hour).Format(time.RFC3339)}, "end_time": {now.Add(time.Hour).Format(time.RFC3339)}, "step": {"1h"}}
		code, b := do(t, "GET", base+"/api/apps/crashy/router-metrics/status?"+q.Encode(), adminToken, nil, nil)
		if code != 200 {
			t.Fatalf("status query: %d %s", code, b)
		}
		var s series
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		return sum(s.Data["200"])
	}
	eventually(t, "all acknowledged lines counted", func() bool { return count() >= float64(want) })
	time.Sleep(time.Second)
	if got := count(); got != float64(want) {
		t.Fatalf("counted %v lines, want exactly %d acknowledged ones", got, want)
	}
	if retries.Load() == 0 {
		t.Fatalf("no sender ever retried: the crashes did not hit in-flight traffic")
	}
	t.Logf("%d lines acknowledged and counted exactly once across 2 SIGKILLs; %d retries", want, retries.Load())
	sc := bufio.NewScanner(strings.NewReader(srv.logs.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "level=ERROR") {
			t.Logf("server log: %s", sc.Text())
		}
	}
}
