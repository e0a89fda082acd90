// Package server is drainpipe's HTTP front: the Logplex drain endpoint
// (POST /drains/{app}), the JSON query API of SPEC §3 under /api/, the
// health and self-metrics endpoints, and an optional dashboard at /.
//
// The drain endpoint only authenticates, frames and journals: a 2xx is sent
// once the batch is durable in the drainpipe.Journal, and nothing is parsed
// on the request path beyond checking that the body can be framed. The
// query API reads merged buckets from a Store.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drainpipe/drainpipe"
)

// DefaultMaxBodyBytes is the default limit on a drain POST body. Logplex
// sends batches of at most about 1 MB; log-shuttle's defaults (500 lines
// of up to 10,000 bytes) can approach 5 MB in the worst case, which is
// rare. 4 MiB leaves room for both while bounding memory at
// MaxConcurrentDrains × 4 MiB.
const DefaultMaxBodyBytes = 4 << 20

// DefaultQueryCacheTTL is the QueryCacheTTL drainpipe runs with: short
// against SPEC's 10 s freshness, long enough for one page's requests.
const DefaultQueryCacheTTL = time.Second

// DefaultHeaderTimeout and DefaultReadTimeout are the default slow-client
// limits: 5 s to send the headers, 30 s for the whole request.
const (
	DefaultHeaderTimeout = 5 * time.Second
	DefaultReadTimeout   = 30 * time.Second
)

// DefaultMaxConcurrentDrains is the default number of drain POSTs handled
// at once; more are answered 503 at once so that Logplex retries later.
const DefaultMaxConcurrentDrains = 64

const (
	// summaryTTL is how long the fleet summary of GET /api/apps is reused.
	summaryTTL = 5 * time.Second
	// appendTimeout bounds one journal append. It is detached from the
	// request context so that a client hanging up does not abort an append
	// half-way; a retry with the same Frame-Id is a no-op anyway.
	appendTimeout = 10 * time.Second
	// maxAPIBody bounds the JSON body of POST /api/apps.
	maxAPIBody = 4 << 10
)

// Config configures a Server. The zero value is usable: no admin token
// (only per-app tokens can read), drain URLs derived from each request,
// and default limits.
type Config struct {
	// AdminToken is the bearer token that may do everything. Empty means
	// there is no admin access over HTTP.
	AdminToken string
	// SaveAdminToken, when not nil, makes the admin token rotatable over
	// POST /api/admin-token: it must durably keep the new token (where
	// the process reads it at its next start) before the old one stops
	// working. Nil answers rotation requests with 409.
	SaveAdminToken func(token string) error
	// PublicURL is the base URL drain URLs are built on
	// ("https://drainpipe.example.com"). Empty means derived from the
	// request: its Host, and https when the request came over TLS or with
	// X-Forwarded-Proto: https.
	PublicURL string
	// MaxBodyBytes limits a drain POST body; larger bodies get 413.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxConcurrentDrains bounds drain POSTs in flight; beyond it the
	// answer is 503 with Retry-After. Zero means DefaultMaxConcurrentDrains.
	MaxConcurrentDrains int
	// HeaderTimeout bounds the time a client may take to send a request's
	// headers, ReadTimeout the time for the whole request, body included
	// (slow-loris clients). Zero means DefaultHeaderTimeout and
	// DefaultReadTimeout.
	HeaderTimeout, ReadTimeout time.Duration
	// Dashboard, when not nil, is mounted at "/".
	Dashboard http.Handler
	// Health, when not nil, is called by GET /healthz; an error answers 503.
	Health func(context.Context) error
	// HealthDetail, when not nil, adds lines ("name value") after the
	// first line of every /healthz answer: the journal backlog, the age of
	// the last flush.
	HealthDetail func(context.Context) []string
	// QueryCacheTTL is how long the buckets of one query window are shared
	// between requests for it (the dashboard sends several at once). Zero
	// means no sharing; the command sets DefaultQueryCacheTTL.
	QueryCacheTTL time.Duration
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
	// AppRoutes are more endpoints under /api/apps/{app}/ (monitors,
	// autoscaling), by ServeMux pattern. They get the same authentication
	// and app check as the query API; the handler is given the app.
	AppRoutes map[string]func(w http.ResponseWriter, r *http.Request, app string)
	// NoDrains leaves out the drain endpoint (the scale-out api role);
	// NoAPI leaves out the query API and the dashboard (the ingest role).
	// /healthz and /metrics are always served.
	NoDrains, NoAPI bool
}

