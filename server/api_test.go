package server

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"
)

const admin = "admin-secret"

func (h *harness) do(method, path, token, body string) *httptest.ResponseRecorder {
	h.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	return w
}

// series is a decoded series answer.
type series struct {
	StartTime string                `json:"start_time"`
	EndTime   string                `json:"end_time"`
	Step      string                `json:"step"`
	Kind      string                `json:"kind"`
	Data      map[string][]*float64 `json:"data"`
	Summary   *struct {
		Requests int64
		P50      *float64
		P95      *float64
		P99      *float64
		Max      *float64
	} `json:"summary"`
	Events []map[string]string `json:"events"`
}

func (h *harness) series(path, token string) series {
	h.t.Helper()
	w := h.do("GET", path, token, "")
	if w.Code != 200 {
		h.t.Fatalf("GET %s: status %d: %s", path, w.Code, w.Body.String())
	}
	if strings.Contains(w.Body.String(), "NaN") || strings.Contains(w.Body.String(), "Inf") {
		h.t.Fatalf("GET %s: body has NaN/Inf: %s", path, w.Body.String())
	}
	var s series
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		h.t.Fatalf("GET %s: %v: %s", path, err, w.Body.String())
	}
	for k, v := range s.Data {
		n := len(v)
		for _, v2 := range s.Data {
			if len(v2) != n {
				h.t.Fatalf("GET %s: series %q has %d values, others %d", path, k, n, len(v2))
			}
		}
	}
	return s
}

func at(hh, mm int) time.Time { return time.Date(2026, 11, 25, hh, mm, 0, 0, time.UTC) }

func q(path string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return path + "?" + v.Encode()
}

func vals(v []*float64) []any {
	out := make([]any, len(v))
	for i, x := range v {
		if x == nil {
			out[i] = nil
		} else {
			out[i] = *x
		}
	}
	return out
}

func within(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)
}

// requests builds a router bucket of one request per latency, status 200.
func requests(latencies ...float64) *metrics.Bucket {
	b := new(metrics.Bucket)
	for _, l := range latencies {
		b.AddStatus(200)
		b.AddService(l)
		b.AddConnect(1)
	}
	return b
}

func TestAPIAuth(t *testing.T) {
	h := newHarness(t, Config{})
	lat := "/api/apps/storefront/router-metrics/latency"
	cases := []struct {
		name, method, path, token string
		code                      int
	}{
		{"no token", "GET", lat, "", 401},
		{"bad token", "GET", lat, "nope", 401},
		{"no token list", "GET", "/api/apps", "", 401},
		{"admin", "GET", lat, admin, 200},
		{"own app token", "GET", lat, "t-storefront", 200},
		{"other app token", "GET", lat, "t-billing", 404},
		{"other app token formation", "GET", "/api/apps/storefront/formation", "t-billing", 404},
		{"admin unknown app", "GET", "/api/apps/nope/router-metrics/latency", admin, 404},
		{"app token unknown app", "GET", "/api/apps/nope/router-metrics/latency", "t-billing", 404},
		{"unknown endpoint", "GET", "/api/nothing", admin, 404},
		{"unknown endpoint no token", "GET", "/api/nothing", "", 401},
		{"app token creates", "POST", "/api/apps", "t-storefront", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := h.do(tc.method, tc.path, tc.token, `{"name":"newapp"}`)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body.String())
			}
			if tc.code != 200 {
				errorOf(t, w)
			}
			if tc.code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
	// "Bearer" is case-insensitive.
	r := httptest.NewRequest("GET", lat, nil)
	r.Header.Set("Authorization", "bearer "+admin)
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Errorf("lowercase bearer: %d", w.Code)
	}
}

func TestCreateApp(t *testing.T) {
	h := newHarness(t, Config{})
	w := h.do("POST", "/api/apps", admin, `{"name":"myapp"}`)
	if w.Code != 201 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	var got createdApp
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "myapp" || got.APIToken != "t-myapp" || got.DrainURL != "http://u-myapp:s-myapp@example.com/drains/myapp" {
		t.Errorf("created = %+v", got)
	}
	// The drain URL works as given.
	u, _ := url.Parse(got.DrainURL)
	pass, _ := u.User.Password()
	if w := h.drain(drainReq{app: "myapp", user: u.User.Username(), pass: pass, body: frame(routerLine)}); w.Code != 200 {
		t.Errorf("drain with created credentials: %d", w.Code)
	}
	// The new token sees its app.
	if w := h.do("GET", "/api/apps/myapp/formation", got.APIToken, ""); w.Code != 200 {
		t.Errorf("new token: %d", w.Code)
	}

	if w := h.do("POST", "/api/apps", admin, `{"name":"myapp"}`); w.Code != 409 {
		t.Errorf("duplicate: status %d", w.Code)
	}
	for _, bad := range []string{`{"name":"MyApp"}`, `{"name":"1app"}`, `{"name":""}`, `{"name":"app-"}`, `{"name":"a_b"}`,
		`{"name":"` + strings.Repeat("a", 64) + `"}`, `not json`, ``} {
		if w := h.do("POST", "/api/apps", admin, bad); w.Code != 400 {
			t.Errorf("POST %s: status %d, want 400", bad, w.Code)
		}
	}
}

