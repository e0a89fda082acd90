package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/drain"
)

// TestLogShuttleFormat posts batches laid out exactly as Heroku's
// log-shuttle sends them (its default frame fields, "- -" before the
// message, X-Request-Id and no Logplex-Frame-Id, drop counts in a header)
// and checks they are accepted and counted, and that a retry with the same
// X-Request-Id is counted once.
func TestLogShuttleFormat(t *testing.T) {
	n := startNode(t, t.TempDir())
	app := createApp(t, n.URL, "shuttled")
	u, _ := url.Parse(app.DrainURL)
	user := u.User.Username()
	secret, _ := u.User.Password()
	u.User = nil
	now := time.Now().UTC()

	post := func(body []byte, msgs int, requestID string, drops int) int {
		t.Helper()
		h := drain.LogShuttleHeaders(msgs, requestID, drops, 0, "v0.18.0")
		req, _ := http.NewRequest("POST", u.String(), nil)
		req.Header = h
		req.SetBasicAuth(user, secret)
		code, _ := doReq(t, req, body)
		return code
	}

	// App output with the tool's default fields (app "token", proc "shuttle").
	var body []byte
	for i := 0; i < 20; i++ {
		body = drain.AppendLogShuttleFrame(body, now, drain.LogShuttleFields{}, fmt.Sprintf("count#signups=1 measure#render=%dms\n", 10+i))
	}
	if code := post(body, 20, "6b1f6f4e-0000-4000-8000-000000000001", 3); code != http.StatusOK {
		t.Fatalf("log-shuttle batch: %d", code)
	}
	// The same batch again, as log-shuttle retries it after a transport
	// error: same X-Request-Id.
	if code := post(body, 20, "6b1f6f4e-0000-4000-8000-000000000001", 3); code != http.StatusOK {
		t.Fatalf("log-shuttle retry: %d", code)
	}
	// Router lines relayed with -appname heroku -procid router.
	var rbody []byte
	for i := 0; i < 15; i++ {
		rbody = drain.AppendLogShuttleFrame(rbody, now, drain.LogShuttleFields{AppName: "heroku", ProcID: "router"},
			fmt.Sprintf("at=info method=GET path=/ host=x dyno=web.1 connect=1ms service=%dms status=200 bytes=5\n", 20+i))
	}
	if code := post(rbody, 15, "6b1f6f4e-0000-4000-8000-000000000002", 0); code != http.StatusOK {
		t.Fatalf("log-shuttle router batch: %d", code)
	}

	start, end := now.Add(-time.Hour).Truncate(time.Hour), now.Add(time.Hour)
	eventually(t, "log-shuttle lines counted", func() bool {
		s := query(t, n.URL, adminToken, "/api/apps/shuttled/router-metrics/status", start, end, "1h", nil)
		code, _ := do(t, "GET", n.URL+"/api/apps/shuttled/custom-metrics/signups", adminToken, nil, nil)
		return sum(s.Data["200"]) == 15 && code == http.StatusOK
	})
	time.Sleep(500 * time.Millisecond)
	c := query(t, n.URL, adminToken, "/api/apps/shuttled/custom-metrics/signups", start, end, "1h", nil)
	if got := sum(c.Data["sum"]); got != 20 {
		t.Errorf("signups = %v, want 20 (the retry must count once)", got)
	}
	m := query(t, n.URL, adminToken, "/api/apps/shuttled/custom-metrics/render", start, end, "1h", nil)
	if got := sum(m.Data["count"]); got != 20 {
		t.Errorf("render measures = %v, want 20", got)
	}
	loss := query(t, n.URL, adminToken, "/api/apps/shuttled/log-loss", start, end, "1h", nil)
	if got := sum(loss.Data["drop_count"]); got != 3 {
		t.Errorf("drop_count = %v, want 3 from Logplex-Drop-Count", got)
	}
}
