// Package monitor holds drainpipe's threshold monitors (alerts and
// autoscaling, modelled on Heroku's) and the Evaluator that checks them
// against the aggregator's per-minute output as minutes close.
//
// A Monitor watches one series of one app's process type (p95 latency,
// the share of 5xx responses, memory against quota, router errors, log
// loss). The Evaluator is fed every flush the aggregator applied to the
// store (never by polling the store), merges the deltas into whole
// minutes, and when a minute closes moves each monitor through
// ok → pending → firing → resolved. Every transition is kept as an alert
// event and every notification goes to a durable outbox in the same
// transaction, from which the notify package delivers it.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/drainpipe/drainpipe"
)

// ActionType is what a monitor does when its threshold is crossed.
type ActionType string

// Action types.
const (
	ActionAlert ActionType = "alert" // notify
	ActionScale ActionType = "scale" // change the dyno count (LATENCY only)
)

// Name is the series a monitor watches.
type Name string

// Monitor names. LATENCY and ERROR_RATE are Heroku's; the others are
// drainpipe's own.
const (
	// Latency is the p95 of router service time in milliseconds.
	Latency Name = "LATENCY"
	// ErrorRate is the share (0..1) of responses with a 5xx status.
	ErrorRate Name = "ERROR_RATE"
	// MemoryQuota is the peak memory (memory_total max of any dyno) as a
	// share of the quota (1 = 100%); any R14 line counts as breaching.
	MemoryQuota Name = "MEMORY_QUOTA"
	// RouterErrors is the count of router H-code errors in a minute (of
	// one code when Code is set, else of all codes).
	RouterErrors Name = "ROUTER_ERRORS"
	// LogLoss is the count of log lines lost in a minute: dropped by the
	// platform (L10–L15, Logplex-Drop/Lost-Count) or rejected by drainpipe.
	LogLoss Name = "LOG_LOSS"
)

// Op compares a minute's value with the threshold.
type Op string

// Comparison operators.
const (
	GreaterOrEqual Op = "GREATER_OR_EQUAL"
	GreaterThan    Op = "GREATER_THAN"
)

// Breaches reports whether v crosses threshold under op.
func (o Op) Breaches(v, threshold float64) bool {
	if o == GreaterThan {
		return v > threshold
	}
	return v >= threshold
}

// Monitor is one threshold monitor of an app's process type. There is at
// most one per app, process type and name.
type Monitor struct {
	ID          string     `json:"id"`
	App         string     `json:"app"`
	ProcessType string     `json:"process_type"`
	ActionType  ActionType `json:"action_type"`
	Name        Name       `json:"name"`
	// Code narrows ROUTER_ERRORS to one H code ("H12"); empty means all.
	Code  string  `json:"code,omitempty"`
	Op    Op      `json:"op"`
	Value float64 `json:"value"`
	// Period is the sensitivity: how many consecutive closed minutes must
	// cross the threshold before the monitor fires (1, 5 or 10).
	Period int `json:"period"`
	// NotificationPeriod is the reminder interval in minutes while firing
	// (5, 60 or 1440).
	NotificationPeriod int  `json:"notification_period"`
	IsActive           bool `json:"is_active"`
	// MinQuantity and MaxQuantity bound the dyno count of a scale monitor.
	MinQuantity int       `json:"min_quantity,omitempty"`
	MaxQuantity int       `json:"max_quantity,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Limits of the fields.
const (
	MinLatencyMS  = 50
	MaxLatencyMS  = 30000 // the router's own timeout (H12)
	MaxQuantity   = 100
	MaxMemoryRate = 10
)

// Periods and NotificationPeriods are the allowed values, in minutes.
var (
	Periods             = []int{1, 5, 10}
	NotificationPeriods = []int{5, 60, 1440}
)

var (
	processTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,29}$`)
	hCodeRE       = regexp.MustCompile(`^H[0-9]{2}$`)
)

// ValidationError is a monitor that cannot be kept; its message says why
// and is meant for the API client (a 422 answer).
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

