package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// Event kinds the evaluator and the autoscaler write.
const (
	EventAlert     drainpipe.EventKind = "alert"
	EventAutoscale drainpipe.EventKind = "autoscale"
)

// Notification is what the notify package delivers: the JSON body of a
// generic webhook, and the source of Slack and email texts.
type Notification struct {
	// ID is unique per notification and the same on every retry and
	// every destination: receivers use it to drop duplicates.
	ID          string           `json:"id"`
	Type        NotificationType `json:"type"`
	App         string           `json:"app"`
	ProcessType string           `json:"process_type"`
	Monitor     Monitor          `json:"monitor"`
	// Minute is the closed minute that caused the notification.
	Minute time.Time `json:"minute"`
	// Since is the first minute of the crossing.
	Since    time.Time `json:"since"`
	Value    float64   `json:"value"`
	HasValue bool      `json:"has_value"`
	Text     string    `json:"text"`
	// DashboardURL opens the app's dashboard at the alert's time range.
	DashboardURL string    `json:"dashboard_url"`
	CreatedAt    time.Time `json:"created_at"`
}

// Outgoing is one notification queued for one destination.
type Outgoing struct {
	Destination  string
	Notification Notification
	Payload      []byte // Notification as JSON
}

// Scaler receives every closed minute of active scale monitors. Observe
// must not block.
type Scaler interface {
	Observe(m Monitor, minute time.Time, p95 float64, has bool)
	// Track announces an active scale monitor (loaded, created or
	// changed), so the scaler can read the current dyno count at once.
	Track(m Monitor)
	// Forget drops what the scaler keeps for a monitor that was deleted
	// or deactivated.
	Forget(m Monitor)
}

// Config tunes an Evaluator; zero fields take the defaults.
type Config struct {
	// Grace is how long after a minute's end its late lines are waited
	// for (default 30 s). A minute closes once the wall clock is Grace
	// past its end and either a later minute of the app has data or the
	// app sent nothing for Grace. Backfilled data (event times in the
	// past) closes a minute as soon as the next minute's data arrives.
	Grace time.Duration
	// Window is how many minutes back late data is re-evaluated
	// (default 30).
	Window int
	// Destinations names where notifications go ("webhook:1", "slack",
	// "email"); each notification is queued once per destination.
	Destinations []string
	// PublicURL is the dashboard's base URL for the links in
	// notifications.
	PublicURL string
	// Scaler, when not nil, gets the minutes of scale monitors.
	Scaler Scaler
	// Delivered is called after notifications were queued, to wake the
	// delivery worker. It must not block.
	Delivered func()
	// Tick is how often minutes are closed by the wall clock (default 1 s).
	Tick time.Duration
	// Now returns the wall-clock time; nil means time.Now.
	Now func() time.Time
	// OK, when not nil, is called after every pass whose results were
	// saved (the supervisor's "last success").
	OK func()
}