func TestDrainURL(t *testing.T) {
	cr := drainpipe.Credentials{DrainUser: "u", DrainSecret: "s/+@"}
	s := New(Config{PublicURL: "https://dp.example.com/base/"}, nil, nil, nil, nil)
	if got := s.DrainURL(nil, "app", cr); got != "https://u:s%2F+%40@dp.example.com/base/drains/app" {
		t.Errorf("with PublicURL: %s", got)
	}
	s = New(Config{}, nil, nil, nil, nil)
	r := httptest.NewRequest("POST", "/api/apps", nil)
	r.Host = "dp.internal:8080"
	r.Header.Set("X-Forwarded-Proto", "https")
	if got := s.DrainURL(r, "app", cr); got != "https://u:s%2F+%40@dp.internal:8080/drains/app" {
		t.Errorf("derived: %s", got)
	}
}

func TestSeriesWindow(t *testing.T) {
	h := newHarness(t, Config{})
	h.store.add("storefront", "web", at(10, 0), requests(10))
	h.store.add("storefront", "web", at(10, 2), requests(20))
	path := "/api/apps/storefront/router-metrics/latency"

	// Unaligned start: aligned down to the step; end as given.
	s := h.series(q(path, "start_time", "2026-11-25T10:00:30Z", "end_time", "2026-11-25T10:03:30Z", "step", "1m"), admin)
	if s.StartTime != "2026-11-25T10:00:00Z" || s.EndTime != "2026-11-25T10:03:30Z" || s.Step != "1m" {
		t.Errorf("window = %s %s %s", s.StartTime, s.EndTime, s.Step)
	}
	want := []any{10.0, nil, 20.0, nil}
	if got := vals(s.Data["latency.ms.max"]); !slices.Equal(got, want) {
		t.Errorf("max = %v, want %v", got, want)
	}
	if s.Summary == nil || s.Summary.Requests != 2 || *s.Summary.Max != 20 {
		t.Errorf("summary = %+v", s.Summary)
	}

	// Offsets are converted to UTC; an unescaped "+" (a space) is accepted.
	s = h.series(path+"?start_time=2026-11-25T11:00:00+01:00&end_time=2026-11-25T11:02:00%2B01:00", admin)
	if s.StartTime != "2026-11-25T10:00:00Z" || s.EndTime != "2026-11-25T10:02:00Z" || len(s.Data["latency.ms.p50"]) != 2 {
		t.Errorf("offsets: %s %s %d", s.StartTime, s.EndTime, len(s.Data["latency.ms.p50"]))
	}
	// RFC 3339 allows lowercase "t" and "z".
	s = h.series(q(path, "start_time", "2026-11-25t10:00:00z", "end_time", "2026-11-25t11:02:00.5+01:00", "step", "1m"), admin)
	if s.StartTime != "2026-11-25T10:00:00Z" || s.EndTime != "2026-11-25T10:02:00.5Z" {
		t.Errorf("lowercase t/z: %s %s", s.StartTime, s.EndTime)
	}

	// Defaults: end = now, start = end - 1h, step 1m: 60 values.
	s = h.series(path, admin)
	if s.StartTime != "2026-11-25T10:00:00Z" || s.EndTime != "2026-11-25T11:00:00Z" || s.Step != "1m" || len(s.Data["latency.ms.p95"]) != 60 {
		t.Errorf("defaults: %s %s %s %d", s.StartTime, s.EndTime, s.Step, len(s.Data["latency.ms.p95"]))
	}
	// Fixed latency keys are present, all null, when there is no data.
	s = h.series(q(path, "process_type", "worker"), admin)
	for _, k := range []string{"latency.ms.p50", "latency.ms.p95", "latency.ms.p99", "latency.ms.max", "latency.connect.ms.p95"} {
		if v, ok := s.Data[k]; !ok || len(v) != 60 || slices.ContainsFunc(v, func(x *float64) bool { return x != nil }) {
			t.Errorf("worker %s = %v", k, vals(v))
		}
	}
	if s.Summary.Requests != 0 || s.Summary.P95 != nil {
		t.Errorf("empty summary = %+v", s.Summary)
	}
}

func TestDefaultStep(t *testing.T) {
	h := newHarness(t, Config{})
	path := "/api/apps/storefront/router-metrics/status"
	for _, tc := range []struct {
		rng  time.Duration
		step string
		n    int
	}{
		{2 * time.Hour, "1m", 120},
		{2*time.Hour + time.Minute, "10m", 13},
		{72 * time.Hour, "10m", 432},
		{7 * 24 * time.Hour, "1h", 168},
		{30 * 24 * time.Hour, "2h", 361}, // 11:00 aligns down to 10:00
	} {
		w := h.do("GET", q(path, "start_time", testNow.Add(-tc.rng).Format(time.RFC3339), "end_time", testNow.Format(time.RFC3339)), admin, "")
		var s struct {
			Step string
			Data map[string]any
		}
		if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil || s.Step != tc.step {
			t.Errorf("range %v: step %q, want %q (%v)", tc.rng, s.Step, tc.step, err)
		}
		win, err := h.srv.parseWindow(httptest.NewRequest("GET", q(path, "start_time", testNow.Add(-tc.rng).Format(time.RFC3339)), nil))
		if err != nil || win.n != tc.n {
			t.Errorf("range %v: %d buckets, want %d (%v)", tc.rng, win.n, tc.n, err)
		}
	}
}

