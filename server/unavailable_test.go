package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// downStore is a store whose database is out of reach: every read fails
// with drainpipe.ErrUnavailable, as the PostgreSQL store's do while the
// server is down.
type downStore struct{ *fakeStore }

func (downStore) err(op string) error {
	return fmt.Errorf("postgres: %s: %w: dial tcp 127.0.0.1:5432: connect: connection refused", op, drainpipe.ErrUnavailable)
}

func (s downStore) ListApps(context.Context) ([]drainpipe.App, error) { return nil, s.err("list apps") }
func (s downStore) App(context.Context, string) (drainpipe.App, error) {
	return drainpipe.App{}, s.err("look up app")
}
func (s downStore) AppForToken(context.Context, string) (string, error) {
	return "", s.err("look up token")
}
func (s downStore) Buckets(context.Context, string, string, drainpipe.Tier, time.Time, time.Time) ([]metrics.Row, error) {
	return nil, s.err("query buckets")
}
func (s downStore) RequestCounts(context.Context, drainpipe.Tier, time.Time, time.Time) ([]metrics.RequestCount, error) {
	return nil, s.err("request counts")
}
func (s downStore) VerifyDrain(context.Context, string, string, string) error {
	return s.err("look up app")
}

func TestStoreUnavailableAnswers503(t *testing.T) {
	h := newHarness(t, Config{})
	h.srv = New(Config{AdminToken: admin, Now: func() time.Time { return testNow }}, h.journal, downStore{h.store}, nil, prometheus.NewRegistry())
	h.h = h.srv.Handler()
	for _, tc := range []struct{ name, path, token string }{
		{"fleet", "/api/apps", admin},
		{"series as admin", "/api/apps/storefront/router-metrics/latency", admin},
		{"series with an app token", "/api/apps/storefront/router-metrics/latency", h.cr["storefront"]},
	} {
		w := h.do("GET", tc.path, tc.token, "")
		var body struct{ Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: answer is not JSON: %q", tc.name, w.Body.String())
		}
		if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(body.Error, "unavailable") {
			t.Errorf("%s: %d Retry-After=%q %q; want 503 saying the store is unavailable", tc.name, w.Code, w.Header().Get("Retry-After"), body.Error)
		}
		if strings.Contains(body.Error, "127.0.0.1") {
			t.Errorf("%s: the answer leaks the error's details: %q", tc.name, body.Error)
		}
	}
	// Drains answer 503 too, so that Logplex retries.
	r := h.drain(drainReq{app: "storefront", user: "u", pass: "p", body: frame(routerLine)})
	if r.Code != 503 || r.Header().Get("Retry-After") == "" || !strings.Contains(r.Body.String(), "store is unavailable") {
		t.Errorf("drain: %d Retry-After=%q %q, want 503 with Retry-After saying the store is unavailable", r.Code, r.Header().Get("Retry-After"), r.Body.String())
	}
}
