package server

import (
	"sync"
	"testing"
	"time"
)

// TestQueriesOfOneWindowShareOneRead sends the burst of requests a
// dashboard page sends for one window and checks the store is read twice
// (once for the sketches of latency, once for the counts and gauges of
// the others), and again once the cache entries have expired.
func TestQueriesOfOneWindowShareOneRead(t *testing.T) {
	h := newHarness(t, Config{QueryCacheTTL: 300 * time.Millisecond})
	q := "?start_time=2026-11-25T10:00:00Z&end_time=2026-11-25T11:00:00Z&step=1m"
	paths := []string{
		"/api/apps/storefront/router-metrics/latency", "/api/apps/storefront/router-metrics/status",
		"/api/apps/storefront/router-metrics/errors", "/api/apps/storefront/formation/web/metrics/memory",
		"/api/apps/storefront/formation/web/metrics/load", "/api/apps/storefront/formation/web/metrics/errors",
	}
	burst := func() {
		var wg sync.WaitGroup
		for _, p := range paths {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if w := h.do("GET", p+q, "admin-secret", ""); w.Code != 200 {
					t.Errorf("%s: %d %s", p, w.Code, w.Body.String())
				}
			}()
		}
		wg.Wait()
	}
	calls := func() int {
		h.store.mu.Lock()
		defer h.store.mu.Unlock()
		return h.store.bucketsCalls
	}
	burst()
	if n := calls(); n != 2 {
		t.Fatalf("%d store reads for one window, want 2", n)
	}
	time.Sleep(350 * time.Millisecond)
	burst()
	if n := calls(); n != 4 {
		t.Fatalf("%d store reads after the entries expired, want 4", n)
	}
	// Another window is another read.
	if w := h.do("GET", "/api/apps/storefront/router-metrics/latency?start_time=2026-11-25T09:00:00Z&end_time=2026-11-25T11:00:00Z&step=1m", "admin-secret", ""); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if n := calls(); n != 5 {
		t.Fatalf("%d store reads, want 5", n)
	}
}
