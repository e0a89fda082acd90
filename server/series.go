package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// MaxBuckets is the most buckets one series answer may hold.
const MaxBuckets = 10000

// step is a query step and the stored tier it is served from.
type step struct {
	name string
	d    time.Duration
	tier drainpipe.Tier
}

// steps are the query steps of SPEC §2. 2h has no tier of its own: it
// merges pairs of hourly buckets, aligned to 2 h on the Unix epoch.
var steps = []step{
	{"1m", time.Minute, drainpipe.Tier1m},
	{"10m", 10 * time.Minute, drainpipe.Tier10m},
	{"1h", time.Hour, drainpipe.Tier1h},
	{"2h", 2 * time.Hour, drainpipe.Tier1h},
}

func lookupStep(name string) (step, bool) {
	for _, s := range steps {
		if s.name == name {
			return s, true
		}
	}
	return step{}, false
}

// defaultStep picks the step for a range when none is asked for: at most
// 2 h → 1m, 72 h → 10m, 7 d → 1h, beyond → 2h.
func defaultStep(r time.Duration) step {
	switch {
	case r <= 2*time.Hour:
		return steps[0]
	case r <= 72*time.Hour:
		return steps[1]
	case r <= 7*24*time.Hour:
		return steps[2]
	}
	return steps[3]
}

// window is a parsed series query: buckets of step from start (aligned
// down to the step) to end (exclusive, as given).
type window struct {
	start, end time.Time
	step       step
	n          int
}

// index returns the bucket t falls in, or -1 outside the window.
func (w window) index(t time.Time) int {
	if t.Before(w.start) || !t.Before(w.end) {
		return -1
	}
	i := int(t.Sub(w.start) / w.step.d)
	if i >= w.n {
		return -1
	}
	return i
}

// badRequest is a client error answered with 400.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badRequestf(format string, args ...any) error {
	return &badRequest{msg: fmt.Sprintf(format, args...)}
}

// parseWindow reads start_time, end_time and step from the query string.
func (s *Server) parseWindow(r *http.Request) (window, error) {
	q := r.URL.Query()
	var start, end time.Time
	if v := q.Get("end_time"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return window{}, badRequestf("end_time %q is not an RFC 3339 time", v)
		}
		end = t.UTC()
	} else {
		// Now, rounded up to the second so the answer reads cleanly and
		// still includes the latest lines.
		now := s.now().UTC()
		end = now.Truncate(time.Second)
		if end.Before(now) {
			end = end.Add(time.Second)
		}
	}
	if v := q.Get("start_time"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return window{}, badRequestf("start_time %q is not an RFC 3339 time", v)
		}
		start = t.UTC()
	} else {
		start = end.Add(-time.Hour)
	}
	if !end.After(start) {
		return window{}, badRequestf("end_time must be after start_time")
	}
	var st step
	if v := q.Get("step"); v != "" {
		var ok bool
		if st, ok = lookupStep(v); !ok {
			return window{}, badRequestf("unknown step %q (use 1m, 10m, 1h or 2h)", v)
		}
	} else {
		st = defaultStep(end.Sub(start))
	}
	w := window{start: alignDown(start, st.d), end: end, step: st}
	span := end.Sub(w.start) // saturates for absurd ranges, which then fail below
	n := span / st.d
	if span%st.d != 0 {
		n++
	}
	if n > MaxBuckets {
		return window{}, badRequestf("range holds more than %d buckets of %s; use a coarser step or a shorter range", MaxBuckets, st.name)
	}
	w.n = int(n)
	return w, nil
}

// parseTime parses an RFC 3339 time. A space where the offset's "+"
// belongs is taken as "+": an unescaped "+" in a query string arrives as a
// space. Lowercase "t" and "z" are accepted, as RFC 3339 §5.6 allows.
func parseTime(v string) (time.Time, error) {
	v = strings.ToUpper(strings.ReplaceAll(v, " ", "+"))
	return time.Parse(time.RFC3339Nano, v)
}

// alignDown returns t rounded down to a multiple of d since the Unix epoch.
// d is a whole number of seconds.
func alignDown(t time.Time, d time.Duration) time.Time {
	sec := int64(d / time.Second)
	u := t.Unix()
	r := u % sec
	if r < 0 {
		r += sec
	}
	return time.Unix(u-r, 0).UTC()
}

// fetch returns the merged bucket of every step of w for app and
// processType ("" = every process type; nil where nothing is stored).
// Rows of the tier falling into one step are merged with Bucket.Merge.
// Ranges beyond the tier's retention are answered without asking the
// store. The returned buckets must not be modified: a step holding one
// row shares the store's bucket.
// fetchKey identifies one fetch: the same app, process type and window.
type fetchKey struct {
	app, processType string
	step             time.Duration
	start, end       int64
	parts            metrics.Part
}