func oneOf(v int, allowed []int) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// Normalize fills defaults (process type web, op GREATER_OR_EQUAL, period
// 1 for scale and 5 for alerts, notification period 60) and checks every
// field, returning a *ValidationError that names the first bad one.
func (m *Monitor) Normalize() error {
	if m.ProcessType == "" {
		m.ProcessType = "web"
	}
	if m.Op == "" {
		m.Op = GreaterOrEqual
	}
	if m.Period == 0 {
		m.Period = 5
		if m.ActionType == ActionScale {
			m.Period = 1
		}
	}
	if m.NotificationPeriod == 0 {
		m.NotificationPeriod = 60
	}
	if !processTypeRE.MatchString(m.ProcessType) {
		return invalid("process_type %q: want lower-case letters, digits, _ or - (like web or worker)", m.ProcessType)
	}
	switch m.ActionType {
	case ActionAlert, ActionScale:
	case "":
		return invalid("action_type is required: alert or scale")
	default:
		return invalid("action_type %q: want alert or scale", m.ActionType)
	}
	switch m.Op {
	case GreaterOrEqual, GreaterThan:
	default:
		return invalid("op %q: want GREATER_OR_EQUAL or GREATER_THAN", m.Op)
	}
	if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
		return invalid("value must be a finite number")
	}
	switch m.Name {
	case Latency:
		if m.Value < MinLatencyMS || m.Value > MaxLatencyMS {
			return invalid("value %g: LATENCY is the p95 in milliseconds, from %d to %d", m.Value, MinLatencyMS, MaxLatencyMS)
		}
	case ErrorRate:
		if m.Value <= 0 || m.Value > 1 {
			return invalid("value %g: ERROR_RATE is a share of requests, above 0 and at most 1 (0.05 is 5%%)", m.Value)
		}
	case MemoryQuota:
		if m.Value <= 0 || m.Value > MaxMemoryRate {
			return invalid("value %g: MEMORY_QUOTA is a share of the quota, above 0 and at most %d (1 is 100%%)", m.Value, MaxMemoryRate)
		}
	case RouterErrors, LogLoss:
		if m.Value < 1 || m.Value != math.Trunc(m.Value) {
			return invalid("value %g: %s is a count per minute, a whole number of at least 1", m.Value, m.Name)
		}
	case "":
		return invalid("name is required: LATENCY, ERROR_RATE, MEMORY_QUOTA, ROUTER_ERRORS or LOG_LOSS")
	default:
		return invalid("name %q: want LATENCY, ERROR_RATE, MEMORY_QUOTA, ROUTER_ERRORS or LOG_LOSS", m.Name)
	}
	if m.Code != "" && (m.Name != RouterErrors || !hCodeRE.MatchString(m.Code)) {
		return invalid("code %q: only ROUTER_ERRORS takes a code, an H code such as H12", m.Code)
	}
	if !oneOf(m.Period, Periods) {
		return invalid("period %d: want 1, 5 or 10 (minutes)", m.Period)
	}
	if !oneOf(m.NotificationPeriod, NotificationPeriods) {
		return invalid("notification_period %d: want 5, 60 or 1440 (minutes)", m.NotificationPeriod)
	}
	if m.ActionType == ActionScale {
		if m.Name != Latency {
			return invalid("action_type scale works with LATENCY only, not %s", m.Name)
		}
		if m.MinQuantity < 1 || m.MaxQuantity > MaxQuantity || m.MinQuantity > m.MaxQuantity {
			return invalid("min_quantity %d, max_quantity %d: want 1 <= min_quantity <= max_quantity <= %d", m.MinQuantity, m.MaxQuantity, MaxQuantity)
		}
	} else if m.MinQuantity != 0 || m.MaxQuantity != 0 {
		return invalid("min_quantity and max_quantity are for action_type scale only")
	}
	return nil
}

// Store keeps monitors, their evaluation state and the notification
// outbox. sqlite.Store implements it for the embedded default; a
// PostgreSQL implementation is left for the scale-out.
type Store interface {
	// CreateMonitor keeps a new monitor; drainpipe.ErrExists when the
	// app already has one of that process type and name.
	CreateMonitor(ctx context.Context, m Monitor) error
	// UpdateMonitor replaces a monitor (same ID and app);
	// drainpipe.ErrNotFound or drainpipe.ErrExists as for create.
	UpdateMonitor(ctx context.Context, m Monitor) error
	// DeleteMonitor removes a monitor and its state.
	DeleteMonitor(ctx context.Context, app, id string) error
	// Monitors lists an app's monitors ("" lists every app's), oldest
	// first.
	Monitors(ctx context.Context, app string) ([]Monitor, error)
	// States returns the saved evaluation state of every monitor.
	States(ctx context.Context) ([]State, error)
	// Commit saves evaluation states, appends events and queues
	// notifications (one outbox row per notification and destination),
	// all in one transaction.
	Commit(ctx context.Context, states []State, events []drainpipe.Event, notes []Outgoing) error
}

// ErrNotFound and ErrExists are the store's answers, shared with the
// rest of drainpipe.
var (
	ErrNotFound = drainpipe.ErrNotFound
	ErrExists   = drainpipe.ErrExists
)

// IsValidation reports whether err is a *ValidationError.
func IsValidation(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}
