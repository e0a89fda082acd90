package monitor

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// memStore is an in-memory Store for the evaluator's unit tests (the
// SQLite one is exercised by the e2e tests).
type memStore struct {
	mons   []Monitor
	states map[string]State
	events []drainpipe.Event
	notes  []Outgoing
}

func (s *memStore) CreateMonitor(_ context.Context, m Monitor) error {
	s.mons = append(s.mons, m)
	return nil
}
func (s *memStore) UpdateMonitor(_ context.Context, m Monitor) error {
	for i := range s.mons {
		if s.mons[i].ID == m.ID {
			s.mons[i] = m
		}
	}
	return nil
}
func (s *memStore) DeleteMonitor(context.Context, string, string) error { return nil }
func (s *memStore) Monitors(context.Context, string) ([]Monitor, error) {
	return slices.Clone(s.mons), nil
}
func (s *memStore) States(context.Context) ([]State, error) { return nil, nil }
func (s *memStore) Commit(_ context.Context, st []State, ev []drainpipe.Event, n []Outgoing) error {
	for _, x := range st {
		s.states[x.MonitorID] = x
	}
	s.events = append(s.events, ev...)
	s.notes = append(s.notes, n...)
	return nil
}

// errorMinute is a flushed row of web with n requests, bad of them 5xx.
func errorMinute(at time.Time, n, bad int) metrics.Row {
	b := new(metrics.Bucket)
	for i := 0; i < n; i++ {
		st := 200
		if i < bad {
			st = 503
		}
		b.AddStatus(st)
	}
	return metrics.Row{App: "shop", ProcessType: "web", Time: at, Bucket: b}
}

func TestStepStateMachine(t *testing.T) {
	m := &Monitor{Period: 3, NotificationPeriod: 5}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var st State
	var trail []string
	// Crossing 2 minutes (pending, back to ok), then 9 (firing at the 3rd,
	// a reminder 5 minutes later), then recovery.
	pattern := []bool{false, true, true, false, true, true, true, true, true, true, true, true, true, false, false}
	for i, b := range pattern {
		for _, c := range st.step(m, t0.Add(time.Duration(i)*time.Minute), minuteValue{breach: b, has: true}) {
			trail = append(trail, string(c.To)+"/"+string(c.Notify)+"@"+t0.Add(time.Duration(i)*time.Minute).Format("04"))
		}
	}
	want := []string{"pending/@01", "ok/@03", "pending/@04", "firing/firing@06", "firing/reminder@11", "resolved/resolved@13"}
	if !slices.Equal(trail, want) {
		t.Fatalf("trail %q, want %q", trail, want)
	}
	if st.Status != StatusResolved || st.Run != 0 {
		t.Errorf("final state %+v", st)
	}
}