// Appender is the part of a drainpipe.Journal the drain endpoint uses:
// an embedded journal (package journal, or the SQLite one with --journal
// sqlite), or the Kafka producer of the ingest role.
type Appender interface {
	// Append returns once b is durable; duplicate reports a Frame-Id the
	// journal already holds (a journal that cannot tell reports false).
	Append(ctx context.Context, b drainpipe.Batch) (seq int64, duplicate bool, err error)
}

// OwnedAppender is an Appender that lends body buffers and reuses each
// once the batch appended with it is no longer needed (package journal's
// Journal). The drain endpoint reads bodies into its buffers when the
// journal is one.
type OwnedAppender interface {
	Appender
	// BodyBuffer returns a buffer of n bytes, contents undefined.
	BodyBuffer(n int) []byte
	// AppendOwned is Append for a body from BodyBuffer, which the caller
	// gives up: it does not touch b.Body again, whatever the outcome.
	AppendOwned(ctx context.Context, b drainpipe.Batch) (seq int64, duplicate bool, err error)
}

// Server serves drains and the query API. Create it with New; it is safe
// for concurrent use.
type Server struct {
	cfg     Config
	journal Appender
	store   Store
	log     *slog.Logger
	now     func() time.Time
	// adminHash is the SHA-256 of the admin token (nil: no admin access);
	// only the hash is kept, and rotation swaps it atomically.
	adminHash atomic.Pointer[[sha256.Size]byte]
	rotateMu  sync.Mutex // one rotation at a time
	drainSem  chan struct{}
	m         *serverMetrics
	handler   http.Handler
	summary   summaryCache
	fetches   fetchCache
}

// New returns a Server that appends drain batches to j and answers queries
// from st. Its own metrics are registered with reg; when reg is also a
// prometheus.Gatherer (as *prometheus.Registry is) GET /metrics serves it.
// A nil reg means a private registry. A nil log discards logs.
func New(cfg Config, j Appender, st Store, log *slog.Logger, reg prometheus.Registerer) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxConcurrentDrains <= 0 {
		cfg.MaxConcurrentDrains = DefaultMaxConcurrentDrains
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = DefaultHeaderTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Server{
		cfg:      cfg,
		journal:  j,
		store:    st,
		log:      log,
		now:      cfg.Now,
		drainSem: make(chan struct{}, cfg.MaxConcurrentDrains),
		m:        newServerMetrics(reg),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.AdminToken != "" {
		h := sha256.Sum256([]byte(cfg.AdminToken))
		s.adminHash.Store(&h)
	}
	var gatherer prometheus.Gatherer
	if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	}
	s.handler = s.routes(gatherer)
	return s
}

// Handler returns the HTTP handler of every endpoint.
func (s *Server) Handler() http.Handler { return s.handler }

// HTTPServer returns an http.Server for addr serving Handler, with the
// timeouts and header limit that keep slow or hostile clients from tying
// up connections: HeaderTimeout (5 s) to send the headers, ReadTimeout
// (30 s) for the whole request, 60 s to write the answer, 2 min idle
// keep-alive and 64 KiB of headers.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