func TestBadParams(t *testing.T) {
	h := newHarness(t, Config{})
	path := "/api/apps/storefront/router-metrics/latency"
	for _, query := range []string{
		"start_time=yesterday",
		"end_time=2026-11-25",
		"step=5m",
		"step=1d",
		"start_time=2026-11-25T10:00:00Z&end_time=2026-11-25T10:00:00Z",
		"start_time=2026-11-25T11:00:00Z&end_time=2026-11-25T10:00:00Z",
		"start_time=2026-11-01T00:00:00Z&end_time=2026-11-25T00:00:00Z&step=1m", // 34,560 buckets
		"start_time=0001-01-01T00:00:00Z&end_time=9999-01-01T00:00:00Z&step=2h",
		"process_type=web%20worker",
		"process_type=" + strings.Repeat("w", 65),
	} {
		w := h.do("GET", path+"?"+query, admin, "")
		if w.Code != 400 {
			t.Errorf("%s: status %d, want 400", query, w.Code)
			continue
		}
		errorOf(t, w)
	}
	// Exactly 10,000 buckets is allowed.
	start := testNow.Add(-10000 * time.Minute).Format(time.RFC3339)
	if w := h.do("GET", q(path, "start_time", start, "end_time", testNow.Format(time.RFC3339), "step", "1m"), admin, ""); w.Code != 200 {
		t.Errorf("10,000 buckets: %d", w.Code)
	}
	if w := h.do("GET", "/api/apps/storefront/formation/web/metrics/memory?dyno=a/b", admin, ""); w.Code != 400 {
		t.Errorf("bad dyno: %d", w.Code)
	}
}

// TestQuantilesMerged spreads a known distribution over dynos, minutes and
// process types and checks the merged quantiles against the exact ones.
func TestQuantilesMerged(t *testing.T) {
	h := newHarness(t, Config{})
	var all []float64
	// 1..5000 ms, dealt round-robin over 10 minutes × 2 "dynos" rows.
	for v := 1; v <= 5000; v++ {
		lat := float64(v)
		all = append(all, lat)
		minute := v % 10
		pt := "web"
		h.store.add("storefront", pt, at(10, minute), requests(lat))
	}
	sort.Float64s(all)
	exact := func(q float64) float64 { return all[int(q*float64(len(all)-1))] }

	for _, step := range []string{"10m", "1h", "2h"} {
		s := h.series(q("/api/apps/storefront/router-metrics/latency", "start_time", "2026-11-25T10:00:00Z", "end_time", "2026-11-25T10:10:00Z", "step", step), admin)
		if len(s.Data["latency.ms.p50"]) != 1 {
			t.Fatalf("step %s: %d buckets", step, len(s.Data["latency.ms.p50"]))
		}
		for key, qq := range map[string]float64{"latency.ms.p50": 0.5, "latency.ms.p95": 0.95, "latency.ms.p99": 0.99} {
			got := *s.Data[key][0]
			if !within(got, exact(qq), 0.01) {
				t.Errorf("step %s %s = %v, exact %v", step, key, got, exact(qq))
			}
		}
		if got := *s.Data["latency.ms.max"][0]; got != 5000 {
			t.Errorf("step %s max = %v", step, got)
		}
		if s.Summary.Requests != 5000 || !within(*s.Summary.P99, exact(0.99), 0.01) {
			t.Errorf("step %s summary = %+v", step, s.Summary)
		}
	}
	// Per minute, each bucket holds every 10th value.
	s := h.series(q("/api/apps/storefront/router-metrics/latency", "start_time", "2026-11-25T10:00:00Z", "end_time", "2026-11-25T10:10:00Z", "step", "1m"), admin)
	if len(s.Data["latency.ms.max"]) != 10 || *s.Data["latency.ms.max"][0] != 5000 || *s.Data["latency.ms.max"][1] != 4991 {
		t.Errorf("1m max = %v", vals(s.Data["latency.ms.max"]))
	}
	// The whole-range summary of the 1m answer matches too (merged, never averaged).
	if !within(*s.Summary.P95, exact(0.95), 0.01) {
		t.Errorf("1m summary p95 = %v, exact %v", *s.Summary.P95, exact(0.95))
	}
}

func TestTwoHourStep(t *testing.T) {
	h := newHarness(t, Config{})
	h.store.add("storefront", "web", at(10, 5), requests(1, 2))
	h.store.add("storefront", "web", at(11, 30), requests(3))
	h.store.add("storefront", "web", at(12, 0), requests(4))
	// Start 11:00 aligns down to 10:00 (2h buckets on the Unix epoch).
	s := h.series(q("/api/apps/storefront/router-metrics/status", "start_time", "2026-11-25T11:00:00Z", "end_time", "2026-11-25T13:00:00Z", "step", "2h"), admin)
	if s.StartTime != "2026-11-25T10:00:00Z" {
		t.Errorf("start = %s", s.StartTime)
	}
	if got, want := vals(s.Data["200"]), []any{3.0, 1.0}; !slices.Equal(got, want) {
		t.Errorf("200 = %v, want %v", got, want)
	}
	// 10m: minutes merge into their 10-minute bucket.
	h.store.add("storefront", "web", at(10, 9), requests(5, 6, 7))
	s = h.series(q("/api/apps/storefront/router-metrics/status", "start_time", "2026-11-25T10:00:00Z", "end_time", "2026-11-25T10:30:00Z", "step", "10m"), admin)
	if got, want := vals(s.Data["200"]), []any{5.0, nil, nil}; !slices.Equal(got, want) {
		t.Errorf("10m 200 = %v, want %v", got, want)
	}
}