func (c *Config) defaults() {
	if c.Grace <= 0 {
		c.Grace = 30 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 30
	}
	if c.Tick <= 0 {
		c.Tick = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Evaluator checks monitors against the aggregator's flushes as minutes
// close. Observe is its only input from the pipeline; Run does the work
// on its own goroutine, so a slow store or receiver never slows ingest.
type Evaluator struct {
	cfg   Config
	store Store
	log   *slog.Logger

	mu      sync.Mutex
	queue   []metrics.Row
	reload  bool
	wake    chan struct{}
	watched atomic.Pointer[map[string]bool] // apps with active monitors

	snapMu sync.RWMutex
	snap   map[string]State

	// Owned by the Run goroutine.
	mons   map[string]*tracked
	byApp  map[string][]*tracked // e.mons by app, in a fixed order
	apps   map[string]*window
	batch  batch
	loaded bool
}

type tracked struct {
	m  Monitor
	st State
	// hist keeps, per evaluated minute (Unix seconds), the state before
	// it: late data replays from there.
	hist map[int64]State
	// startAt is the first minute a never-evaluated monitor looks at: the
	// app's newest minute when the monitor was created (0: the earliest
	// minute the window holds, for an app without data yet), so a new
	// monitor does not judge the past it was not there for.
	startAt int64
}

// window holds the recent whole minutes of one app, merged from flushes.
type window struct {
	buckets     map[bkey]*metrics.Bucket
	newest      int64 // newest minute with data (Unix seconds)
	oldest      int64
	lastArrival time.Time
	late        int64 // earliest already-closed minute changed since the last pass; 0: none
}

type bkey struct {
	ptype  string
	minute int64
}

// batch is what one pass commits in one transaction.
type batch struct {
	states map[string]State
	events []drainpipe.Event
	notes  []Outgoing
}

func (b *batch) empty() bool { return len(b.states) == 0 && len(b.events) == 0 && len(b.notes) == 0 }

// NewEvaluator returns an evaluator keeping its state in st. Call Load
// before the aggregator starts, then Run.
func NewEvaluator(cfg Config, st Store, log *slog.Logger) *Evaluator {
	cfg.defaults()
	e := &Evaluator{cfg: cfg, store: st, log: log, wake: make(chan struct{}, 1),
		snap: map[string]State{}, mons: map[string]*tracked{}, apps: map[string]*window{}}
	e.watched.Store(&map[string]bool{})
	return e
}

// DefaultPublicURL sets the links' base URL when the configuration left
// it empty (the node learns its address only once it listens). Call it
// before Run.
func (e *Evaluator) DefaultPublicURL(u string) {
	if e.cfg.PublicURL == "" {
		e.cfg.PublicURL = u
	}
}

// Seeder reads stored 1-minute rows; server.Store's Buckets fits.
type Seeder func(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time) ([]metrics.Row, error)

// Load reads the monitors and their states, and fills the recent minutes
// of watched apps from seed (may be nil) once, so that minutes the
// aggregator had flushed in part before a restart are evaluated whole.
// It must run before the aggregator delivers its first flush.
func (e *Evaluator) Load(ctx context.Context, seed Seeder) error {
	if err := e.reloadMonitors(ctx); err != nil {
		return err
	}
	e.loaded = true
	if seed == nil {
		return nil
	}
	now := e.cfg.Now()
	for app := range *e.watched.Load() {
		start := now.Add(-time.Duration(e.cfg.Window+1) * time.Minute).Truncate(time.Minute)
		for _, t := range e.mons {
			if t.m.App == app && !t.st.LastMinute.IsZero() && t.st.LastMinute.Before(start) {
				start = t.st.LastMinute
			}
		}
		if now.Sub(start) > 24*time.Hour {
			start = now.Add(-24 * time.Hour).Truncate(time.Minute)
		}
		rows, err := seed(ctx, app, "", drainpipe.Tier1m, start, now.Add(10*time.Minute))
		if err != nil {
			return fmt.Errorf("monitor: seed recent minutes of %s: %w", app, err)
		}
		w := e.window(app)
		for _, r := range rows {
			w.add(r, time.Time{})
		}
		w.late = 0
		// A monitor never evaluated starts with the newest minute, not
		// with the history read for its neighbours.
		for _, t := range e.byApp[app] {
			if t.st.LastMinute.IsZero() {
				t.startAt = w.newest
			}
		}
	}
	return nil
}

// Observe takes a flush the store has applied. It keeps the rows of
// watched apps and returns at once; it is safe to call from the
// aggregator's goroutine.
func (e *Evaluator) Observe(f *metrics.Flush) {
	watched := *e.watched.Load()
	if len(watched) == 0 {
		return
	}
	e.mu.Lock()
	n := len(e.queue)
	for _, r := range f.Rows {
		if watched[r.App] {
			e.queue = append(e.queue, r)
		}
	}
	added := len(e.queue) > n
	e.mu.Unlock()
	if added {
		e.signal()
	}
}

// Changed tells the evaluator that monitors were created, changed or
// deleted.
func (e *Evaluator) Changed() {
	e.mu.Lock()
	e.reload = true
	e.mu.Unlock()
	e.signal()
}

func (e *Evaluator) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// State returns the evaluation state of a monitor.
func (e *Evaluator) State(id string) (State, bool) {
	e.snapMu.RLock()
	defer e.snapMu.RUnlock()
	s, ok := e.snap[id]
	return s, ok
}

// CountStatus returns how many active alert monitors are in status st.
func (e *Evaluator) CountStatus(st Status) int {
	e.snapMu.RLock()
	defer e.snapMu.RUnlock()
	n := 0
	for _, s := range e.snap {
		if s.Status == st {
			n++
		}
	}
	return n
}

// Run evaluates until ctx ends.
func (e *Evaluator) Run(ctx context.Context) error {
	if !e.loaded {
		if err := e.Load(ctx, nil); err != nil {
			return err
		}
	}
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.pass(context.WithoutCancel(ctx))
			return nil
		case <-e.wake:
		case <-t.C:
		}
		e.pass(ctx)
	}
}

