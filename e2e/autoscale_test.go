package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/autoscale"
	"github.com/drainpipe/drainpipe/embedded"
	"github.com/drainpipe/drainpipe/monitor"
)

// fakePlatform is a local stand-in for the Heroku Platform API's
// formation endpoints. In maintenance it answers every request 503 "API
// in maintenance", as Heroku does.
type fakePlatform struct {
	mu          sync.Mutex
	quantity    map[string]int
	maintenance bool
	requests    int
	inMaint     int
	patches     []int
	badHeaders  []string
}

func (f *fakePlatform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if got := r.Header.Get("Accept"); got != "application/vnd.heroku+json; version=3" {
		f.badHeaders = append(f.badHeaders, "Accept: "+got)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer test-key" {
		f.badHeaders = append(f.badHeaders, "Authorization: "+got)
	}
	w.Header().Set("Content-Type", "application/json")
	if f.maintenance {
		f.inMaint++
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"id":"unavailable","message":"API in maintenance"}`)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // apps/{app}/formation/{type}
	if len(parts) != 4 || parts[0] != "apps" || parts[2] != "formation" {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"id":"not_found","message":"no such route"}`)
		return
	}
	k := parts[1] + "/" + parts[3]
	if r.Method == http.MethodPatch {
		var body struct{ Quantity int }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		f.quantity[k] = body.Quantity
		f.patches = append(f.patches, body.Quantity)
	}
	fmt.Fprintf(w, `{"quantity":%d,"type":%q,"size":"standard-1X"}`, f.quantity[k], parts[3])
}

func (f *fakePlatform) setMaintenance(on bool) {
	f.mu.Lock()
	f.maintenance = on
	f.mu.Unlock()
}

func (f *fakePlatform) snapshot() (patches []int, requests, inMaint int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.patches), f.requests, f.inMaint
}

