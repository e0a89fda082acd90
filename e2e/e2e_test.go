package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/logplex"
)

type line struct {
	at        time.Time
	app, proc string
	msg       string
}

// exact returns the q-quantile of sorted values as numpy's default
// percentile computes it: linear interpolation at rank q*(n-1).
func exact(sorted []float64, q float64) float64 {
	r := q * float64(len(sorted)-1)
	k := int(r)
	if k+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[k] + (sorted[k+1]-sorted[k])*(r-float64(k))
}

func within1pct(got *float64, want float64) bool {
	return got != nil && math.Abs(*got-want) <= 0.01*want
}

// TestEndToEnd drives the whole embedded stack over HTTP and checks every
// endpoint of SPEC §3 against values computed from the lines sent.
func TestEndToEnd(t *testing.T) {
	n := startNode(t, t.TempDir())
	base := n.URL
	shop := createApp(t, base, "shop")
	other := createApp(t, base, "other")

	// Ten full minutes in the recent past, aligned to 10 minutes.
	t0 := time.Now().UTC().Truncate(10 * time.Minute).Add(-30 * time.Minute)
	rng := rand.New(rand.NewPCG(42, 7))
	var lines []line
	perMinute := make([][]float64, 10)
	var all []float64
	want := map[string]int{}
	for m := 0; m < 10; m++ {
		for i := 0; i < 300; i++ {
			at := t0.Add(time.Duration(m)*time.Minute + time.Duration(i)*190*time.Millisecond)
			dyno := fmt.Sprintf("web.%d", i%4+1)
			svc := math.Round(math.Exp(4 + 0.7*rng.NormFloat64()))
			status, extra := 200, "at=info"
			switch {
			case i%100 == 0:
				status, extra, svc = 503, `at=error code=H12 desc="Request timeout"`, 30000
				want["H12"]++
			case i%37 == 0:
				status = 404
			}
			want[fmt.Sprint(status)]++
			perMinute[m] = append(perMinute[m], svc)
			all = append(all, svc)
			lines = append(lines, line{at, "heroku", "router", fmt.Sprintf(
				`%s method=GET path=/p/%d host=shop.herokuapp.com request_id=r%d fwd="10.0.0.1" dyno=%s connect=%dms service=%.0fms status=%d bytes=512 protocol=https`,
				extra, i, i, dyno, i%3, svc, status)})
		}
		for d := 1; d <= 4; d++ {
			at := t0.Add(time.Duration(m)*time.Minute + 30*time.Second)
			lines = append(lines,
				line{at, "heroku", fmt.Sprintf("web.%d", d), fmt.Sprintf("source=web.%d dyno=heroku.1.%d sample#memory_total=%d.00MB sample#memory_rss=%d.00MB sample#memory_cache=1.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=1pages sample#memory_pgpgout=1pages sample#memory_quota=512.00MB", d, d, 100*d, 100*d-1)},
				line{at, "heroku", fmt.Sprintf("web.%d", d), fmt.Sprintf("source=web.%d dyno=heroku.1.%d sample#load_avg_1m=%d.50 sample#load_avg_5m=1.00 sample#load_avg_15m=0.50", d, d, d)})
		}
	}
	lines = append(lines,
		line{t0.Add(2 * time.Minute), "app", "api", "Deploy 3f2a9c1 by user dev@example.com"},
		line{t0.Add(2*time.Minute + time.Second), "app", "api", "Release v42 created by user dev@example.com"},
		line{t0.Add(3 * time.Minute), "heroku", "web.4", "Error R14 (Memory quota exceeded)"},
		line{t0.Add(3*time.Minute + 20*time.Second), "heroku", "web.4", "Error R14 (Memory quota exceeded)"},
		line{t0.Add(4 * time.Minute), "heroku", "logplex", "Error L10 (output buffer overflow): 12 messages dropped since 2026-01-01T00:00:00+00:00."},
		line{t0.Add(5 * time.Minute), "app", "web.1", "measure#db.query=20ms count#signups=3 sample#queue.depth=7"},
		line{t0.Add(5*time.Minute + time.Second), "app", "web.2", "measure#db.query=40ms count#signups=1"},
		line{t0.Add(6 * time.Minute), "heroku", "web.1", "State changed from up to crashed"},
	)
	// Hold back the last 50 router lines of minute 0: they come late.
	var late []line
	var onTime []line
	for i, l := range lines {
		if i >= 250 && i < 300 {
			late = append(late, l)
		} else {
			onTime = append(onTime, l)
		}
	}
	// Shuffle so that frames mix dynos and minutes, as real drains do.
	rng.Shuffle(len(onTime), func(i, j int) { onTime[i], onTime[j] = onTime[j], onTime[i] })

	var firstBody []byte
	for i := 0; i < len(onTime); i += 250 {
		var body []byte
		end := min(i+250, len(onTime))
		for _, l := range onTime[i:end] {
			body = logplex.AppendMessage(body, l.at, "host", l.app, l.proc, l.msg)
		}
		if code := postDrain(t, shop.DrainURL, fmt.Sprintf("frame-%d", i), body, end-i); code != http.StatusOK {
			t.Fatalf("drain POST: %d", code)
		}
		if i == 0 {
			firstBody = body
		}
	}

	statusTotal := func(start, end time.Time) float64 {
		s := query(t, base, adminToken, "/api/apps/shop/router-metrics/status", start, end, "10m", nil)
		var total float64
		for _, v := range s.Data {
			total += sum(v)
		}
		return total
	}
	win0, win1 := t0, t0.Add(10*time.Minute)
	eventually(t, "all on-time requests counted", func() bool { return statusTotal(win0, win1) == 3000-50 })

	// A Logplex retry of the first batch (same Frame-Id) is counted once.
	if code := postDrain(t, shop.DrainURL, "frame-0", firstBody, 250); code != http.StatusOK {
		t.Fatalf("retry POST: %d", code)
	}
	// Late lines for minute 0, which was flushed already.
	var body []byte
	for _, l := range late {
		body = logplex.AppendMessage(body, l.at, "host", l.app, l.proc, l.msg)
	}
	if code := postDrain(t, shop.DrainURL, "late-1", body, len(late)); code != http.StatusOK {
		t.Fatalf("late POST: %d", code)
	}
	eventually(t, "late lines counted", func() bool { return statusTotal(win0, win1) == 3000 })
	time.Sleep(500 * time.Millisecond) // a double count of the retry would show by now
	if got := statusTotal(win0, win1); got != 3000 {
		t.Fatalf("after retry and late lines: %v requests, want exactly 3000", got)
	}

	t.Run("status counts are exact per minute", func(t *testing.T) {
		s := query(t, base, adminToken, "/api/apps/shop/router-metrics/status", win0, win1, "1m", nil)
		if len(s.Data["200"]) != 10 {
			t.Fatalf("%d buckets, want 10", len(s.Data["200"]))
		}
		for code, n := range map[string]int{"200": want["200"], "404": want["404"], "503": want["503"]} {
			if got := sum(s.Data[code]); got != float64(n) {
				t.Errorf("status %s: %v, want %d", code, got, n)
			}
		}
		var m0 float64
		for _, v := range s.Data {
			if v[0] != nil {
				m0 += *v[0]
			}
		}
		if m0 != 300 {
			t.Errorf("minute 0 holds %v requests, want 300 (late lines merged, not overwritten)", m0)
		}
	})

	t.Run("percentiles within 1% per minute and per 10 minutes", func(t *testing.T) {
		s := query(t, base, adminToken, "/api/apps/shop/router-metrics/latency", win0, win1, "1m", nil)
		for m := 0; m < 10; m++ {
			v := append([]float64(nil), perMinute[m]...)
			sort.Float64s(v)
			for key, q := range map[string]float64{"latency.ms.p50": 0.5, "latency.ms.p95": 0.95, "latency.ms.p99": 0.99} {
				if !within1pct(s.Data[key][m], exact(v, q)) {
					t.Errorf("minute %d %s = %v, want %v ±1%%", m, key, deref(s.Data[key][m]), exact(v, q))
				}
			}
			if got := s.Data["latency.ms.max"][m]; got == nil || *got != v[len(v)-1] {
				t.Errorf("minute %d max = %v, want %v", m, deref(got), v[len(v)-1])
			}
		}
		s10 := query(t, base, adminToken, "/api/apps/shop/router-metrics/latency", win0, win1, "10m", nil)
		sort.Float64s(all)
		if len(s10.Data["latency.ms.p95"]) != 1 {
			t.Fatalf("10m step: %d buckets, want 1", len(s10.Data["latency.ms.p95"]))
		}
		for key, q := range map[string]float64{"latency.ms.p50": 0.5, "latency.ms.p95": 0.95, "latency.ms.p99": 0.99} {
			if !within1pct(s10.Data[key][0], exact(all, q)) {
				t.Errorf("10m %s = %v, want %v ±1%%", key, deref(s10.Data[key][0]), exact(all, q))
			}
		}
		if p95 := s10.Summary["p95"]; !within1pct(p95, exact(all, 0.95)) {
			t.Errorf("range summary p95 = %v, want %v", deref(p95), exact(all, 0.95))
		}
	})

	t.Run("buckets, nulls and steps", func(t *testing.T) {
		s := query(t, base, adminToken, "/api/apps/shop/router-metrics/latency", win0.Add(-5*time.Minute), win1, "1m", nil)
		p := s.Data["latency.ms.p50"]
		if len(p) != 15 || p[0] != nil || p[4] != nil || p[5] == nil {
			t.Fatalf("1m with leading gap: %d values, first %v, sixth %v", len(p), p[0], p[5])
		}
		// A start that is not aligned is aligned down to the step.
		s = query(t, base, adminToken, "/api/apps/shop/router-metrics/status", win0.Add(17*time.Minute), win0.Add(4*time.Hour), "1h", nil)
		if want := win0.Add(17 * time.Minute).Truncate(time.Hour).Format(time.RFC3339); s.StartTime != want {
			t.Errorf("start_time %s, want %s", s.StartTime, want)
		}
		s = query(t, base, adminToken, "/api/apps/shop/router-metrics/status", win0.Add(-6*time.Hour), win1, "2h", nil)
		var total float64
		for _, v := range s.Data {
			total += sum(v)
		}
		if total != 3000 || s.Step != "2h" {
			t.Errorf("2h step: %v requests, step %q", total, s.Step)
		}
	})

	t.Run("router errors", func(t *testing.T) {
		s := query(t, base, adminToken, "/api/apps/shop/router-metrics/errors", win0, win1, "10m", nil)
		if got := sum(s.Data["H12"]); got != float64(want["H12"]) {
			t.Errorf("H12 = %v, want %d", got, want["H12"])
		}
	})

	t.Run("memory and load", func(t *testing.T) {
		s := query(t, base, adminToken, "/api/apps/shop/formation/web/metrics/memory", win0, win1, "10m", nil)
		if got := s.Data["memory.quota.bytes.max"][0]; got == nil || *got != 512*1048576 {
			t.Errorf("quota = %v", deref(got))
		}
		if got := s.Data["memory.total.bytes.max"][0]; got == nil || *got != 400*1048576 {
			t.Errorf("total max = %v, want 400 MB", deref(got))
		}
		if got := s.Data["memory.total.bytes.mean"][0]; got == nil || *got != 250*1048576 {
			t.Errorf("total mean = %v, want 250 MB", deref(got))
		}
		s = query(t, base, adminToken, "/api/apps/shop/formation/web/metrics/memory", win0, win1, "10m", url.Values{"dyno": {"web.2"}})
		if got := s.Data["memory.total.bytes.max"][0]; got == nil || *got != 200*1048576 {
			t.Errorf("web.2 total max = %v, want 200 MB", deref(got))
		}
		s = query(t, base, adminToken, "/api/apps/shop/formation/web/metrics/load", win0, win1, "10m", nil)
		if got := s.Data["load.avg.1m.max"][0]; got == nil || *got != 4.5 {
			t.Errorf("load 1m max = %v, want 4.5", deref(got))
		}
		if got := s.Data["load.avg.1m.mean"][0]; got == nil || *got != 3 {
			t.Errorf("load 1m mean = %v, want 3", deref(got))
		}
	})

	t.Run("dyno errors, events, custom metrics, log loss", func(t *testing.T) {
		s := query(t, base, adminToken, "/api/apps/shop/formation/web/metrics/errors", win0, win1, "10m", nil)
		if got := sum(s.Data["R14"]); got != 2 {
			t.Errorf("R14 = %v, want 2", got)
		}
		s = query(t, base, adminToken, "/api/apps/shop/events", win0, win1, "1m", nil)
		kinds := map[string]int{}
		for _, e := range s.Events {
			kinds[e.Kind]++
		}
		if kinds["deploy"] != 1 || kinds["release"] != 1 || kinds["crash"] != 1 {
			t.Errorf("events by kind: %v", kinds)
		}
		if got := s.Data["deploy"]; len(got) != 10 || got[2] == nil || *got[2] != 1 {
			t.Errorf("deploy series: %v", got)
		}
		code, b := do(t, "GET", base+"/api/apps/shop/custom-metrics", adminToken, nil, nil)
		if code != 200 || !bytes.Contains(b, []byte(`"db.query"`)) || !bytes.Contains(b, []byte(`"signups"`)) {
			t.Errorf("custom metric list: %d %s", code, b)
		}
		s = query(t, base, adminToken, "/api/apps/shop/custom-metrics/db.query", win0, win1, "10m", nil)
		if got := s.Data["count"][0]; got == nil || *got != 2 {
			t.Errorf("db.query count = %v", deref(got))
		}
		if got := s.Data["max"][0]; got == nil || *got != 40 {
			t.Errorf("db.query max = %v", deref(got))
		}
		s = query(t, base, adminToken, "/api/apps/shop/custom-metrics/signups", win0, win1, "10m", nil)
		if got := s.Data["sum"][0]; got == nil || *got != 4 {
			t.Errorf("signups sum = %v", deref(got))
		}
		s = query(t, base, adminToken, "/api/apps/shop/log-loss", win0, win1, "10m", nil)
		if got := sum(s.Data["L10"]); got != 12 {
			t.Errorf("L10 = %v, want 12", got)
		}
	})

	t.Run("fleet list and formation", func(t *testing.T) {
		code, b := do(t, "GET", base+"/api/apps", adminToken, nil, nil)
		var apps []struct {
			Name string `json:"name"`
		}
		if code != 200 || json.Unmarshal(b, &apps) != nil || len(apps) != 2 {
			t.Fatalf("apps: %d %s", code, b)
		}
		code, b = do(t, "GET", base+"/api/apps/shop/formation", adminToken, nil, nil)
		if code != 200 || !bytes.Contains(b, []byte(`"web.4"`)) {
			t.Errorf("formation: %d %s", code, b)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		u, _ := url.Parse(shop.DrainURL)
		u.User = url.UserPassword(u.User.Username(), "wrong")
		frame := logplex.AppendMessage(nil, time.Now(), "host", "heroku", "router", "at=info status=200")
		if code := postDrain(t, u.String(), "x1", frame, 1); code != http.StatusUnauthorized {
			t.Errorf("wrong credentials: %d, want 401", code)
		}
		if code := postDrain(t, strings.Replace(shop.DrainURL, "/drains/shop", "/drains/nosuchapp", 1), "x2", frame, 1); code != http.StatusNotFound {
			t.Errorf("unknown app: %d, want 404", code)
		}
		if code := postDrain(t, shop.DrainURL, "x3", []byte("this is not logplex framing"), 1); code != http.StatusBadRequest {
			t.Errorf("unframeable body: %d, want 400", code)
		}
		if code := postDrain(t, shop.DrainURL, "x4", bytes.Repeat(frame, (5<<20)/len(frame)), 1); code != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized body: %d, want 413", code)
		}
		if code, _ := do(t, "GET", base+"/api/apps", "", nil, nil); code != http.StatusUnauthorized {
			t.Errorf("no token: %d, want 401", code)
		}
		if code, _ := do(t, "GET", base+"/api/apps", "wrong", nil, nil); code != http.StatusUnauthorized {
			t.Errorf("wrong token: %d, want 401", code)
		}
		if code, _ := do(t, "GET", base+"/api/apps/shop/router-metrics/status", other.APIToken, nil, nil); code != http.StatusNotFound {
			t.Errorf("other app's token on shop: %d, want 404", code)
		}
		if code, _ := do(t, "GET", base+"/api/apps/shop/router-metrics/status", shop.APIToken, nil, nil); code != http.StatusOK {
			t.Errorf("shop's own token: %d, want 200", code)
		}
		if code, _ := do(t, "POST", base+"/api/apps", shop.APIToken, nil, []byte(`{"name":"x"}`)); code == http.StatusCreated {
			t.Errorf("an app token created an app")
		}
		if code, _ := do(t, "GET", base+"/api/apps/shop/router-metrics/status?step=5m", adminToken, nil, nil); code != http.StatusBadRequest {
			t.Errorf("bad step: %d, want 400", code)
		}
	})

	t.Run("health and self-metrics", func(t *testing.T) {
		if code, _ := do(t, "GET", base+"/healthz", "", nil, nil); code != 200 {
			t.Errorf("healthz %d", code)
		}
		code, b := do(t, "GET", base+"/metrics", "", nil, nil)
		if code != 200 || !bytes.Contains(b, []byte("drainpipe_aggregate_lines_total")) {
			t.Errorf("/metrics: %d", code)
		}
	})
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