// pass merges what was observed, closes minutes, evaluates and commits.
func (e *Evaluator) pass(ctx context.Context) {
	e.mu.Lock()
	rows, reload := e.queue, e.reload
	e.queue, e.reload = nil, false
	e.mu.Unlock()
	if reload {
		if err := e.reloadMonitors(ctx); err != nil {
			e.log.Error("monitor: reload monitors", "err", err)
			e.mu.Lock()
			e.reload = true
			e.mu.Unlock()
		}
	}
	now := e.cfg.Now()
	for _, r := range rows {
		e.window(r.App).add(r, now)
	}
	// Every watched app gets a window, so a monitor of an app that has
	// gone silent still moves on (and resolves) by the wall clock.
	for app := range *e.watched.Load() {
		e.window(app)
	}
	for app, w := range e.apps {
		if !(*e.watched.Load())[app] {
			delete(e.apps, app)
			continue
		}
		frontier, ok := e.frontier(w, now)
		oldest := w.oldestMinute()
		for _, t := range e.byApp[app] {
			if !t.m.IsActive {
				continue
			}
			if w.late != 0 && t.m.ActionType == ActionAlert {
				e.replay(t, w, w.late)
			}
			if ok {
				e.advance(t, w, frontier, oldest)
			}
		}
		w.late = 0
		if ok {
			w.prune(frontier.Add(-time.Duration(e.cfg.Window) * time.Minute).Unix())
		}
	}
	e.commit(ctx)
}

// window returns app's window, creating it as if data had just arrived:
// its minutes close by the wall clock only after Grace of silence.
func (e *Evaluator) window(app string) *window {
	w, ok := e.apps[app]
	if !ok {
		w = &window{buckets: map[bkey]*metrics.Bucket{}, lastArrival: e.cfg.Now()}
		e.apps[app] = w
	}
	return w
}

// add merges one flushed delta into its minute. A delta for a minute at
// or before one already evaluated marks late data.
func (w *window) add(r metrics.Row, now time.Time) {
	k := bkey{r.ProcessType, r.Time.Unix()}
	if w.oldest != 0 && k.minute < w.oldest {
		return // older than the window: too late to matter
	}
	b, ok := w.buckets[k]
	if !ok {
		b = new(metrics.Bucket)
		w.buckets[k] = b
	}
	b.Merge(r.Bucket)
	if k.minute > w.newest {
		w.newest = k.minute
	}
	if !now.IsZero() {
		w.lastArrival = now
	}
	if w.late == 0 || k.minute < w.late {
		w.late = k.minute
	}
}

// oldestMinute returns the oldest minute the window holds (0: none).
func (w *window) oldestMinute() int64 {
	var oldest int64
	for k := range w.buckets {
		if oldest == 0 || k.minute < oldest {
			oldest = k.minute
		}
	}
	return oldest
}

func (w *window) prune(before int64) {
	w.oldest = before
	for k := range w.buckets {
		if k.minute < before {
			delete(w.buckets, k)
		}
	}
}

