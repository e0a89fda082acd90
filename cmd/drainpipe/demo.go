package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/drain"
	"github.com/drainpipe/drainpipe/embedded"
	"github.com/drainpipe/drainpipe/gen"
)

func demoCommand(e *env) *ffcli.Command {
	var sf serveFlags
	var tf trafficFlags
	fs := e.flags("drainpipe demo")
	sf.register(fs, "", "127.0.0.1:8080")
	tf.register(fs, 7*24*time.Hour)
	cmd := &ffcli.Command{
		Name:       "demo",
		ShortUsage: "drainpipe demo [--listen ADDR] [--data DIR] [--apps N] [--backfill 168h]",
		ShortHelp:  "Run a server with realistic synthetic traffic for a few apps.",
		LongHelp: `Starts drainpipe (as "serve" does) and feeds it synthetic Heroku traffic
through the real drain endpoint: storefront, api-gateway and
billing-worker, with web and worker process types of 2-6 dynos each,
log-normal latencies, a deploy, a restart, an H12 timeout spike, an R14
memory episode, a crash, scaling and log loss. Prints the dashboard URL
and the admin token.

First the last --backfill of history (7 days by default) is made and
folded straight into the store with the drain path's own framing,
parsing and fold, but without HTTP and the journal: it is synthetic
history, not drained data anyone was promised is kept (see
docs/BENCHMARKS.md). Then the traffic follows real time through the
drain endpoint, starting where the history ends.

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
			end := time.Now().UTC().Truncate(time.Second)
			if err := demoHistory(ctx, e, n, fleet, tf.seed, end.Add(-tf.backfill), end); err != nil {
				trafficErr <- err
				return
			}
			// The drain path takes over where the history ends: first the
			// seconds the import took, then real time.
			live := tf
			live.end = time.Now().UTC().Truncate(time.Second)
			live.backfill = live.end.Sub(end)
			_, err := runTraffic(ctx, fleet, senders, live, true, 0, e.stderr, nil)
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

// demoHistory imports the fleet's history for [from, to) into the node's
// store and reports its progress on stderr.
func demoHistory(ctx context.Context, e *env, n *embedded.Node, fleet []gen.AppSpec, seed uint64, from, to time.Time) error {
	if !to.After(from) {
		return nil
	}
	r := newHistoryReport(e.stderr, isTerminal(e.stderr))
	lines, err := importHistory(ctx, n.Store, fleet, seed, from, to, n.Store.Retention()[drainpipe.Tier1m], 0, r.progress)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	r.done(to.Sub(from), len(fleet), lines)
	return nil
}

// historyReport prints the history import's progress: on a terminal one
// line rewritten after every chunk, elsewhere a line every 2 seconds,
// each with the share of chunks stored, the lines and lines/s so far;
// then the total, the time it took and lines/s.
type historyReport struct {
	w           io.Writer
	tty         bool
	start, last time.Time
}

func newHistoryReport(w io.Writer, tty bool) *historyReport {
	now := time.Now()
	return &historyReport{w: w, tty: tty, start: now, last: now}
}

func (r *historyReport) progress(done, total int, lines int64) {
	now := time.Now()
	if !r.tty && now.Sub(r.last) < 2*time.Second {
		return
	}
	r.last = now
	pct, rate := 100*float64(done)/float64(total), human(int64(float64(lines)/max(now.Sub(r.start).Seconds(), 0.001)))
	if r.tty {
		fmt.Fprintf(r.w, "\rhistory %3.0f%%  %s lines  %s lines/s  ", pct, human(lines), rate)
		return
	}
	fmt.Fprintf(r.w, "history %3.0f%%  %d lines  %s lines/s\n", pct, lines, rate)
}

func (r *historyReport) done(span time.Duration, apps int, lines int64) {
	took := time.Since(r.start)
	cr, eol := "", ""
	if r.tty {
		cr, eol = "\r", clearEOL
	}
	fmt.Fprintf(r.w, "%shistory imported: %s of %d apps, %d lines in %s (%s lines/s)%s\n", cr, span, apps, lines,
		took.Round(100*time.Millisecond), human(int64(float64(lines)/max(took.Seconds(), 0.001))), eol)
}
