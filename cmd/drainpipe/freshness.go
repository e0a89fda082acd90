package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"time"

	"github.com/drainpipe/drainpipe/drain"
	"github.com/drainpipe/drainpipe/logplex"
)

// freshnessProbe measures SPEC §4's freshness ("within 10 seconds of its
// 2xx, a line shows in the query API") while the server is under load:
// every interval it sends one router line, stamped now, to an app of its
// own, and polls the query API (step 1m, the current minute included)
// until the app's request count includes it. One sample is the time from
// the POST's 2xx to the first answer that counts the line. Probes run one
// at a time; lines reach the store in journal order, so a count at least
// the number of lines acknowledged means the latest one shows.
type freshnessProbe struct {
	api     *apiClient
	drain   *drain.Client
	app     string
	every   time.Duration
	timeout time.Duration // a probe not seen by then is counted as missed
	log     io.Writer     // when not nil, gets one line per probe

	samples []time.Duration
	missed  int
}

// SPECFreshness is SPEC §4's bound on the time from a line's 2xx to its
// appearance in the query API.
const SPECFreshness = 10 * time.Second

// run probes until ctx ends.
func (p *freshnessProbe) run(ctx context.Context) error {
	began := time.Now()
	start := began.UTC().Truncate(time.Minute)
	var acked int64
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	for {
		now := time.Now().UTC()
		msg := `at=info method=GET path="/freshness-probe" host=probe.example request_id=` + drain.NewFrameID() +
			` fwd="127.0.0.1" dyno=web.1 connect=0ms service=1ms status=200 bytes=0 protocol=https`
		body := logplex.AppendMessage(nil, now, "host", "heroku", "router", msg)
		if err := p.drain.Send(ctx, body, 1); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("freshness probe: send: %w", err)
		}
		acked++
		ackedAt := time.Now()
		seen, err := p.waitCounted(ctx, start, acked, ackedAt.Add(p.timeout))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		took := time.Since(ackedAt)
		if seen {
			p.samples = append(p.samples, took)
		} else {
			p.missed++
		}
		if p.log != nil {
			fmt.Fprintf(p.log, "freshness probe %d at +%s: seen %v after %s\n", acked, ackedAt.Sub(began).Round(time.Second), seen, took.Round(10*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// waitCounted polls the probe app's request count over [start, now+2m) at
// step 1m until it reaches want or deadline passes.
func (p *freshnessProbe) waitCounted(ctx context.Context, start time.Time, want int64, deadline time.Time) (bool, error) {
	for {
		q := "?process_type=web&step=1m&start_time=" + url.QueryEscape(start.Format(time.RFC3339)) +
			"&end_time=" + url.QueryEscape(time.Now().UTC().Add(2*time.Minute).Truncate(time.Minute).Format(time.RFC3339))
		var status seriesAnswer
		if err := p.api.getJSON(ctx, "/api/apps/"+url.PathEscape(p.app)+"/router-metrics/status"+q, &status); err != nil {
			if ctx.Err() != nil {
				return false, nil
			}
			return false, fmt.Errorf("freshness probe: query: %w", err)
		}
		if sumSeries(status, func(string) bool { return true }) >= want {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// report prints the samples' percentiles and how many exceeded SPEC's
// bound.
func (p *freshnessProbe) report(w io.Writer) {
	s := slices.Clone(p.samples)
	slices.Sort(s)
	if len(s) == 0 {
		fmt.Fprintf(w, "freshness: no probe seen (%d missed the %s timeout)\n", p.missed, p.timeout)
		return
	}
	pct := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	over := len(s) - sortedCountAtMost(s, SPECFreshness)
	fmt.Fprintf(w, "freshness (2xx to counted in the API, step 1m): %d probes, p50 %s, p90 %s, max %s; %d over %s, %d not seen within %s\n",
		len(s), pct(0.5).Round(10*time.Millisecond), pct(0.9).Round(10*time.Millisecond), s[len(s)-1].Round(10*time.Millisecond),
		over, SPECFreshness, p.missed, p.timeout)
}

// sortedCountAtMost returns how many of the sorted durations are ≤ d.
func sortedCountAtMost(s []time.Duration, d time.Duration) int {
	n, _ := slices.BinarySearch(s, d+1)
	return n
}
