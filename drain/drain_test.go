package drain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/logplex"
)

// readFrames splits an octet-counted body into its messages (test-local,
// deliberately independent of package logplex).
func readFrames(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	for len(body) > 0 {
		sp := bytes.IndexByte(body, ' ')
		if sp <= 0 {
			t.Fatalf("frame without length prefix: %q", body)
		}
		n, err := strconv.Atoi(string(body[:sp]))
		if err != nil || n <= 0 {
			t.Fatalf("bad length prefix %q", body[:sp])
		}
		body = body[sp+1:]
		if len(body) < n {
			t.Fatalf("frame says %d bytes, %d left", n, len(body))
		}
		out = append(out, string(body[:n]))
		body = body[n:]
	}
	return out
}

func TestParseDrainURL(t *testing.T) {
	d, err := ParseDrainURL("https://u1:s%3Acret@example.com:8443/drains/my-app")
	if err != nil {
		t.Fatal(err)
	}
	want := DrainURL{Endpoint: "https://example.com:8443/drains/my-app", App: "my-app", User: "u1", Secret: "s:cret"}
	if d != want {
		t.Fatalf("got %+v, want %+v", d, want)
	}
	if strings.Contains(d.String(), "cret") {
		t.Fatalf("String leaks the secret: %s", d)
	}
	d, err = ParseDrainURL("http://u:p@127.0.0.1:9/prefix/drains/app_1.x/")
	if err != nil || d.App != "app_1.x" || d.Endpoint != "http://127.0.0.1:9/prefix/drains/app_1.x/" {
		t.Fatalf("got %+v, %v", d, err)
	}
	bad := map[string]string{
		"":                                   "empty",
		"example.com/drains/a":               "no scheme",
		"ftp://u:p@h/drains/a":               "scheme",
		"http://u:p@/drains/a":               "no host",
		"http://h/drains/a":                  "no credentials",
		"http://u@h/drains/a":                "no secret",
		"http://:p@h/drains/a":               "empty user",
		"http://u:p@h/apps/a":                "/drains/{app}",
		"http://u:p@h/drains/":               "no app name",
		"http://u:p@h/drains/a%20b":          "contains",
		"http://u:p@h/drains/a?x=1":          "query",
		"http://u:p@h:abc/drains/a":          "",
		"http://u:p@h/drains/" + long(101):   "at most 100",
		"http://u:supersecret@h/drains/a b ": "contains",
	}
	for in, frag := range bad {
		_, err := ParseDrainURL(in)
		if err == nil {
			t.Errorf("ParseDrainURL(%q) = nil error", in)
			continue
		}
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("ParseDrainURL(%q) = %v, want it to mention %q", in, err, frag)
		}
		if strings.Contains(err.Error(), "supersecret") {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
}

func long(n int) string { return strings.Repeat("a", n) }

type recorded struct {
	header http.Header
	body   []byte
	user   string
	pass   string
	ok     bool
	path   string
}

// recorder is a drain endpoint that records requests and answers with the
// statuses in plan, one per request (then 204).
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
	plan []int
	hook func(n int, w http.ResponseWriter, r *http.Request) bool
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u, p, ok := r.BasicAuth()
	rc.mu.Lock()
	n := len(rc.reqs)
	rc.reqs = append(rc.reqs, recorded{r.Header.Clone(), body, u, p, ok, r.URL.Path})
	status := http.StatusNoContent
	if n < len(rc.plan) {
		status = rc.plan[n]
	}
	hook := rc.hook
	rc.mu.Unlock()
	if hook != nil && hook(n, w, r) {
		return
	}
	if status >= 400 {
		http.Error(w, fmt.Sprintf("planned failure %d", status), status)
		return
	}
	w.WriteHeader(status)
}

func (rc *recorder) requests() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.reqs...)
}

