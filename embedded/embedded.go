// Package embedded runs all of drainpipe in one process on the embedded
// default: the segment-file journal (or the SQLite one) and the SQLite
// store in a data directory, the aggregator, the retention loop and the
// HTTP server.
package embedded

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/atomicfile"
	"github.com/drainpipe/drainpipe/internal/tlsconf"
	"github.com/drainpipe/drainpipe/journal"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/server"
	"github.com/drainpipe/drainpipe/sqlite"
	"github.com/drainpipe/drainpipe/supervise"
)

// Config configures a single-process drainpipe.
type Config struct {
	DataDir    string
	Listen     string // host:port; port 0 picks a free one
	AdminToken string
	// AdminTokenFile, when set, is where AdminToken came from; the token
	// can then be rotated over the API (POST /api/admin-token), the new
	// one replacing the file's content atomically.
	AdminTokenFile string
	PublicURL      string
	Retention      map[drainpipe.Tier]time.Duration // nil: sqlite.DefaultRetention
	Aggregate      aggregate.Config
	Server         server.Config // AdminToken and PublicURL are filled from above
	Dashboard      http.Handler
	// TLSCert and TLSKey are PEM files; when both are set the node serves
	// HTTPS (Heroku drains must be https:// URLs).
	TLSCert, TLSKey string
	// WrapSink, when not nil, wraps the store as the aggregator's sink;
	// tests use it to inject a slow or failing store.
	WrapSink func(aggregate.Sink) aggregate.Sink
	// Alerts configures monitors, notifications and autoscaling.
	Alerts AlertsConfig
	// Journal is JournalFile (the default when empty) or JournalSQLite.
	Journal string
	// JournalCompress has the file journal store bodies S2-packed.
	JournalCompress bool
	// JournalSerialCommit has the file journal sync each group before it
	// writes the next (journal.Options.SerialCommit).
	JournalSerialCommit bool
	// JournalAppendOnly has the file journal extend each segment as it
	// appends to it instead of writing segments ahead
	// (journal.Options.WriteAhead, the default).
	JournalAppendOnly bool
	// JournalSegmentSize is the file journal's segment size
	// (journal.Options.SegmentSize; 0 for its default, 64 MiB).
	JournalSegmentSize int64
	// StoreCheck is StoreCheckBackground (the default when empty) or
	// StoreCheckOpen.
	StoreCheck string
	// ScrubAfter is how long after start the first background check of
	// the whole store begins (default DefaultScrubAfter; with
	// StoreCheckOpen, ScrubEvery); ScrubEvery is how often it runs
	// (default DefaultScrubEvery).
	ScrubAfter, ScrubEvery time.Duration
}

// How much of metrics.db is checked before the node serves
// (Config.StoreCheck).
const (
	// StoreCheckBackground checks the file's length and the tables every
	// write touches at start, in a time that does not grow with the days
	// stored, and every partition in the background (sqlite.Store.Scrub).
	StoreCheckBackground = "background"
	// StoreCheckOpen checks the whole store (SQLite's structural check
	// and every bucket) before serving, refusing a file with structural
	// damage anywhere; start-up time grows with the store.
	StoreCheckOpen = "open"
)

// The embedded journals (Config.Journal).
const (
	// JournalFile keeps records in checksummed segment files under
	// DATA/journal, frame ids in DATA/journal.db (package journal).
	JournalFile = "file"
	// JournalSQLite keeps records and frame ids in DATA/journal.db.
	JournalSQLite = "sqlite"
)

// Journal is what the node needs of its journal.
type Journal interface {
	drainpipe.Journal
	Notify() <-chan struct{}
	LastSeq() int64
	Quarantined() int64
}

// Node is a running single-process drainpipe.
type Node struct {
	URL      string // base URL the server listens on
	Store    *sqlite.Store
	Journal  Journal
	Registry *prometheus.Registry

	log    *slog.Logger
	httpd  *http.Server
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sup    *supervise.Supervisor
	errc   chan error
}

