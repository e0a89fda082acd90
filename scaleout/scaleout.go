// Package scaleout runs one process of the scale-out mode: any of the
// ingest, aggregate and api roles, around Apache Kafka (the journal) and
// PostgreSQL (the store). It is what embedded is for the single process.
//
//   - ingest serves POST /drains/{app}: it authenticates the drain (from a
//     credential cache while the store is down), produces the batch to
//     Kafka and answers 200 once Kafka acknowledged it, 503 when Kafka
//     cannot take it so that Logplex retries.
//   - aggregate is a member of the aggregators' consumer group (see
//     kafka.Aggregator) and keeps the store's day partitions and
//     retention.
//   - api serves the JSON API and the dashboard from the store, 503 while
//     the store is unreachable.
//
// Every role serves /healthz and /metrics. A process starts whether or
// not Kafka and PostgreSQL can be reached, and keeps retrying them: the
// order in which the engines and the processes come up does not matter.
package scaleout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/kafka"
	"github.com/drainpipe/drainpipe/server"
	"github.com/drainpipe/drainpipe/supervise"
)

// Role is a part of drainpipe a process runs.
type Role string

// The roles.
const (
	RoleIngest    Role = "ingest"
	RoleAggregate Role = "aggregate"
	RoleAPI       Role = "api"
)

// Roles is a set of roles.
type Roles map[Role]bool

// ParseRoles reads a comma-separated role list; "all" means every role.
func ParseRoles(s string) (Roles, error) {
	r := Roles{}
	for _, name := range strings.Split(s, ",") {
		switch Role(strings.TrimSpace(name)) {
		case "all":
			r[RoleIngest], r[RoleAggregate], r[RoleAPI] = true, true, true
		case RoleIngest:
			r[RoleIngest] = true
		case RoleAggregate:
			r[RoleAggregate] = true
		case RoleAPI:
			r[RoleAPI] = true
		default:
			return nil, fmt.Errorf("unknown role %q: want ingest, aggregate, api, all or a comma-separated list", name)
		}
	}
	return r, nil
}

// String lists the roles in a fixed order.
func (r Roles) String() string {
	var out []string
	for _, x := range []Role{RoleIngest, RoleAggregate, RoleAPI} {
		if r[x] {
			out = append(out, string(x))
		}
	}
	return strings.Join(out, ",")
}

// Store is what the roles need from the store: the server's reads and app
// registry, and the partitioned sink the aggregators write to. The
// PostgreSQL store implements it.
type Store interface {
	server.Store
	aggregate.PartitionSink
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	Close() error
}

// maintainer is a store that creates its time partitions ahead and drops
// expired ones; the aggregate role calls it now and then.
type maintainer interface {
	Maintain(ctx context.Context, now time.Time) ([]string, error)
}

// Config configures one scale-out process.
type Config struct {
	Roles  Roles
	Listen string // host:port; port 0 picks a free one
	// TLS, when set, makes the node serve HTTPS (see tlsconf.Load).
	TLS       *tls.Config
	Kafka     kafka.Config
	Aggregate aggregate.Config
	// Server is the HTTP server's configuration; Dashboard, AdminToken
	// and PublicURL go in it.
	Server server.Config
	// Retention is the store's retention (nil: drainpipe.DefaultRetention),
	// which the API needs before the store is open. It must be what the
	// store is opened with.
	Retention map[drainpipe.Tier]time.Duration
	// CredentialRefresh is how long the ingest role trusts a verified
	// drain credential before asking the store again (default
	// server.DefaultCredentialRefresh).
	CredentialRefresh time.Duration
}

// Node is one running scale-out process.
type Node struct {
	URL      string
	Registry *prometheus.Registry

	log     *slog.Logger
	httpd   *http.Server
	journal *kafka.Journal
	store   *lazyStore
	kafka   *reach // produce and ping outcomes of the ingest role
	sup     *supervise.Supervisor
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errc    chan error
}

// Health checks: the cached outcomes are refreshed by a ping every
// probeInterval unless traffic refreshed them meanwhile.
const (
	probeInterval = 5 * time.Second
	probeTimeout  = 3 * time.Second
)

