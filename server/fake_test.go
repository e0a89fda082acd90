package server

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// fakeJournal is an in-memory Journal with deduplication by (App, FrameID).
type fakeJournal struct {
	mu      sync.Mutex
	batches []drainpipe.Batch
	seen    map[string]bool
	err     error
	// block, when not nil, makes Append wait until it is closed; entered
	// receives a value once Append is waiting.
	block   chan struct{}
	entered chan struct{}
}

func (j *fakeJournal) Append(ctx context.Context, b drainpipe.Batch) (int64, bool, error) {
	if j.block != nil {
		if j.entered != nil {
			j.entered <- struct{}{}
		}
		<-j.block
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return 0, false, j.err
	}
	if j.seen == nil {
		j.seen = map[string]bool{}
	}
	if b.FrameID != "" {
		k := b.App + "\x00" + b.FrameID
		if j.seen[k] {
			return 0, true, nil
		}
		j.seen[k] = true
	}
	j.batches = append(j.batches, b)
	return int64(len(j.batches)), false, nil
}

func (j *fakeJournal) Read(ctx context.Context, after int64, max int) ([]drainpipe.Record, error) {
	return nil, errors.New("not implemented")
}
func (j *fakeJournal) Trim(ctx context.Context, upTo int64) error { return nil }
func (j *fakeJournal) Close() error                               { return nil }

func (j *fakeJournal) all() []drainpipe.Batch {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]drainpipe.Batch(nil), j.batches...)
}

type fakeApp struct {
	app drainpipe.App
	cr  drainpipe.Credentials
}

// fakeStore is an in-memory Store. It keeps 1-minute rows and rolls them
// up into the coarser tiers on read, by merging, as the real store does on
// write.
type fakeStore struct {
	mu           sync.Mutex
	apps         map[string]fakeApp
	rows         []metrics.Row // Tier1m
	events       []drainpipe.Event
	formation    map[string][]ProcessType
	custom       map[string][]CustomMetric
	retention    map[drainpipe.Tier]time.Duration
	bucketsCalls int
	err          error
}

func newFakeStore() *fakeStore {
	return &fakeStore{apps: map[string]fakeApp{}, formation: map[string][]ProcessType{}, custom: map[string][]CustomMetric{}}
}

// addApp registers an app with predictable credentials.
func (s *fakeStore) addApp(name string, created time.Time) drainpipe.Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	cr := drainpipe.Credentials{DrainUser: "u-" + name, DrainSecret: "s-" + name, APIToken: "t-" + name}
	s.apps[name] = fakeApp{app: drainpipe.App{Name: name, CreatedAt: created}, cr: cr}
	return cr
}

// add stores a 1-minute row, merging into an existing one.
func (s *fakeStore) add(app, pt string, t time.Time, b *metrics.Bucket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t = t.Truncate(time.Minute).UTC()
	for _, r := range s.rows {
		if r.App == app && r.ProcessType == pt && r.Time.Equal(t) {
			r.Bucket.Merge(b)
			return
		}
	}
	nb := new(metrics.Bucket)
	nb.Merge(b)
	s.rows = append(s.rows, metrics.Row{App: app, ProcessType: pt, Time: t, Bucket: nb})
}

