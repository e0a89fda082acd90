package server

import (
	"context"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// EventsLimit is the most events one Store.Events call returns: the newest
// ones of the window when there are more.
const EventsLimit = 100_000

// Store is what the HTTP server needs from the store: the app registry
// with its credentials, and read access to buckets and events. The
// embedded implementation is sqlite.Store.
type Store interface {
	// CreateApp registers an app and returns fresh credentials in plain
	// text; only their hashes are kept. It returns drainpipe.ErrExists when
	// the name is taken.
	CreateApp(ctx context.Context, name string) (drainpipe.App, drainpipe.Credentials, error)
	// ListApps returns every app, ordered by name.
	ListApps(ctx context.Context) ([]drainpipe.App, error)
	// App returns one app, or drainpipe.ErrNotFound. The query API uses it
	// to answer 404 for an unknown app before reading any data.
	App(ctx context.Context, name string) (drainpipe.App, error)
	// VerifyDrain checks a drain's basic-auth pair. It returns
	// drainpipe.ErrNotFound for an unknown app and drainpipe.ErrUnauthorized when the
	// pair does not match.
	VerifyDrain(ctx context.Context, app, user, secret string) error
	// AppForToken returns the app an API token belongs to, or
	// drainpipe.ErrNotFound.
	AppForToken(ctx context.Context, token string) (string, error)
	// Buckets returns the stored rows of tier for app in [start, end),
	// ordered by time. processType "" means every process type; app ""
	// means every app (the fleet summary of GET /api/apps reads the last
	// two hours of Tier10m this way, in one call). Coarser tiers must be
	// as fresh as Tier1m, the still-open bucket included.
	Buckets(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time) ([]metrics.Row, error)
	// RequestCounts returns per-bucket request and 5xx counts of every app
	// (all process types summed per app and bucket) in [start, end).
	RequestCounts(ctx context.Context, tier drainpipe.Tier, start, end time.Time) ([]metrics.RequestCount, error)
	// Events returns app's events in [start, end), oldest first: the newest
	// EventsLimit (100,000) of them when there are more. A non-empty dyno keeps only that
	// dyno's events (and app-wide ones such as deploys). The slice is the
	// caller's.
	Events(ctx context.Context, app string, start, end time.Time, dyno string) ([]drainpipe.Event, error)
	// LastEvents returns the latest deploy, release, restart or crash event
	// of every app, by app name.
	LastEvents(ctx context.Context) (map[string]drainpipe.Event, error)
	// Formation returns the process types and dyno names seen for app.
	Formation(ctx context.Context, app string) ([]ProcessType, error)
	// CustomMetrics returns the custom metric names seen for app.
	CustomMetrics(ctx context.Context, app string) ([]CustomMetric, error)
	// Retention tells how long each tier is kept, so queries beyond it
	// answer nulls without touching the store.
	Retention() map[drainpipe.Tier]time.Duration
}

// PartStore is implemented by stores that can decode only the parts of
// each bucket a query reads (metrics.DecodeParts). The query API uses it
// when the store offers it; the buckets it returns must verify their
// checksums as Buckets does.
type PartStore interface {
	// BucketParts is Store.Buckets with only parts decoded in each bucket.
	BucketParts(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time, parts metrics.Part) ([]metrics.Row, error)
}

// LatencyStore is implemented by stores that can read the latency part
// of each stored bucket in place (metrics.ViewLatency) instead of
// decoding it. The latency answer then reads its quantiles straight from
// the encoded sketches and allocates nothing per bucket.
type LatencyStore interface {
	// EachLatency calls fn with the latency view of every stored row of
	// tier for app and processType in [start, end) that Buckets would
	// return, ordered by time. Each view has passed metrics.ViewLatency's
	// checks, the bucket's checksum among them; rows that fail are left
	// out as Buckets leaves them out. The view is valid only during the
	// call (metrics.LatencyView.Keep copies it).
	EachLatency(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time, fn func(t time.Time, v *metrics.LatencyView)) error
}

// ProcessType is one process type of an app's formation.
type ProcessType struct {
	Name  string   `json:"name"`
	Dynos []string `json:"dynos"`
}

// CustomMetric names one l2met custom metric and its kind ("count",
// "sample" or "measure").
type CustomMetric struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}
