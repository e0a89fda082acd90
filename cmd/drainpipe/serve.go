package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/atomicfile"
	"github.com/drainpipe/drainpipe/embedded"
	"github.com/drainpipe/drainpipe/server"
	"github.com/drainpipe/drainpipe/web"
)

// serveFlags are the flags shared by serve and demo.
type serveFlags struct {
	data       string
	listen     string
	adminToken string
	publicURL  string
	role       string
	keep1m     time.Duration
	keep10m    time.Duration
	keep1h     time.Duration
	tlsCert    string
	tlsKey     string
	cpuProfile string
	journal    string
	compress   bool
	serial     bool
	appendOnly bool
	segSize    int64
	storeCheck string
	alerts     alertFlags
	limits     server.Config // the drain limits set by flags
}

func (f *serveFlags) register(fs *flag.FlagSet, defaultData, defaultListen string) {
	fs.StringVar(&f.data, "data", defaultData, "data directory (journal/, journal.db, metrics.db, admin-token)")
	fs.StringVar(&f.journal, "journal", embedded.JournalFile, "embedded journal: file (checksummed segment files in DATA/journal, frame ids in DATA/journal.db) or sqlite (all in DATA/journal.db); records left by the other are moved over or refused at start (docs/architecture.md)")
	fs.BoolVar(&f.compress, "journal-compress", false, "file journal: store bodies of 4 KiB and more S2-compressed (fewer bytes written, more CPU; see docs/BENCHMARKS.md)")
	fs.BoolVar(&f.serial, "journal-serial-commit", false, "file journal: sync each group of appends before writing the next, instead of writing it while that sync runs (a little less CPU, a little longer waits; see docs/BENCHMARKS.md)")
	fs.BoolVar(&f.appendOnly, "journal-append-only", false, "file journal: extend each segment file as records are appended, instead of writing segments ahead (a file of zeroes, or a trimmed segment's file reused: up to three spare files of a segment's size beside the segments) so that appends overwrite written blocks, whose fdatasync is about half as long (see docs/BENCHMARKS.md)")
	fs.Int64Var(&f.segSize, "journal-segment-size", 64<<20, "file journal: bytes per segment file, at least 65536; the journal deletes (or reuses) whole segments once the store has their records, so smaller segments free disk sooner and roll more often")
	fs.StringVar(&f.storeCheck, "store-check", embedded.StoreCheckBackground, "embedded store: background (at start only the file's length and the tables every write touches are checked, so start-up time does not grow with the days stored; a background check reads every partition a minute after start and then daily) or open (check all of metrics.db before serving, refusing structural damage anywhere; start-up grows with the store)")
	listenHelp := "address to listen on"
	if defaultListen == "" {
		listenHelp = "address to listen on (default :$PORT when PORT is set, else :8080)"
	}
	fs.StringVar(&f.listen, "listen", defaultListen, listenHelp)
	fs.StringVar(&f.adminToken, "admin-token", "", "admin bearer token; generated and kept in the data directory when empty")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate file: serve HTTPS (Heroku drain URLs must be https://), with --tls-key; a comma-separated list serves several (an ECDSA P-256 one is preferred, RSA kept for old clients)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key file for --tls-cert (a comma-separated list in the same order)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile to this file until the process stops (go tool pprof reads it)")
	fs.StringVar(&f.publicURL, "public-url", "", "base URL drains are reached at, for the drain URLs drainpipe prints (default: from the request)")
	f.alerts.register(fs)
	fs.Int64Var(&f.limits.MaxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest drain POST body accepted; larger ones get 413")
	fs.IntVar(&f.limits.MaxConcurrentDrains, "max-concurrent-drains", server.DefaultMaxConcurrentDrains, "drain POSTs handled at once; more get 503 with Retry-After (Logplex retries)")
	fs.DurationVar(&f.limits.HeaderTimeout, "header-timeout", server.DefaultHeaderTimeout, "time a client may take to send a request's headers")
	fs.DurationVar(&f.limits.ReadTimeout, "read-timeout", server.DefaultReadTimeout, "time a client may take to send a whole request, body included")
	fs.DurationVar(&f.keep1m, "retention-1m", 72*time.Hour, "how long 1-minute buckets are kept (at least 1h; lines older than this are dropped)")
	fs.DurationVar(&f.keep10m, "retention-10m", 35*24*time.Hour, "how long 10-minute buckets are kept (at least --retention-1m)")
	fs.DurationVar(&f.keep1h, "retention-1h", 400*24*time.Hour, "how long hourly buckets are kept (at least --retention-10m)")
}

// checkRetention rejects retentions that would lose data at once or make
// coarse steps emptier than fine ones: each is at least an hour, and a
// coarser tier is kept at least as long as the finer one it is built from.
func (f *serveFlags) checkRetention() error {
	for _, r := range []struct {
		name string
		d    time.Duration
	}{{"retention-1m", f.keep1m}, {"retention-10m", f.keep10m}, {"retention-1h", f.keep1h}} {
		if r.d < time.Hour {
			return fmt.Errorf("--%s %s: must be at least 1h", r.name, r.d)
		}
	}
	if f.keep10m < f.keep1m {
		return fmt.Errorf("--retention-10m %s is shorter than --retention-1m %s: 10-minute buckets must be kept at least as long as 1-minute ones", f.keep10m, f.keep1m)
	}
	if f.keep1h < f.keep10m {
		return fmt.Errorf("--retention-1h %s is shorter than --retention-10m %s: hourly buckets must be kept at least as long as 10-minute ones", f.keep1h, f.keep10m)
	}
	return nil
}

// listenAddr is --listen, or :$PORT when PORT is set, else :8080.
func (f *serveFlags) listenAddr() string {
	if f.listen != "" {
		return f.listen
	}
	if port := os.Getenv("PORT"); port != "" {
		return ":" + port
	}
	return ":8080"
}

// retention is the retention of each tier from the flags.
func (f *serveFlags) retention() map[drainpipe.Tier]time.Duration {
	return map[drainpipe.Tier]time.Duration{
		drainpipe.Tier1m: f.keep1m, drainpipe.Tier10m: f.keep10m, drainpipe.Tier1h: f.keep1h,
	}
}

// minSegmentSize is the smallest --journal-segment-size: a segment holds
// at least a few drain POSTs of the usual size.
const minSegmentSize = 64 << 10

func (f *serveFlags) config() (embedded.Config, error) {
	if err := f.checkRetention(); err != nil {
		return embedded.Config{}, err
	}
	if f.segSize < minSegmentSize {
		return embedded.Config{}, fmt.Errorf("--journal-segment-size %d: want at least %d bytes", f.segSize, minSegmentSize)
	}
	listen := f.listenAddr()
	token, file, err := adminToken(f.data, f.adminToken)
	if err != nil {
		return embedded.Config{}, err
	}
	cfg := embedded.Config{
		DataDir: f.data, Listen: listen, AdminToken: token, AdminTokenFile: file, PublicURL: f.publicURL,
		Retention: f.retention(),
		Dashboard: web.Handler(),
		TLSCert:   f.tlsCert, TLSKey: f.tlsKey,
		Server:  f.serverConfig(),
		Journal: f.journal, JournalCompress: f.compress, JournalSerialCommit: f.serial, JournalAppendOnly: f.appendOnly,
		JournalSegmentSize: f.segSize,
		StoreCheck:         f.storeCheck,
	}
	if err := f.alerts.config(&cfg); err != nil {
		return embedded.Config{}, err
	}
	return cfg, nil
}

// serverConfig is the server configuration the flags set: the drain
// limits (the admin token, URL and dashboard are filled in by the caller).
func (f *serveFlags) serverConfig() server.Config {
	return server.Config{
		MaxBodyBytes: f.limits.MaxBodyBytes, MaxConcurrentDrains: f.limits.MaxConcurrentDrains,
		HeaderTimeout: f.limits.HeaderTimeout, ReadTimeout: f.limits.ReadTimeout,
	}
}

// adminToken returns the configured token, or the one kept in the data
// directory (and that file's path), creating it on first start: 32 random
// bytes, written atomically, readable by the owner only.
func adminToken(dataDir, configured string) (token, file string, err error) {
	if configured != "" {
		return configured, "", nil
	}
	path := filepath.Join(dataDir, "admin-token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), path, nil
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", "", fmt.Errorf("create data dir: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", "", fmt.Errorf("generate admin token: %w", err)
	}
	token = "dpk_" + base64.RawURLEncoding.EncodeToString(raw)
	if err := atomicfile.Write(path, []byte(token+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("keep admin token: %w", err)
	}
	return token, path, nil
}

func serveCommand(e *env) *ffcli.Command {
	var f serveFlags
	var sf scaleFlags
	fs := e.flags("drainpipe serve")
	f.register(fs, "drainpipe-data", "")
	sf.register(fs)
	fs.StringVar(&f.role, "role", "all", "which parts to run: all, or ingest, aggregate, api, or a comma-separated list of them (those need --kafka-url and --database-url)")
	cmd := &ffcli.Command{
		Name:       "serve",
		ShortUsage: "drainpipe serve [--data DIR] [--listen ADDR] [--admin-token TOKEN] [--role ROLES --kafka-url URL --database-url URL]",
		ShortHelp:  "Run drainpipe: drain ingest, aggregation, store, API and dashboard, in one process or as scale-out roles.",
		LongHelp: `Without Kafka and PostgreSQL, runs everything in one process on the
embedded default: a journal of checksummed segment files and a SQLite
store in --data, the aggregator, retention, the JSON API and the
dashboard.

With --kafka-url and --database-url (or Heroku's KAFKA_URL and
DATABASE_URL), runs the scale-out mode: --role ingest takes drains into
Kafka, --role aggregate folds them into PostgreSQL as a consumer group,
--role api serves the API and dashboard; --role all (or a list such as
api,ingest) runs several in one process. Each scales on its own; see
docs/deploy.md. KAFKA_TRUSTED_CERT, KAFKA_CLIENT_CERT,
KAFKA_CLIENT_CERT_KEY (kafka+ssl://) and KAFKA_PREFIX are read from the
environment as Heroku Kafka sets them. The api role needs --admin-token.
A scale-out process starts whether or not Kafka and PostgreSQL answer
and keeps retrying them (start-up order does not matter): until they
do, drains and the API answer 503 with Retry-After, and /healthz says
which engine it waits for.

Environment: DRAINPIPE_<FLAG> for every flag (DRAINPIPE_DATA,
DRAINPIPE_LISTEN, DRAINPIPE_ADMIN_TOKEN, DRAINPIPE_ROLE, ...); without a
listen address, :$PORT when PORT is set, else :8080.

Attach an app with "drainpipe apps create NAME" and then
"heroku drains:add <printed drain URL> -a NAME".`,
		FlagSet: fs,
		Options: envOptions(),
	}
	cmd.Exec = func(ctx context.Context, args []string) error {
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		if sf.resolve() || f.role != "all" {
			return serveScaleOut(ctx, e, &f, &sf)
		}
		n, cfg, stopProfile, err := f.start(ctx, e)
		if err != nil {
			return err
		}
		defer stopProfile()
		fmt.Fprintf(e.stdout, "drainpipe %s serving on %s (data in %s)\n", version, n.URL, cfg.DataDir)
		if f.adminToken == "" {
			fmt.Fprintf(e.stdout, "Admin token: kept in %s\n", filepath.Join(cfg.DataDir, "admin-token"))
		}
		select {
		case <-ctx.Done():
		case err = <-n.Err():
		}
		return joinErr(err, n.Close())
	}
	return cmd
}

// start builds the node's configuration, starts the CPU profile when
// asked, and starts the node. The returned function stops the profile.
func (f *serveFlags) start(ctx context.Context, e *env) (*embedded.Node, embedded.Config, func(), error) {
	cfg, err := f.config()
	if err != nil {
		return nil, cfg, nil, err
	}
	stopProfile, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return nil, cfg, nil, err
	}
	n, err := embedded.Start(ctx, cfg, e.log)
	if err != nil {
		stopProfile()
		return nil, cfg, nil, err
	}
	return n, cfg, stopProfile, nil
}

// startCPUProfile starts writing a CPU profile to path ("" does nothing)
// and returns the function that stops it.
func startCPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func joinErr(a, b error) error {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	return fmt.Errorf("%w; %w", a, b)
}
