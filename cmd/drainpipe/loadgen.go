package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/drainpipe/drainpipe/drain"
	"github.com/drainpipe/drainpipe/gen"
)

func loadgenCommand(e *env) *ffcli.Command {
	var tf trafficFlags
	fs := e.flags("drainpipe loadgen")
	base := fs.String("url", "http://localhost:8080", "base URL of the drainpipe server, not a drain URL; DRAINPIPE_URL sets it too, but pipe reads that variable as a drain URL")
	token := fs.String("admin-token", "", "admin bearer token, to create the apps (required)")
	prefix := fs.String("prefix", "", "prefix for the generated app names, so runs against one server do not collide")
	duration := fs.Duration("duration", 0, "after the backfill, send live traffic for this long (0: stop after the backfill)")
	sinkAddr := fs.String("sink", "", "first send the same traffic to a read-and-discard receiver listening on this address (host:port, port 0 picks one), then to the server, and print the ratio of the two rates; without --admin-token only the receiver is measured")
	freshness := fs.Duration("freshness", 0, "with --duration, every this often during the live traffic send one router line to an app of its own and time it from the 2xx until the query API counts it (SPEC: within 10 s); prints the percentiles (0: no probe)")
	verify := fs.Duration("verify", 30*time.Second, "after the run, wait up to this long for the server's API to show every router line sent counted and none rejected (0: do not check)")
	tf.register(fs, time.Hour)
	cmd := &ffcli.Command{
		Name:       "loadgen",
		ShortUsage: "drainpipe loadgen --url URL --admin-token TOKEN [--sink ADDR] [--apps N] [--backfill 1h] [--duration 0]",
		ShortHelp:  "Send the demo's synthetic traffic to any drainpipe server, for benchmarks.",
		LongHelp: `Creates --apps apps on the server (through POST /api/apps) and sends
them the same synthetic Heroku traffic as "drainpipe demo", through the
real drain endpoint: first --backfill of history as fast as the server
accepts it, then, with --duration, live traffic. Prints lines/s at the
end, then checks through the API that every router line acknowledged was
counted and none was rejected (--verify; it assumes no other traffic
for these apps), and how long after the last 2xx it all was (the
aggregator's lag: a flush interval or two while it keeps up). --freshness measures how long a line takes from its
2xx to the query API while the live traffic runs. Environment: DRAINPIPE_URL, DRAINPIPE_ADMIN_TOKEN, ...

With --sink ADDR, loadgen first runs a read-and-discard HTTP receiver on
ADDR and sends it the same lines (same seed, same window), then sends
them to the server and prints the server's rate as a share of the
receiver's: the receiver is the ceiling that HTTP on this machine allows
the generator. Compare backfills only: --duration is not used for the
receiver.

--url is the server's base URL (http://HOST:PORT); the drain URLs come
from the apps it creates. "drainpipe pipe --url" reads the same
DRAINPIPE_URL as a drain URL, so set the variable per command when you
use both.`,
		FlagSet: fs,
		Options: envOptions(),
	}
	cmd.Exec = func(ctx context.Context, args []string) error {
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		if *token == "" && *sinkAddr == "" {
			return fmt.Errorf("loadgen: --admin-token (or DRAINPIPE_ADMIN_TOKEN) is required, unless --sink alone measures the receiver")
		}
		fleet := gen.ScaleRPS(gen.DemoFleet(tf.apps, tf.seed), tf.rate)
		for i := range fleet {
			fleet[i].Name = *prefix + fleet[i].Name
		}
		// Both runs send the same window, so the same lines.
		tf.end = time.Now().UTC().Truncate(time.Second)
		hc := drain.NewHTTPClient(64)
		var sinkRate float64
		if *sinkAddr != "" {
			p, err := runSink(ctx, e, *sinkAddr, fleet, hc, tf)
			if err != nil {
				return err
			}
			sinkRate = float64(p.Sent) / max(p.Elapsed.Seconds(), 0.001)
			if *token == "" {
				return nil
			}
		}
		api := &apiClient{base: *base, token: *token}
		counted := &routerCounter{n: map[string]int64{}}
		senders := make(map[string]gen.Sender, len(fleet))
		for i := range fleet {
			app, err := api.createApp(ctx, fleet[i].Name)
			if err != nil {
				return fmt.Errorf("loadgen: %w (use --prefix to pick fresh names)", err)
			}
			c, err := drain.NewClient(drain.Config{URL: app.DrainURL, HTTPClient: hc, MaxRetries: 20})
			if err != nil {
				return err
			}
			senders[app.Name] = &countingSender{app: app.Name, next: c, count: counted}
		}
		var probe *freshnessProbe
		if *freshness > 0 && *duration > 0 {
			app, err := api.createApp(ctx, *prefix+"freshness-probe")
			if err != nil {
				return fmt.Errorf("loadgen: %w (use --prefix to pick fresh names)", err)
			}
			c, err := drain.NewClient(drain.Config{URL: app.DrainURL, HTTPClient: hc, MaxRetries: 20})
			if err != nil {
				return err
			}
			probe = &freshnessProbe{api: api, drain: c, app: app.Name, every: *freshness, timeout: time.Minute, log: e.stderr}
		}
		fmt.Fprintf(e.stderr, "created %d apps on %s\n", len(fleet), *base)
		trafficCtx, stopTraffic := context.WithCancel(ctx)
		defer stopTraffic()
		probeDone := make(chan error, 1)
		var onLive func()
		if probe != nil {
			live := make(chan struct{})
			var once sync.Once
			onLive = func() { once.Do(func() { close(live) }) }
			go func() {
				select {
				case <-live:
					probeDone <- probe.run(trafficCtx)
				case <-trafficCtx.Done():
					probeDone <- nil
				}
			}()
		}
		p, err := runTraffic(trafficCtx, fleet, senders, tf, *duration > 0, *duration, e.stderr, onLive)
		sentAt := time.Now()
		stopTraffic()
		if probe != nil {
			err = joinErr(err, <-probeDone)
			probe.report(e.stdout)
		}
		rate := float64(p.Sent) / max(p.Elapsed.Seconds(), 0.001)
		fmt.Fprintf(e.stdout, "drainpipe: sent %d lines in %d batches (%d lines failed) in %s: %.0f lines/s\n",
			p.Sent, p.Batches, p.Failed, p.Elapsed.Round(time.Millisecond), rate)
		if err != nil {
			return err
		}
		if sinkRate > 0 && *duration == 0 {
			fmt.Fprintf(e.stdout, "ratio drainpipe/sink: %.3f (target >= 0.333)\n", rate/sinkRate)
		}
		if *verify > 0 {
			var lines int64
			for _, n := range counted.n {
				lines += n
			}
			from := tf.end.Add(-tf.backfill)
			if err := verifyCounted(ctx, api, counted.n, from, time.Now().Add(time.Minute), *verify); err != nil {
				return fmt.Errorf("loadgen: %w", err)
			}
			// How long after the last 2xx the API counted everything: the
			// aggregator's lag behind ingest (a flush interval or two when
			// it keeps up; it would grow with the run if it did not).
			lag := time.Since(sentAt)
			fmt.Fprintf(e.stdout, "verified through the API: all %d router lines acknowledged were counted, none rejected; counted %s after the last 2xx\n", lines, lag.Round(10*time.Millisecond))
		}
		return nil
	}
	return cmd
}

