// Package autoscale changes an app's dyno count to keep its p95 response
// time under a scale monitor's value, through the Heroku Platform API.
//
// The monitor evaluator tells the Scaler the p95 of every closed minute of
// every active scale monitor. The Scaler scales up fast (in proportion to
// how far p95 is over the value, at most once a minute) and down slowly
// (one dyno after several minutes well under the value, with a longer
// cooldown), always within min_quantity..max_quantity. Every decision and
// its reason is an event on the app's charts.
//
// The Platform API is an upstream that can be down. While it answers 5xx
// (503 "API in maintenance"), 429, or times out, the Scaler keeps its
// state and what it wants to do, retries with exponential backoff (one
// request per retry, whatever the number of formations), reports
// "unavailable since" in its Status, and resumes by itself.
package autoscale

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/monitor"
)

// Config tunes the Scaler; zero fields take the defaults.
type Config struct {
	Platform *Platform
	// DryRun decides and records every decision as an event but never
	// changes the formation (the quantity is simulated).
	DryRun bool
	// UpCooldown is the least time between a change and a scale-up, in
	// minutes of event time (default 1).
	UpCooldown int
	// DownCooldown is the least time between a change and a scale-down
	// (default 5 minutes).
	DownCooldown int
	// DownAfter is how many consecutive minutes p95 must stay under
	// DownRatio × value (or see no traffic) before one dyno is removed
	// (default 5).
	DownAfter int
	// DownRatio defaults to 0.5.
	DownRatio float64
	// MinBackoff and MaxBackoff bound the retry wait while the Platform
	// API is unavailable (defaults 2 s and 2 min).
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one API request (default 10 s).
	Timeout time.Duration
	// Now returns the wall-clock time; nil means time.Now.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.UpCooldown <= 0 {
		c.UpCooldown = 1
	}
	if c.DownCooldown <= 0 {
		c.DownCooldown = 5
	}
	if c.DownAfter <= 0 {
		c.DownAfter = 5
	}
	if c.DownRatio <= 0 || c.DownRatio >= 1 {
		c.DownRatio = 0.5
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 2 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(2*time.Minute, c.MinBackoff)
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Platform == nil {
		c.Platform = &Platform{}
	}
}

// EventWriter keeps the Scaler's events; sqlite.Store implements it.
type EventWriter interface {
	AddEvents(ctx context.Context, events []drainpipe.Event) error
}

// Scaler is the autoscaler. It implements monitor.Scaler.
type Scaler struct {
	cfg    Config
	events EventWriter
	log    *slog.Logger

	mu    sync.Mutex
	queue []observation
	wake  chan struct{}
	// guarded by mu too, read by Status:
	forms  map[key]*formation
	status PlatformStatus

	// Run goroutine only.
	backoff time.Duration
}

type key struct{ app, ptype string }

type observation struct {
	m      monitor.Monitor
	minute time.Time
	p95    float64
	has    bool
	forget bool
	track  bool
}

// formation is what the Scaler keeps per app and process type.
type formation struct {
	mon        monitor.Monitor
	quantity   int
	known      bool // quantity has been read
	lastChange time.Time
	over       int // consecutive minutes at or over the value
	under      int // consecutive minutes well under it (or without traffic)
	atMax      bool
	minute     time.Time
	p95        float64
	has        bool
	pending    *Decision // wanted while the API is unavailable
	last       *Decision
}

// Decision is one scaling decision.
type Decision struct {
	Minute  time.Time `json:"minute"`
	From    int       `json:"from"`
	To      int       `json:"to"`
	Reason  string    `json:"reason"`
	DryRun  bool      `json:"dry_run,omitempty"`
	Applied bool      `json:"applied"`
}

// PlatformStatus is the Platform API's state as the Scaler sees it.
type PlatformStatus struct {
	URL       string `json:"url"`
	Available bool   `json:"available"`
	// UnavailableSince is when the current outage began (zero while
	// available).
	UnavailableSince time.Time `json:"unavailable_since,omitzero"`
	LastError        string    `json:"last_error,omitempty"`
	NextRetry        time.Time `json:"next_retry,omitzero"`
	Attempts         int       `json:"failed_attempts,omitempty"`
}

// FormationStatus is one autoscaled formation in Status.
type FormationStatus struct {
	ProcessType  string    `json:"process_type"`
	MonitorID    string    `json:"monitor_id"`
	Quantity     *int      `json:"quantity"` // null: not known yet
	MinQuantity  int       `json:"min_quantity"`
	MaxQuantity  int       `json:"max_quantity"`
	P95          *float64  `json:"p95,omitempty"`
	Minute       time.Time `json:"minute,omitzero"`
	Pending      *Decision `json:"pending,omitempty"`
	LastDecision *Decision `json:"last_decision,omitempty"`
}