func (s *fakeStore) CreateApp(ctx context.Context, name string) (drainpipe.App, drainpipe.Credentials, error) {
	if s.err != nil {
		return drainpipe.App{}, drainpipe.Credentials{}, s.err
	}
	s.mu.Lock()
	_, ok := s.apps[name]
	s.mu.Unlock()
	if ok {
		return drainpipe.App{}, drainpipe.Credentials{}, drainpipe.ErrExists
	}
	cr := s.addApp(name, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	return s.apps[name].app, cr, nil
}

func (s *fakeStore) ListApps(ctx context.Context) ([]drainpipe.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []drainpipe.App
	for _, a := range s.apps {
		out = append(out, a.app)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *fakeStore) App(ctx context.Context, name string) (drainpipe.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[name]
	if !ok {
		return drainpipe.App{}, drainpipe.ErrNotFound
	}
	return a.app, nil
}

func (s *fakeStore) VerifyDrain(ctx context.Context, app, user, secret string) error {
	if s.err != nil {
		return s.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[app]
	if !ok {
		return drainpipe.ErrNotFound
	}
	if user != a.cr.DrainUser || secret != a.cr.DrainSecret {
		return drainpipe.ErrUnauthorized
	}
	return nil
}

func (s *fakeStore) AppForToken(ctx context.Context, token string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, a := range s.apps {
		if a.cr.APIToken == token {
			return name, nil
		}
	}
	return "", drainpipe.ErrNotFound
}

func (s *fakeStore) Buckets(ctx context.Context, app, pt string, tier drainpipe.Tier, start, end time.Time) ([]metrics.Row, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bucketsCalls++
	type key struct {
		app, pt string
		t       int64
	}
	m := map[key]*metrics.Row{}
	for _, r := range s.rows {
		if app != "" && r.App != app || pt != "" && r.ProcessType != pt {
			continue
		}
		t := alignDown(r.Time, tier.Duration())
		if t.Before(start) || !t.Before(end) {
			continue
		}
		k := key{r.App, r.ProcessType, t.Unix()}
		row := m[k]
		if row == nil {
			row = &metrics.Row{App: r.App, ProcessType: r.ProcessType, Time: t, Bucket: new(metrics.Bucket)}
			m[k] = row
		}
		row.Bucket.Merge(r.Bucket)
	}
	out := make([]metrics.Row, 0, len(m))
	for _, r := range m {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

func (s *fakeStore) RequestCounts(ctx context.Context, tier drainpipe.Tier, start, end time.Time) ([]metrics.RequestCount, error) {
	rows, _ := s.Buckets(ctx, "", "", tier, start, end)
	type key struct {
		app string
		t   int64
	}
	m := map[key]*metrics.RequestCount{}
	var order []key
	for _, r := range rows {
		k := key{r.App, r.Time.Unix()}
		c := m[k]
		if c == nil {
			c = &metrics.RequestCount{App: r.App, Time: r.Time}
			m[k] = c
			order = append(order, k)
		}
		c.Requests += r.Bucket.Requests
		c.Errors5xx += r.Bucket.Count5xx()
	}
	out := make([]metrics.RequestCount, 0, len(order))
	for _, k := range order {
		out = append(out, *m[k])
	}
	return out, nil
}

func (s *fakeStore) Events(ctx context.Context, app string, start, end time.Time, dyno string) ([]drainpipe.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []drainpipe.Event
	for _, e := range s.events {
		if e.App != app || e.Time.Before(start) || !e.Time.Before(end) {
			continue
		}
		if dyno != "" && e.Dyno != "" && e.Dyno != dyno {
			continue
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

func (s *fakeStore) LastEvents(ctx context.Context) (map[string]drainpipe.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]drainpipe.Event{}
	for _, e := range s.events {
		switch e.Kind {
		case drainpipe.EventDeploy, drainpipe.EventRelease, drainpipe.EventRestart, drainpipe.EventCrash:
		default:
			continue
		}
		if cur, ok := out[e.App]; !ok || e.Time.After(cur.Time) {
			out[e.App] = e
		}
	}
	return out, nil
}

func (s *fakeStore) Formation(ctx context.Context, app string) ([]ProcessType, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.formation[app], nil
}

func (s *fakeStore) CustomMetrics(ctx context.Context, app string) ([]CustomMetric, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.custom[app], nil
}

func (s *fakeStore) Retention() map[drainpipe.Tier]time.Duration { return s.retention }

var _ Store = (*fakeStore)(nil)
var _ drainpipe.Journal = (*fakeJournal)(nil)