func TestStatusAndRouterErrors(t *testing.T) {
	h := newHarness(t, Config{})
	b := requests(5, 5)
	b.AddStatus(503)
	b.AddHCode([]byte("H12"))
	h.store.add("storefront", "web", at(10, 0), b)
	h.store.add("storefront", "web", at(10, 1), requests(5))
	h.store.add("storefront", "worker", at(10, 1), requests(5)) // another process type
	path := "/api/apps/storefront/router-metrics/"
	win := []string{"start_time", "2026-11-25T10:00:00Z", "end_time", "2026-11-25T10:03:00Z", "step", "1m"}

	s := h.series(q(path+"status", win...), admin)
	if got, want := vals(s.Data["200"]), []any{2.0, 1.0, nil}; !slices.Equal(got, want) {
		t.Errorf("200 = %v, want %v", got, want)
	}
	if got, want := vals(s.Data["503"]), []any{1.0, 0.0, nil}; !slices.Equal(got, want) {
		t.Errorf("503 = %v, want %v", got, want)
	}
	if len(s.Data) != 2 {
		t.Errorf("status keys = %v", s.Data)
	}
	s = h.series(q(path+"status", append(win, "process_type", "worker")...), admin)
	if got, want := vals(s.Data["200"]), []any{nil, 1.0, nil}; !slices.Equal(got, want) {
		t.Errorf("worker 200 = %v, want %v", got, want)
	}
	s = h.series(q(path+"errors", win...), admin)
	if got, want := vals(s.Data["H12"]), []any{1.0, 0.0, nil}; !slices.Equal(got, want) || len(s.Data) != 1 {
		t.Errorf("errors = %v", s.Data)
	}
}

func runtime(b *metrics.Bucket, dyno string, t time.Time, values map[logline.Gauge]float64) {
	g := b.Dyno([]byte(dyno))
	for k, v := range values {
		g.Add(k, v, t.UnixNano())
	}
}

func TestMemoryAndLoad(t *testing.T) {
	h := newHarness(t, Config{})
	const mb = 1 << 20
	b := new(metrics.Bucket)
	runtime(b, "web.1", at(10, 0), map[logline.Gauge]float64{logline.GaugeMemTotal: 100 * mb, logline.GaugeMemRSS: 90 * mb, logline.GaugeMemQuota: 512 * mb, logline.GaugeLoad1m: 1})
	runtime(b, "web.1", at(10, 0), map[logline.Gauge]float64{logline.GaugeMemTotal: 200 * mb, logline.GaugeLoad1m: 2})
	runtime(b, "web.2", at(10, 0), map[logline.Gauge]float64{logline.GaugeMemTotal: 600 * mb, logline.GaugeMemQuota: 512 * mb, logline.GaugeLoad1m: 6})
	b.AddRCode([]byte("R14"))
	h.store.add("storefront", "web", at(10, 0), b)
	w2 := new(metrics.Bucket)
	runtime(w2, "web.1", at(10, 1), map[logline.Gauge]float64{logline.GaugeMemTotal: 50 * mb})
	h.store.add("storefront", "web", at(10, 1), w2)
	win := []string{"start_time", "2026-11-25T10:00:00Z", "end_time", "2026-11-25T10:03:00Z", "step", "1m"}

	s := h.series(q("/api/apps/storefront/formation/web/metrics/memory", win...), admin)
	wantKeys := []string{"memory.total.bytes.mean", "memory.total.bytes.max", "memory.rss.bytes.mean", "memory.rss.bytes.max",
		"memory.swap.bytes.mean", "memory.swap.bytes.max", "memory.cache.bytes.mean", "memory.cache.bytes.max", "memory.quota.bytes.max"}
	if len(s.Data) != len(wantKeys) {
		t.Errorf("memory keys = %d, want %d", len(s.Data), len(wantKeys))
	}
	for _, k := range wantKeys {
		if len(s.Data[k]) != 3 {
			t.Errorf("%s missing or wrong length: %v", k, vals(s.Data[k]))
		}
	}
	if got, want := vals(s.Data["memory.total.bytes.mean"]), []any{300.0 * mb, 50.0 * mb, nil}; !slices.Equal(got, want) {
		t.Errorf("total mean = %v, want %v", got, want)
	}
	if got, want := vals(s.Data["memory.total.bytes.max"]), []any{600.0 * mb, 50.0 * mb, nil}; !slices.Equal(got, want) {
		t.Errorf("total max = %v, want %v", got, want)
	}
	if got, want := vals(s.Data["memory.quota.bytes.max"]), []any{512.0 * mb, nil, nil}; !slices.Equal(got, want) {
		t.Errorf("quota = %v, want %v", got, want)
	}
	if got := vals(s.Data["memory.swap.bytes.max"]); !slices.Equal(got, []any{nil, nil, nil}) {
		t.Errorf("swap = %v", got)
	}
	s = h.series(q("/api/apps/storefront/formation/web/metrics/memory", append(win, "dyno", "web.1")...), admin)
	if got, want := vals(s.Data["memory.total.bytes.max"]), []any{200.0 * mb, 50.0 * mb, nil}; !slices.Equal(got, want) {
		t.Errorf("web.1 total max = %v, want %v", got, want)
	}

	s = h.series(q("/api/apps/storefront/formation/web/metrics/load", win...), admin)
	if len(s.Data) != 6 {
		t.Errorf("load keys = %v", s.Data)
	}
	if got, want := vals(s.Data["load.avg.1m.mean"]), []any{3.0, nil, nil}; !slices.Equal(got, want) {
		t.Errorf("load 1m mean = %v, want %v", got, want)
	}
	if got, want := vals(s.Data["load.avg.1m.max"]), []any{6.0, nil, nil}; !slices.Equal(got, want) {
		t.Errorf("load 1m max = %v, want %v", got, want)
	}

	s = h.series(q("/api/apps/storefront/formation/web/metrics/errors", win...), admin)
	if got, want := vals(s.Data["R14"]), []any{1.0, 0.0, nil}; !slices.Equal(got, want) {
		t.Errorf("R14 = %v, want %v", got, want)
	}
	s = h.series(q("/api/apps/storefront/formation/worker/metrics/memory", win...), admin)
	if len(s.Data) != len(wantKeys) {
		t.Errorf("worker memory keys = %v", s.Data)
	}
}