func newClient(t *testing.T, srv *httptest.Server, cfg Config) *Client {
	t.Helper()
	cfg.URL = strings.Replace(srv.URL, "http://", "http://drainuser:drainsecret@", 1) + "/drains/storefront"
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testBody(n int) []byte {
	var b []byte
	tm := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := range n {
		b = logplex.AppendMessage(b, tm.Add(time.Duration(i)*time.Millisecond), "host", "heroku", "router",
			"at=info method=GET path=/ host=storefront.herokuapp.com status=200 service="+strconv.Itoa(i)+"ms")
	}
	return b
}

func TestClientHeadersAuthFraming(t *testing.T) {
	rc := &recorder{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	c := newClient(t, srv, Config{})
	if c.App() != "storefront" {
		t.Fatalf("App() = %q", c.App())
	}
	ctx := context.Background()
	if err := c.Send(ctx, testBody(3), 3); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, testBody(2), 2); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	r := reqs[0]
	if r.path != "/drains/storefront" {
		t.Errorf("path %q", r.path)
	}
	if !r.ok || r.user != "drainuser" || r.pass != "drainsecret" {
		t.Errorf("basic auth = %q %q %v", r.user, r.pass, r.ok)
	}
	checks := map[string]string{
		"Content-Type":      "application/logplex-1",
		"Logplex-Msg-Count": "3",
		"User-Agent":        "Logplex/v72",
	}
	for k, v := range checks {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	tok := r.header.Get("Logplex-Drain-Token")
	if !strings.HasPrefix(tok, "d.") || len(tok) != 38 || tok != reqs[1].header.Get("Logplex-Drain-Token") {
		t.Errorf("Logplex-Drain-Token %q (second %q)", tok, reqs[1].header.Get("Logplex-Drain-Token"))
	}
	id0, id1 := r.header.Get("Logplex-Frame-Id"), reqs[1].header.Get("Logplex-Frame-Id")
	if len(id0) != 36 || id0 == id1 {
		t.Errorf("frame ids %q %q: want fresh UUIDs per batch", id0, id1)
	}
	frames := readFrames(t, r.body)
	if len(frames) != 3 {
		t.Fatalf("%d frames, want 3", len(frames))
	}
	for i, f := range frames {
		want := "<190>1 2026-11-25T10:00:00.00" + strconv.Itoa(i) + "000+00:00 host heroku router - at=info method=GET path=/ host=storefront.herokuapp.com status=200 service=" + strconv.Itoa(i) + "ms\n"
		if f != want {
			t.Errorf("frame %d = %q, want %q", i, f, want)
		}
	}
	st := c.Stats()
	if st != (Stats{Lines: 5, Batches: 2, Bytes: int64(len(reqs[0].body) + len(reqs[1].body))}) {
		t.Errorf("stats %+v", st)
	}
}

func TestClientRetriesSameFrameIDAfter503(t *testing.T) {
	rc := &recorder{plan: []int{503, 500, 200}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	c := newClient(t, srv, Config{})
	body := testBody(4)
	if err := c.Send(context.Background(), body, 4); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	id := reqs[0].header.Get("Logplex-Frame-Id")
	for i, r := range reqs {
		if got := r.header.Get("Logplex-Frame-Id"); got != id {
			t.Errorf("attempt %d Frame-Id %q, want %q", i, got, id)
		}
		if !bytes.Equal(r.body, body) {
			t.Errorf("attempt %d body differs", i)
		}
	}
	if st := c.Stats(); st.Retries != 2 || st.Batches != 1 || st.Lines != 4 || st.Failures != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestClientNoRetryAfter400(t *testing.T) {
	rc := &recorder{plan: []int{400}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	c := newClient(t, srv, Config{})
	err := c.Send(context.Background(), testBody(1), 1)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 400 || !se.Permanent() {
		t.Fatalf("err = %v, want a permanent *StatusError 400", err)
	}
	if !strings.Contains(err.Error(), "400 Bad Request") || !strings.Contains(err.Error(), "planned failure 400") {
		t.Errorf("error %q should say the status and the body", err)
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (no retry)", n)
	}
	if st := c.Stats(); st.Failures != 1 || st.Retries != 0 || st.Lines != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestClientGivesUpAfterMaxRetries(t *testing.T) {
	rc := &recorder{plan: []int{503, 503, 503, 503}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	c := newClient(t, srv, Config{MaxRetries: 2})
	err := c.Send(context.Background(), testBody(1), 1)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 503 || se.Permanent() {
		t.Fatalf("err = %v", err)
	}
	if n := len(rc.requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	if st := c.Stats(); st.Failures != 1 || st.Retries != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestClientRetriesNetworkErrorAndTimeout(t *testing.T) {
	rc := &recorder{}
	rc.hook = func(n int, w http.ResponseWriter, r *http.Request) bool {
		switch n {
		case 0: // connection dropped without an answer
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Error("no hijacker")
				return false
			}
			conn, _, _ := hj.Hijack()
			conn.Close()
			return true
		case 1: // slower than the attempt timeout
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
			return false
		}
		return false
	}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	c := newClient(t, srv, Config{Timeout: 200 * time.Millisecond})
	if err := c.Send(context.Background(), testBody(2), 2); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	if reqs[0].header.Get("Logplex-Frame-Id") != reqs[2].header.Get("Logplex-Frame-Id") {
		t.Error("frame id changed across retries")
	}
	if st := c.Stats(); st.NetErrors != 2 || st.Retries != 2 || st.Batches != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestClientContextCancel(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(503)
	}))
	defer srv.Close()
	c := newClient(t, srv, Config{Backoff: time.Hour, MaxRetries: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Send(ctx, testBody(1), 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second || hits.Load() != 1 {
		t.Errorf("took %v, %d hits", time.Since(start), hits.Load())
	}
}

func TestClientReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(204)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newClient(t, srv, Config{HTTPClient: NewHTTPClient(8)})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := c.Send(context.Background(), testBody(1), 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := conns.Load(); n > 12 { // 200 requests; a few extra dials can race the pool
		t.Errorf("%d connections for 4 concurrent senders", n)
	}
}

func TestBatcher(t *testing.T) {
	type flushed struct {
		frames []string
		n      int
	}
	var got []flushed
	b := NewBatcher(3, 0, func(body []byte, n int) error {
		got = append(got, flushed{readFrames(t, body), n})
		return nil
	})
	tm := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 7 {
		if err := b.Add(tm, "app", "web.1", "line "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() != 1 {
		t.Fatalf("Len = %d, want 1", b.Len())
	}
	b.Flush()
	b.Flush() // no-op
	if len(got) != 3 || got[0].n != 3 || got[1].n != 3 || got[2].n != 1 {
		t.Fatalf("flushes %+v", got)
	}
	for _, f := range got {
		if len(f.frames) != f.n {
			t.Errorf("flush says %d, holds %d frames", f.n, len(f.frames))
		}
	}
	if !strings.HasSuffix(got[2].frames[0], " host app web.1 - line 6\n") {
		t.Errorf("frame %q", got[2].frames[0])
	}

	// Byte limit: no batch exceeds it, unless a single frame does.
	got = nil
	b = NewBatcher(1000, 300, func(body []byte, n int) error {
		if len(body) > 300 && n > 1 {
			t.Errorf("batch of %d frames is %d bytes", n, len(body))
		}
		got = append(got, flushed{readFrames(t, body), n})
		return nil
	})
	total := 0
	for i := range 50 {
		msg := strings.Repeat("x", i*7)
		b.Add(tm, "app", "web.1", msg)
		total++
	}
	b.Flush()
	sum := 0
	for _, f := range got {
		sum += f.n
	}
	if sum != total {
		t.Errorf("%d frames flushed, %d added", sum, total)
	}
	wantErr := errors.New("boom")
	b = NewBatcher(1, 0, func([]byte, int) error { return wantErr })
	if err := b.Add(tm, "app", "web.1", "x"); err != wantErr {
		t.Errorf("Add error %v", err)
	}
}

func TestLogShuttleFrameGolden(t *testing.T) {
	tm := time.Date(2013, 9, 25, 1, 16, 49, 371356000, time.UTC)
	// Built by hand from the documented layout: header fields separated by
	// single spaces, MSGID "- -", the raw line with its newline, and the
	// length of everything after "78 ".
	const want = "78 <190>1 2013-09-25T01:16:49.371356+00:00 shuttle token shuttle - - Hello World\n"
	if got := string(AppendLogShuttleFrame(nil, tm, LogShuttleFields{}, "Hello World\n")); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	f := LogShuttleFields{AppName: "t.1234", ProcID: "web.1", Hostname: "box"}
	got := string(AppendLogShuttleFrame(nil, tm.In(time.FixedZone("x", -7*3600)), f, "hi"))
	const want2 = "63 <190>1 2013-09-25T01:16:49.371356+00:00 box t.1234 web.1 - - hi"
	if got != want2 {
		t.Fatalf("got  %q\nwant %q", got, want2)
	}
	for _, fr := range readFrames(t, []byte(want+want2)) {
		if !strings.HasPrefix(fr, "<190>1 ") {
			t.Errorf("frame %q", fr)
		}
	}
	since := time.Date(2013, 9, 25, 1, 0, 0, 0, time.UTC)
	const wantLoss = "138 <172>1 2013-09-25T01:16:49.371356+00:00 heroku token log-shuttle - - Error L12: 2 messages dropped since 2013-09-25T01:00:00.000000+00:00\n"
	if got := string(AppendLogShuttleLossFrame(nil, tm, "", "L12", 2, since)); got != wantLoss {
		t.Fatalf("got  %q\nwant %q", got, wantLoss)
	}
	lost := string(AppendLogShuttleLossFrame(nil, tm, "", "L13", 2, since))
	if !strings.HasPrefix(lost, "135 ") || !strings.Contains(lost, "Error L13: 2 messages lost since") {
		t.Fatalf("lost frame %q", lost)
	}
}

func TestLogShuttleHeaders(t *testing.T) {
	h := LogShuttleHeaders(3, "6c1b6b4a-0000-4000-8000-000000000000", 0, 2, "v0.17.0")
	want := map[string]string{
		"Content-Type":       "application/logplex-1",
		"X-Request-Id":       "6c1b6b4a-0000-4000-8000-000000000000",
		"Logplex-Msg-Count":  "3",
		"Logplex-Lost-Count": "2",
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	for _, k := range []string{"Logplex-Drop-Count", "Logplex-Frame-Id", "Logplex-Drain-Token"} {
		if _, ok := h[k]; ok {
			t.Errorf("%s should be absent", k)
		}
	}
	if ua := h.Get("User-Agent"); !strings.HasPrefix(ua, "log-shuttle/v0.17.0 (go") {
		t.Errorf("User-Agent %q", ua)
	}
}

// The frames the Batcher and the log-shuttle helpers write are what the
// server's reader and header parser accept.
func TestFramesParseWithLogplex(t *testing.T) {
	tm := time.Date(2026, 11, 25, 10, 0, 0, 5000, time.UTC)
	var body []byte
	b := NewBatcher(0, 0, func(p []byte, n int) error { body = append(body, p...); return nil })
	b.Add(tm, "heroku", "router", "at=info status=200\n")
	b.Flush()
	body = AppendLogShuttleFrame(body, tm, LogShuttleFields{}, "Hello World\n")
	body = AppendLogShuttleLossFrame(body, tm, "", "L12", 2, tm)
	want := []struct{ app, proc, msg string }{
		{"heroku", "router", "at=info status=200"},
		{"token", "shuttle", "Hello World"},
		{"token", "log-shuttle", "Error L12: 2 messages dropped since 2026-11-25T10:00:00.000005+00:00"},
	}
	r := logplex.NewReader(body)
	for i, w := range want {
		fr, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		var h logplex.Header
		if err := logplex.ParseHeader(fr, &h); err != nil {
			t.Fatalf("frame %d %q: %v", i, fr, err)
		}
		if string(h.AppName) != w.app || string(h.ProcID) != w.proc || string(h.Msg) != w.msg || h.Time != tm.UnixNano() {
			t.Errorf("frame %d: app=%q proc=%q msg=%q time=%d", i, h.AppName, h.ProcID, h.Msg, h.Time)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("trailing: %v", err)
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	rc := &recorder{}
	rc.hook = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 0 {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return true
		}
		return false
	}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	c := newClient(t, srv, Config{})
	if err := c.Send(context.Background(), testBody(1), 1); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 2 || reqs[1].path != "/drains/storefront" || len(reqs[1].body) == 0 {
		t.Fatalf("requests %+v: a 302 should be retried at the drain URL, not followed", reqs)
	}
}