// frontier returns the newest closed minute of an app: the wall clock is
// Grace past its end, and either a later minute has data or the app has
// been quiet for Grace.
func (e *Evaluator) frontier(w *window, now time.Time) (time.Time, bool) {
	last := now.Add(-e.cfg.Grace - time.Minute).Truncate(time.Minute)
	if now.Sub(w.lastArrival) < e.cfg.Grace { // not quiet
		if w.newest == 0 {
			return time.Time{}, false // nothing seen yet: wait for data or silence
		}
		if w.newest <= last.Unix() {
			last = time.Unix(w.newest, 0).UTC().Add(-time.Minute) // data in the past: the next minute closes one
		}
	}
	return last.UTC(), last.Unix() > 0
}

func (e *Evaluator) measure(t *tracked, w *window, minute time.Time) minuteValue {
	ts := minute.Unix()
	return measure(&t.m, w.buckets[bkey{t.m.ProcessType, ts}], w.buckets[bkey{"", ts}])
}

// advance evaluates t's minutes after its last one up to frontier;
// oldest is the oldest minute the window holds.
func (e *Evaluator) advance(t *tracked, w *window, frontier time.Time, oldest int64) {
	start := t.st.LastMinute.Add(time.Minute)
	if t.st.LastMinute.IsZero() {
		start = frontier
		for k := range w.buckets {
			if m := time.Unix(k.minute, 0).UTC(); m.Before(start) && k.minute >= t.startAt {
				start = m
			}
		}
		if first := time.Unix(t.startAt, 0).UTC(); t.startAt != 0 && start.Before(first) {
			start = first
		}
	}
	// Minutes the window holds data for are all evaluated, however many
	// arrived at once (a backlog after a restart); beyond them, a gap of
	// more than Window minutes without data is skipped.
	earliest := frontier.Add(-time.Duration(e.cfg.Window-1) * time.Minute)
	if oldest != 0 && oldest < earliest.Unix() {
		earliest = time.Unix(oldest, 0).UTC()
	}
	if start.Before(earliest) {
		start = earliest
		t.st.Run = 0 // the minutes in between were not seen
	}
	for m := start; !m.After(frontier); m = m.Add(time.Minute) {
		v := e.measure(t, w, m)
		if t.m.ActionType == ActionScale {
			t.st.LastMinute, t.st.Value, t.st.HasValue = m, v.value, v.has
			if t.st.Status == "" {
				t.st.Status = StatusOK
			}
			if e.cfg.Scaler != nil {
				e.cfg.Scaler.Observe(t.m, m, v.value, v.has)
			}
			continue
		}
		t.hist[m.Unix()] = t.st
		for _, c := range t.st.step(&t.m, m, v) {
			e.emit(t, c, m, v, "")
		}
		e.log.Debug("monitor: minute evaluated", "monitor", t.m.ID, "app", t.m.App, "minute", m, "value", v.value,
			"has_value", v.has, "crossing", v.breach, "status", t.st.Status, "run", t.st.Run)
	}
	if !start.After(frontier) {
		e.save(t)
	}
	cut := frontier.Add(-time.Duration(e.cfg.Window) * time.Minute).Unix()
	for k := range t.hist {
		if k < cut {
			delete(t.hist, k)
		}
	}
}

// replay re-evaluates t from minute from (Unix seconds), which late data
// changed, up to its last evaluated minute. Only the outcome counts: if
// the replayed status differs from the live one, that difference is
// emitted once, now; reminders are never replayed, and a notification
// already sent is never sent again.
func (e *Evaluator) replay(t *tracked, w *window, from int64) {
	if t.st.LastMinute.IsZero() || from > t.st.LastMinute.Unix() {
		return // not evaluated yet: the minute is still open
	}
	var start int64 // the earliest kept minute at or after from
	for k := range t.hist {
		if k >= from && (start == 0 || k < start) {
			start = k
		}
	}
	if start == 0 {
		return
	}
	st := t.hist[start]
	var v minuteValue
	for m := time.Unix(start, 0).UTC(); !m.After(t.st.LastMinute); m = m.Add(time.Minute) {
		t.hist[m.Unix()] = st
		v = e.measure(t, w, m)
		st.step(&t.m, m, v)
	}
	live := t.st
	st.LastNotified = live.LastNotified
	if same(st.Status, live.Status) || (live.Status == StatusFiring && st.Status == StatusPending) {
		st.Status = live.Status
		if st != live {
			t.st = st
			e.save(t)
		}
		return
	}
	c := change{From: live.Status, To: st.Status, Since: st.Since}
	switch {
	case st.Status == StatusFiring:
		c.Notify = NotifyFiring
		st.LastNotified = live.LastMinute
	case live.Status == StatusFiring:
		c.Notify, c.Since, c.To = NotifyResolved, live.Since, StatusResolved
		st.Status, st.Since = StatusResolved, live.LastMinute
	}
	t.st = st
	e.emit(t, c, live.LastMinute, v, "late data for "+time.Unix(from, 0).UTC().Format("15:04"))
	e.save(t)
}