// TestAutoscaling drives p95 over and under a scale monitor's value
// through real drains and checks the PATCHes a local fake Platform API
// gets: up fast and never beyond max_quantity, down one dyno at a time
// after the cooldown, and through a maintenance window (503 for several
// minutes of traffic) without crashing, with bounded retries, with the
// outage visible in the API, and resuming by itself afterwards.
func TestAutoscaling(t *testing.T) {
	api := &fakePlatform{quantity: map[string]int{"shop/web": 1}}
	platform := httptest.NewServer(api)
	defer platform.Close()

	n, err := embedded.Start(context.Background(), embedded.Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: adminToken,
		Aggregate: aggregate.Config{FlushInterval: 100 * time.Millisecond},
		Alerts: embedded.AlertsConfig{
			Evaluator: monitor.Config{Grace: 10 * time.Minute, Tick: 100 * time.Millisecond},
			Autoscale: autoscale.Config{
				Platform:   &autoscale.Platform{URL: platform.URL, Key: "test-key"},
				MinBackoff: 100 * time.Millisecond, MaxBackoff: 800 * time.Millisecond,
			},
		},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	base := n.URL
	shop := createApp(t, base, "shop")
	createMonitor(t, base, shop.APIToken, "shop",
		`{"action_type":"scale","name":"LATENCY","value":500,"period":1,"min_quantity":1,"max_quantity":4}`)

	t0 := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
	next := 0
	send := func(minutes, serviceMS int) {
		t.Helper()
		for i := 0; i < minutes; i++ {
			at := t0.Add(time.Duration(next) * time.Minute)
			if code := postDrain(t, shop.DrainURL, fmt.Sprintf("m-%d", next), minuteOfTraffic(at, serviceMS, 0), 20); code != http.StatusOK {
				t.Fatalf("drain POST: %d", code)
			}
			next++
		}
	}
	waitPatches := func(want []int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got, _, _ := api.snapshot()
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) || len(got) > len(want) {
				t.Fatalf("PATCHes: got %v, want %v", got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	status := func() autoscale.Status {
		t.Helper()
		code, body := do(t, "GET", base+"/api/apps/shop/autoscaling", shop.APIToken, nil, nil)
		var s autoscale.Status
		if code != http.StatusOK || json.Unmarshal(body, &s) != nil {
			t.Fatalf("GET autoscaling: %d %s", code, body)
		}
		return s
	}

	// Minute 0 is fine; minutes 1-4 have p95 900 ms against 500: 1→2
	// (p95 1.8× the value), 2→4, then at max_quantity 4 nothing more.
	send(1, 100)
	send(4, 900)
	send(1, 100) // closes minute 4
	waitPatches([]int{2, 4})
	time.Sleep(500 * time.Millisecond)
	waitPatches([]int{2, 4})

	// Under 250 ms from minute 5: one dyno down after 5 quiet minutes and
	// the 5-minute cooldown (minute 9), another 5 minutes later (14).
	send(10, 100) // minutes 6-15; closes 14
	waitPatches([]int{2, 4, 3, 2})

	// Maintenance: p95 climbs again at minute 18 while the API answers
	// 503 to everything for several minutes of traffic.
	api.setMaintenance(true)
	_, _, before := api.snapshot()
	send(2, 100) // minutes 16-17
	send(3, 900) // minutes 18-20; closes 19
	deadline := time.Now().Add(10 * time.Second)
	var s autoscale.Status
	for {
		s = status()
		if !s.PlatformAPI.Available || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.PlatformAPI.Available || s.PlatformAPI.UnavailableSince.IsZero() || !strings.Contains(s.PlatformAPI.LastError, "API in maintenance") {
		t.Fatalf("during maintenance the API shows %+v", s.PlatformAPI)
	}
	time.Sleep(2500 * time.Millisecond)
	s = status()
	if len(s.Formations) != 1 || s.Formations[0].Quantity == nil || *s.Formations[0].Quantity != 2 ||
		s.Formations[0].Pending == nil || s.Formations[0].Pending.To != 4 {
		t.Fatalf("during maintenance the formation shows %+v (want quantity 2, pending 2→4)", s.Formations)
	}
	_, _, during := api.snapshot()
	// About 3 s of backoff from 100 ms doubling to 800 ms: a handful of
	// attempts, not one per minute of traffic or per millisecond.
	if tries := during - before; tries < 2 || tries > 10 {
		t.Errorf("%d requests during the maintenance window, want a bounded few", tries)
	}
	if _, m := do(t, "GET", base+"/metrics", "", nil, nil); !strings.Contains(string(m), "drainpipe_platform_api_available 0") {
		t.Errorf("/metrics does not show the outage")
	}
	if code, _ := do(t, "GET", base+"/healthz", "", nil, nil); code != http.StatusOK {
		t.Errorf("healthz during the Platform API outage: %d", code)
	}

	// Maintenance ends: the autoscaler resumes by itself with what it
	// wanted all along.
	api.setMaintenance(false)
	waitPatches([]int{2, 4, 3, 2, 4})
	if s := status(); !s.PlatformAPI.Available || !s.PlatformAPI.UnavailableSince.IsZero() {
		t.Errorf("after maintenance the API shows %+v", s.PlatformAPI)
	}

	// Every decision is an event with its reason.
	want := []string{"1 scale up web 1→2", "2 scale up web 2→4", "3 at max_quantity 4:", "9 scale down web 4→3",
		"14 scale down web 3→2", "18 Platform API unavailable (platform", "19 Platform API available again", "19 scale up web 2→4"}
	var trail []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ev := query(t, base, adminToken, "/api/apps/shop/events", t0, t0.Add(time.Hour), "1m", nil)
		trail = trail[:0]
		for _, e := range ev.Events {
			if e.Kind == "autoscale" {
				trail = append(trail, fmt.Sprintf("%d %s", int(e.Time.Sub(t0)/time.Minute), firstWords(e.Detail, 4)))
			}
		}
		if slices.Equal(trail, want) {
			break
		}
	}
	if !slices.Equal(trail, want) {
		t.Errorf("autoscale events:\n got %q\nwant %q", trail, want)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.badHeaders) > 0 {
		t.Errorf("requests without the Platform API's headers: %q", api.badHeaders)
	}
}