// Start opens the data directory, replays the journal into the store and
// starts serving. Stop it with Close.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Node, error) {
	if cfg.StoreCheck != "" && cfg.StoreCheck != StoreCheckBackground && cfg.StoreCheck != StoreCheckOpen {
		return nil, fmt.Errorf("store check %q: want %s or %s", cfg.StoreCheck, StoreCheckBackground, StoreCheckOpen)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	st, err := sqlite.OpenStoreWith(ctx, filepath.Join(cfg.DataDir, "metrics.db"),
		sqlite.StoreOptions{Retention: cfg.Retention, CheckAtOpen: cfg.StoreCheck == StoreCheckOpen}, log)
	if err != nil {
		return nil, err
	}
	j, err := openJournal(ctx, cfg, st, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := alignPosition(ctx, j, st, log); err != nil {
		st.Close()
		j.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	sup := supervise.New(log, reg)
	al, err := startAlerts(ctx, cfg, st, log, reg, sup)
	if err != nil {
		st.Close()
		j.Close()
		return nil, err
	}
	aggCfg := cfg.Aggregate
	aggCfg.OnFlush = al.eval.Observe
	if aggCfg.MaxAge == 0 {
		aggCfg.MaxAge = st.Retention()[drainpipe.Tier1m]
	}
	if aggCfg.OK == nil {
		aggCfg.OK = sup.OK
	}

	var sink aggregate.Sink = st
	if cfg.WrapSink != nil {
		sink = cfg.WrapSink(st)
	}
	agg := aggregate.New(aggCfg, j, sink, j.Notify(), log, reg)
	backlog := func() int64 { return max(0, j.LastSeq()-agg.Flushed()) }
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "drainpipe_journal_backlog_records",
		Help: "Journal records acknowledged but not yet in the store (the aggregator is behind by this much).",
	}, func() float64 { return float64(backlog()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "drainpipe_journal_quarantined_records",
		Help: "Journal records whose checksum failed, copied to quarantine (DATA/journal/quarantine, or journal.db's journal_quarantine) since start (their batches count as rejected.corrupt).",
	}, func() float64 { return float64(j.Quarantined()) }))
	if fj, ok := j.(*journal.Journal); ok {
		for kind, n := range map[string]func(journal.RollCounts) int64{
			"created": func(c journal.RollCounts) int64 { return c.Created },
			"retired": func(c journal.RollCounts) int64 { return c.Retired },
			"zeroed":  func(c journal.RollCounts) int64 { return c.Zeroed },
		} {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "drainpipe_journal_segments_begun_total",
				Help:        "Journal segments begun since start, by what each was made of: a new file appended to (created), a trimmed segment's file written over, or a spare an earlier process left (retired), or a spare of zeroes written ahead (zeroed). See docs/architecture.md.",
				ConstLabels: prometheus.Labels{"from": kind},
			}, func() float64 { return float64(n(fj.Rolls())) }))
		}
	}

	scfg := cfg.Server
	scfg.AdminToken = cfg.AdminToken
	if cfg.AdminTokenFile != "" && scfg.SaveAdminToken == nil {
		file := cfg.AdminTokenFile
		scfg.SaveAdminToken = func(token string) error { return atomicfile.Write(file, []byte(token+"\n"), 0o600) }
	}
	scfg.PublicURL = cfg.PublicURL
	if cfg.Dashboard != nil {
		scfg.Dashboard = cfg.Dashboard
	}
	if scfg.QueryCacheTTL == 0 {
		scfg.QueryCacheTTL = server.DefaultQueryCacheTTL
	}
	if scfg.Health == nil {
		scfg.Health = agg.Health
	}
	sc := newScrubber(cfg, st, log, reg)
	if scfg.HealthDetail == nil {
		scfg.HealthDetail = func(context.Context) []string {
			out := []string{
				fmt.Sprintf("journal_backlog_records %d", backlog()),
				fmt.Sprintf("journal_last_seq %d", j.LastSeq()),
				fmt.Sprintf("store_position %d", agg.Flushed()),
			}
			if d := sc.damagedPartitions.Load(); d > 0 {
				out = append(out, fmt.Sprintf("store_damaged_partitions %d", d))
			}
			return out
		}
	}
	scfg.AppRoutes = al.appRoutes(scfg.AppRoutes)
	srv := server.New(scfg, j, st, log, reg)

	var tlsConfig *tls.Config
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		if tlsConfig, err = tlsconf.Load(cfg.TLSCert, cfg.TLSKey); err != nil {
			st.Close()
			j.Close()
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		st.Close()
		j.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	scheme := "http://"
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		scheme = "https://"
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n := &Node{
		URL: scheme + ln.Addr().String(), Store: st, Journal: j, Registry: reg,
		log: log, ln: ln, cancel: cancel, errc: make(chan error, 3),
		httpd: srv.HTTPServer(cfg.Listen), sup: sup,
	}
	sup.Go(runCtx, "aggregator", agg.Run)
	sup.Go(runCtx, "retention", n.retention)
	sup.Go(runCtx, "scrub", func(ctx context.Context) error { return sc.run(ctx, sup) })
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.httpd.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.errc <- fmt.Errorf("http server: %w", err)
		}
	}()
	al.run(runCtx, sup, n.URL)
	log.Info("drainpipe serving", "url", n.URL, "data", cfg.DataDir)
	return n, nil
}

// alignPosition handles a journal that is behind the store: its files
// (DATA/journal/ and journal.db, or journal.db alone with --journal
// sqlite) were deleted (a new, empty journal) or restored from an older
// copy. The
// store's position then names records this journal never had, and every
// new record (numbered from the journal's last one) would be skipped as
// already applied: acknowledged lines silently lost. Whatever this journal
// holds up to its last record was applied already (the store is past
// it), so the store's position is moved back to that record, and the loss
// of the old journal's frame ids (a Logplex retry of a batch acknowledged
// before the swap would count again) is reported.
func alignPosition(ctx context.Context, j Journal, st *sqlite.Store, log *slog.Logger) error {
	pos, err := st.Position(ctx)
	if err != nil {
		return err
	}
	last := j.LastSeq()
	if last >= pos {
		return nil
	}
	log.Error("the journal is behind metrics.db: it was replaced or restored from an older copy; the store's journal position is moved back to the journal's last record so that new records are counted (frame ids of batches acknowledged before the swap are forgotten if journal.db was replaced too)",
		"journal_last_seq", last, "store_position", pos)
	if err := st.Apply(ctx, &metrics.Flush{Position: last}); err != nil {
		return fmt.Errorf("move the store's journal position back to %d: %w", last, err)
	}
	return nil
}

// Err returns a channel that receives the first fatal error of a part.
func (n *Node) Err() <-chan error { return n.errc }

// retention drops expired partitions now and then, reporting what it did.
func (n *Node) retention(ctx context.Context) error {
	return n.sup.Every(ctx, "retention", 10*time.Minute, func(ctx context.Context) error {
		dropped, err := n.Store.DropExpired(ctx, time.Now())
		if err == nil && len(dropped) > 0 {
			n.log.Info("retention dropped partitions", "tables", dropped)
		}
		return err
	})
}

// Close stops serving (letting in-flight drains finish), makes a last
// flush and closes the databases.
func (n *Node) Close() error {
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := n.httpd.Shutdown(shutdownCtx)
	n.cancel()
	n.wg.Wait()
	n.sup.Wait()
	return errors.Join(err, n.Journal.Close(), n.Store.Close())
}
