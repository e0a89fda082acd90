package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"
)

// MaxAppNameLen is the longest app name accepted by POST /api/apps.
const MaxAppNameLen = 63

// ValidAppName reports whether name is a Heroku-style app name: a
// lowercase letter first, then lowercase letters, digits and dashes, not
// ending in a dash, at most MaxAppNameLen characters. Every Heroku app name
// (3–30 characters) passes; the longer limit is that of a DNS label.
func ValidAppName(name string) bool {
	if len(name) == 0 || len(name) > MaxAppNameLen {
		return false
	}
	if name[0] < 'a' || name[0] > 'z' || name[len(name)-1] == '-' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// createdApp is the answer of POST /api/apps.
type createdApp struct {
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
	DrainURL  string `json:"drain_url"`
	APIToken  string `json:"api_token"`
}

// handleCreateApp is POST /api/apps {"name": "myapp"}; admin only.
func (s *Server) handleCreateApp(w http.ResponseWriter, r *http.Request, p principal) {
	if !p.admin {
		writeError(w, http.StatusForbidden, "creating apps needs the admin token")
		return
	}
	var req struct {
		Name string `json:"name"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body must be JSON like {\"name\":\"myapp\"}: "+err.Error())
		return
	}
	if !ValidAppName(req.Name) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("app name %q is not valid: use 1-%d lowercase letters, digits and dashes, starting with a letter and not ending with a dash", req.Name, MaxAppNameLen))
		return
	}
	app, cr, err := s.store.CreateApp(r.Context(), req.Name)
	switch {
	case errors.Is(err, drainpipe.ErrExists):
		writeError(w, http.StatusConflict, "app "+req.Name+" already exists")
		return
	case err != nil:
		s.internalError(w, r, fmt.Errorf("create app %q: %w", req.Name, err))
		return
	}
	s.summary.invalidate()
	s.log.Info("app created", "app", app.Name)
	w.Header().Set("Location", "/api/apps/"+app.Name)
	writeJSON(w, http.StatusCreated, createdApp{
		Name:      app.Name,
		CreatedAt: app.CreatedAt.UTC().Format(time.RFC3339),
		DrainURL:  s.DrainURL(r, app.Name, cr),
		APIToken:  cr.APIToken,
	})
}

// DrainURL returns the URL to give to `heroku drains:add` for app, with
// the drain credentials in its user info. It is built on Config.PublicURL,
// or, when that is empty, on the request's Host with https when the
// request came over TLS or with X-Forwarded-Proto: https. r may be nil
// when PublicURL is set.
func (s *Server) DrainURL(r *http.Request, app string, cr drainpipe.Credentials) string {
	var u url.URL
	if s.cfg.PublicURL != "" {
		if base, err := url.Parse(s.cfg.PublicURL); err == nil && base.Host != "" {
			u = *base
		}
	}
	if u.Host == "" {
		u.Scheme = "http"
		if r != nil {
			u.Host = r.Host
			proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
			if r.TLS != nil || strings.EqualFold(strings.TrimSpace(proto), "https") {
				u.Scheme = "https"
			}
		}
		if u.Host == "" {
			u.Host = "localhost"
		}
	}
	u.User = url.UserPassword(cr.DrainUser, cr.DrainSecret)
	u.Path = strings.TrimSuffix(u.Path, "/") + "/drains/" + app
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	return u.String()
}

// appJSON is one entry of GET /api/apps.
type appJSON struct {
	Name      string     `json:"name"`
	CreatedAt string     `json:"created_at"`
	Summary   appSummary `json:"summary"`
}

// appSummary is an app's last hour at a glance.
type appSummary struct {
	// Requests, RPM and Status5xx cover the 60 minutes up to and
	// including the current one; RPM is oldest first.
	Requests  int64  `json:"requests"`
	RPM       values `json:"rpm"`
	P95       number `json:"p95_ms"`
	P95Prev   number `json:"p95_prev_ms"`
	Status5xx int64  `json:"status_5xx"`
	// HErrors, RErrors, R14, LogLoss and the memory figures cover the six
	// 10-minute buckets up to and including the current one.
	HErrors     int64      `json:"h_errors"`
	RErrors     int64      `json:"r_errors"`
	R14         int64      `json:"r14"`
	LogLoss     int64      `json:"log_loss"`
	MemoryPeak  number     `json:"memory_peak_bytes"`
	MemoryQuota number     `json:"memory_quota_bytes"`
	LastEvent   *eventJSON `json:"last_event"`
}

// summaryCache keeps the fleet summary for summaryTTL. Concurrent
// requests for a stale summary wait for one computation.
type summaryCache struct {
	mu      sync.Mutex
	apps    []appJSON
	expires time.Time // monotonic clock, not Config.Now
}

func (c *summaryCache) invalidate() {
	c.mu.Lock()
	c.apps, c.expires = nil, time.Time{}
	c.mu.Unlock()
}

// get returns the cached summary, computing it when stale.
func (c *summaryCache) get(compute func() ([]appJSON, error)) ([]appJSON, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apps != nil && time.Now().Before(c.expires) {
		return c.apps, nil
	}
	apps, err := compute()
	if err != nil {
		return nil, err
	}
	c.apps, c.expires = apps, time.Now().Add(summaryTTL)
	return apps, nil
}

// handleListApps is GET /api/apps: every app the token may see, with its
// summary. An app token sees a list of one.
func (s *Server) handleListApps(w http.ResponseWriter, r *http.Request, p principal) {
	apps, err := s.fleet(r)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]appJSON, 0, len(apps))
	for _, a := range apps {
		if p.canSee(a.Name) {
			out = append(out, a)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// fleet returns every app's entry, from the summary cache.
func (s *Server) fleet(r *http.Request) ([]appJSON, error) {
	return s.summary.get(func() ([]appJSON, error) {
		start := time.Now()
		defer func() { s.m.summaryDuration.Observe(time.Since(start).Seconds()) }()
		// Detached: a client hanging up must not poison the shared cache.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
		defer cancel()
		return s.fleetSummary(ctx)
	})
}

// handleGetApp is GET /api/apps/{app}: the app's entry of GET /api/apps.
// appAPI has checked that the app exists and the token may see it; an
// app the cached summary does not hold yet (created through another API
// process) gets the summary computed afresh.
func (s *Server) handleGetApp(w http.ResponseWriter, r *http.Request, app string) {
	for range 2 {
		apps, err := s.fleet(r)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		for _, a := range apps {
			if a.Name == app {
				writeJSON(w, http.StatusOK, a)
				return
			}
		}
		s.summary.invalidate()
	}
	writeError(w, http.StatusNotFound, "app not found")
}

// fleetSummary computes the summary of every app with three store calls
// for the whole fleet: request counts per minute (Tier1m), the Tier10m
// buckets of the last two hours, and the latest events.
func (s *Server) fleetSummary(ctx context.Context) ([]appJSON, error) {
	apps, err := s.store.ListApps(ctx)
	if err != nil {
		return nil, fmt.Errorf("summary: list apps: %w", err)
	}
	now := s.now().UTC()

	minEnd := alignDown(now, time.Minute).Add(time.Minute)
	minStart := minEnd.Add(-60 * time.Minute)
	counts, err := s.store.RequestCounts(ctx, drainpipe.Tier1m, minStart, minEnd)
	if err != nil {
		return nil, fmt.Errorf("summary: request counts: %w", err)
	}

	tenEnd := alignDown(now, 10*time.Minute).Add(10 * time.Minute)
	curStart := tenEnd.Add(-time.Hour)
	prevStart := tenEnd.Add(-2 * time.Hour)
	rows, err := s.buckets(ctx, "", "", drainpipe.Tier10m, prevStart, tenEnd,
		metrics.PartService|metrics.PartHCodes|metrics.PartRCodes|metrics.PartLogLoss|metrics.PartDynos)
	if err != nil {
		return nil, fmt.Errorf("summary: 10m buckets: %w", err)
	}

	last, err := s.store.LastEvents(ctx)
	if err != nil {
		return nil, fmt.Errorf("summary: last events: %w", err)
	}

	type acc struct {
		sum            appSummary
		cur, prev      metrics.Dist
		memPeak, quota metrics.Stat
	}
	byApp := make(map[string]*acc, len(apps))
	out := make([]appJSON, len(apps))
	for i, a := range apps {
		out[i] = appJSON{Name: a.Name, CreatedAt: a.CreatedAt.UTC().Format(time.RFC3339)}
		byApp[a.Name] = &acc{sum: appSummary{RPM: newValues(60)}}
	}
	for _, c := range counts {
		a := byApp[c.App]
		if a == nil || c.Time.Before(minStart) || !c.Time.Before(minEnd) {
			continue
		}
		i := int(c.Time.Sub(minStart) / time.Minute)
		if math.IsNaN(a.sum.RPM[i]) {
			a.sum.RPM[i] = 0
		}
		a.sum.RPM[i] += float64(c.Requests)
		a.sum.Requests += c.Requests
		a.sum.Status5xx += c.Errors5xx
	}
	for _, row := range rows {
		a := byApp[row.App]
		b := row.Bucket
		if a == nil || b == nil || row.Time.Before(prevStart) || !row.Time.Before(tenEnd) {
			continue
		}
		if row.Time.Before(curStart) {
			a.prev.Merge(b.Service())
			continue
		}
		a.cur.Merge(b.Service())
		a.sum.HErrors += b.HCodes().Total()
		for code, n := range b.RCodes().All() {
			a.sum.RErrors += n
			if code == "R14" {
				a.sum.R14 += n
			}
		}
		a.sum.LogLoss += b.LogLoss().Total()
		mem := b.GaugeStat(logline.GaugeMemTotal, "")
		a.memPeak.Merge(&mem)
		q := b.GaugeStat(logline.GaugeMemQuota, "")
		a.quota.Merge(&q)
	}
	for i := range out {
		a := byApp[out[i].Name]
		a.sum.P95 = optional(a.cur.Quantile(0.95))
		a.sum.P95Prev = optional(a.prev.Quantile(0.95))
		a.sum.MemoryPeak = optional(a.memPeak.Max, a.memPeak.Count > 0)
		a.sum.MemoryQuota = optional(a.quota.Max, a.quota.Count > 0)
		if e, ok := last[out[i].Name]; ok {
			ej := toEventJSON(e)
			a.sum.LastEvent = &ej
		}
		out[i].Summary = a.sum
	}
	return out, nil
}

// handleRotateAdmin is POST /api/admin-token: it makes a new random admin
// token (32 bytes), has it kept (Config.SaveAdminToken), then swaps it in;
// the old token stops working at once. The answer is the only time the
// new token is shown: {"admin_token": "..."}.
func (s *Server) handleRotateAdmin(w http.ResponseWriter, r *http.Request, p principal) {
	if !p.admin {
		writeError(w, http.StatusForbidden, "rotating the admin token needs the admin token")
		return
	}
	if s.cfg.SaveAdminToken == nil {
		writeError(w, http.StatusConflict, "this server's admin token is set by its configuration (--admin-token or DRAINPIPE_ADMIN_TOKEN): change it there and restart")
		return
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		s.internalError(w, r, fmt.Errorf("generate admin token: %w", err))
		return
	}
	token := "dpk_" + base64.RawURLEncoding.EncodeToString(raw)
	s.rotateMu.Lock()
	defer s.rotateMu.Unlock()
	if err := s.cfg.SaveAdminToken(token); err != nil {
		s.internalError(w, r, fmt.Errorf("keep the new admin token: %w", err))
		return
	}
	h := sha256.Sum256([]byte(token))
	s.adminHash.Store(&h)
	s.log.Info("admin token rotated; the old one no longer works")
	writeJSON(w, http.StatusOK, map[string]string{"admin_token": token})
}