func TestEvents(t *testing.T) {
	h := newHarness(t, Config{})
	ev := func(t time.Time, kind drainpipe.EventKind, pt, dyno, detail string) drainpipe.Event {
		return drainpipe.Event{Time: t, App: "storefront", Kind: kind, ProcessType: pt, Dyno: dyno, Detail: detail}
	}
	h.store.events = []drainpipe.Event{
		ev(at(10, 0).Add(5*time.Second), drainpipe.EventDeploy, "", "", "Deploy e6442b7c by user a@b.c"),
		ev(at(10, 0).Add(9*time.Second), drainpipe.EventRestart, "web", "web.1", "Restarting"),
		ev(at(10, 2), drainpipe.EventCrash, "worker", "worker.1", "State changed from up to crashed"),
		{Time: at(10, 1), App: "billing", Kind: drainpipe.EventDeploy, Detail: "other app"},
	}
	win := []string{"start_time", "2026-11-25T10:00:00Z", "end_time", "2026-11-25T10:03:00Z", "step", "1m"}
	s := h.series(q("/api/apps/storefront/events", win...), admin)
	if got, want := vals(s.Data["deploy"]), []any{1.0, nil, 0.0}; !slices.Equal(got, want) {
		t.Errorf("deploy = %v, want %v", got, want)
	}
	if got, want := vals(s.Data["crash"]), []any{0.0, nil, 1.0}; !slices.Equal(got, want) {
		t.Errorf("crash = %v, want %v", got, want)
	}
	if len(s.Events) != 3 || s.Events[0]["kind"] != "deploy" || s.Events[0]["time"] != "2026-11-25T10:00:05Z" || s.Events[1]["dyno"] != "web.1" {
		t.Errorf("events = %v", s.Events)
	}
	for _, k := range []string{"time", "kind", "process_type", "dyno", "code", "detail"} {
		if _, ok := s.Events[0][k]; !ok {
			t.Errorf("event lacks %q", k)
		}
	}
	s = h.series(q("/api/apps/storefront/events", append(win, "process_type", "web")...), admin)
	if len(s.Events) != 2 || s.Data["crash"] != nil {
		t.Errorf("web events = %v / %v", s.Events, s.Data)
	}
	// No events: an empty list, not null.
	w := h.do("GET", q("/api/apps/billing/events", "start_time", "2026-11-25T09:00:00Z", "end_time", "2026-11-25T09:01:00Z"), admin, "")
	if !strings.Contains(w.Body.String(), `"events":[]`) {
		t.Errorf("empty events: %s", w.Body.String())
	}
}

// More events than one answer lists: data counts all of them, events lists
// the newest maxEvents, oldest first.
func TestEventsListsTheNewest(t *testing.T) {
	h := newHarness(t, Config{})
	const n = maxEvents + 5
	for i := range n {
		h.store.events = append(h.store.events, drainpipe.Event{Time: at(10, 0).Add(time.Duration(i) * 10 * time.Millisecond),
			App: "storefront", Kind: drainpipe.EventRestart, ProcessType: "web", Dyno: "web.1", Detail: strconv.Itoa(i)})
	}
	s := h.series(q("/api/apps/storefront/events", "start_time", "2026-11-25T10:00:00Z", "end_time", "2026-11-25T10:03:00Z", "step", "1m"), admin)
	if got := vals(s.Data["restart"]); !slices.Equal(got, []any{6000.0, 4005.0, nil}) {
		t.Errorf("restart counts = %v", got)
	}
	if len(s.Events) != maxEvents || s.Events[0]["detail"] != "5" || s.Events[maxEvents-1]["detail"] != strconv.Itoa(n-1) {
		t.Errorf("events: %d, first %v, last %v", len(s.Events), s.Events[0], s.Events[len(s.Events)-1])
	}
}

