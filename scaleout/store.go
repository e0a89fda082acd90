package scaleout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/server"
)

// OpenFunc opens the store (connects, migrates). An error wrapping
// drainpipe.ErrUnavailable means the store is out of reach and the open
// is retried; any other error (a bad URL, wrong credentials) is fatal.
type OpenFunc func(ctx context.Context) (Store, error)

// Open-retry backoff: 1 s, doubling, at most 30 s between attempts.
const (
	openBackoffMin = time.Second
	openBackoffMax = 30 * time.Second
	// openTimeout bounds one attempt (connect, migrate, partitions).
	openTimeout = time.Minute
)

// errNotOpen is what the store's methods return before it is open.
var errNotOpen = fmt.Errorf("postgres: not connected yet (retrying): %w", drainpipe.ErrUnavailable)

// lazyStore is the store of a scale-out process, which starts whether or
// not the store can be reached: it is opened in the background, retried
// with backoff, and until then every method fails with an error wrapping
// drainpipe.ErrUnavailable (the API answers 503, ingest answers 503 for
// drain credentials it has not verified). Retention is known from the
// configuration before the store opens.
type lazyStore struct {
	retention map[drainpipe.Tier]time.Duration
	reach     *reach
	ready     chan struct{} // closed once st is set

	mu sync.Mutex
	st Store
}

func newLazyStore(retention map[drainpipe.Tier]time.Duration, log *slog.Logger) *lazyStore {
	if retention == nil {
		retention = drainpipe.DefaultRetention()
	}
	return &lazyStore{retention: retention, reach: newReach("store", log), ready: make(chan struct{})}
}

var (
	_ server.Store            = (*lazyStore)(nil)
	_ aggregate.PartitionSink = (*lazyStore)(nil)
)

// open calls open until it succeeds, ctx ends or it fails for a reason
// other than the store being unreachable, which it returns.
func (l *lazyStore) open(ctx context.Context, open OpenFunc, log *slog.Logger) error {
	backoff := openBackoffMin
	for attempt := 1; ; attempt++ {
		l.reach.setNote(fmt.Sprintf("opening (attempt %d)", attempt))
		octx, cancel := context.WithTimeout(ctx, openTimeout)
		st, err := open(octx)
		if err != nil && octx.Err() != nil && ctx.Err() == nil {
			// A server that drops packets is unreachable too.
			err = fmt.Errorf("no answer within %s: %w: %w", openTimeout, drainpipe.ErrUnavailable, err)
		}
		cancel()
		if ctx.Err() != nil {
			if err == nil {
				st.Close()
			}
			return nil
		}
		if err == nil {
			l.mu.Lock()
			l.st = st
			l.mu.Unlock()
			l.reach.setNote("")
			l.reach.observe(nil)
			close(l.ready)
			if attempt > 1 {
				log.Info("store open", "attempts", attempt)
			}
			return nil
		}
		if !errors.Is(err, drainpipe.ErrUnavailable) {
			l.reach.setNote("failed")
			l.reach.observe(err)
			return fmt.Errorf("open the store: %w", err)
		}
		l.reach.observe(err)
		l.reach.setNote(fmt.Sprintf("not open: attempt %d failed, retrying in %s", attempt, backoff))
		log.Warn("store unreachable; retrying (the api answers 503, ingest takes only drains whose credentials it verified)",
			"attempt", attempt, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, openBackoffMax)
	}
}

