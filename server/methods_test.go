package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMethodsAndPaths pins how paths that exist are answered for a
// method they do not serve (405 with Allow, JSON error), how paths that do
// not exist are answered (404, JSON error), and that a trailing slash is a
// different API path but the same drain.
func TestMethodsAndPaths(t *testing.T) {
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		_, _ = w.Write([]byte("dashboard"))
	})
	h := newHarness(t, Config{Dashboard: dash})
	lat := "/api/apps/storefront/router-metrics/latency"
	cases := []struct {
		name, method, path, token string
		code                      int
		allow                     string
	}{
		{"DELETE apps", "DELETE", "/api/apps", admin, 405, "GET, HEAD, POST"},
		{"PUT apps", "PUT", "/api/apps", admin, 405, "GET, HEAD, POST"},
		{"POST latency", "POST", lat, admin, 405, "GET, HEAD"},
		{"DELETE latency app token", "DELETE", lat, "t-storefront", 405, "GET, HEAD"},
		{"POST memory", "POST", "/api/apps/storefront/formation/web/metrics/memory", admin, 405, "GET, HEAD"},
		{"PATCH custom metric", "PATCH", "/api/apps/storefront/custom-metrics/hits", admin, 405, "GET, HEAD"},
		{"PUT me", "PUT", "/api/me", admin, 405, "GET, HEAD"},
		{"GET admin-token", "GET", "/api/admin-token", admin, 405, "POST"},
		// Authentication comes first: nothing under /api/ is described
		// to a client without a valid token.
		{"DELETE apps without token", "DELETE", "/api/apps", "", 401, ""},
		{"DELETE apps bad token", "DELETE", "/api/apps", "nope", 401, ""},
		{"DELETE unknown endpoint", "DELETE", "/api/nothing", admin, 404, ""},
		{"trailing slash apps", "GET", "/api/apps/", admin, 404, ""},
		{"trailing slash latency", "GET", lat + "/", admin, 404, ""},
		{"app without endpoint", "GET", "/api/apps/storefront/nothing", admin, 404, ""},
		{"drain GET", "GET", "/drains/storefront", "", 405, "POST"},
		{"drain GET trailing slash", "GET", "/drains/storefront/", "", 405, "POST"},
		{"drains without app", "POST", "/drains/", "", 404, ""},
		{"drains deeper path", "POST", "/drains/storefront/x", "", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := h.do(tc.method, tc.path, tc.token, "")
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body.String())
			}
			errorOf(t, w)
			if got := w.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}

	// A drain URL pasted with a trailing slash is the same drain: Logplex
	// drops a batch answered 4xx, so refusing it would lose every line.
	r := httptest.NewRequest("POST", "/drains/storefront/", strings.NewReader(frame(routerLine)))
	r.SetBasicAuth("u-storefront", "s-storefront")
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("POST /drains/storefront/: status %d: %s", w.Code, w.Body.String())
	}
	if bs := h.journal.all(); len(bs) != 1 || bs[0].App != "storefront" {
		t.Fatalf("journal = %+v, want one storefront batch", bs)
	}
}

// TestRolesAnswerJSONForTheOtherRole pins what a scale-out process
// answers for the endpoints of a role it does not run: a JSON 404 that
// says so, not the dashboard's or net/http's plain-text answer.
func TestRolesAnswerJSONForTheOtherRole(t *testing.T) {
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	})
	for _, tc := range []struct {
		name         string
		cfg          Config
		method, path string
		want         string
	}{
		{"api role gets a drain", Config{NoDrains: true, Dashboard: dash}, "POST", "/drains/storefront", "ingest"},
		{"ingest role gets a query", Config{NoAPI: true}, "GET", "/api/apps", "api"},
		{"ingest role gets a series", Config{NoAPI: true}, "GET", "/api/apps/storefront/router-metrics/latency", "api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			w := h.do(tc.method, tc.path, admin, "")
			if w.Code != 404 {
				t.Fatalf("status %d, want 404: %s", w.Code, w.Body.String())
			}
			if msg := errorOf(t, w); !strings.Contains(msg, "role") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name the %s role", msg, tc.want)
			}
		})
	}
}