func TestCustomMetrics(t *testing.T) {
	h := newHarness(t, Config{})
	h.store.custom["storefront"] = []CustomMetric{{"signups", "count"}, {"queue.depth", "sample"}, {"db.query", "measure"}}
	for i, pt := range []string{"web", "worker"} {
		b := new(metrics.Bucket)
		b.AddCustom("signups", logline.CustomCount, float64(i+1), 0)
		b.AddCustom("queue.depth", logline.CustomSample, float64(10*(i+1)), at(10, 0).Add(time.Duration(i)*time.Second).UnixNano())
		for v := 1; v <= 100; v++ {
			b.AddCustom("db.query", logline.CustomMeasure, float64(v+100*i), 0)
		}
		h.store.add("storefront", pt, at(10, 0), b)
	}
	w := h.do("GET", "/api/apps/storefront/custom-metrics", admin, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `{"name":"db.query","kind":"measure"}`) {
		t.Errorf("list: %d %s", w.Code, w.Body.String())
	}
	if w := h.do("GET", "/api/apps/billing/custom-metrics", admin, ""); !strings.Contains(w.Body.String(), `"metrics":[]`) {
		t.Errorf("empty list: %s", w.Body.String())
	}
	win := []string{"start_time", "2026-11-25T10:00:00Z", "end_time", "2026-11-25T10:02:00Z", "step", "1m"}
	s := h.series(q("/api/apps/storefront/custom-metrics/signups", win...), admin)
	if s.Kind != "count" || !slices.Equal(vals(s.Data["sum"]), []any{3.0, nil}) {
		t.Errorf("signups = %s %v", s.Kind, s.Data)
	}
	s = h.series(q("/api/apps/storefront/custom-metrics/signups", append(win, "process_type", "worker")...), admin)
	if !slices.Equal(vals(s.Data["sum"]), []any{2.0, nil}) {
		t.Errorf("worker signups = %v", vals(s.Data["sum"]))
	}
	s = h.series(q("/api/apps/storefront/custom-metrics/queue.depth", win...), admin)
	if s.Kind != "sample" || *s.Data["last"][0] != 20 || *s.Data["mean"][0] != 15 || *s.Data["max"][0] != 20 {
		t.Errorf("queue.depth = %v", s.Data)
	}
	s = h.series(q("/api/apps/storefront/custom-metrics/db.query", win...), admin)
	if s.Kind != "measure" || len(s.Data) != 8 || *s.Data["count"][0] != 200 || *s.Data["min"][0] != 1 || *s.Data["max"][0] != 200 ||
		*s.Data["mean"][0] != 100.5 || !within(*s.Data["p50"][0], 100, 0.01) || !within(*s.Data["p99"][0], 198, 0.01) {
		t.Errorf("db.query = %v", s.Data)
	}
	if w := h.do("GET", "/api/apps/storefront/custom-metrics/nope", admin, ""); w.Code != 404 {
		t.Errorf("unknown metric: %d", w.Code)
	}
}