// wait blocks until the store is open or ctx ends.
func (l *lazyStore) wait(ctx context.Context) (Store, error) {
	select {
	case <-l.ready:
		return l.store()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// store returns the open store, or errNotOpen.
func (l *lazyStore) store() (Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st == nil {
		return nil, errNotOpen
	}
	return l.st, nil
}

// ping checks the open store, for reach.probe.
func (l *lazyStore) ping(ctx context.Context) error {
	st, err := l.store()
	if err != nil {
		return err
	}
	return st.Ping(ctx)
}

// close closes the store if it was opened.
func (l *lazyStore) close() error {
	l.mu.Lock()
	st := l.st
	l.st = nil
	l.mu.Unlock()
	if st == nil {
		return nil
	}
	return st.Close()
}

// Retention is the configured retention, known before the store opens.
func (l *lazyStore) Retention() map[drainpipe.Tier]time.Duration { return l.retention }

// CreateApp implements server.Store.
func (l *lazyStore) CreateApp(ctx context.Context, name string) (drainpipe.App, drainpipe.Credentials, error) {
	st, err := l.store()
	if err != nil {
		return drainpipe.App{}, drainpipe.Credentials{}, err
	}
	return st.CreateApp(ctx, name)
}

// ListApps implements server.Store.
func (l *lazyStore) ListApps(ctx context.Context) ([]drainpipe.App, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	return st.ListApps(ctx)
}

// App implements server.Store.
func (l *lazyStore) App(ctx context.Context, name string) (drainpipe.App, error) {
	st, err := l.store()
	if err != nil {
		return drainpipe.App{}, err
	}
	return st.App(ctx, name)
}

// VerifyDrain implements server.Store.
func (l *lazyStore) VerifyDrain(ctx context.Context, app, user, secret string) error {
	st, err := l.store()
	if err != nil {
		return err
	}
	return st.VerifyDrain(ctx, app, user, secret)
}

// AppForToken implements server.Store.
func (l *lazyStore) AppForToken(ctx context.Context, token string) (string, error) {
	st, err := l.store()
	if err != nil {
		return "", err
	}
	return st.AppForToken(ctx, token)
}

// Buckets implements server.Store.
func (l *lazyStore) Buckets(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time) ([]metrics.Row, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	return st.Buckets(ctx, app, processType, tier, start, end)
}

// BucketParts implements server.PartStore when the store under it does.
func (l *lazyStore) BucketParts(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time, parts metrics.Part) ([]metrics.Row, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	if ps, ok := st.(server.PartStore); ok {
		return ps.BucketParts(ctx, app, processType, tier, start, end, parts)
	}
	return st.Buckets(ctx, app, processType, tier, start, end)
}

// RequestCounts implements server.Store.
func (l *lazyStore) RequestCounts(ctx context.Context, tier drainpipe.Tier, start, end time.Time) ([]metrics.RequestCount, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	return st.RequestCounts(ctx, tier, start, end)
}

// Events implements server.Store.
func (l *lazyStore) Events(ctx context.Context, app string, start, end time.Time, dyno string) ([]drainpipe.Event, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	return st.Events(ctx, app, start, end, dyno)
}

// LastEvents implements server.Store.
func (l *lazyStore) LastEvents(ctx context.Context) (map[string]drainpipe.Event, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	return st.LastEvents(ctx)
}

// Formation implements server.Store.
func (l *lazyStore) Formation(ctx context.Context, app string) ([]server.ProcessType, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	return st.Formation(ctx, app)
}

// CustomMetrics implements server.Store.
func (l *lazyStore) CustomMetrics(ctx context.Context, app string) ([]server.CustomMetric, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	return st.CustomMetrics(ctx, app)
}

// ApplyPartition implements aggregate.PartitionSink.
func (l *lazyStore) ApplyPartition(ctx context.Context, p *aggregate.PartitionFlush) error {
	st, err := l.store()
	if err != nil {
		return err
	}
	return st.ApplyPartition(ctx, p)
}

// PartitionOffset implements aggregate.PartitionSink.
func (l *lazyStore) PartitionOffset(ctx context.Context, group, topic string, partition int32) (int64, error) {
	st, err := l.store()
	if err != nil {
		return 0, err
	}
	return st.PartitionOffset(ctx, group, topic, partition)
}

// SeenFrames implements aggregate.PartitionSink.
func (l *lazyStore) SeenFrames(ctx context.Context, keys []aggregate.FrameKey) (map[aggregate.FrameKey]bool, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	return st.SeenFrames(ctx, keys)
}