func (s *Server) routes(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()

	mux.HandleFunc("GET /healthz", s.handleHealth)
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}))
	}

	if !s.cfg.NoDrains {
		// A drain URL pasted with a trailing slash is the same drain:
		// Logplex drops a batch answered 4xx, so refusing it would lose
		// every line of the app.
		notPost := func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "drains accept POST only")
		}
		mux.HandleFunc("POST /drains/{app}", s.handleDrain)
		mux.HandleFunc("POST /drains/{app}/{$}", s.handleDrain)
		mux.HandleFunc("/drains/{app}", notPost)
		mux.HandleFunc("/drains/{app}/{$}", notPost)
		mux.HandleFunc("/drains/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path+" (drains are POST /drains/{app})")
		})
	} else {
		mux.HandleFunc("/drains/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "this process does not run the ingest role: send drains to an ingest process")
		})
	}
	if s.cfg.NoAPI {
		mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "this process does not run the api role: query an api process")
		})
	}
	if !s.cfg.NoAPI {
		mux.Handle("GET /api/me", s.api(s.handleMe))
		mux.Handle("POST /api/admin-token", s.api(s.handleRotateAdmin))
		mux.Handle("GET /api/apps", s.api(s.handleListApps))
		mux.Handle("POST /api/apps", s.api(s.handleCreateApp))
		mux.Handle("GET /api/apps/{app}", s.appAPI(s.handleGetApp))
		mux.Handle("GET /api/apps/{app}/formation", s.appAPI(s.handleFormation))
		mux.Handle("GET /api/apps/{app}/router-metrics/latency", s.appAPI(s.handleLatency))
		mux.Handle("GET /api/apps/{app}/router-metrics/status", s.appAPI(s.handleStatus))
		mux.Handle("GET /api/apps/{app}/router-metrics/errors", s.appAPI(s.handleRouterErrors))
		mux.Handle("GET /api/apps/{app}/formation/{type}/metrics/memory", s.appAPI(s.handleMemory))
		mux.Handle("GET /api/apps/{app}/formation/{type}/metrics/load", s.appAPI(s.handleLoad))
		mux.Handle("GET /api/apps/{app}/formation/{type}/metrics/errors", s.appAPI(s.handleDynoErrors))
		mux.Handle("GET /api/apps/{app}/events", s.appAPI(s.handleEvents))
		mux.Handle("GET /api/apps/{app}/custom-metrics", s.appAPI(s.handleCustomList))
		mux.Handle("GET /api/apps/{app}/custom-metrics/{name...}", s.appAPI(s.handleCustomSeries))
		mux.Handle("GET /api/apps/{app}/log-loss", s.appAPI(s.handleLogLoss))
		for pattern, h := range s.cfg.AppRoutes {
			mux.Handle(pattern, s.appAPI(h))
		}
		mux.Handle("/api/", s.api(func(w http.ResponseWriter, r *http.Request, _ principal) {
			if allow := allowedMethods(mux, r); allow != "" {
				w.Header().Set("Allow", allow)
				writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+" (allowed: "+allow+")")
				return
			}
			writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
		}))

		if s.cfg.Dashboard != nil {
			mux.Handle("/", s.cfg.Dashboard)
		}
	}
	return mux
}

// apiCatchAll is the pattern of every /api/ path no endpoint serves
// (written out in routes, where e2e's route list reads it).
const apiCatchAll = "/api/"

// allowedMethods returns the methods (as an Allow header) that an /api/
// endpoint serves at r's path, or "" when no endpoint has that path. GET
// endpoints serve HEAD too, as net/http does.
func allowedMethods(mux *http.ServeMux, r *http.Request) string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != apiCatchAll {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	var detail string
	if s.cfg.HealthDetail != nil {
		for _, l := range s.cfg.HealthDetail(r.Context()) {
			detail += l + "\n"
		}
	}
	if s.cfg.Health != nil {
		if err := s.cfg.Health(r.Context()); err != nil {
			s.log.Warn("health check failed", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("unavailable: " + err.Error() + "\n" + detail))
			return
		}
	}
	_, _ = w.Write([]byte("ok\n" + detail))
}

// principal is who an API request acts for: the admin, or one app.
type principal struct {
	admin bool
	app   string
}

