package main

import (
	"context"
	"fmt"
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
	tf.register(fs, time.Hour)
	cmd := &ffcli.Command{
		Name:       "loadgen",
		ShortUsage: "drainpipe loadgen --url URL --admin-token TOKEN [--apps N] [--backfill 1h] [--duration 0]",
		ShortHelp:  "Send the demo's synthetic traffic to any drainpipe server, for benchmarks.",
		LongHelp: `Creates --apps apps on the server (through POST /api/apps) and sends
them the same synthetic Heroku traffic as "drainpipe demo", through the
real drain endpoint: first --backfill of history as fast as the server
accepts it, then, with --duration, live traffic. Prints lines/s at the
end. Environment: DRAINPIPE_URL, DRAINPIPE_ADMIN_TOKEN, ...

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
		if *token == "" {
			return fmt.Errorf("loadgen: --admin-token (or DRAINPIPE_ADMIN_TOKEN) is required")
		}
		fleet := gen.ScaleRPS(gen.DemoFleet(tf.apps, tf.seed), tf.rate)
		api := &apiClient{base: *base, token: *token}
		hc := drain.NewHTTPClient(64)
		senders := make(map[string]gen.Sender, len(fleet))
		for i := range fleet {
			fleet[i].Name = *prefix + fleet[i].Name
			app, err := api.createApp(ctx, fleet[i].Name)
			if err != nil {
				return fmt.Errorf("loadgen: %w (use --prefix to pick fresh names)", err)
			}
			c, err := drain.NewClient(drain.Config{URL: app.DrainURL, HTTPClient: hc, MaxRetries: 20})
			if err != nil {
				return err
			}
			senders[app.Name] = c
		}
		fmt.Fprintf(e.stderr, "created %d apps on %s\n", len(fleet), *base)
		p, err := runTraffic(ctx, fleet, senders, tf, *duration > 0, *duration, e.stderr)
		fmt.Fprintf(e.stdout, "sent %d lines in %d batches (%d lines failed) in %s: %.0f lines/s\n",
			p.Sent, p.Batches, p.Failed, p.Elapsed.Round(time.Millisecond), float64(p.Sent)/max(p.Elapsed.Seconds(), 0.001))
		return err
	}
	return cmd
}
