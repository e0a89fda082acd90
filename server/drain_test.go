package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var testNow = time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)

type harness struct {
	t       *testing.T
	srv     *Server
	h       http.Handler
	store   *fakeStore
	journal *fakeJournal
	reg     *prometheus.Registry
	cr      map[string]string // app → API token
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	st := newFakeStore()
	j := &fakeJournal{}
	if cfg.AdminToken == "" {
		cfg.AdminToken = "admin-secret"
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	reg := prometheus.NewRegistry()
	srv := New(cfg, j, st, nil, reg)
	h := &harness{t: t, srv: srv, h: srv.Handler(), store: st, journal: j, reg: reg, cr: map[string]string{}}
	for _, app := range []string{"storefront", "billing"} {
		h.cr[app] = st.addApp(app, testNow.Add(-24*time.Hour)).APIToken
	}
	return h
}

func frame(msg string) string {
	return strconv.Itoa(len(msg)+1) + " " + msg + "\n"
}

const routerLine = `<158>1 2026-11-25T10:59:30.123+00:00 host heroku router - at=info method=GET path=/ host=x.herokuapp.com request_id=1 fwd="1.2.3.4" dyno=web.1 connect=1ms service=18ms status=200 bytes=13 protocol=https`

type drainReq struct {
	app, user, pass string
	body            string
	frameID         string
	headers         map[string]string
	noAuth          bool
	chunked         bool
}

func (h *harness) drain(d drainReq) *httptest.ResponseRecorder {
	h.t.Helper()
	if d.app == "" {
		d.app = "storefront"
	}
	var body io.Reader = strings.NewReader(d.body)
	if d.chunked {
		body = io.MultiReader(strings.NewReader(d.body)) // hides the length
	}
	r := httptest.NewRequest("POST", "/drains/"+d.app, body)
	if d.chunked {
		r.ContentLength = -1
	}
	r.Header.Set("Content-Type", "application/logplex-1")
	if !d.noAuth {
		u, p := d.user, d.pass
		if u == "" && p == "" {
			u, p = "u-"+d.app, "s-"+d.app
		}
		r.SetBasicAuth(u, p)
	}
	if d.frameID != "" {
		r.Header.Set("Logplex-Frame-Id", d.frameID)
	}
	for k, v := range d.headers {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	return w
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var e struct{ Error string }
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\":…}: %v", w.Body.String(), err)
	}
	return e.Error
}

func TestDrainAccepts(t *testing.T) {
	h := newHarness(t, Config{})
	body := frame(routerLine) + frame(routerLine)
	w := h.drain(drainReq{body: body, frameID: "f-1", headers: map[string]string{
		"Logplex-Msg-Count": "2", "Logplex-Drop-Count": "3", "Logplex-Lost-Count": "nonsense",
	}})
	if w.Code != 200 || w.Body.Len() != 0 {
		t.Fatalf("status %d body %q, want 200 and empty", w.Code, w.Body.String())
	}
	bs := h.journal.all()
	if len(bs) != 1 {
		t.Fatalf("journal has %d batches, want 1", len(bs))
	}
	b := bs[0]
	if b.App != "storefront" || b.FrameID != "f-1" || string(b.Body) != body || b.Dropped != 3 || b.Lost != 0 || !b.ReceivedAt.Equal(testNow) {
		t.Errorf("batch = %+v", b)
	}
	if got := metricValue(h.srv.m.drainLines); got != 2 {
		t.Errorf("lines counter = %v, want 2", got)
	}
}

func TestDrainDuplicateFrameID(t *testing.T) {
	h := newHarness(t, Config{})
	for i := 0; i < 3; i++ {
		if w := h.drain(drainReq{body: frame(routerLine), frameID: "same"}); w.Code != 200 {
			t.Fatalf("attempt %d: status %d", i, w.Code)
		}
	}
	if n := len(h.journal.all()); n != 1 {
		t.Errorf("journal has %d batches, want 1", n)
	}
	if got := metricValue(h.srv.m.drainDuplicates); got != 2 {
		t.Errorf("duplicates = %v, want 2", got)
	}
	if got := metricValue(h.srv.m.drainLines); got != 1 {
		t.Errorf("lines = %v, want 1 (duplicates not counted)", got)
	}
}