// handleMe tells a client what its token may do: {"role":"admin"}, or
// {"role":"app","app":NAME} for an app token. The dashboard uses it to
// show admin-only controls.
func (s *Server) handleMe(w http.ResponseWriter, _ *http.Request, p principal) {
	if p.admin {
		writeJSON(w, http.StatusOK, map[string]string{"role": "admin"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"role": "app", "app": p.app})
}

// canSee reports whether p may read app.
func (p principal) canSee(app string) bool { return p.admin || p.app == app }

// api wraps an /api handler with bearer authentication and request
// metrics.
func (s *Server) api(h func(http.ResponseWriter, *http.Request, principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			route := r.Pattern
			if route == "" {
				route = "other"
			}
			s.m.apiRequests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
			s.m.apiDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		rec.Header().Set("Cache-Control", "no-store")
		p, ok := s.authenticate(rec, r)
		if !ok {
			return
		}
		h(rec, r, p)
	})
}

// appAPI is api for endpoints under /api/apps/{app}: it answers 404 when
// the app does not exist or the token belongs to another app (the same
// answer, so app tokens cannot probe for other apps' names).
func (s *Server) appAPI(h func(http.ResponseWriter, *http.Request, string)) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request, p principal) {
		app := r.PathValue("app")
		if !p.canSee(app) || !ValidAppName(app) {
			writeError(w, http.StatusNotFound, "app not found")
			return
		}
		if p.admin {
			if _, err := s.store.App(r.Context(), app); err != nil {
				if errors.Is(err, drainpipe.ErrNotFound) {
					writeError(w, http.StatusNotFound, "app not found")
					return
				}
				s.internalError(w, r, err)
				return
			}
		}
		h(w, r, app)
	})
}

// authenticate checks the bearer token. It writes a 401 (or 503 when the
// store fails) and returns false when the request may not proceed.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (principal, bool) {
	token, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="drainpipe"`)
		writeError(w, http.StatusUnauthorized, "missing bearer token (Authorization: Bearer <token>)")
		return principal{}, false
	}
	if admin := s.adminHash.Load(); admin != nil {
		h := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(h[:], admin[:]) == 1 {
			return principal{admin: true}, true
		}
	}
	app, err := s.store.AppForToken(r.Context(), token)
	switch {
	case err == nil:
		return principal{app: app}, true
	case errors.Is(err, drainpipe.ErrNotFound), errors.Is(err, drainpipe.ErrUnauthorized):
		w.Header().Set("WWW-Authenticate", `Bearer realm="drainpipe", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid token")
		return principal{}, false
	case errors.Is(err, drainpipe.ErrUnavailable):
		s.log.Warn("api: store unavailable for a token lookup", "err", err)
		unavailable(w)
		return principal{}, false
	default:
		s.log.Error("api: token lookup failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot check token right now")
		return principal{}, false
	}
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// writeJSON writes v as the JSON answer with the given status.
// A series answer (*seriesBody) is encoded by its own appendJSON, to the
// same bytes.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var b []byte
	var err error
	if sb, ok := v.(*seriesBody); ok {
		b, err = sb.appendJSON(nil)
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		// Only a programming error can get here (every value is finite).
		status = http.StatusInternalServerError
		b = []byte(`{"error":"cannot encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// errorBody is every error answer: {"error": "…"}.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// internalError logs err and answers 500 without details, or 503 with
// Retry-After when the store is out of reach (drainpipe.ErrUnavailable:
// PostgreSQL down or failing over), which is no fault of the request.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, drainpipe.ErrUnavailable) {
		s.log.Warn("api: store unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		unavailable(w)
		return
	}
	s.log.Error("api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

// unavailableMessage is the answer while the store cannot be reached.
const unavailableMessage = "the metrics store is unavailable (database down or failing over); retry shortly"

// unavailableRetryAfter is the Retry-After of that answer, in seconds.
const unavailableRetryAfter = "5"

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", unavailableRetryAfter)
	writeError(w, http.StatusServiceUnavailable, unavailableMessage)
}
