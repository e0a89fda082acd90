package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/monitor"
)

// TestAlertsCrashExactlyOnce runs drainpipe serve as a child process with
// a webhook receiver on loopback, drives a monitor through many firings,
// reminders and resolutions, and SIGKILLs the server at random moments
// along the way. Every notification the model expects arrives; none is
// ever sent twice as two different notifications (a repeat after a
// crash between delivery and its bookkeeping carries the same id, which
// the receiver drops).
func TestAlertsCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills a server; skipped with -short")
	}
	rcv := newReceiver(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := freePort(t)
	args := []string{"serve", "--data", dir, "--listen", addr, "--admin-token", adminToken, "--alert-webhook", rcv.URL}
	srv := startChildArgs(t, bin, args...)
	defer func() { srv.kill9() }()
	all := []*child{srv}
	base := "http://" + addr
	d := targetOf(t, createApp(t, base, "shop").DrainURL)
	createMonitor(t, base, adminToken, "shop", `{"action_type":"alert","name":"ERROR_RATE","value":0.3,"period":1,"notification_period":5}`)

	// 60 minutes: crossing for 7, healthy for 3, over and over; the model
	// of what must be notified follows the rules of docs/monitors.md.
	const minutes = 60
	bad := func(m int) bool { return m%10 < 7 }
	var want []noteKey
	firing, lastNote := false, 0
	for m := 0; m < minutes-1; m++ { // the last minute is never closed
		switch {
		case bad(m) && !firing:
			firing, lastNote = true, m
			want = append(want, noteKey{monitor.ErrorRate, monitor.NotifyFiring, m})
		case bad(m) && m-lastNote >= 5:
			lastNote = m
			want = append(want, noteKey{monitor.ErrorRate, monitor.NotifyReminder, m})
		case !bad(m) && firing:
			firing = false
			want = append(want, noteKey{monitor.ErrorRate, monitor.NotifyResolved, m})
		}
	}

	t0 := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
	hc := &http.Client{Timeout: 5 * time.Second}
	rng := rand.New(rand.NewPCG(7, 7))
	kills := 0
	for m := 0; m < minutes; m++ {
		at := t0.Add(time.Duration(m) * time.Minute)
		errPct := 0
		if bad(m) {
			errPct = 50
		}
		body := minuteOfTraffic(at, 100, errPct)
		for !d.post(t, hc, fmt.Sprintf("m-%d", m), body, 20) {
			time.Sleep(50 * time.Millisecond) // the server is restarting
		}
		if rng.IntN(6) == 0 {
			// Let the flush, the evaluation or a delivery get under way,
			// then kill it wherever it is.
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
			srv.kill9()
			kills++
			t.Logf("SIGKILL after minute %d", m)
			srv = startChildArgs(t, bin, args...)
			all = append(all, srv)
		}
	}
	t.Logf("%d SIGKILLs over %d minutes of traffic", kills, minutes)

	deadline := time.Now().Add(60 * time.Second)
	var got []noteKey
	for time.Now().Before(deadline) {
		got = uniqueNotes(t, rcv, t0)
		if len(got) >= len(want) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	got = uniqueNotes(t, rcv, t0)
	if !slices.Equal(got, want) {
		ev := query(t, base, adminToken, "/api/apps/shop/events", t0, t0.Add(2*time.Hour), "1m", nil)
		for _, e := range ev.Events {
			t.Logf("event %d %s", int(e.Time.Sub(t0)/time.Minute), e.Detail)
		}
		for i, c := range all {
			for _, l := range strings.Split(c.logs.String(), "\n") {
				if strings.Contains(l, "monitor") || strings.Contains(l, "aggregator starting") {
					t.Logf("child %d: %s", i, l)
				}
			}
		}
		t.Fatalf("notifications after %d crashes:\n got %+v\nwant %+v", kills, got, want)
	}
}

// uniqueNotes returns the receiver's notifications with repeats of an id
// dropped, sorted, and fails the test when two different ids carry the
// same notification.
func uniqueNotes(t *testing.T, r *receiver, t0 time.Time) []noteKey {
	t.Helper()
	byID := map[string]noteKey{}
	seen := map[noteKey]string{}
	for _, n := range r.notifications() {
		k := noteKey{n.Monitor.Name, n.Type, int(n.Minute.Sub(t0) / time.Minute)}
		if id, ok := seen[k]; ok && id != n.ID {
			t.Fatalf("%+v notified twice, as %s and %s", k, id, n.ID)
		}
		seen[k], byID[n.ID] = n.ID, k
	}
	var out []noteKey
	for _, k := range byID {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b noteKey) int { return a.minute - b.minute })
	return out
}
