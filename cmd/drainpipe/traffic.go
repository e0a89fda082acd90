package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/drainpipe/drainpipe/gen"
)

// trafficFlags are the generator settings shared by demo and loadgen.
type trafficFlags struct {
	apps        int
	backfill    time.Duration
	rate        float64
	seed        uint64
	concurrency int
	batch       int
	// end, when set, is the end of the backfill window instead of now.
	end time.Time
}

func (tf *trafficFlags) register(fs *flag.FlagSet, backfill time.Duration) {
	fs.IntVar(&tf.apps, "apps", 3, "number of synthetic apps (the first 3 are storefront, api-gateway and billing-worker)")
	fs.DurationVar(&tf.backfill, "backfill", backfill, "history to send first, as fast as the server takes it")
	fs.Float64Var(&tf.rate, "rate", 1, "traffic multiplier per app (1 = about 31 requests/s over the 3 demo apps)")
	fs.Uint64Var(&tf.seed, "seed", 1, "seed of the synthetic traffic")
	fs.IntVar(&tf.concurrency, "concurrency", 8, "drain POSTs in flight")
	fs.IntVar(&tf.batch, "batch", 500, "most lines in one drain POST (Logplex sends up to 500)")
}

// runTraffic backfills [now-backfill, now) for fleet and then, when live,
// follows real time until ctx ends or, when liveFor > 0, for liveFor. It
// draws a live progress line on w. onLive, when not nil, is called once
// when the backfill is done and live traffic starts.
func runTraffic(ctx context.Context, fleet []gen.AppSpec, senders map[string]gen.Sender, tf trafficFlags, live bool, liveFor time.Duration, w io.Writer, onLive func()) (gen.Progress, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tty := isTerminal(w)
	var lastLive time.Time
	backfillDone := false
	opt := gen.Options{
		Seed: tf.seed, Concurrency: tf.concurrency, BatchMessages: tf.batch, Live: live, ProgressInterval: 250 * time.Millisecond,
		Progress: func(p gen.Progress) {
			switch {
			case p.Phase == "backfill" && tty:
				fmt.Fprintf(w, "\rbackfill %3.0f%%  %s lines sent  %s lines/s  ", 100*p.Backfilled, human(p.Sent), human(int64(float64(p.Sent)/max(p.Elapsed.Seconds(), 0.001))))
			case p.Phase == "backfill":
				if time.Since(lastLive) > 2*time.Second {
					fmt.Fprintf(w, "backfill %3.0f%%  %d lines sent\n", 100*p.Backfilled, p.Sent)
					lastLive = time.Now()
				}
			case !backfillDone:
				backfillDone = true
				fmt.Fprintf(w, "\rbackfill done: %d lines in %s (%s lines/s)%s\n", p.Sent, p.Elapsed.Round(100*time.Millisecond),
					human(int64(float64(p.Sent)/max(p.Elapsed.Seconds(), 0.001))), clearEOL)
				lastLive = time.Now()
				if liveFor > 0 {
					time.AfterFunc(liveFor, cancel)
				}
				if onLive != nil && live {
					onLive()
				}
			case p.Phase == "live" && tty:
				fmt.Fprintf(w, "\rlive: %s lines sent, %d failed, now at %s  ", human(p.Sent), p.Failed, p.Cursor.Format("15:04:05"))
			case p.Phase == "live" && time.Since(lastLive) > 30*time.Second:
				fmt.Fprintf(w, "live: %d lines sent, %d failed\n", p.Sent, p.Failed)
				lastLive = time.Now()
			}
		},
	}
	now := time.Now().UTC().Truncate(time.Second)
	if !tf.end.IsZero() {
		now = tf.end
	}
	p, err := gen.Run(ctx, fleet, senders, now.Add(-tf.backfill), now, opt)
	if live && errors.Is(err, context.Canceled) {
		err = nil
	}
	return p, err
}

const clearEOL = "\x1b[K"

// human formats a count as 1234, 12.3k or 4.56M.
func human(n int64) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