// Status is GET /api/apps/{app}/autoscaling.
type Status struct {
	DryRun      bool              `json:"dry_run"`
	PlatformAPI PlatformStatus    `json:"platform_api"`
	Formations  []FormationStatus `json:"formations"`
}

// New returns a Scaler writing its events to ev.
func New(cfg Config, ev EventWriter, log *slog.Logger) *Scaler {
	cfg.defaults()
	base := cfg.Platform.URL
	if base == "" {
		base = DefaultAPIURL
	}
	return &Scaler{cfg: cfg, events: ev, log: log, wake: make(chan struct{}, 1), forms: map[key]*formation{},
		status: PlatformStatus{URL: base, Available: true}, backoff: cfg.MinBackoff}
}

// Observe takes a closed minute of a scale monitor. It never blocks.
func (s *Scaler) Observe(m monitor.Monitor, minute time.Time, p95 float64, has bool) {
	s.enqueue(observation{m: m, minute: minute, p95: p95, has: has})
}

// Track announces an active scale monitor: its formation's dyno count is
// read at once.
func (s *Scaler) Track(m monitor.Monitor) {
	s.enqueue(observation{m: m, track: true})
}

// Forget drops the formation of a deleted or deactivated monitor.
func (s *Scaler) Forget(m monitor.Monitor) {
	s.enqueue(observation{m: m, forget: true})
}

func (s *Scaler) enqueue(o observation) {
	s.mu.Lock()
	s.queue = append(s.queue, o)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Status returns the Platform API's state and app's autoscaled
// formations.
func (s *Scaler) Status(app string) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{DryRun: s.cfg.DryRun, PlatformAPI: s.status, Formations: []FormationStatus{}}
	for k, f := range s.forms {
		if k.app != app {
			continue
		}
		fs := FormationStatus{ProcessType: k.ptype, MonitorID: f.mon.ID,
			MinQuantity: f.mon.MinQuantity, MaxQuantity: f.mon.MaxQuantity, Minute: f.minute}
		// Copies: the Run goroutine goes on updating its decisions.
		if f.pending != nil {
			d := *f.pending
			fs.Pending = &d
		}
		if f.last != nil {
			d := *f.last
			fs.LastDecision = &d
		}
		if f.known {
			q := f.quantity
			fs.Quantity = &q
		}
		if f.has {
			p := f.p95
			fs.P95 = &p
		}
		st.Formations = append(st.Formations, fs)
	}
	sort.Slice(st.Formations, func(i, j int) bool { return st.Formations[i].ProcessType < st.Formations[j].ProcessType })
	return st
}

// Available reports whether the Platform API answered the last request.
func (s *Scaler) Available() bool { return !s.down() }

// Run scales until ctx ends.
func (s *Scaler) Run(ctx context.Context) error {
	for {
		s.mu.Lock()
		queue := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, o := range queue {
			s.observe(ctx, o)
		}
		if s.down() && !s.cfg.Now().Before(s.nextRetry()) {
			s.retry(ctx)
		}
		var retry <-chan time.Time
		var t *time.Timer
		if s.down() {
			t = time.NewTimer(max(0, s.nextRetry().Sub(s.cfg.Now())))
			retry = t.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-retry:
		}
		if t != nil {
			t.Stop()
		}
	}
}

func (s *Scaler) down() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.status.Available
}

func (s *Scaler) nextRetry() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status.NextRetry
}

// observe folds one closed minute into its formation and acts on it.
func (s *Scaler) observe(ctx context.Context, o observation) {
	k := key{o.m.App, o.m.ProcessType}
	s.mu.Lock()
	f, ok := s.forms[k]
	if o.forget {
		if ok && f.mon.ID == o.m.ID {
			delete(s.forms, k)
		}
		s.mu.Unlock()
		return
	}
	if !ok {
		f = &formation{}
		s.forms[k] = f
	}
	f.mon = o.m
	if o.track {
		known := f.known
		s.mu.Unlock()
		if !known && !s.down() {
			s.learnQuantity(ctx, k, f)
		}
		return
	}
	if !f.minute.IsZero() && !o.minute.After(f.minute) {
		s.mu.Unlock()
		return // a minute already seen (the evaluator restarted)
	}
	f.minute, f.p95, f.has = o.minute, o.p95, o.has
	if o.has && o.m.Op.Breaches(o.p95, o.m.Value) {
		f.over++
	} else {
		f.over, f.atMax = 0, false
	}
	if !o.has || o.p95 < s.cfg.DownRatio*o.m.Value {
		f.under++
	} else {
		f.under = 0
	}
	s.mu.Unlock()
	if s.down() {
		s.mu.Lock()
		s.want(f, k)
		s.mu.Unlock()
		return
	}
	if !f.known && !s.learnQuantity(ctx, k, f) {
		return
	}
	s.mu.Lock()
	s.want(f, k)
	d := f.pending
	s.mu.Unlock()
	if d != nil {
		s.apply(ctx, k, f, d)
	}
}

