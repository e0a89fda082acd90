package embedded

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drainpipe/drainpipe/sqlite"
	"github.com/drainpipe/drainpipe/supervise"
)

// The background check of the whole store, by default.
const (
	// DefaultScrubAfter lets the start-up catch-up go first.
	DefaultScrubAfter = time.Minute
	// DefaultScrubEvery reads the whole store once a day.
	DefaultScrubEvery = 24 * time.Hour
)

// scrubber runs sqlite.Store.Scrub now and then and reports what it found
// in /metrics, /healthz and the log.
type scrubber struct {
	st           *sqlite.Store
	log          *slog.Logger
	after, every time.Duration
	// damagedPartitions is how many partitions the last scrub found with
	// their structure damaged.
	damagedPartitions atomic.Int64
	fixed             *prometheus.CounterVec
}

func newScrubber(cfg Config, st *sqlite.Store, log *slog.Logger, reg prometheus.Registerer) *scrubber {
	sc := &scrubber{st: st, log: log, after: cfg.ScrubAfter, every: cfg.ScrubEvery}
	if sc.every <= 0 {
		sc.every = DefaultScrubEvery
	}
	if sc.after <= 0 {
		sc.after = DefaultScrubAfter
		if cfg.StoreCheck == StoreCheckOpen {
			sc.after = sc.every // the open has just checked everything
		}
	}
	sc.fixed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drainpipe_store_scrub_buckets_total",
		Help: "Stored buckets the background store check fixed, by action: quarantined (checksum failed; left out of every answer) or repaired (plain request counts rewritten from the checksummed bucket).",
	}, []string{"action"})
	reg.MustRegister(sc.fixed, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "drainpipe_store_damaged_partitions",
		Help: "Partition tables of metrics.db whose structure failed SQLite's check in the last background store check (see the log for the file, offset and what to do).",
	}, func() float64 { return float64(sc.damagedPartitions.Load()) }))
	return sc
}

// run waits sc.after, then scrubs every sc.every until ctx ends.
func (sc *scrubber) run(ctx context.Context, sup *supervise.Supervisor) error {
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(sc.after):
	}
	return sup.Every(ctx, "scrub", sc.every, func(ctx context.Context) error {
		start := time.Now()
		r, err := sc.st.Scrub(ctx)
		sc.fixed.WithLabelValues("quarantined").Add(float64(r.Quarantined))
		sc.fixed.WithLabelValues("repaired").Add(float64(r.Repaired))
		if err != nil {
			return err
		}
		sc.damagedPartitions.Store(int64(len(r.Damaged)))
		sc.log.Info("store scrubbed", "partitions", r.Partitions, "buckets", r.Buckets,
			"quarantined", r.Quarantined, "repaired", r.Repaired, "damaged_partitions", len(r.Damaged),
			"took", time.Since(start).Round(time.Millisecond))
		return nil
	})
}
