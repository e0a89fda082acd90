package server

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
)

// FuzzDrain posts arbitrary bodies and headers to the drain endpoint: the
// answer is always 200 (something framed and was kept) or 400 (nothing
// could be framed), never a 5xx for bad content, and a 200 always means
// the batch reached the journal.
func FuzzDrain(f *testing.F) {
	f.Add(frame(routerLine), "3", "frame-1")
	f.Add(frame(routerLine)+"99 garbage", "-1", "")
	f.Add("", "", "")
	f.Add("83 <40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\n", "1", "x")
	f.Add("0 ", "x", "\x00")
	var h *harness // one server for every input: building one costs more than a request
	f.Fuzz(func(t *testing.T, body, dropCount, frameID string) {
		if h == nil {
			h = newHarness(t, Config{})
		}
		h.t = t
		h.journal.mu.Lock()
		h.journal.batches, h.journal.seen = nil, nil
		h.journal.mu.Unlock()
		before := len(h.journal.batches)
		w := h.drain(drainReq{body: body, frameID: frameID, headers: map[string]string{"Logplex-Drop-Count": dropCount}})
		switch w.Code {
		case 200:
			if len(h.journal.batches) != before+1 {
				t.Fatalf("200 but %d batches journaled", len(h.journal.batches)-before)
			}
		case 400:
			if len(h.journal.batches) != before {
				t.Fatal("400 but the batch was journaled")
			}
		default:
			t.Fatalf("status %d for body %q", w.Code, body)
		}
	})
}

// FuzzQueryParams sends arbitrary query strings (and a process type and
// custom metric name in the path) to every read endpoint of the API: the
// answer is 200 with JSON that has no NaN or Inf, 400 with a reason, or
// 404 (or ServeMux's redirect of an unclean path); never a 5xx.
func FuzzQueryParams(f *testing.F) {
	f.Add(uint8(0), "start_time=2026-11-25T10:00:00Z&end_time=2026-11-25T11:00:00Z&step=1m", "web")
	f.Add(uint8(1), "step=2h&start_time=2026-11-20T00:00:00+01:00", "worker")
	f.Add(uint8(2), "start_time=0001-01-01T00:00:00Z&end_time=9999-12-31T23:59:59Z&step=1h", "web")
	f.Add(uint8(3), "end_time=2026-11-25T10:00:00z&start_time=2026-11-25T11:00:00Z", "a.b")
	f.Add(uint8(4), "process_type=web&dyno=web.1&step=10m", "%zz")
	f.Add(uint8(5), "start_time=2026-11-25T10:00:00 01:00&kind=measure", "db.query")
	var h *harness // one server for every input: building one costs more than a request
	f.Fuzz(func(t *testing.T, which uint8, rawQuery, name string) {
		if h == nil {
			h = newHarness(t, Config{})
		}
		h.t = t
		paths := []string{
			"/api/apps/storefront/router-metrics/latency",
			"/api/apps/storefront/router-metrics/status",
			"/api/apps/storefront/router-metrics/errors",
			"/api/apps/storefront/formation/" + name + "/metrics/memory",
			"/api/apps/storefront/formation/" + name + "/metrics/load",
			"/api/apps/storefront/formation/" + name + "/metrics/errors",
			"/api/apps/storefront/events",
			"/api/apps/storefront/custom-metrics",
			"/api/apps/storefront/custom-metrics/" + name,
			"/api/apps/storefront/log-loss",
			"/api/apps/storefront/formation",
			"/api/apps",
		}
		target := paths[int(which)%len(paths)] + "?" + rawQuery
		r := httptest.NewRequest("GET", "/", nil)
		r.URL = &url.URL{Path: paths[int(which)%len(paths)], RawQuery: rawQuery}
		r.RequestURI = r.URL.RequestURI()
		r.Header.Set("Authorization", "Bearer "+admin)
		w := httptest.NewRecorder()
		h.h.ServeHTTP(w, r)
		switch w.Code {
		case 200:
			body := w.Body.String()
			if !json.Valid([]byte(body)) || strings.Contains(body, "NaN") || strings.Contains(body, "Inf") {
				t.Fatalf("GET %s: bad JSON %s", target, body)
			}
		case 301, 307, 308:
			// ServeMux redirects an unclean path ("formation//metrics")
			// to its clean form.
			if path.Clean(r.URL.Path) == r.URL.Path {
				t.Fatalf("GET %s: redirect of a clean path", target)
			}
		case 400, 404:
			var e struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("GET %s: %d without a reason: %s", target, w.Code, w.Body.String())
			}
		default:
			t.Fatalf("GET %s: status %d: %s", target, w.Code, w.Body.String())
		}
	})
}
