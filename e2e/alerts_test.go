package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/embedded"
	"github.com/drainpipe/drainpipe/logplex"
	"github.com/drainpipe/drainpipe/monitor"
	"github.com/drainpipe/drainpipe/notify"
)

// receiver is a webhook receiver on a loopback port that keeps every
// notification it accepted. While down it answers 503.
type receiver struct {
	URL string

	mu       sync.Mutex
	down     bool
	got      []monitor.Notification
	keys     []string // Idempotency-Key headers, as received
	attempts int
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{URL: "http://" + ln.Addr().String() + "/hook"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.attempts++
		if r.down {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var n monitor.Notification
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.got = append(r.got, n)
		r.keys = append(r.keys, req.Header.Get("Idempotency-Key"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

func (r *receiver) notifications() []monitor.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// startAlertNode runs the embedded stack with one webhook destination and
// fast retries. The grace is long so that, with traffic in the past, only
// the next minute's data closes a minute (the test's pauses never do).
func startAlertNode(t *testing.T, hook string) *embedded.Node {
	t.Helper()
	n, err := embedded.Start(context.Background(), embedded.Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: adminToken,
		Aggregate: aggregate.Config{FlushInterval: 100 * time.Millisecond},
		Alerts: embedded.AlertsConfig{
			Evaluator:    monitor.Config{Grace: 10 * time.Minute, Tick: 100 * time.Millisecond, PublicURL: "https://dp.example.com"},
			Destinations: []notify.Destination{{Name: "webhook", Sender: &notify.Webhook{URL: hook}}},
			Notify:       notify.Config{MinBackoff: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, Poll: 100 * time.Millisecond},
		},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// minuteOfTraffic is 20 router lines of web in minute at: every request
// takes serviceMS, and errPct of them answer 500.
func minuteOfTraffic(at time.Time, serviceMS, errPct int) []byte {
	var body []byte
	for i := 0; i < 20; i++ {
		status := 200
		if i*100/20 < errPct {
			status = 500
		}
		body = logplex.AppendMessage(body, at.Add(time.Duration(i)*2*time.Second), "host", "heroku", "router", fmt.Sprintf(
			`at=info method=GET path=/ host=shop.herokuapp.com request_id=r%d fwd="10.0.0.1" dyno=web.%d connect=1ms service=%dms status=%d bytes=10 protocol=https`,
			i, 1+i%2, serviceMS, status))
	}
	return body
}

func createMonitor(t *testing.T, base, token, app, body string) monitor.View {
	t.Helper()
	code, resp := do(t, "POST", base+"/api/apps/"+app+"/monitors", token, nil, []byte(body))
	if code != http.StatusCreated {
		t.Fatalf("create monitor %s: %d %s", body, code, resp)
	}
	var v monitor.View
	if err := json.Unmarshal(resp, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// waitFor waits until the receiver has want notifications, then a
// little longer to catch any extra one.
func waitFor(t *testing.T, r *receiver, want int) []monitor.Notification {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(r.notifications()) < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	return r.notifications()
}

type noteKey struct {
	name   monitor.Name
	typ    monitor.NotificationType
	minute int
}

func keysOf(ns []monitor.Notification, t0 time.Time) []noteKey {
	var out []noteKey
	for _, n := range ns {
		out = append(out, noteKey{n.Monitor.Name, n.Type, int(n.Minute.Sub(t0) / time.Minute)})
	}
	slices.SortFunc(out, func(a, b noteKey) int {
		if a.name != b.name {
			if a.name < b.name {
				return -1
			}
			return 1
		}
		return a.minute - b.minute
	})
	return out
}

// TestAlertsEndToEnd drives traffic that crosses a LATENCY and an
// ERROR_RATE threshold, first for fewer minutes than the sensitivity and
// then for longer, through real drains into a real node, and checks what
// a webhook receiver on loopback gets: nothing for the short crossing,
// exactly one firing per monitor, reminders at the notification period,
// exactly one resolved after recovery, and no duplicate after late data
// for a closed minute.
func TestAlertsEndToEnd(t *testing.T) {
	rcv := newReceiver(t)
	n := startAlertNode(t, rcv.URL)
	base := n.URL
	shop := createApp(t, base, "shop")

	// The app's own token may manage its monitors.
	lat := createMonitor(t, base, shop.APIToken, "shop",
		`{"action_type":"alert","name":"LATENCY","op":"GREATER_OR_EQUAL","value":500,"period":5,"notification_period":5}`)
	errs := createMonitor(t, base, adminToken, "shop",
		`{"action_type":"alert","name":"ERROR_RATE","value":0.2,"period":5,"notification_period":5}`)
	if lat.ProcessType != "web" || !lat.IsActive || errs.Op != monitor.GreaterOrEqual {
		t.Fatalf("defaults not applied: %+v %+v", lat.Monitor, errs.Monitor)
	}

	t0 := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Hour)
	// Minute by minute: 3 healthy, 4 crossing (fewer than the period of
	// 5), 3 healthy, 15 crossing, 7 healthy. The last healthy minute's
	// successor closes it.
	type phase struct {
		minutes, serviceMS, errPct int
	}
	plan := []phase{{3, 100, 0}, {4, 900, 50}, {3, 100, 0}, {15, 900, 50}, {7, 100, 0}}
	m := 0
	post := func(at time.Time, body []byte) {
		t.Helper()
		if code := postDrain(t, shop.DrainURL, fmt.Sprintf("f-%d", at.UnixNano()), body, 20); code != http.StatusOK {
			t.Fatalf("drain POST: %d", code)
		}
	}
	for _, p := range plan {
		for i := 0; i < p.minutes; i++ {
			at := t0.Add(time.Duration(m) * time.Minute)
			post(at, minuteOfTraffic(at, p.serviceMS, p.errPct))
			m++
			if m == 8 {
				// The short crossing (minutes 3-6) is closed by now:
				// it must not notify.
				time.Sleep(500 * time.Millisecond)
				if got := rcv.notifications(); len(got) != 0 {
					t.Fatalf("crossing for fewer minutes than the period notified: %+v", keysOf(got, t0))
				}
			}
		}
	}
	// Minutes 10-24 cross: firing when the 5th minute closes (14),
	// reminders every 5 minutes (19, 24), resolved at 25.
	var want []noteKey
	for _, name := range []monitor.Name{monitor.ErrorRate, monitor.Latency} {
		want = append(want, noteKey{name, monitor.NotifyFiring, 14}, noteKey{name, monitor.NotifyReminder, 19},
			noteKey{name, monitor.NotifyReminder, 24}, noteKey{name, monitor.NotifyResolved, 25})
	}
	got := waitFor(t, rcv, len(want))
	if !slices.Equal(keysOf(got, t0), want) {
		t.Fatalf("notifications:\n got %+v\nwant %+v", keysOf(got, t0), want)
	}
	ids := map[string]bool{}
	for i, n := range got {
		if ids[n.ID] || n.ID == "" || rcv.keys[i] != n.ID {
			t.Errorf("notification %d: id %q (Idempotency-Key %q) missing or repeated", i, n.ID, rcv.keys[i])
		}
		ids[n.ID] = true
		if n.App != "shop" || n.DashboardURL == "" || n.Text == "" {
			t.Errorf("notification %d lacks app, link or text: %+v", i, n)
		}
	}
	firing := got[slices.IndexFunc(got, func(n monitor.Notification) bool { return n.Type == monitor.NotifyFiring })]
	wantLink := monitor.DashboardURL("https://dp.example.com", "shop", "web", t0.Add(10*time.Minute-30*time.Minute), t0.Add(14*time.Minute+30*time.Minute))
	if firing.DashboardURL != wantLink || !firing.Since.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("firing link %s since %s, want %s since minute 10", firing.DashboardURL, firing.Since, wantLink)
	}

	// Late data for closed minute 8 (healthy when it closed) turns it into
	// a crossing minute: re-evaluated, nothing changes for the receiver.
	post(t0.Add(8*time.Minute+50*time.Second), minuteOfTraffic(t0.Add(8*time.Minute+50*time.Second), 5000, 100))
	at := t0.Add(time.Duration(m) * time.Minute)
	post(at, minuteOfTraffic(at, 100, 0))
	time.Sleep(1500 * time.Millisecond)
	if got := rcv.notifications(); len(got) != len(want) {
		t.Fatalf("late data for a closed minute notified again: %+v", keysOf(got[len(want):], t0))
	}

	// Every transition is an alert event in the events API.
	s := query(t, base, adminToken, "/api/apps/shop/events", t0, t0.Add(time.Hour), "1m", nil)
	var trail []string
	for _, e := range s.Events {
		if e.Kind == "alert" && e.Code == "LATENCY" {
			trail = append(trail, fmt.Sprintf("%d %s", int(e.Time.Sub(t0)/time.Minute), firstWords(e.Detail, 2)))
		}
	}
	wantTrail := []string{"3 LATENCY pending", "7 LATENCY ok", "10 LATENCY pending", "14 LATENCY firing", "25 LATENCY resolved"}
	if !slices.Equal(trail, wantTrail) {
		t.Errorf("LATENCY alert events:\n got %q\nwant %q", trail, wantTrail)
	}

	// The monitor's evaluation is visible in the API.
	code, body := do(t, "GET", base+"/api/apps/shop/monitors/"+lat.ID, shop.APIToken, nil, nil)
	var v monitor.View
	if code != http.StatusOK || json.Unmarshal(body, &v) != nil || v.Evaluation == nil || v.Evaluation.Status != monitor.StatusResolved {
		t.Errorf("GET monitor: %d %s", code, body)
	}
}

func firstWords(s string, n int) string {
	words := 0
	for i, r := range s {
		if r == ' ' || r == ':' {
			words++
			if words == n {
				return s[:i]
			}
		}
	}
	return s
}

// TestWebhookOutage keeps the receiver down (503) while a monitor fires,
// reminds, resolves and fires again, then brings it back: every
// notification arrives afterwards, in order, exactly once.
func TestWebhookOutage(t *testing.T) {
	rcv := newReceiver(t)
	rcv.setDown(true)
	n := startAlertNode(t, rcv.URL)
	shop := createApp(t, n.URL, "shop")
	createMonitor(t, n.URL, adminToken, "shop", `{"action_type":"alert","name":"ERROR_RATE","value":0.25,"period":1,"notification_period":5}`)

	t0 := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
	bad := map[int]bool{}
	for m := 2; m <= 12; m++ {
		bad[m] = true
	}
	bad[14], bad[15] = true, true
	for m := 0; m <= 17; m++ {
		at := t0.Add(time.Duration(m) * time.Minute)
		errPct := 0
		if bad[m] {
			errPct = 50
		}
		if code := postDrain(t, shop.DrainURL, fmt.Sprintf("f-%d", m), minuteOfTraffic(at, 100, errPct), 20); code != http.StatusOK {
			t.Fatalf("drain POST: %d", code)
		}
	}
	// Down: attempts are made (and fail) while nothing is accepted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rcv.mu.Lock()
		attempts := rcv.attempts
		rcv.mu.Unlock()
		if attempts >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d delivery attempts while the receiver was down", attempts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	rcv.mu.Lock()
	attempts := rcv.attempts
	rcv.mu.Unlock()
	if got := rcv.notifications(); len(got) != 0 || attempts > 20 {
		t.Fatalf("while down: %d accepted, %d attempts (want 0 accepted, retries bounded by backoff)", len(got), attempts)
	}
	// Evaluation did not wait for the receiver: every transition is
	// already an event.
	ev := query(t, n.URL, adminToken, "/api/apps/shop/events", t0, t0.Add(time.Hour), "1m", nil)
	var alerts []string
	for _, e := range ev.Events {
		if e.Kind == "alert" {
			alerts = append(alerts, fmt.Sprintf("%d %s", int(e.Time.Sub(t0)/time.Minute), firstWords(e.Detail, 2)))
		}
	}
	wantEvents := []string{"2 ERROR_RATE pending", "2 ERROR_RATE firing", "13 ERROR_RATE resolved", "14 ERROR_RATE pending", "14 ERROR_RATE firing", "16 ERROR_RATE resolved"}
	if !slices.Equal(alerts, wantEvents) {
		t.Errorf("alert events while the receiver was down:\n got %q\nwant %q", alerts, wantEvents)
	}
	rcv.setDown(false)

	want := []noteKey{
		{monitor.ErrorRate, monitor.NotifyFiring, 2}, {monitor.ErrorRate, monitor.NotifyReminder, 7},
		{monitor.ErrorRate, monitor.NotifyReminder, 12}, {monitor.ErrorRate, monitor.NotifyResolved, 13},
		{monitor.ErrorRate, monitor.NotifyFiring, 14}, {monitor.ErrorRate, monitor.NotifyResolved, 16},
	}
	got := waitFor(t, rcv, len(want))
	var inOrder []noteKey // as received, not sorted
	ids := map[string]bool{}
	for _, n := range got {
		inOrder = append(inOrder, noteKey{n.Monitor.Name, n.Type, int(n.Minute.Sub(t0) / time.Minute)})
		if ids[n.ID] {
			t.Errorf("notification %s received twice", n.ID)
		}
		ids[n.ID] = true
	}
	if !slices.Equal(inOrder, want) {
		t.Fatalf("after the outage, received:\n got %+v\nwant %+v", inOrder, want)
	}
}

// TestAlertsSurviveRestart fires a monitor, restarts the node on the same
// data directory, and checks that the monitor carries on: no second
// firing, a reminder on schedule, one resolved.
func TestAlertsSurviveRestart(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	start := func() *embedded.Node {
		n, err := embedded.Start(context.Background(), embedded.Config{
			DataDir: dir, Listen: "127.0.0.1:0", AdminToken: adminToken,
			Aggregate: aggregate.Config{FlushInterval: 100 * time.Millisecond},
			Alerts: embedded.AlertsConfig{
				Evaluator:    monitor.Config{Grace: 10 * time.Minute, Tick: 100 * time.Millisecond},
				Destinations: []notify.Destination{{Name: "webhook", Sender: &notify.Webhook{URL: rcv.URL}}},
				Notify:       notify.Config{MinBackoff: 50 * time.Millisecond, Poll: 100 * time.Millisecond},
			},
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := start()
	shop := createApp(t, n.URL, "shop")
	createMonitor(t, n.URL, adminToken, "shop", `{"action_type":"alert","name":"LATENCY","value":500,"period":1,"notification_period":5}`)
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	drainURL := shop.DrainURL
	send := func(from, to, serviceMS int) {
		for m := from; m <= to; m++ {
			at := t0.Add(time.Duration(m) * time.Minute)
			if code := postDrain(t, drainURL, fmt.Sprintf("r-%d", m), minuteOfTraffic(at, serviceMS, 0), 20); code != http.StatusOK {
				t.Fatalf("drain POST: %d", code)
			}
		}
	}
	send(0, 0, 100)
	send(1, 3, 900) // firing at 1; minute 3 is still open
	if got := waitFor(t, rcv, 1); len(got) != 1 {
		_, body := do(t, "GET", n.URL+"/api/apps/shop/monitors", adminToken, nil, nil)
		ev := query(t, n.URL, adminToken, "/api/apps/shop/events", t0, t0.Add(time.Hour), "1m", nil)
		t.Fatalf("before the restart: %d notifications; monitors %s; events %+v", len(got), body, ev.Events)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	old := strings.TrimPrefix(n.URL, "http://")
	n = start()
	defer n.Close()
	drainURL = strings.Replace(shop.DrainURL, old, strings.TrimPrefix(n.URL, "http://"), 1)
	send(4, 7, 900) // reminder at 6
	send(8, 9, 100) // resolved at 8
	want := []noteKey{{monitor.Latency, monitor.NotifyFiring, 1}, {monitor.Latency, monitor.NotifyReminder, 6}, {monitor.Latency, monitor.NotifyResolved, 8}}
	if got := keysOf(waitFor(t, rcv, len(want)), t0); !slices.Equal(got, want) {
		t.Fatalf("across a restart:\n got %+v\nwant %+v", got, want)
	}
}