// TestLateDataFiresOnce: a minute that closed healthy turns out (late
// lines) to have crossed, which makes the run long enough: the monitor
// fires once, now; more late lines for it change nothing further.
func TestLateDataFiresOnce(t *testing.T) {
	st := &memStore{states: map[string]State{}, mons: []Monitor{{
		ID: "m1", App: "shop", ProcessType: "web", ActionType: ActionAlert, Name: ErrorRate,
		Op: GreaterOrEqual, Value: 0.5, Period: 5, NotificationPeriod: 60, IsActive: true,
	}}}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	e := NewEvaluator(Config{Destinations: []string{"hook"}, Grace: time.Hour, Now: func() time.Time { return now }},
		st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := e.Load(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	flush := func(rows ...metrics.Row) {
		e.Observe(&metrics.Flush{Rows: rows})
		e.pass(context.Background())
	}
	// Minutes 0-3 cross, 4 is healthy, 5-8 cross; 9 closes 8.
	for i := 0; i <= 9; i++ {
		bad := 8
		if i == 4 || i == 9 {
			bad = 0
		}
		flush(errorMinute(t0.Add(time.Duration(i)*time.Minute), 10, bad))
	}
	if len(st.notes) != 0 {
		t.Fatalf("notified before the late data: %+v", st.notes)
	}
	if s := st.states["m1"]; s.Status != StatusPending || s.Run != 4 {
		t.Fatalf("state before late data: %+v", s)
	}
	// Late lines for minute 4: 40 more requests, all 503 → 40/50 crossing.
	flush(errorMinute(t0.Add(4*time.Minute+30*time.Second).Truncate(time.Minute), 40, 40))
	if len(st.notes) != 1 || st.notes[0].Notification.Type != NotifyFiring || !st.notes[0].Notification.Since.Equal(t0) {
		t.Fatalf("after late data: %+v", st.notes)
	}
	if s := st.states["m1"]; s.Status != StatusFiring || s.Run != 9 {
		t.Fatalf("state after late data: %+v", s)
	}
	last := st.events[len(st.events)-1]
	if last.Kind != EventAlert || !strings.HasPrefix(last.Detail, "ERROR_RATE firing after 5 min") || !strings.Contains(last.Detail, "late data for 10:04") {
		t.Errorf("late firing event: %+v", last)
	}
	// More late lines for the same minute: no duplicate.
	flush(errorMinute(t0.Add(4*time.Minute), 10, 10))
	if len(st.notes) != 1 {
		t.Fatalf("late data notified twice: %+v", st.notes)
	}
	// Recovery notifies resolved once.
	flush(errorMinute(t0.Add(10*time.Minute), 10, 0))
	flush(errorMinute(t0.Add(11*time.Minute), 10, 0))
	if len(st.notes) != 2 || st.notes[1].Notification.Type != NotifyResolved {
		t.Fatalf("after recovery: %+v", st.notes)
	}
}

func TestNormalizeDefaults(t *testing.T) {
	m := Monitor{ActionType: ActionScale, Name: Latency, Value: 800, MinQuantity: 1, MaxQuantity: 3}
	if err := m.Normalize(); err != nil {
		t.Fatal(err)
	}
	if m.ProcessType != "web" || m.Period != 1 || m.Op != GreaterOrEqual || m.NotificationPeriod != 60 {
		t.Errorf("scale defaults: %+v", m)
	}
	for _, bad := range []Monitor{
		{ActionType: ActionAlert, Name: Latency, Value: 49},
		{ActionType: ActionAlert, Name: ErrorRate, Value: 0},
		{ActionType: ActionAlert, Name: RouterErrors, Value: 1.5},
		{ActionType: ActionAlert, Name: LogLoss, Value: 0},
		{ActionType: ActionAlert, Name: MemoryQuota, Value: 11},
	} {
		if err := bad.Normalize(); !IsValidation(err) {
			t.Errorf("%+v: %v, want a validation error", bad, err)
		}
	}
}

// TestNewMonitorSkipsThePast: a monitor created for an app whose recent
// minutes the evaluator already holds starts at the minute in progress,
// not at the oldest one it could see.
func TestNewMonitorSkipsThePast(t *testing.T) {
	st := &memStore{states: map[string]State{}, mons: []Monitor{{
		ID: "a", App: "shop", ProcessType: "web", ActionType: ActionAlert, Name: RouterErrors,
		Op: GreaterOrEqual, Value: 1, Period: 1, NotificationPeriod: 60, IsActive: true,
	}}}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	e := NewEvaluator(Config{Destinations: []string{"hook"}, Grace: time.Hour, Now: func() time.Time { return now }},
		st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := e.Load(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := 0; i <= 5; i++ { // 80% errors from minute 0
		e.Observe(&metrics.Flush{Rows: []metrics.Row{errorMinute(t0.Add(time.Duration(i)*time.Minute), 10, 8)}})
		e.pass(context.Background())
	}
	st.mons = append(st.mons, Monitor{ID: "b", App: "shop", ProcessType: "web", ActionType: ActionAlert, Name: ErrorRate,
		Op: GreaterOrEqual, Value: 0.5, Period: 1, NotificationPeriod: 60, IsActive: true})
	e.Changed()
	e.pass(context.Background())
	e.Observe(&metrics.Flush{Rows: []metrics.Row{errorMinute(t0.Add(6*time.Minute), 10, 8)}})
	e.pass(context.Background())
	if len(st.notes) != 1 || !st.notes[0].Notification.Minute.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("new monitor notified %+v, want one firing for minute 5 (created while minute 5 was open)", st.notes)
	}
}