// same reports whether two statuses mean the same to a user: resolved is
// ok with a memory.
func same(a, b Status) bool {
	norm := func(s Status) Status {
		if s == StatusResolved || s == "" {
			return StatusOK
		}
		return s
	}
	return norm(a) == norm(b)
}

// emit records one change as an alert event and, when it notifies, as
// one outbox row per destination.
func (e *Evaluator) emit(t *tracked, c change, minute time.Time, v minuteValue, note string) {
	m := &t.m
	val := "no data"
	if v.has {
		val = describe(m, v.value)
	}
	detail := fmt.Sprintf("%s %s", m.Name, c.To)
	switch {
	case c.Notify == NotifyReminder:
		detail = fmt.Sprintf("%s still firing since %s", m.Name, c.Since.Format("15:04"))
	case c.To == StatusFiring:
		detail += fmt.Sprintf(" after %d min", m.Period)
	}
	detail += ": " + val
	if note != "" {
		detail += " (" + note + ")"
	}
	if c.From != c.To {
		e.batch.events = append(e.batch.events, drainpipe.Event{
			Time: minute, App: m.App, ProcessType: m.ProcessType,
			Kind: EventAlert, Code: string(m.Name), Detail: detail,
		})
	}
	if c.Notify == "" {
		return
	}
	since := c.Since
	if since.IsZero() {
		since = minute
	}
	n := Notification{
		ID: uuid.NewString(), Type: c.Notify, App: m.App, ProcessType: m.ProcessType,
		Monitor: *m, Minute: minute, Since: since, Value: v.value, HasValue: v.has,
		DashboardURL: DashboardURL(e.cfg.PublicURL, m.App, m.ProcessType, since.Add(-30*time.Minute), minute.Add(30*time.Minute)),
		CreatedAt:    e.cfg.Now().UTC(),
	}
	n.Text = fmt.Sprintf("[%s] %s %s: %s", strings.ToUpper(string(c.Notify)), m.App, m.ProcessType, detail)
	payload, err := json.Marshal(n)
	if err != nil {
		e.log.Error("monitor: encode notification", "err", err)
		return
	}
	for _, d := range e.cfg.Destinations {
		e.batch.notes = append(e.batch.notes, Outgoing{Destination: d, Notification: n, Payload: payload})
	}
}

// DashboardURL links to app's dashboard page at the time range [from,
// to): the page's shortest range that holds it, ending at to.
func DashboardURL(base, app, ptype string, from, to time.Time) string {
	span := to.Sub(from)
	rng := "7d"
	for _, r := range []struct {
		name string
		d    time.Duration
	}{{"1h", time.Hour}, {"2h", 2 * time.Hour}, {"24h", 24 * time.Hour}, {"72h", 72 * time.Hour}} {
		if span <= r.d {
			rng = r.name
			break
		}
	}
	q := url.Values{"range": {rng}, "end": {to.UTC().Format(time.RFC3339)}}
	if ptype != "web" {
		q.Set("type", ptype)
	}
	return strings.TrimRight(base, "/") + "/apps/" + url.PathEscape(app) + "?" + q.Encode()
}

func (e *Evaluator) save(t *tracked) {
	if e.batch.states == nil {
		e.batch.states = map[string]State{}
	}
	e.batch.states[t.m.ID] = t.st
	e.snapMu.Lock()
	e.snap[t.m.ID] = t.st
	e.snapMu.Unlock()
}

