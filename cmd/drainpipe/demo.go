package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/drainpipe/drainpipe/drain"
	"github.com/drainpipe/drainpipe/embedded"
	"github.com/drainpipe/drainpipe/gen"
)

func demoCommand(e *env) *ffcli.Command {
	var sf serveFlags
	var tf trafficFlags
	fs := e.flags("drainpipe demo")
	sf.register(fs, "", "127.0.0.1:8080")
	tf.register(fs, 24*time.Hour)
	cmd := &ffcli.Command{
		Name:       "demo",
		ShortUsage: "drainpipe demo [--listen ADDR] [--data DIR] [--apps N] [--backfill 24h]",
		ShortHelp:  "Run a server with realistic synthetic traffic for a few apps.",
		LongHelp: `Starts drainpipe (as "serve" does) and feeds it synthetic Heroku traffic
through the real drain endpoint: storefront, api-gateway and
billing-worker, with web and worker process types of 2-6 dynos each,
log-normal latencies, a deploy, a restart, an H12 timeout spike, an R14
memory episode, a crash, scaling and log loss. The last --backfill of
history is sent first, as fast as the server takes it, then traffic
follows real time. Prints the dashboard URL and the admin token.

Without --data the demo keeps its data in a fresh temporary directory.
It listens on 127.0.0.1:8080 unless --listen (or DRAINPIPE_LISTEN) says
otherwise.`,
		FlagSet: fs,
		Options: envOptions(),
	}
	cmd.Exec = func(ctx context.Context, args []string) error {
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		if err := sf.checkRetention(); err != nil {
			return err
		}
		if sf.data == "" {
			dir, err := os.MkdirTemp("", "drainpipe-demo-")
			if err != nil {
				return fmt.Errorf("demo: temp dir: %w", err)
			}
			sf.data = dir
		}
		n, cfg, stopProfile, err := sf.start(ctx, e)
		if err != nil {
			return err
		}
		defer stopProfile()
		fleet := gen.ScaleRPS(gen.DemoFleet(tf.apps, tf.seed), tf.rate)
		senders, err := demoSenders(ctx, n, fleet)
		if err != nil {
			n.Close()
			return err
		}
		fmt.Fprintf(e.stdout, "drainpipe demo with %d apps, data in %s\n\n  URL: %s/\n  Admin token: %s\n\nOpen the URL and sign in with the token. Ctrl-C stops.\n\n",
			len(fleet), cfg.DataDir, n.URL, cfg.AdminToken)
		trafficErr := make(chan error, 1)
		go func() {
			_, err := runTraffic(ctx, fleet, senders, tf, true, 0, e.stderr)
			trafficErr <- err
		}()
		select {
		case <-ctx.Done():
			err = <-trafficErr
		case err = <-trafficErr:
		case err = <-n.Err():
		}
		return joinErr(err, n.Close())
	}
	return cmd
}

// demoSenders creates the fleet's apps in the store and a drain client for
// each, posting to the node's own drain endpoint with the app's
// credentials, as Logplex would.
func demoSenders(ctx context.Context, n *embedded.Node, fleet []gen.AppSpec) (map[string]gen.Sender, error) {
	senders := make(map[string]gen.Sender, len(fleet))
	hc := drain.NewHTTPClient(64)
	for _, a := range fleet {
		_, cred, err := n.Store.CreateApp(ctx, a.Name)
		if err != nil {
			return nil, fmt.Errorf("demo: %w (use a fresh --data directory)", err)
		}
		u, err := url.Parse(n.URL + "/drains/" + a.Name)
		if err != nil {
			return nil, fmt.Errorf("demo: drain URL: %w", err)
		}
		u.User = url.UserPassword(cred.DrainUser, cred.DrainSecret)
		c, err := drain.NewClient(drain.Config{URL: u.String(), HTTPClient: hc, MaxRetries: 20})
		if err != nil {
			return nil, err
		}
		senders[a.Name] = c
	}
	return senders, nil
}