type fetchEntry struct {
	done    chan struct{}
	buckets []*metrics.Bucket
	err     error
	expires time.Time
}

// fetchCache shares the buckets of one window between the requests that
// ask for it at about the same time: the dashboard asks for latency,
// status, errors, memory, load and more of the same window at once, and
// they are then read twice (see cacheGroup), not once per request.
// Entries live QueryCacheTTL (far inside SPEC's 10 s freshness); callers
// only read the shared buckets.
type fetchCache struct {
	mu      sync.Mutex
	entries map[fetchKey]*fetchEntry
}

// maxFetchEntries bounds the cache; beyond it expired entries are dropped.
const maxFetchEntries = 256

// Parts shared through the cache: a dashboard page asks for latency
// (the two sketches, the costly part of a bucket) and for status, errors,
// memory and load (counts and gauges, no sketch) of one window at once.
// Through the cache those are two reads of the store, each decoding only
// its group, instead of one read decoding everything or one read per
// endpoint.
const (
	sketchParts = metrics.PartService | metrics.PartConnect
	countParts  = metrics.AllParts &^ (sketchParts | metrics.PartCustom)
)

// cacheGroup widens parts to the group of the cache it is shared in.
func cacheGroup(parts metrics.Part) metrics.Part {
	for _, g := range []metrics.Part{sketchParts, countParts} {
		if parts&^g == 0 {
			return g
		}
	}
	return metrics.AllParts
}

// fetch returns the merged buckets of w, through the cache when enabled.
// Only parts of each bucket are decoded; an entry holding every part
// serves any request for the same window.
func (s *Server) fetch(ctx context.Context, app, processType string, w window, parts metrics.Part) ([]*metrics.Bucket, error) {
	ttl := s.cfg.QueryCacheTTL
	if ttl <= 0 {
		return s.fetchStore(ctx, app, processType, w, parts)
	}
	parts = cacheGroup(parts)
	k := fetchKey{app, processType, w.step.d, w.start.UnixNano(), w.end.UnixNano(), parts}
	c := &s.fetches
	c.mu.Lock()
	e, ok := c.entries[k]
	if !ok && parts != metrics.AllParts {
		all := k
		all.parts = metrics.AllParts
		e, ok = c.entries[all]
	}
	if ok && (e.expires.IsZero() || time.Now().Before(e.expires)) {
		c.mu.Unlock()
		select {
		case <-e.done:
			return e.buckets, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if c.entries == nil {
		c.entries = map[fetchKey]*fetchEntry{}
	}
	if len(c.entries) >= maxFetchEntries {
		now := time.Now()
		for key, old := range c.entries {
			if !old.expires.IsZero() && now.After(old.expires) {
				delete(c.entries, key)
			}
		}
	}
	e = &fetchEntry{done: make(chan struct{})}
	c.entries[k] = e
	c.mu.Unlock()

	// Detached from the first caller, so that its hanging up does not fail
	// the others waiting for the same window.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	e.buckets, e.err = s.fetchStore(fctx, app, processType, w, parts)
	cancel()
	c.mu.Lock()
	if e.err != nil {
		delete(c.entries, k)
	} else {
		e.expires = time.Now().Add(ttl)
	}
	c.mu.Unlock()
	close(e.done)
	return e.buckets, e.err
}

// fetchStore reads w's rows from the store and merges them per bucket.
func (s *Server) fetchStore(ctx context.Context, app, processType string, w window, parts metrics.Part) ([]*metrics.Bucket, error) {
	out := make([]*metrics.Bucket, w.n)
	from, ok := s.retained(w)
	if !ok {
		return out, nil
	}
	rows, err := s.buckets(ctx, app, processType, w.step.tier, from, w.end, parts)
	if err != nil {
		return nil, fmt.Errorf("read %s buckets of %q: %w", w.step.tier, app, err)
	}
	var owned []bool
	for _, row := range rows {
		if row.Bucket == nil {
			continue
		}
		i := w.index(row.Time)
		if i < 0 {
			continue
		}
		if out[i] == nil {
			out[i] = row.Bucket
			continue
		}
		if owned == nil {
			owned = make([]bool, w.n)
		}
		if !owned[i] {
			b := new(metrics.Bucket)
			b.Merge(out[i])
			out[i] = b
			owned[i] = true
		}
		out[i].Merge(row.Bucket)
	}
	return out, nil
}

// retained returns where the store is asked to read w from: its start,
// or the start of the tier's retention when that is later. ok is false
// when nothing of w is retained: ranges beyond the retention are answered
// without asking the store.
func (s *Server) retained(w window) (from time.Time, ok bool) {
	from = w.start
	if ret := s.store.Retention()[w.step.tier]; ret > 0 {
		if floor := alignDown(s.now().Add(-ret), w.step.tier.Duration()); floor.After(from) {
			from = floor
		}
	}
	return from, from.Before(w.end)
}

// buckets reads rows from the store with only parts decoded when the
// store can do that (PartStore), else whole.
func (s *Server) buckets(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time, parts metrics.Part) ([]metrics.Row, error) {
	if ps, ok := s.store.(PartStore); ok {
		return ps.BucketParts(ctx, app, processType, tier, start, end, parts)
	}
	return s.store.Buckets(ctx, app, processType, tier, start, end)
}

// values is one series: a value per bucket, NaN where nothing was seen.
// It encodes NaN and ±Inf as JSON null.
type values []float64

func newValues(n int) values {
	v := make(values, n)
	for i := range v {
		v[i] = math.NaN()
	}
	return v
}

// anySet reports whether at least one value is not null.
func (v values) anySet() bool {
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			return true
		}
	}
	return false
}

