package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/kafka/kafkatest"
	"github.com/drainpipe/drainpipe/logplex"
	"github.com/drainpipe/drainpipe/postgres/pgtest"
)

// proc is one drainpipe serve process of the scale-out mode.
type proc struct {
	name string
	args []string
	addr string
	cmd  *exec.Cmd
	logs *lockedBuffer
}

func (p *proc) start(t *testing.T, bin string) {
	t.Helper()
	p.logs = new(lockedBuffer)
	p.cmd = exec.Command(bin, append([]string{"serve", "--listen", p.addr}, p.args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) || p.cmd.ProcessState != nil {
			p.cmd.Process.Kill()
			t.Fatalf("%s did not come up: %s", p.name, p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) signal(sig syscall.Signal) {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
		p.cmd.Wait()
	}
}

// frame is one drain POST of the test's input.
type frame struct {
	app, id string
	body    []byte
	lines   int
}

// makeFrames builds the input: router lines with integer service times (so
// that sums are exact whatever order they are merged in), some with 5xx
// and H codes, and a memory sample per frame, spread over apps.
func makeFrames(apps []string, n int, at time.Time) []frame {
	rnd := rand.New(rand.NewPCG(1, 2))
	frames := make([]frame, n)
	for i := range frames {
		app := apps[i%len(apps)]
		var body []byte
		lines := 5 + rnd.IntN(20)
		for k := range lines - 1 {
			ts := at.Add(time.Duration(rnd.IntN(180)) * time.Second)
			status, extra := 200, "at=info"
			if rnd.IntN(20) == 0 {
				status, extra = 503, `at=error code=H12 desc="Request timeout"`
			}
			body = logplex.AppendMessage(body, ts, "host", "heroku", "router", fmt.Sprintf(
				`%s method=GET path=/p/%d host=%s.herokuapp.com dyno=web.%d connect=%dms service=%dms status=%d bytes=10 protocol=https`,
				extra, k, app, 1+rnd.IntN(3), rnd.IntN(5), 1+rnd.IntN(2000), status))
		}
		ts := at.Add(time.Duration(rnd.IntN(180)) * time.Second)
		d := 1 + rnd.IntN(3)
		body = logplex.AppendMessage(body, ts, "host", "heroku", fmt.Sprintf("web.%d", d), fmt.Sprintf(
			"source=web.%d dyno=heroku.1.%d sample#memory_total=%d.00MB sample#memory_rss=%d.00MB sample#memory_quota=512.00MB", d, d, 100+rnd.IntN(300), 100))
		frames[i] = frame{app: app, id: fmt.Sprintf("%032x", i+1), body: body, lines: lines}
	}
	return frames
}

// TestScaleOutExactlyOnce runs drainpipe's scale-out mode as separate
// processes - 2 ingest, 2 aggregate and 1 api - on a private Kafka broker
// and a private PostgreSQL cluster. Senders stream frames with Logplex's
// retries (same Frame-Id, to either ingest process, also after a 200 whose
// answer is taken as lost) while the test SIGKILLs an aggregator, restarts
// the broker and restarts PostgreSQL. A probe POSTed while the broker is
// down must get a 503; it is retried as Logplex would once the broker is
// back, and may by then have reached Kafka anyway (see kafka.Journal).
// Every acknowledged line must then be counted exactly once, and the API
// must answer exactly what the embedded mode answers for the same input.
func TestScaleOutExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	broker := kafkatest.StartBroker(t)
	pg := pgtest.StartCluster(t)
	bin := buildBinary(t)

	common := []string{"--kafka-url", "kafka://" + broker.Addr, "--database-url", pg.URL,
		"--admin-token", adminToken, "--kafka-partitions", "4"}
	newProc := func(name, role string) *proc {
		return &proc{name: name, addr: freePort(t), args: append([]string{"--role", role}, common...)}
	}
	api := newProc("api", "api")
	ingest := []*proc{newProc("ingest-1", "ingest"), newProc("ingest-2", "ingest")}
	aggs := []*proc{newProc("aggregate-1", "aggregate"), newProc("aggregate-2", "aggregate")}
	all := append([]*proc{api}, append(ingest, aggs...)...)
	for _, p := range all {
		p.start(t, bin)
	}
	defer func() {
		for _, p := range all {
			p.signal(syscall.SIGKILL)
		}
		if t.Failed() {
			for _, p := range all {
				t.Logf("--- %s log:\n%s", p.name, tailString(p.logs.String(), 4000))
			}
		}
	}()

	apiBase := "http://" + api.addr
	apps := []string{"shop", "blog", "api-gw", "billing", "search"}
	creds := map[string][2]string{}
	for _, a := range apps {
		c := createApp(t, apiBase, a)
		u, _ := url.Parse(c.DrainURL)
		secret, _ := u.User.Password()
		creds[a] = [2]string{u.User.Username(), secret}
	}

	t0 := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Minute)
	frames := makeFrames(apps, 600, t0)
	var (
		acked, retries, resent atomic.Int64
		next                   atomic.Int64
		wg                     sync.WaitGroup
	)
	hc := &http.Client{Timeout: 5 * time.Second}
	post := func(f *frame, target int) (int, error) {
		req, _ := http.NewRequest("POST", "http://"+ingest[target%2].addr+"/drains/"+f.app, bytes.NewReader(f.body))
		req.SetBasicAuth(creds[f.app][0], creds[f.app][1])
		req.Header.Set("Content-Type", "application/logplex-1")
		req.Header.Set("Logplex-Msg-Count", fmt.Sprint(f.lines))
		req.Header.Set("Logplex-Frame-Id", f.id)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	sendStart := time.Now()
	for s := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(s), 9))
			for {
				i := int(next.Add(1)) - 1
				if i >= len(frames) {
					return
				}
				f := &frames[i]
				target := rnd.IntN(2)
				deadline := time.Now().Add(90 * time.Second)
				for {
					code, err := post(f, target)
					if err == nil && code == http.StatusOK {
						break
					}
					if err == nil && code < 500 {
						t.Errorf("frame %s: permanent %d", f.id, code)
						return
					}
					if time.Now().After(deadline) {
						t.Errorf("frame %s never acknowledged (last %d %v)", f.id, code, err)
						return
					}
					retries.Add(1)
					target++ // Logplex may retry through another front
					time.Sleep(100 * time.Millisecond)
				}
				acked.Add(1)
				if rnd.IntN(8) == 0 { // the 200 was lost on the way: Logplex sends it again
					if code, err := post(f, target+1); err == nil && code == http.StatusOK {
						resent.Add(1)
					}
				}
				// ~600 frames over ~25 s, so the disruptions hit traffic.
				time.Sleep(time.Duration(120+rnd.IntN(60)) * time.Millisecond)
			}
		}()
	}

	step := func(pause time.Duration, what string, do func()) {
		time.Sleep(pause)
		t.Logf("%5.1fs %s (%d frames acknowledged)", time.Since(sendStart).Seconds(), what, acked.Load())
		do()
	}
	step(3*time.Second, "SIGKILL aggregate-1", func() { aggs[0].signal(syscall.SIGKILL) })
	step(2*time.Second, "stop the Kafka broker", broker.Stop)
	// The probe is a drain POST made while the broker is down. Its 503
	// does not mean that its record will never reach Kafka: the
	// idempotent producer cannot take back a record it may already have
	// sent, and delivers it once the broker is back. Logplex retries a
	// 503 with the same Frame-Id, and so does this test once the senders
	// are done; the aggregators must then count the probe once, whether
	// or not its first copy landed.
	probe := makeFrames([]string{"shop"}, 1, t0)[0]
	probe.id = "broker-down-probe"
	step(time.Second, "start the Kafka broker", func() {
		// Degraded mode: with Kafka down, ingest answers 503 so that
		// Logplex retries, rather than acknowledging what it cannot keep.
		slow := &http.Client{Timeout: 30 * time.Second}
		req, _ := http.NewRequest("POST", "http://"+ingest[0].addr+"/drains/shop", bytes.NewReader(probe.body))
		req.SetBasicAuth(creds["shop"][0], creds["shop"][1])
		req.Header.Set("Logplex-Frame-Id", probe.id)
		resp, err := slow.Do(req)
		if err != nil {
			t.Errorf("drain POST while Kafka is down: %v, want a 503", err)
		} else {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("drain POST while Kafka is down: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}
		broker.Start()
	})
	var ackedBefore int64
	step(3*time.Second, "stop PostgreSQL", func() { ackedBefore = acked.Load(); pg.Stop() })
	step(4*time.Second, "start PostgreSQL", func() {
		// Degraded mode: ingest kept taking drains into Kafka, the API
		// says it cannot answer.
		if n := acked.Load() - ackedBefore; n == 0 {
			t.Error("no frame was acknowledged while PostgreSQL was down")
		}
		code, body := do(t, "GET", apiBase+"/api/apps", adminToken, nil, nil)
		if code != http.StatusServiceUnavailable {
			t.Errorf("API while PostgreSQL is down: %d %s, want 503", code, body)
		}
		pg.Start()
	})
	step(time.Second, "restart aggregate-1", func() { aggs[0].start(t, bin) })
	wg.Wait()
	if t.Failed() {
		return
	}
	// Logplex's retry of the probe, through the other ingest process.
	for deadline := time.Now().Add(60 * time.Second); ; {
		code, err := post(&probe, 1)
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker-down probe was never acknowledged after the broker came back (last %d %v)", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	frames = append(frames, probe)
	for _, line := range strings.Split(ingest[0].logs.String(), "\n") {
		if strings.Contains(line, "reached the topic after all") && strings.Contains(line, "frame_id="+probe.id) {
			t.Logf("the probe's first copy reached Kafka after its 503: its retry is a duplicate the aggregators must drop")
		}
	}
	t.Logf("%.1fs all %d frames and the probe acknowledged; %d retries, %d resent after a 200", time.Since(sendStart).Seconds(), acked.Load(), retries.Load(), resent.Load())
	if retries.Load() == 0 {
		t.Error("no sender ever retried: the broker restart did not hit traffic")
	}
	want := map[string]int{}
	for _, f := range frames {
		want[f.app] += f.lines - 1 // router lines
	}

	// The same input, each frame once plus the resent duplicates, into the
	// embedded mode.
	t.Logf("%.1fs feeding the embedded mode", time.Since(sendStart).Seconds())
	emb := startNode(t, t.TempDir())
	embCreds := map[string]created{}
	for _, a := range apps {
		embCreds[a] = createApp(t, emb.URL, a)
	}
	for i := range frames {
		f := &frames[i]
		for range 1 + i%5/4 { // every fifth frame twice
			if code := postDrain(t, embCreds[f.app].DrainURL, f.id, f.body, f.lines); code != http.StatusOK {
				t.Fatalf("embedded drain: %d", code)
			}
		}
	}

	start, end := t0.Add(-10*time.Minute), t0.Add(20*time.Minute)
	requests := func(base, app string) float64 {
		s := query(t, base, adminToken, "/api/apps/"+app+"/router-metrics/status", start, end, "1m", nil)
		var n float64
		for _, vals := range s.Data {
			n += sum(vals)
		}
		return n
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range apps {
		for requests(apiBase, a) < float64(want[a]) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		for requests(emb.URL, a) < float64(want[a]) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("%.1fs both modes counted every line", time.Since(sendStart).Seconds())
	time.Sleep(2 * time.Second) // anything late would be double counting
	for _, a := range apps {
		if got := requests(apiBase, a); got != float64(want[a]) {
			t.Errorf("scale-out: app %s counted %v requests, want exactly %d", a, got, want[a])
		}
		if got := requests(emb.URL, a); got != float64(want[a]) {
			t.Errorf("embedded: app %s counted %v requests, want exactly %d", a, got, want[a])
		}
	}
	// Every answer of the API, byte for byte, as the embedded mode gives it.
	for _, a := range apps {
		for _, path := range []string{
			"/router-metrics/status", "/router-metrics/latency", "/router-metrics/errors",
			"/formation/web/metrics/memory", "/log-loss",
		} {
			for _, st := range []string{"1m", "10m", "1h"} {
				q := url.Values{"start_time": {start.Format(time.RFC3339)}, "end_time": {end.Format(time.RFC3339)}, "step": {st}}
				p := "/api/apps/" + a + path + "?" + q.Encode()
				c1, b1 := do(t, "GET", apiBase+p, adminToken, nil, nil)
				c2, b2 := do(t, "GET", emb.URL+p, adminToken, nil, nil)
				if c1 != c2 || !bytes.Equal(b1, b2) {
					t.Errorf("GET %s\nscale-out %d: %s\nembedded  %d: %s", p, c1, tailString(string(b1), 600), c2, tailString(string(b2), 600))
				}
			}
		}
	}
	for _, p := range []string{"/api/apps/shop/formation", "/api/apps"} {
		c1, b1 := do(t, "GET", apiBase+p, adminToken, nil, nil)
		c2, b2 := do(t, "GET", emb.URL+p, adminToken, nil, nil)
		if p == "/api/apps" {
			b1, b2 = stripCreated(b1), stripCreated(b2)
		}
		if c1 != c2 || !bytes.Equal(b1, b2) {
			t.Errorf("GET %s\nscale-out %d: %s\nembedded  %d: %s", p, c1, b1, c2, b2)
		}
	}
}

// stripCreated blanks the created_at times, which differ between the two
// stores by construction.
func stripCreated(b []byte) []byte {
	s := string(b)
	for {
		i := strings.Index(s, `"created_at":"`)
		if i < 0 {
			return []byte(s)
		}
		j := strings.IndexByte(s[i+14:], '"')
		s = s[:i] + `"created_at":-` + s[i+14+j+1:]
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