func TestDrainRejects(t *testing.T) {
	big := strings.Repeat(frame(routerLine), 100) // ~17 KB
	cases := []struct {
		name string
		req  drainReq
		code int
		want string // substring of the JSON error
	}{
		{"unknown app", drainReq{app: "nope", body: frame(routerLine)}, 404, "unknown app"},
		{"invalid app name", drainReq{app: "Bad%20Name", body: frame(routerLine)}, 404, "unknown app"},
		{"unknown app without auth", drainReq{app: "nope", noAuth: true, body: frame(routerLine)}, 404, "unknown app"},
		{"no auth", drainReq{noAuth: true, body: frame(routerLine)}, 401, "credentials"},
		{"wrong secret", drainReq{user: "u-storefront", pass: "bad", body: frame(routerLine)}, 401, "credentials"},
		{"other app's credentials", drainReq{user: "u-billing", pass: "s-billing", body: frame(routerLine)}, 401, "credentials"},
		{"too large by Content-Length", drainReq{body: big}, 413, "limit"},
		{"too large chunked", drainReq{body: big, chunked: true}, 413, "limit"},
		{"empty body", drainReq{body: ""}, 400, "cannot frame body: empty body"},
		{"only newlines", drainReq{body: "\n\r\n"}, 400, "cannot frame body"},
		{"heroku logs format", drainReq{body: "2012-10-11T03:47:20+00:00 heroku[router]: at=info\n"}, 400, "cannot frame body"},
		{"truncated frame", drainReq{body: "500 <40>1 short"}, 400, "past end of body"},
		{"garbage", drainReq{body: "\x00\xff hello"}, 400, "cannot frame body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{MaxBodyBytes: 16 << 10})
			w := h.drain(tc.req)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d (body %q)", w.Code, tc.code, w.Body.String())
			}
			if msg := errorOf(t, w); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if tc.code == 401 && w.Header().Get("WWW-Authenticate") != `Basic realm="drainpipe"` {
				t.Errorf("WWW-Authenticate = %q", w.Header().Get("WWW-Authenticate"))
			}
			if n := len(h.journal.all()); n != 0 {
				t.Errorf("journal got %d batches", n)
			}
		})
	}
}

func TestDrainFramedHeadAccepted(t *testing.T) {
	h := newHarness(t, Config{})
	body := frame(routerLine) + "garbage that cannot be framed"
	if w := h.drain(drainReq{body: body}); w.Code != 200 {
		t.Fatalf("status %d, want 200: %s", w.Code, w.Body.String())
	}
	if bs := h.journal.all(); len(bs) != 1 || string(bs[0].Body) != body {
		t.Fatalf("journal = %+v, want the whole body kept", bs)
	}
}

func TestDrainAcceptsWithoutContentType(t *testing.T) {
	h := newHarness(t, Config{})
	r := httptest.NewRequest("POST", "/drains/storefront", strings.NewReader(frame(routerLine)))
	r.SetBasicAuth("u-storefront", "s-storefront")
	r.Header.Set("Content-Type", "text/plain")
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
}

func TestDrainJournalError(t *testing.T) {
	h := newHarness(t, Config{})
	h.journal.err = errors.New("disk full")
	w := h.drain(drainReq{body: frame(routerLine), frameID: "x"})
	if w.Code != 503 {
		t.Fatalf("status %d, want 503", w.Code)
	}
	errorOf(t, w)
	if got := metricValue(h.srv.m.drainRequests.WithLabelValues("503")); got != 1 {
		t.Errorf("503 counter = %v", got)
	}
}