// commit writes the pass's states, events and notifications in one
// transaction. On failure they are kept and retried with the next pass.
func (e *Evaluator) commit(ctx context.Context) {
	if e.batch.empty() {
		if e.cfg.OK != nil {
			e.cfg.OK()
		}
		return
	}
	states := make([]State, 0, len(e.batch.states))
	for _, s := range e.batch.states {
		states = append(states, s)
	}
	sort.Slice(states, func(i, j int) bool { return states[i].MonitorID < states[j].MonitorID })
	if err := e.store.Commit(ctx, states, e.batch.events, e.batch.notes); err != nil {
		e.log.Error("monitor: save evaluation; will retry", "err", err)
		return
	}
	queued := len(e.batch.notes) > 0
	e.batch = batch{}
	if e.cfg.OK != nil {
		e.cfg.OK()
	}
	if queued && e.cfg.Delivered != nil {
		e.cfg.Delivered()
	}
}

// reloadMonitors reads the monitors (and, the first time, their states)
// from the store.
func (e *Evaluator) reloadMonitors(ctx context.Context) error {
	list, err := e.store.Monitors(ctx, "")
	if err != nil {
		return fmt.Errorf("monitor: list monitors: %w", err)
	}
	var states map[string]State
	if !e.loaded {
		all, err := e.store.States(ctx)
		if err != nil {
			return fmt.Errorf("monitor: read states: %w", err)
		}
		states = map[string]State{}
		for _, s := range all {
			states[s.MonitorID] = s
		}
	}
	seen := map[string]bool{}
	watched := map[string]bool{}
	for _, m := range list {
		seen[m.ID] = true
		t, ok := e.mons[m.ID]
		if !ok {
			st := states[m.ID]
			st.MonitorID, st.App = m.ID, m.App
			if st.Status == "" {
				st.Status = StatusOK
			}
			t = &tracked{m: m, st: st, hist: map[int64]State{}}
			if w, ok := e.apps[m.App]; ok && e.loaded {
				t.startAt = w.newest
			}
			e.mons[m.ID] = t
		} else if t.m.IsActive && !m.IsActive {
			e.deactivate(t)
		}
		if t.m.ActionType == ActionScale && e.cfg.Scaler != nil && (!m.IsActive || m.ActionType != ActionScale) {
			e.cfg.Scaler.Forget(t.m)
		}
		if t.m.Value != m.Value || t.m.Op != m.Op || t.m.Period != m.Period || t.m.Code != m.Code {
			t.hist = map[int64]State{} // the old minutes were judged by other rules
		}
		changed := t.m != m
		t.m = m
		if m.IsActive {
			watched[m.App] = true
			if m.ActionType == ActionScale && e.cfg.Scaler != nil && (changed || !ok) {
				e.cfg.Scaler.Track(m)
			}
		}
		e.snapMu.Lock()
		e.snap[m.ID] = t.st
		e.snapMu.Unlock()
	}
	for id, t := range e.mons {
		if !seen[id] {
			if t.m.ActionType == ActionScale && e.cfg.Scaler != nil {
				e.cfg.Scaler.Forget(t.m)
			}
			delete(e.mons, id)
			e.snapMu.Lock()
			delete(e.snap, id)
			e.snapMu.Unlock()
		}
	}
	e.byApp = map[string][]*tracked{}
	for _, m := range list {
		e.byApp[m.App] = append(e.byApp[m.App], e.mons[m.ID])
	}
	e.watched.Store(&watched)
	return nil
}

// deactivate ends a crossing of a monitor that was switched off: the
// event says so, and no notification is sent.
func (e *Evaluator) deactivate(t *tracked) {
	if t.st.Status == StatusPending || t.st.Status == StatusFiring {
		e.batch.events = append(e.batch.events, drainpipe.Event{
			Time: t.st.LastMinute, App: t.m.App, ProcessType: t.m.ProcessType,
			Kind: EventAlert, Code: string(t.m.Name), Detail: fmt.Sprintf("%s ok: monitor deactivated while %s", t.m.Name, t.st.Status),
		})
	}
	t.st.Status, t.st.Run, t.st.Since = StatusOK, 0, time.Time{}
	t.hist = map[int64]State{}
	e.save(t)
}