// learnQuantity reads the current dyno count (dry run without an API key
// starts from min_quantity).
func (s *Scaler) learnQuantity(ctx context.Context, k key, f *formation) bool {
	if s.cfg.DryRun && s.cfg.Platform.Key == "" {
		s.mu.Lock()
		f.quantity, f.known = f.mon.MinQuantity, true
		s.mu.Unlock()
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	q, err := s.cfg.Platform.Quantity(cctx, k.app, k.ptype)
	if err != nil {
		s.failed(ctx, k, f, err)
		return false
	}
	s.mu.Lock()
	f.quantity, f.known = q, true
	s.mu.Unlock()
	s.ok(ctx, f) // after the quantity, so Status never shows "available" without it
	return true
}

// want decides what f should become after its latest minute and keeps
// it as f.pending (nil: nothing to do). It holds s.mu.
func (s *Scaler) want(f *formation, k key) {
	q := f.quantity
	m := &f.mon
	if !f.known {
		return // decided once the quantity is known
	}
	since := int(f.minute.Sub(f.lastChange) / time.Minute)
	if f.lastChange.IsZero() {
		since = math.MaxInt32
	}
	var d *Decision
	switch {
	case q < m.MinQuantity:
		d = &Decision{To: m.MinQuantity, Reason: fmt.Sprintf("below min_quantity %d", m.MinQuantity)}
	case q > m.MaxQuantity:
		d = &Decision{To: m.MaxQuantity, Reason: fmt.Sprintf("above max_quantity %d", m.MaxQuantity)}
	case f.over >= m.Period && since >= s.cfg.UpCooldown:
		// Scale up in proportion to the excess: p95 twice the value asks
		// for twice the dynos.
		to := min(max(q+1, int(math.Ceil(float64(q)*f.p95/m.Value))), m.MaxQuantity)
		if to == q {
			if !f.atMax {
				f.atMax = true
				s.record(drainpipe.Event{Time: f.minute, App: k.app, ProcessType: k.ptype, Kind: monitor.EventAutoscale,
					Detail: fmt.Sprintf("at max_quantity %d: p95 %.0f ms still over %.0f ms, not scaling further", q, f.p95, m.Value)})
			}
			f.pending = nil
			return
		}
		d = &Decision{To: to, Reason: fmt.Sprintf("p95 %.0f ms over %.0f ms for %d min", f.p95, m.Value, f.over)}
	case f.under >= s.cfg.DownAfter && since >= s.cfg.DownCooldown && q > m.MinQuantity:
		why := fmt.Sprintf("p95 under %.0f ms for %d min", s.cfg.DownRatio*m.Value, f.under)
		if !f.has {
			why = fmt.Sprintf("no requests for %d min", f.under)
		}
		d = &Decision{To: q - 1, Reason: why}
	}
	if d == nil {
		if f.pending != nil && f.pending.To == q {
			f.pending = nil
		}
		return // keep a pending decision until the API takes it
	}
	d.Minute, d.From, d.DryRun = f.minute, q, s.cfg.DryRun
	f.pending = d
}

// apply carries out a decision (or, in dry run, records it).
func (s *Scaler) apply(ctx context.Context, k key, f *formation, d *Decision) {
	verb := "scale"
	if d.To < d.From {
		verb = "scale down"
	} else if d.To > d.From {
		verb = "scale up"
	}
	if s.cfg.DryRun {
		s.done(k, f, d, d.To)
		s.record(drainpipe.Event{Time: d.Minute, App: k.app, ProcessType: k.ptype, Kind: monitor.EventAutoscale,
			Detail: fmt.Sprintf("dry run: would %s %s %d→%d: %s", verb, k.ptype, d.From, d.To, d.Reason)})
		return
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	got, err := s.cfg.Platform.Scale(cctx, k.app, k.ptype, d.To)
	cancel()
	if err != nil {
		if IsUnavailable(err) {
			s.failed(ctx, k, f, err)
			return
		}
		s.mu.Lock()
		f.pending = nil
		s.status.LastError = err.Error()
		s.mu.Unlock()
		s.log.Error("autoscale: scaling refused", "app", k.app, "process_type", k.ptype, "err", err)
		s.record(drainpipe.Event{Time: d.Minute, App: k.app, ProcessType: k.ptype, Kind: monitor.EventAutoscale,
			Detail: fmt.Sprintf("%s %s %d→%d refused: %v", verb, k.ptype, d.From, d.To, err)})
		return
	}
	s.done(k, f, d, got)
	s.ok(ctx, f)
	s.record(drainpipe.Event{Time: d.Minute, App: k.app, ProcessType: k.ptype, Kind: monitor.EventAutoscale,
		Detail: fmt.Sprintf("%s %s %d→%d: %s", verb, k.ptype, d.From, got, d.Reason)})
}

func (s *Scaler) done(_ key, f *formation, d *Decision, got int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.Applied = true
	f.quantity, f.lastChange, f.pending, f.last = got, f.minute, nil, d
	if d.To < d.From {
		f.under = 0
	}
}

// failed enters or continues an outage of the Platform API.
func (s *Scaler) failed(ctx context.Context, k key, f *formation, err error) {
	now := s.cfg.Now()
	s.mu.Lock()
	first := s.status.Available
	if first {
		s.status.UnavailableSince = now.UTC()
		s.backoff = s.cfg.MinBackoff
	}
	s.status.Available = false
	s.status.LastError = err.Error()
	s.status.Attempts++
	s.status.NextRetry = now.Add(s.backoff).UTC()
	wait := s.backoff
	s.backoff = min(2*s.backoff, s.cfg.MaxBackoff)
	minute := f.minute
	if minute.IsZero() {
		minute = now.UTC() // no minute seen yet (the formation was just tracked)
	}
	s.mu.Unlock()
	s.log.Warn("autoscale: Platform API unavailable; will retry", "err", err, "retry_in", wait)
	if first {
		s.record(drainpipe.Event{Time: minute, App: k.app, ProcessType: k.ptype, Kind: monitor.EventAutoscale,
			Detail: fmt.Sprintf("Platform API unavailable (%v); keeping state, retrying with backoff", err)})
	}
	_ = ctx
}

// ok ends an outage, if there was one.
func (s *Scaler) ok(ctx context.Context, f *formation) {
	s.mu.Lock()
	was := s.status
	s.status = PlatformStatus{URL: was.URL, Available: true}
	s.backoff = s.cfg.MinBackoff
	minute := f.minute
	if minute.IsZero() {
		minute = s.cfg.Now().UTC()
	}
	mon := f.mon
	s.mu.Unlock()
	if !was.Available {
		s.log.Info("autoscale: Platform API available again", "unavailable_for", s.cfg.Now().Sub(was.UnavailableSince))
		s.record(drainpipe.Event{Time: minute, App: mon.App, ProcessType: mon.ProcessType, Kind: monitor.EventAutoscale,
			Detail: fmt.Sprintf("Platform API available again after %s", s.cfg.Now().Sub(was.UnavailableSince).Round(time.Second))})
	}
	_ = ctx
}

// retry makes one request on behalf of the formations waiting for the
// API: the first pending decision, or the first unknown quantity.
func (s *Scaler) retry(ctx context.Context) {
	s.mu.Lock()
	keys := make([]key, 0, len(s.forms))
	for k := range s.forms {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].app != keys[j].app {
			return keys[i].app < keys[j].app
		}
		return keys[i].ptype < keys[j].ptype
	})
	for _, k := range keys {
		s.mu.Lock()
		f := s.forms[k]
		d := f.pending
		unknown := !f.known
		s.mu.Unlock()
		switch {
		case unknown:
			if !s.learnQuantity(ctx, k, f) {
				return
			}
			s.mu.Lock()
			s.want(f, k)
			d = f.pending
			s.mu.Unlock()
			if d != nil {
				s.apply(ctx, k, f, d)
			}
		case d != nil:
			s.apply(ctx, k, f, d)
		default:
			continue
		}
		if s.down() {
			return
		}
	}
	if s.down() {
		// Nothing was waiting: probe the API with the first formation so
		// the outage ends by itself.
		for _, k := range keys {
			s.mu.Lock()
			f := s.forms[k]
			s.mu.Unlock()
			s.learnQuantity(ctx, k, f)
			return
		}
		s.mu.Lock()
		s.status = PlatformStatus{URL: s.status.URL, Available: true}
		s.mu.Unlock()
	}
}

func (s *Scaler) record(e drainpipe.Event) {
	if err := s.events.AddEvents(context.Background(), []drainpipe.Event{e}); err != nil {
		s.log.Error("autoscale: record event", "err", err, "detail", e.Detail)
	}
}

// HandleStatus serves GET /api/apps/{app}/autoscaling (the server has
// authenticated the request and checked the app).
func (s *Scaler) HandleStatus(w http.ResponseWriter, _ *http.Request, app string) {
	monitor.WriteJSON(w, http.StatusOK, s.Status(app))
}