func TestDrainConcurrencyLimit(t *testing.T) {
	h := newHarness(t, Config{MaxConcurrentDrains: 1})
	h.journal.block = make(chan struct{})
	h.journal.entered = make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	var first *httptest.ResponseRecorder
	go func() {
		defer wg.Done()
		first = h.drain(drainReq{body: frame(routerLine), frameID: "a"})
	}()
	<-h.journal.entered
	if got := metricValue(h.srv.m.drainInFlight); got != 1 {
		t.Errorf("in flight = %v, want 1", got)
	}
	w := h.drain(drainReq{body: frame(routerLine), frameID: "b"})
	if w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("second drain: status %d Retry-After %q, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	close(h.journal.block)
	wg.Wait()
	if first.Code != 200 {
		t.Fatalf("first drain: status %d", first.Code)
	}
	h.journal.block = nil
	if w := h.drain(drainReq{body: frame(routerLine), frameID: "c"}); w.Code != 200 {
		t.Fatalf("after release: status %d", w.Code)
	}
}

func TestDrainMethodNotAllowed(t *testing.T) {
	h := newHarness(t, Config{})
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, httptest.NewRequest("GET", "/drains/storefront", nil))
	if w.Code != 405 || w.Header().Get("Allow") != "POST" {
		t.Fatalf("status %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

func TestFrameIDBounded(t *testing.T) {
	long := strings.Repeat("x", 1000)
	got := frameID(long)
	if len(got) > maxFrameIDLen || got != frameID(long) || got == frameID(long+"y") {
		t.Errorf("frameID(long) = %q", got)
	}
	if frameID(" abc ") != "abc" {
		t.Errorf("frameID trims")
	}
}

func TestHeaderCount(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "5": 5, " 7 ": 7, "-1": 0, "x": 0, "99999999999999999999": 0} {
		if got := headerCount(in); got != want {
			t.Errorf("headerCount(%q) = %d, want %d", in, got, want)
		}
	}
}

// metricValue reads a counter's or gauge's current value.
func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// TestDrainOverHTTP runs the drain endpoint behind a real listener with
// HTTPServer's settings: a large body is refused with 413 that the client
// actually receives, and a normal POST works over keep-alive.
func TestDrainOverHTTP(t *testing.T) {
	h := newHarness(t, Config{MaxBodyBytes: 64 << 10})
	ts := httptest.NewUnstartedServer(nil)
	hs := h.srv.HTTPServer("")
	ts.Config = hs
	ts.Start()
	defer ts.Close()

	post := func(body io.Reader, length int64) int {
		t.Helper()
		r, _ := http.NewRequest("POST", ts.URL+"/drains/storefront", body)
		r.ContentLength = length
		r.SetBasicAuth("u-storefront", "s-storefront")
		resp, err := ts.Client().Do(r)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	big := strings.Repeat(frame(routerLine), 2000) // ~350 KB
	if code := post(strings.NewReader(big), int64(len(big))); code != 413 {
		t.Errorf("large body: %d, want 413", code)
	}
	if code := post(io.MultiReader(strings.NewReader(big)), -1); code != 413 {
		t.Errorf("large chunked body: %d, want 413", code)
	}
	small := frame(routerLine)
	for i := 0; i < 3; i++ {
		if code := post(strings.NewReader(small), int64(len(small))); code != 200 {
			t.Errorf("small body: %d, want 200", code)
		}
	}
}

// TestDrainMsgCountNotTrusted pins that Logplex-Msg-Count neither
// rejects a batch nor decides how many lines it holds: the frames in the
// body do, whatever the header says (or when it is missing or not a
// number), so a sender that miscounts loses nothing.
func TestDrainMsgCountNotTrusted(t *testing.T) {
	for _, count := range []string{"", "5", "1", "0", "x"} {
		h := newHarness(t, Config{})
		headers := map[string]string{}
		if count != "" {
			headers["Logplex-Msg-Count"] = count
		}
		w := h.drain(drainReq{body: frame(routerLine) + frame(routerLine), headers: headers})
		if w.Code != 200 {
			t.Fatalf("Msg-Count %q: status %d: %s", count, w.Code, w.Body.String())
		}
		if got := metricValue(h.srv.m.drainLines); got != 2 {
			t.Errorf("Msg-Count %q: lines counter = %v, want 2 (the frames in the body)", count, got)
		}
	}
}

// TestDrainSpecExampleFrame sends SPEC §1.1's example frame as printed
// there: with the "\n" its length counts, and without it (as copied from
// the text, or after a shell's $(…) stripped it). Both are one frame.
func TestDrainSpecExampleFrame(t *testing.T) {
	const example = "83 <40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up"
	for _, body := range []string{example + "\n", example} {
		h := newHarness(t, Config{})
		if w := h.drain(drainReq{body: body}); w.Code != 200 {
			t.Fatalf("body %q: status %d: %s", body, w.Code, w.Body.String())
		}
		if got := metricValue(h.srv.m.drainLines); got != 1 {
			t.Errorf("body %q: %v lines, want 1", body, got)
		}
	}
}
