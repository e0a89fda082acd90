// Package drainpipe holds the domain types and the interfaces that connect
// drainpipe's parts: the journal between ingest and aggregation, and the
// store that keeps per-minute, per-10-minute and per-hour buckets.
//
// Each dependency lives in its own package that implements these interfaces
// (sqlite/ for the embedded default; later postgres/ and kafka/ for the
// scale-out roles), and cmd/drainpipe wires them together.
package drainpipe

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when an app, series or record does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when creating something that already exists.
var ErrExists = errors.New("already exists")

// App is one Heroku app whose drain posts to drainpipe.
type App struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Credentials are what an app presents: the drain's basic-auth pair and a
// read-only API token that sees only this app.
type Credentials struct {
	DrainUser   string
	DrainSecret string
	APIToken    string
}

// Batch is one acknowledged drain POST as it is kept in the journal: the raw
// logplex-1 body and the headers that matter for counting.
type Batch struct {
	App        string
	FrameID    string // Logplex-Frame-Id; empty when the client sent none
	ReceivedAt time.Time
	Body       []byte
	// Dropped and Lost are the Logplex-Drop-Count and Logplex-Lost-Count
	// headers sent by log-shuttle style clients.
	Dropped int64
	Lost    int64
}

// Record is a Batch read back from the journal with its position.
type Record struct {
	Seq int64
	Batch
	// Damaged is set when the journal found the record's checksum wrong
	// (its bytes were changed on disk). The body is then empty and the
	// aggregator counts the batch as lost (rejected.corrupt) for App.
	Damaged bool
}

// Journal is the durable, ordered, replayable log between ingest and
// aggregation. Append returns only once the batch is durable; a batch whose
// (App, FrameID) was already appended is not appended again and reports
// duplicate=true, for at least FrameIDRetention after the first append.
type Journal interface {
	Append(ctx context.Context, b Batch) (seq int64, duplicate bool, err error)
	// Read returns up to max records with Seq > after, in order.
	Read(ctx context.Context, after int64, max int) ([]Record, error)
	// Trim forgets records with Seq <= upTo (they are safely aggregated).
	Trim(ctx context.Context, upTo int64) error
	Close() error
}

// FrameIDRetention is how long a journal remembers a Logplex-Frame-Id for
// deduplication. Logplex retries within seconds; a day is far beyond any
// retry and bounds the index.
const FrameIDRetention = 24 * time.Hour

// Tier is a bucket width kept by the store.
type Tier time.Duration

// The tiers the store keeps; a query step maps onto one of them.
const (
	Tier1m  = Tier(time.Minute)
	Tier10m = Tier(10 * time.Minute)
	Tier1h  = Tier(time.Hour)
)

// Tiers lists the stored tiers from finest to coarsest.
var Tiers = [...]Tier{Tier1m, Tier10m, Tier1h}

// Duration returns the tier's bucket width.
func (t Tier) Duration() time.Duration { return time.Duration(t) }

// String names the tier as a step ("1m", "10m", "1h").
func (t Tier) String() string {
	switch t {
	case Tier1m:
		return "1m"
	case Tier10m:
		return "10m"
	case Tier1h:
		return "1h"
	}
	return time.Duration(t).String()
}

// EventKind classifies an app event shown on the events chart.
type EventKind string

// Event kinds.
const (
	EventDeploy  EventKind = "deploy"
	EventRelease EventKind = "release"
	EventScale   EventKind = "scale"
	EventConfig  EventKind = "config"
	EventRestart EventKind = "restart"
	EventCrash   EventKind = "crash"
	EventStart   EventKind = "start"
	EventStop    EventKind = "stop"
	EventExit    EventKind = "exit"
	EventState   EventKind = "state"
	EventError   EventKind = "dyno_error" // R10, R14 ... as discrete events
)

// Event is a discrete happening in an app's life: a deploy, a restart, a
// crash, a scaling.
type Event struct {
	Time        time.Time `json:"time"`
	App         string    `json:"-"`
	ProcessType string    `json:"process_type,omitempty"`
	Dyno        string    `json:"dyno,omitempty"`
	Kind        EventKind `json:"kind"`
	Code        string    `json:"code,omitempty"`
	Detail      string    `json:"detail"`
}

// ErrUnauthorized is returned when credentials do not match.
var ErrUnauthorized = errors.New("unauthorized")

// ErrUnavailable wraps errors that come from a dependency being out of
// reach rather than from the request: the PostgreSQL server is down,
// restarting or failing over. The caller may retry later; the HTTP API
// answers 503.
var ErrUnavailable = errors.New("store unavailable")

// DefaultRetention is how long each tier is kept unless configured
// otherwise (SPEC §2).
func DefaultRetention() map[Tier]time.Duration {
	return map[Tier]time.Duration{
		Tier1m:  3 * 24 * time.Hour,
		Tier10m: 35 * 24 * time.Hour,
		Tier1h:  400 * 24 * time.Hour,
	}
}