// MarshalJSON writes the values as a JSON array with null for gaps.
func (v values) MarshalJSON() ([]byte, error) {
	return v.appendJSON(make([]byte, 0, 2+len(v)*8)), nil
}

func (v values) appendJSON(b []byte) []byte {
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNumber(b, x)
	}
	return append(b, ']')
}

// number is a float64 that encodes as JSON null when NaN or infinite.
type number float64

// null is the number that encodes as JSON null.
var null = number(math.NaN())

// MarshalJSON writes n, or null.
func (n number) MarshalJSON() ([]byte, error) {
	return appendNumber(nil, float64(n)), nil
}

func appendNumber(b []byte, x float64) []byte {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return append(b, "null"...)
	}
	abs := math.Abs(x)
	if x == math.Trunc(x) && abs < 1e15 {
		return strconv.AppendInt(b, int64(x), 10)
	}
	// The form encoding/json writes (as JavaScript does): plain decimals
	// from 1e-6 up to 1e21, exponents only outside, "e-7" not "e-07".
	if abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(b, x, 'f', -1, 64)
	}
	b = strconv.AppendFloat(b, x, 'e', -1, 64)
	if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}

// optional returns v as a number when ok, else null.
func optional(v float64, ok bool) number {
	if !ok {
		return null
	}
	return number(v)
}

// seriesBody is the answer of every series endpoint.
type seriesBody struct {
	StartTime string            `json:"start_time"`
	EndTime   string            `json:"end_time"`
	Step      string            `json:"step"`
	Kind      string            `json:"kind,omitempty"`
	Summary   *latencySummary   `json:"summary,omitempty"`
	Events    *[]eventJSON      `json:"events,omitempty"`
	Data      map[string]values `json:"data"`
}

func newSeriesBody(w window) *seriesBody {
	return &seriesBody{
		StartTime: w.start.UTC().Format(time.RFC3339),
		EndTime:   w.end.UTC().Format(time.RFC3339Nano),
		Step:      w.step.name,
		Data:      map[string]values{},
	}
}

// put stores a series under key unless every value is null.
func (b *seriesBody) put(key string, v values) {
	if v.anySet() {
		b.Data[key] = v
	}
}

// appendJSON appends the JSON encoding of b, the bytes json.Marshal gives
// (fields in order, empty ones left out as tagged, the series in key
// order), writing the series straight from their floats: json.Marshal
// would call each series' MarshalJSON and then read its output again to
// check and compact it, a tenth of a day-at-1m latency answer's CPU.
func (b *seriesBody) appendJSON(dst []byte) ([]byte, error) {
	n := 0
	for _, v := range b.Data {
		n += 16 + 8*len(v)
	}
	if dst == nil {
		dst = make([]byte, 0, 256+n)
	}
	var err error
	field := func(name string, v any) {
		if err != nil {
			return
		}
		dst = append(dst, name...)
		var p []byte
		if p, err = json.Marshal(v); err == nil {
			dst = append(dst, p...)
		}
	}
	field(`{"start_time":`, b.StartTime)
	field(`,"end_time":`, b.EndTime)
	field(`,"step":`, b.Step)
	if b.Kind != "" {
		field(`,"kind":`, b.Kind)
	}
	if b.Summary != nil {
		field(`,"summary":`, b.Summary)
	}
	if b.Events != nil {
		field(`,"events":`, b.Events)
	}
	if b.Data == nil {
		field(`,"data":`, b.Data)
		if err != nil {
			return nil, err
		}
		return append(dst, '}'), nil
	}
	keys := make([]string, 0, len(b.Data))
	for k := range b.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, `,"data":{`...)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		field("", k)
		dst = append(dst, ':')
		dst = b.Data[k].appendJSON(dst)
	}
	if err != nil {
		return nil, err
	}
	return append(dst, "}}"...), nil
}