// runSink sends the traffic to a read-and-discard receiver on addr and
// prints its rate.
func runSink(ctx context.Context, e *env, addr string, fleet []gen.AppSpec, hc *http.Client, tf trafficFlags) (gen.Progress, error) {
	sk, err := startSink(addr)
	if err != nil {
		return gen.Progress{}, fmt.Errorf("loadgen: %w", err)
	}
	counted := &routerCounter{n: map[string]int64{}}
	senders := make(map[string]gen.Sender, len(fleet))
	for _, a := range fleet {
		c, err := drain.NewClient(drain.Config{URL: sk.drainURL(a.Name), HTTPClient: hc, MaxRetries: 20})
		if err != nil {
			sk.close()
			return gen.Progress{}, err
		}
		senders[a.Name] = &countingSender{app: a.Name, next: c, count: counted}
	}
	fmt.Fprintf(e.stderr, "sink listening on %s\n", sk.ln.Addr())
	p, err := runTraffic(ctx, fleet, senders, tf, false, 0, e.stderr, nil)
	err = joinErr(err, sk.close())
	fmt.Fprintf(e.stdout, "sink: sent %d lines in %d batches (%d lines failed, %d bytes read) in %s: %.0f lines/s\n",
		p.Sent, p.Batches, p.Failed, sk.bytes.Load(), p.Elapsed.Round(time.Millisecond), float64(p.Sent)/max(p.Elapsed.Seconds(), 0.001))
	if err == nil && p.Failed > 0 {
		err = fmt.Errorf("loadgen: %d lines failed against the sink: %s", p.Failed, p.LastError)
	}
	return p, err
}