// Start starts the roles of cfg. The store is opened with open in the
// background and retried with backoff while it is unreachable (see
// OpenFunc); Start does not wait for it, nor for Kafka. Until the store is
// open the api role answers 503, the ingest role answers 503 to drains
// whose credentials it never verified, and the aggregate role waits.
// Close closes the store.
func Start(ctx context.Context, cfg Config, open OpenFunc, log *slog.Logger) (*Node, error) {
	if len(cfg.Roles) == 0 {
		return nil, errors.New("scaleout: no role to run")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	st := newLazyStore(cfg.Retention, log)
	n := &Node{Registry: reg, log: log, cancel: cancel, errc: make(chan error, 4), sup: supervise.New(log, reg), store: st}
	fail := func(err error) (*Node, error) {
		cancel()
		n.wg.Wait()
		n.sup.Wait()
		if n.journal != nil {
			n.journal.Close()
		}
		st.close()
		return nil, err
	}

	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		if err := st.open(runCtx, open, log); err != nil {
			n.errc <- err
		}
	}()
	go func() {
		defer n.wg.Done()
		if _, err := st.wait(runCtx); err == nil {
			st.reach.probe(runCtx, probeInterval, probeTimeout, st.ping)
		}
	}()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "drainpipe_store_up",
		Help: "1 when the store (PostgreSQL) answered at the last contact, 0 while it is unreachable or not yet open.",
	}, st.reach.up))

	if cfg.Roles[RoleIngest] || cfg.Roles[RoleAggregate] {
		// Creating the topic is idempotent; either role may come first.
		// Kafka being out of reach does not stop the process: ingest
		// answers 503 and the aggregator waits until it is back.
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ensureTopic(runCtx, cfg.Kafka, log)
		}()
	}
	// /healthz: a process that takes drains is healthy while it can
	// (Kafka reachable; SPEC: 200 while the process can accept drains),
	// so that a PostgreSQL outage never takes ingest out of a load
	// balancer's rotation. The api and aggregate roles are healthy while
	// the store is reachable (and the aggregator's flushes succeed).
	var health []func(context.Context) error
	var detail []func() []string
	if !cfg.Roles[RoleIngest] {
		health = append(health, st.reach.health)
	}
	if cfg.Roles[RoleAggregate] {
		aggCfg := cfg.Aggregate
		if aggCfg.MaxAge == 0 {
			aggCfg.MaxAge = st.Retention()[drainpipe.Tier1m]
		}
		if aggCfg.OK == nil {
			aggCfg.OK = n.sup.OK
		}
		agg, err := kafka.NewAggregator(aggCfg, cfg.Kafka, st, log, reg)
		if err != nil {
			return fail(err)
		}
		if !cfg.Roles[RoleIngest] {
			health = append(health, agg.Health)
		}
		// A panic or error restarts the group member after a backoff; it
		// resumes from the stored offsets. It joins the group only once
		// the store is open, leaving the partitions to aggregators that
		// can write them.
		n.sup.Go(runCtx, "aggregator", func(ctx context.Context) error {
			if _, err := st.wait(ctx); err != nil {
				return nil
			}
			return agg.Run(ctx)
		})
		n.sup.Go(runCtx, "maintenance", func(ctx context.Context) error {
			s, err := st.wait(ctx)
			if err != nil {
				return nil
			}
			if m, ok := s.(maintainer); ok {
				return n.maintain(ctx, m)
			}
			return nil
		})
	}

	scfg := cfg.Server
	scfg.NoDrains = !cfg.Roles[RoleIngest]
	scfg.NoAPI = !cfg.Roles[RoleAPI]
	if scfg.QueryCacheTTL == 0 {
		scfg.QueryCacheTTL = server.DefaultQueryCacheTTL
	}
	var sst server.Store = st
	var appender server.Appender
	if cfg.Roles[RoleIngest] {
		j, err := kafka.OpenJournal(cfg.Kafka, log)
		if err != nil {
			return fail(err)
		}
		n.journal = j
		n.kafka = newReach("kafka", log)
		appender = watchedAppender{j, n.kafka}
		sst = server.NewCredentialCache(st, cfg.CredentialRefresh)
		health = append(health, n.kafka.health)
		detail = append(detail, n.kafka.detail)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "drainpipe_kafka_up",
			Help: "1 when Kafka acknowledged the last produce or answered the last ping, 0 while it is unreachable.",
		}, n.kafka.up))
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.kafka.probe(runCtx, probeInterval, probeTimeout, j.Ping)
		}()
	}
	detail = append(detail, st.reach.detail)
	if scfg.Health == nil {
		scfg.Health = func(ctx context.Context) error {
			var errs []error
			for _, h := range health {
				errs = append(errs, h(ctx))
			}
			return errors.Join(errs...)
		}
	}
	if scfg.HealthDetail == nil {
		scfg.HealthDetail = func(context.Context) []string {
			var out []string
			for _, d := range detail {
				out = append(out, d()...)
			}
			return out
		}
	}
	srv := server.New(scfg, appender, sst, log, reg)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", cfg.Listen, err))
	}
	n.URL = "http://" + ln.Addr().String()
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
		n.URL = "https://" + ln.Addr().String()
	}
	n.httpd = srv.HTTPServer(cfg.Listen)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.httpd.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.errc <- fmt.Errorf("http server: %w", err)
		}
	}()
	log.Info("drainpipe serving", "url", n.URL, "roles", cfg.Roles.String(),
		"topic", cfg.Kafka.TopicName(), "group", cfg.Kafka.GroupName())
	return n, nil
}

// watchedAppender notes every produce's outcome in the Kafka reach, so
// that /healthz knows without asking.
type watchedAppender struct {
	j *kafka.Journal
	r *reach
}

func (w watchedAppender) Append(ctx context.Context, b drainpipe.Batch) (int64, bool, error) {
	seq, dup, err := w.j.Append(ctx, b)
	w.r.observe(err)
	return seq, dup, err
}

// ensureTopic creates the topic when missing, retrying every few seconds
// while Kafka cannot be reached.
func ensureTopic(ctx context.Context, kc kafka.Config, log *slog.Logger) {
	for {
		tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := kafka.EnsureTopic(tctx, kc, log)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("kafka: cannot make sure the topic exists; retrying", "topic", kc.TopicName(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// maintain creates the store's partitions ahead and drops expired ones,
// at start and every 10 minutes.
func (n *Node) maintain(ctx context.Context, m maintainer) error {
	return n.sup.Every(ctx, "maintenance", 10*time.Minute, func(ctx context.Context) error {
		dropped, err := m.Maintain(ctx, time.Now())
		if err == nil && len(dropped) > 0 {
			n.log.Info("retention dropped partitions", "tables", dropped)
		}
		return err
	})
}

// Err returns a channel that receives the first fatal error of a part.
func (n *Node) Err() <-chan error { return n.errc }

// Close stops serving (letting in-flight drains finish), makes the
// aggregator's last flush and leaves the group, and disconnects from
// Kafka and the store.
func (n *Node) Close() error {
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := n.httpd.Shutdown(shutdownCtx)
	n.cancel()
	n.wg.Wait()
	n.sup.Wait()
	if n.journal != nil {
		n.journal.Close()
	}
	return errors.Join(err, n.store.close())
}
