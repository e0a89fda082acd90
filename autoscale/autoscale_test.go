package autoscale

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/monitor"
)

type events struct {
	mu sync.Mutex
	ev []drainpipe.Event
}

func (e *events) AddEvents(_ context.Context, ev []drainpipe.Event) error {
	e.mu.Lock()
	e.ev = append(e.ev, ev...)
	e.mu.Unlock()
	return nil
}

func (e *events) details() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, x := range e.ev {
		out = append(out, x.Detail)
	}
	return out
}

// TestDryRunNeverCallsTheAPI: with --autoscale-dry-run the decisions are
// events against a simulated count read once from the API, and no PATCH
// is ever sent.
func TestDryRunNeverCallsTheAPI(t *testing.T) {
	var patches atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			patches.Add(1)
		}
		io.WriteString(w, `{"quantity":1,"type":"web"}`)
	}))
	defer api.Close()
	ev := &events{}
	s := New(Config{Platform: &Platform{URL: api.URL, Key: "k"}, DryRun: true}, ev, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	m := monitor.Monitor{ID: "m", App: "shop", ProcessType: "web", ActionType: monitor.ActionScale, Name: monitor.Latency,
		Op: monitor.GreaterOrEqual, Value: 500, Period: 1, MinQuantity: 1, MaxQuantity: 3}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s.Observe(m, t0, 1500, true)
	s.Observe(m, t0.Add(time.Minute), 1500, true)
	deadline := time.Now().Add(5 * time.Second)
	for len(ev.details()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := ev.details()
	if len(got) < 2 || !strings.HasPrefix(got[0], "dry run: would scale up web 1→3") || !strings.HasPrefix(got[1], "at max_quantity 3") {
		t.Fatalf("events %q", got)
	}
	if patches.Load() != 0 {
		t.Errorf("%d PATCHes in dry run", patches.Load())
	}
	if st := s.Status("shop"); !st.DryRun || len(st.Formations) != 1 || *st.Formations[0].Quantity != 3 {
		t.Errorf("status %+v", st)
	}
}

// TestTimeoutsAndMaintenanceAreUnavailable: a timeout, a 503 and a 429
// are "try again later"; a 403 is not.
func TestTimeoutsAndMaintenanceAreUnavailable(t *testing.T) {
	block := make(chan struct{})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/apps/slow/formation/web":
			<-block
		case "/apps/maint/formation/web":
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"id":"unavailable","message":"API in maintenance"}`)
		case "/apps/busy/formation/web":
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"id":"forbidden","message":"You do not have access to the app"}`)
		}
	}))
	defer api.Close()
	defer close(block) // before Close, which waits for the blocked handler
	p := &Platform{URL: api.URL, Key: "k"}
	for app, unavailable := range map[string]bool{"slow": true, "maint": true, "busy": true, "other": false} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := p.Scale(ctx, app, "web", 2)
		cancel()
		if err == nil || IsUnavailable(err) != unavailable {
			t.Errorf("%s: err %v, unavailable %v, want %v", app, err, IsUnavailable(err), unavailable)
		}
	}
}