func TestCustomMetricKeysAndKinds(t *testing.T) {
	h := newHarness(t, Config{})
	// hits is used as count#hits and measure#hits; CustomMetrics lists one
	// entry per (name, kind), by name then kind.
	h.store.custom["storefront"] = []CustomMetric{{"hits", "count"}, {"hits", "measure"}, {"idle", "sample"}}
	b := new(metrics.Bucket)
	b.AddCustom("hits", logline.CustomCount, 7, 0)
	b.AddCustom("hits", logline.CustomMeasure, 12, 0)
	h.store.add("storefront", "web", at(10, 0), b)
	win := []string{"start_time", "2026-11-25T10:00:00Z", "end_time", "2026-11-25T10:02:00Z", "step", "1m"}
	keys := func(s series) []string {
		var out []string
		for k := range s.Data {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}

	// Default: the first kind listed for the name.
	s := h.series(q("/api/apps/storefront/custom-metrics/hits", win...), admin)
	if s.Kind != "count" || !slices.Equal(keys(s), []string{"sum"}) || !slices.Equal(vals(s.Data["sum"]), []any{7.0, nil}) {
		t.Errorf("hits = %s %v", s.Kind, s.Data)
	}
	s = h.series(q("/api/apps/storefront/custom-metrics/hits", append(win, "kind", "measure")...), admin)
	if s.Kind != "measure" || !slices.Equal(keys(s), []string{"count", "max", "mean", "min", "p50", "p95", "p99", "sum"}) ||
		!slices.Equal(vals(s.Data["count"]), []any{1.0, nil}) || !slices.Equal(vals(s.Data["sum"]), []any{12.0, nil}) {
		t.Errorf("hits measure = %s %v", s.Kind, s.Data)
	}
	// No data at all: every key of the kind, all null.
	s = h.series(q("/api/apps/storefront/custom-metrics/idle", win...), admin)
	if s.Kind != "sample" || !slices.Equal(keys(s), []string{"last", "max", "mean"}) {
		t.Errorf("idle = %s %v", s.Kind, s.Data)
	}
	for k, v := range s.Data {
		if !slices.Equal(vals(v), []any{nil, nil}) {
			t.Errorf("idle %s = %v, want all null", k, vals(v))
		}
	}
	w := h.do("GET", q("/api/apps/storefront/custom-metrics/hits", append(win, "kind", "measure")...), admin, "")
	if !strings.Contains(w.Body.String(), `"kind":"measure"`) {
		t.Errorf("top-level kind missing: %s", w.Body.String())
	}
	if w := h.do("GET", q("/api/apps/storefront/custom-metrics/hits", "kind", "gauge"), admin, ""); w.Code != 400 {
		t.Errorf("unknown kind: %d %s", w.Code, w.Body.String())
	}
	if w := h.do("GET", q("/api/apps/storefront/custom-metrics/hits", "kind", "sample"), admin, ""); w.Code != 404 || !strings.Contains(w.Body.String(), "no kind") {
		t.Errorf("kind the name lacks: %d %s", w.Code, w.Body.String())
	}
	if w := h.do("GET", q("/api/apps/storefront/custom-metrics/nope", "kind", "count"), admin, ""); w.Code != 404 {
		t.Errorf("unknown name with kind: %d", w.Code)
	}
}

func TestLogLoss(t *testing.T) {
	h := newHarness(t, Config{})
	b := new(metrics.Bucket)
	b.AddLogLoss([]byte("L10"), 7)
	h.store.add("storefront", "web", at(10, 0), b)
	b = new(metrics.Bucket)
	b.AddLogLoss([]byte("rejected.malformed"), 2)
	b.AddLogLoss([]byte("L10"), 1)
	h.store.add("storefront", "worker", at(10, 0), b)
	h.store.add("storefront", "web", at(10, 1), requests(1))
	s := h.series(q("/api/apps/storefront/log-loss", "start_time", "2026-11-25T10:00:00Z", "end_time", "2026-11-25T10:03:00Z", "step", "1m", "process_type", "web"), admin)
	if got, want := vals(s.Data["L10"]), []any{8.0, 0.0, nil}; !slices.Equal(got, want) {
		t.Errorf("L10 = %v, want %v", got, want)
	}
	if got, want := vals(s.Data["rejected.malformed"]), []any{2.0, 0.0, nil}; !slices.Equal(got, want) {
		t.Errorf("rejected = %v, want %v", got, want)
	}
}

func TestFormation(t *testing.T) {
	h := newHarness(t, Config{})
	h.store.formation["storefront"] = []ProcessType{{Name: "web", Dynos: []string{"web.1", "web.2"}}, {Name: "worker"}}
	w := h.do("GET", "/api/apps/storefront/formation", "t-storefront", "")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"process_types":[{"name":"web","dynos":["web.1","web.2"]},{"name":"worker","dynos":[]}]}` {
		t.Errorf("formation: %d %s", w.Code, w.Body.String())
	}
	w = h.do("GET", "/api/apps/billing/formation", admin, "")
	if strings.TrimSpace(w.Body.String()) != `{"process_types":[]}` {
		t.Errorf("empty formation: %s", w.Body.String())
	}
}

func TestRetentionSkipsStore(t *testing.T) {
	h := newHarness(t, Config{})
	h.store.retention = map[drainpipe.Tier]time.Duration{drainpipe.Tier1m: time.Hour}
	h.store.add("storefront", "web", at(8, 0), requests(1)) // beyond retention, still in the fake
	s := h.series(q("/api/apps/storefront/router-metrics/status", "start_time", "2026-11-25T08:00:00Z", "end_time", "2026-11-25T09:00:00Z", "step", "1m"), admin)
	if h.store.bucketsCalls != 0 || len(s.Data) != 0 {
		t.Errorf("store asked %d times, data %v", h.store.bucketsCalls, s.Data)
	}
}

type appList []struct {
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
	Summary   struct {
		Requests    int64      `json:"requests"`
		RPM         []*float64 `json:"rpm"`
		P95         *float64   `json:"p95_ms"`
		P95Prev     *float64   `json:"p95_prev_ms"`
		Status5xx   int64      `json:"status_5xx"`
		HErrors     int64      `json:"h_errors"`
		RErrors     int64      `json:"r_errors"`
		R14         int64      `json:"r14"`
		LogLoss     int64      `json:"log_loss"`
		MemoryPeak  *float64   `json:"memory_peak_bytes"`
		MemoryQuota *float64   `json:"memory_quota_bytes"`
		LastEvent   *struct {
			Kind string `json:"kind"`
			Time string `json:"time"`
		} `json:"last_event"`
	} `json:"summary"`
}

func TestListApps(t *testing.T) {
	now := at(10, 55).Add(30 * time.Second)
	h := newHarness(t, Config{Now: func() time.Time { return now }})
	b := requests(100, 200)
	b.AddStatus(503)
	b.AddHCode([]byte("H12"))
	b.AddRCode([]byte("R14"))
	b.AddLogLoss([]byte("L10"), 4)
	runtime(b, "web.1", now, map[logline.Gauge]float64{logline.GaugeMemTotal: 300, logline.GaugeMemQuota: 512})
	h.store.add("storefront", "web", at(10, 55), b)          // current minute
	h.store.add("storefront", "web", at(9, 56), requests(1)) // 59 minutes ago: in rpm[0]
	h.store.add("storefront", "web", at(9, 55), requests(1)) // 60 minutes ago: outside rpm, in p95_prev
	h.store.add("storefront", "web", at(9, 0), requests(1))  // outside both
	h.store.events = []drainpipe.Event{{Time: at(10, 30), App: "storefront", Kind: drainpipe.EventDeploy, Detail: "Deploy"}}

	w := h.do("GET", "/api/apps", admin, "")
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	var apps appList
	if err := json.Unmarshal(w.Body.Bytes(), &apps); err != nil {
		t.Fatalf("%v: %s", err, w.Body.String())
	}
	if len(apps) != 2 || apps[0].Name != "billing" || apps[1].Name != "storefront" {
		t.Fatalf("apps = %s", w.Body.String())
	}
	bl := apps[0].Summary
	if len(bl.RPM) != 60 || bl.Requests != 0 || bl.P95 != nil || bl.LastEvent != nil || bl.MemoryPeak != nil {
		t.Errorf("billing summary = %+v", bl)
	}
	sf := apps[1].Summary
	if len(sf.RPM) != 60 || sf.RPM[0] == nil || *sf.RPM[0] != 1 || sf.RPM[59] == nil || *sf.RPM[59] != 3 || sf.RPM[30] != nil {
		t.Errorf("rpm = %v", vals(sf.RPM))
	}
	if sf.Requests != 4 || sf.Status5xx != 1 || sf.HErrors != 1 || sf.RErrors != 1 || sf.R14 != 1 || sf.LogLoss != 4 {
		t.Errorf("storefront summary = %+v", sf)
	}
	if sf.P95 == nil || !within(*sf.P95, 195, 0.01) || sf.P95Prev == nil || *sf.P95Prev != 1 {
		t.Errorf("p95 = %v prev %v", vals([]*float64{sf.P95}), vals([]*float64{sf.P95Prev}))
	}
	if sf.MemoryPeak == nil || *sf.MemoryPeak != 300 || *sf.MemoryQuota != 512 {
		t.Errorf("memory = %v / %v", sf.MemoryPeak, sf.MemoryQuota)
	}
	if sf.LastEvent == nil || sf.LastEvent.Kind != "deploy" || sf.LastEvent.Time != "2026-11-25T10:30:00Z" {
		t.Errorf("last event = %+v", sf.LastEvent)
	}

	// An app token sees only its app.
	w = h.do("GET", "/api/apps", "t-billing", "")
	apps = nil
	_ = json.Unmarshal(w.Body.Bytes(), &apps)
	if len(apps) != 1 || apps[0].Name != "billing" {
		t.Errorf("billing token sees %s", w.Body.String())
	}

	// Cached, but a created app shows at once.
	calls := h.store.bucketsCalls
	h.do("GET", "/api/apps", admin, "")
	if h.store.bucketsCalls != calls {
		t.Errorf("summary not cached")
	}
	h.do("POST", "/api/apps", admin, `{"name":"newapp"}`)
	w = h.do("GET", "/api/apps", admin, "")
	apps = nil
	_ = json.Unmarshal(w.Body.Bytes(), &apps)
	if len(apps) != 3 {
		t.Errorf("after create: %s", w.Body.String())
	}
}

func TestHealthAndMetrics(t *testing.T) {
	h := newHarness(t, Config{})
	h.drain(drainReq{body: frame(routerLine)})
	w := h.do("GET", "/healthz", "", "")
	if w.Code != 200 || w.Body.String() != "ok\n" {
		t.Errorf("healthz: %d %q", w.Code, w.Body.String())
	}
	w = h.do("GET", "/metrics", "", "")
	body := w.Body.String()
	for _, want := range []string{`drainpipe_drain_requests_total{code="200"} 1`, "drainpipe_drain_lines_total 1",
		"drainpipe_journal_append_seconds_bucket", "drainpipe_drain_in_flight 0", "go_goroutines", "drainpipe_drain_duplicate_batches_total 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// A second server on the same registry shares the collectors.
	New(Config{}, h.journal, h.store, nil, h.reg)

	sick := New(Config{Health: func(context.Context) error { return errors.New("journal closed") }}, nil, nil, nil, nil)
	w = httptest.NewRecorder()
	sick.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	if w.Code != 503 || !strings.Contains(w.Body.String(), "journal closed") {
		t.Errorf("sick healthz: %d %q", w.Code, w.Body.String())
	}
}

func TestHTTPServerLimits(t *testing.T) {
	s := New(Config{}, nil, nil, nil, nil)
	hs := s.HTTPServer(":0")
	if hs.ReadHeaderTimeout != 5*time.Second || hs.ReadTimeout != 30*time.Second || hs.WriteTimeout != 60*time.Second ||
		hs.IdleTimeout == 0 || hs.MaxHeaderBytes != 64<<10 || hs.Handler == nil {
		t.Errorf("server = %+v", hs)
	}
}

func TestDashboardMounted(t *testing.T) {
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("dashboard")) })
	s := New(Config{Dashboard: dash}, nil, newFakeStore(), nil, nil)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Body.String() != "dashboard" {
		t.Errorf("/ = %q", w.Body.String())
	}
	w = httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/api/apps", nil))
	if w.Code != 401 {
		t.Errorf("/api/apps under dashboard = %d", w.Code)
	}
}
