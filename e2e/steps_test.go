package e2e

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/logplex"
)

// TestEveryStepIsFresh: lines of the current minute (not rolled up into
// the 10-minute and hourly tiers yet) and lines of a few minutes ago
// (merged into every tier at once) show at every step within SPEC's 10 s,
// with the same totals and the same largest latency.
func TestEveryStepIsFresh(t *testing.T) {
	n := startNode(t, t.TempDir())
	app := createApp(t, n.URL, "steps")
	now := time.Now().UTC()
	var body []byte
	for i := range 7 {
		at := now
		if i%2 == 1 {
			at = now.Add(-5 * time.Minute)
		}
		body = logplex.AppendMessage(body, at, "host", "heroku", "router",
			fmt.Sprintf("at=info method=GET path=/ dyno=web.1 connect=1ms service=%dms status=%d", 10*(i+1), []int{200, 503}[i%2]))
	}
	if code := postDrain(t, app.DrainURL, "steps-1", body, 7); code != 200 {
		t.Fatalf("drain: %d", code)
	}
	start, end := now.Add(-4*time.Hour).Truncate(2*time.Hour), now.Add(2*time.Hour)
	for _, step := range []string{"1m", "10m", "1h", "2h"} {
		eventually(t, "all 7 lines at step "+step, func() bool {
			s := query(t, n.URL, app.APIToken, "/api/apps/steps/router-metrics/status", start, end, step, nil)
			return sum(s.Data["200"]) == 4 && sum(s.Data["503"]) == 3
		})
		l := query(t, n.URL, app.APIToken, "/api/apps/steps/router-metrics/latency", start, end, step, nil)
		largest := math.Inf(-1)
		for _, v := range l.Data["latency.ms.max"] {
			if v != nil {
				largest = max(largest, *v)
			}
		}
		if largest != 70 {
			t.Fatalf("step %s: largest latency %v, want 70", step, largest)
		}
	}
}
