package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"
)

// maxEvents bounds the events listed in one answer; the newest are kept.
// The per-kind counts in data cover every event the store returned (the
// newest 100,000, see Store.Events), not only the listed ones.
const maxEvents = 10000

// A count series is null in a bucket that holds no line of the kind that
// would produce it, and 0 where such lines were seen without this key:
// status and H codes need router lines, R codes need runtime samples or
// dyno errors, log loss needs anything at all, events need an event.

// nameParam reads an optional process_type or dyno query parameter.
// Heroku process types and dyno names are short words of letters, digits,
// "_", "-" and ".".
func nameParam(r *http.Request, key string) (string, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return "", nil
	}
	if !validName(v) {
		return "", badRequestf("%s %q is not a process type or dyno name", key, v)
	}
	return v, nil
}

func validName(v string) bool {
	if len(v) == 0 || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// seriesRequest parses the window and process type of a series request
// and fetches its buckets. pt is the process type from the path, or ""
// to read the process_type parameter (default defaultPT). It writes the
// error answer and returns ok=false on failure.
// Only parts of each bucket are decoded (Requests always are).
func (s *Server) seriesRequest(w http.ResponseWriter, r *http.Request, app, pt, defaultPT string, parts metrics.Part) (win window, buckets []*metrics.Bucket, ok bool) {
	win, pt, ok = s.seriesParams(w, r, pt, defaultPT)
	if !ok {
		return win, nil, false
	}
	buckets, err := s.fetch(r.Context(), app, pt, win, parts)
	if err != nil {
		s.queryError(w, r, err)
		return win, nil, false
	}
	return win, buckets, true
}

// seriesParams parses the window and process type of a series request
// as seriesRequest does, writing the error answer on failure.
func (s *Server) seriesParams(w http.ResponseWriter, r *http.Request, pt, defaultPT string) (win window, processType string, ok bool) {
	win, err := s.parseWindow(r)
	if err != nil {
		s.queryError(w, r, err)
		return win, "", false
	}
	if pt == "" {
		if pt, err = nameParam(r, "process_type"); err != nil {
			s.queryError(w, r, err)
			return win, "", false
		}
		if pt == "" {
			pt = defaultPT
		}
	} else if !validName(pt) {
		s.queryError(w, r, badRequestf("process type %q is not valid", pt))
		return win, "", false
	}
	return win, pt, true
}

// queryError answers 400 for a bad request, 404 for something not found,
// and 500 otherwise.
func (s *Server) queryError(w http.ResponseWriter, r *http.Request, err error) {
	var br *badRequest
	switch {
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, br.msg)
	case errors.Is(err, drainpipe.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found")
	default:
		s.internalError(w, r, err)
	}
}

// latencySummary is the whole range of GET …/router-metrics/latency, from
// one distribution merged over every bucket.
type latencySummary struct {
	Requests int64  `json:"requests"`
	P50      number `json:"p50"`
	P95      number `json:"p95"`
	P99      number `json:"p99"`
	Max      number `json:"max"`
}

// handleLatency is GET /api/apps/{app}/router-metrics/latency. A store
// that reads latency in place (LatencyStore) is read row by row, each
// bucket's quantiles answered from its encoded sketches; other stores
// give decoded buckets (through the query cache when enabled). The
// answers are the same, byte for byte.
func (s *Server) handleLatency(w http.ResponseWriter, r *http.Request, app string) {
	win, pt, ok := s.seriesParams(w, r, "", "web")
	if !ok {
		return
	}
	lat := newLatencySeries(win.n)
	// The whole range's service times, and how to read its quantiles.
	var (
		count    int64
		top      float64
		quantile func(q float64) (float64, bool)
	)
	if ls, ok := s.store.(LatencyStore); ok {
		var all metrics.DistSum
		if err := s.latencyInPlace(r.Context(), ls, app, pt, win, lat, &all); err != nil {
			s.queryError(w, r, fmt.Errorf("read %s buckets of %q: %w", win.step.tier, app, err))
			return
		}
		count, top, quantile = all.Count, all.Max, all.Quantile
	} else {
		buckets, err := s.fetch(r.Context(), app, pt, win, metrics.PartService|metrics.PartConnect)
		if err != nil {
			s.queryError(w, r, err)
			return
		}
		var all metrics.Dist
		for i, b := range buckets {
			if b == nil {
				continue
			}
			lat.requests += b.Requests
			all.Merge(b.Service())
			lat.step(i, b.Service(), b.Connect())
		}
		count, top, quantile = all.Count, all.Max, all.Quantile
	}
	body := newSeriesBody(win)
	body.Data["latency.ms.p50"] = lat.p50
	body.Data["latency.ms.p95"] = lat.p95
	body.Data["latency.ms.p99"] = lat.p99
	body.Data["latency.ms.max"] = lat.pmax
	body.Data["latency.connect.ms.p95"] = lat.c95
	sum := &latencySummary{Requests: lat.requests, Max: null}
	sum.P50 = optional(quantile(0.50))
	sum.P95 = optional(quantile(0.95))
	sum.P99 = optional(quantile(0.99))
	if count > 0 {
		sum.Max = number(top)
	}
	body.Summary = sum
	writeJSON(w, http.StatusOK, body)
}

// latencySeries is the latency answer being built: the series per step,
// and the requests of the whole range.
type latencySeries struct {
	p50, p95, p99, pmax, c95 values
	requests                 int64
	svc, con                 []*metrics.DistView // stepViews' scratch
}

func newLatencySeries(n int) *latencySeries {
	return &latencySeries{p50: newValues(n), p95: newValues(n), p99: newValues(n), pmax: newValues(n), c95: newValues(n)}
}

// step sets step i's values from its merged service and connect times.
func (l *latencySeries) step(i int, service, connect *metrics.Dist) {
	if v, ok := service.Quantile(0.50); ok {
		l.p50[i] = v
	}
	if v, ok := service.Quantile(0.95); ok {
		l.p95[i] = v
	}
	if v, ok := service.Quantile(0.99); ok {
		l.p99[i] = v
	}
	if service.Count > 0 {
		l.pmax[i] = service.Max
	}
	if v, ok := connect.Quantile(0.95); ok {
		l.c95[i] = v
	}
}

// The quantiles of a latency answer's steps, for metrics.MergedQuantiles.
var (
	serviceQuantiles = []float64{0.50, 0.95, 0.99}
	connectQuantiles = []float64{0.95}
)

// firstRow sets step i's values from its first row read in place, and
// adds the row's service times to all in the same pass: the values step
// gives for the decoded row. Most steps hold one row; stepViews redoes a
// step that holds more.
func (l *latencySeries) firstRow(i int, v *metrics.LatencyView, all *metrics.DistSum) {
	var q [3]float64
	if all.AddQuantiles(&v.Service, serviceQuantiles, q[:]) {
		l.p50[i], l.p95[i], l.p99[i] = q[0], q[1], q[2]
	}
	if v.Service.Count > 0 {
		l.pmax[i] = v.Service.Max
	}
	if v.Connect.Quantiles(connectQuantiles, q[:1]) {
		l.c95[i] = q[0]
	}
}

// stepViews sets step i's values from its rows read in place: the values
// step gives for the decoded rows merged.
func (l *latencySeries) stepViews(i int, rows []metrics.LatencyView) {
	svc, con := l.svc[:0], l.con[:0]
	for j := range rows {
		r := &rows[j]
		svc = append(svc, &r.Service)
		con = append(con, &r.Connect)
		if r.Service.Count > 0 && (math.IsNaN(l.pmax[i]) || r.Service.Max > l.pmax[i]) {
			l.pmax[i] = r.Service.Max
		}
	}
	l.svc, l.con = svc, con
	var q [3]float64
	if metrics.MergedQuantiles(svc, serviceQuantiles, q[:]) {
		l.p50[i], l.p95[i], l.p99[i] = q[0], q[1], q[2]
	}
	if metrics.MergedQuantiles(con, connectQuantiles, q[:1]) {
		l.c95[i] = q[0]
	}
}

// latencyInPlace fills lat, and all with the whole range's service
// times, from the store's rows read in place. The rows of a step are
// kept until the step ends, their sketches copied into a buffer reused
// from step to step; a step of several rows (two hourly rows in a 2h
// step) is answered from their encoded bins read together. A step of one
// row is answered as the row is read, in the pass that adds it to all
// (firstRow). Nothing is allocated per row.
func (s *Server) latencyInPlace(ctx context.Context, ls LatencyStore, app, pt string, win window, lat *latencySeries, all *metrics.DistSum) error {
	from, ok := s.retained(win)
	if !ok {
		return nil
	}
	var (
		cur  = -1 // the step of the rows pending
		rows []metrics.LatencyView
		buf  []byte // their sketches, kept
		// A step as long as its tier's buckets holds one row (of one app's
		// process type): its first row is answered as it is read. The
		// rows of a 2h step are answered together when it ends.
		eager = win.step.d == win.step.tier.Duration()
	)
	done := func() {
		if len(rows) > 1 || (len(rows) == 1 && !eager) {
			lat.stepViews(cur, rows)
		}
	}
	err := ls.EachLatency(ctx, app, pt, win.step.tier, from, win.end, func(t time.Time, v *metrics.LatencyView) {
		i := win.index(t)
		if i < 0 {
			return
		}
		lat.requests += v.Requests
		if i != cur {
			done()
			cur, rows, buf = i, rows[:0], buf[:0]
		}
		rows = append(rows, *v)
		buf = rows[len(rows)-1].Keep(buf)
		if eager && len(rows) == 1 {
			lat.firstRow(i, v, all)
			return
		}
		all.Add(&v.Service)
	})
	if err != nil {
		return err
	}
	done()
	return nil
}

// countSeries builds one series per key of the maps get returns, null in
// buckets where seen is false.
func countSeries[K cmp.Ordered](body *seriesBody, buckets []*metrics.Bucket, name func(K) string,
	get func(*metrics.Bucket) iter.Seq2[K, int64], seen func(*metrics.Bucket) bool) {
	n := len(buckets)
	series := map[K]values{}
	for i, b := range buckets {
		if b == nil {
			continue
		}
		for k, c := range get(b) {
			v, ok := series[k]
			if !ok {
				v = newValues(n)
				series[k] = v
			}
			v[i] = float64(c)
		}
	}
	for k, v := range series {
		for i, b := range buckets {
			if b != nil && math.IsNaN(v[i]) && seen(b) {
				v[i] = 0
			}
		}
		body.put(name(k), v)
	}
}

// routerParts and dynoParts are the parts of a bucket the router and dyno
// count series read, their seen functions included.
const (
	routerParts = metrics.PartStatus | metrics.PartHCodes
	dynoParts   = metrics.PartRCodes | metrics.PartDynos
)

func routerSeen(b *metrics.Bucket) bool {
	return b.Requests > 0 || b.Status().Len() > 0 || len(b.HCodes()) > 0
}

func dynoSeen(b *metrics.Bucket) bool {
	return len(b.Dynos) > 0 || len(b.RCodes()) > 0
}

func anySeen(b *metrics.Bucket) bool { return !b.Empty() }

// handleStatus is GET /api/apps/{app}/router-metrics/status.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, app string) {
	win, buckets, ok := s.seriesRequest(w, r, app, "", "web", routerParts)
	if !ok {
		return
	}
	body := newSeriesBody(win)
	countSeries(body, buckets, strconv.Itoa, func(b *metrics.Bucket) iter.Seq2[int, int64] { return b.Status().All() }, routerSeen)
	writeJSON(w, http.StatusOK, body)
}

func identity(s string) string { return s }

// handleRouterErrors is GET /api/apps/{app}/router-metrics/errors.
func (s *Server) handleRouterErrors(w http.ResponseWriter, r *http.Request, app string) {
	win, buckets, ok := s.seriesRequest(w, r, app, "", "web", routerParts)
	if !ok {
		return
	}
	body := newSeriesBody(win)
	countSeries(body, buckets, identity, func(b *metrics.Bucket) iter.Seq2[string, int64] { return b.HCodes().All() }, routerSeen)
	writeJSON(w, http.StatusOK, body)
}

// handleDynoErrors is GET /api/apps/{app}/formation/{type}/metrics/errors.
func (s *Server) handleDynoErrors(w http.ResponseWriter, r *http.Request, app string) {
	win, buckets, ok := s.seriesRequest(w, r, app, r.PathValue("type"), "", dynoParts)
	if !ok {
		return
	}
	body := newSeriesBody(win)
	countSeries(body, buckets, identity, func(b *metrics.Bucket) iter.Seq2[string, int64] { return b.RCodes().All() }, dynoSeen)
	writeJSON(w, http.StatusOK, body)
}

// handleLogLoss is GET /api/apps/{app}/log-loss: every process type.
func (s *Server) handleLogLoss(w http.ResponseWriter, r *http.Request, app string) {
	win, err := s.parseWindow(r)
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	// Every part: a bucket holding anything at all answers 0, not null.
	buckets, err := s.fetch(r.Context(), app, "", win, metrics.AllParts)
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	body := newSeriesBody(win)
	countSeries(body, buckets, identity, func(b *metrics.Bucket) iter.Seq2[string, int64] { return b.LogLoss().All() }, anySeen)
	writeJSON(w, http.StatusOK, body)
}

// gaugeKey names a runtime gauge's series.
type gaugeKey struct {
	gauge  logline.Gauge
	prefix string
	mean   bool // also a .mean series; every gauge has .max
}

var memoryGauges = []gaugeKey{
	{logline.GaugeMemTotal, "memory.total.bytes", true},
	{logline.GaugeMemRSS, "memory.rss.bytes", true},
	{logline.GaugeMemSwap, "memory.swap.bytes", true},
	{logline.GaugeMemCache, "memory.cache.bytes", true},
	{logline.GaugeMemQuota, "memory.quota.bytes", false},
}

var loadGauges = []gaugeKey{
	{logline.GaugeLoad1m, "load.avg.1m", true},
	{logline.GaugeLoad5m, "load.avg.5m", true},
	{logline.GaugeLoad15m, "load.avg.15m", true},
}

// handleMemory is GET /api/apps/{app}/formation/{type}/metrics/memory.
func (s *Server) handleMemory(w http.ResponseWriter, r *http.Request, app string) {
	s.gaugeSeries(w, r, app, memoryGauges)
}

// handleLoad is GET /api/apps/{app}/formation/{type}/metrics/load.
func (s *Server) handleLoad(w http.ResponseWriter, r *http.Request, app string) {
	s.gaugeSeries(w, r, app, loadGauges)
}

// gaugeSeries answers mean and max of runtime gauges over all dynos of the
// path's process type, or of the one dyno named by ?dyno=. Every key is
// present, all null when there is no data.
func (s *Server) gaugeSeries(w http.ResponseWriter, r *http.Request, app string, keys []gaugeKey) {
	dyno, err := nameParam(r, "dyno")
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	win, buckets, ok := s.seriesRequest(w, r, app, r.PathValue("type"), "", metrics.PartDynos)
	if !ok {
		return
	}
	body := newSeriesBody(win)
	for _, k := range keys {
		mean, max := newValues(win.n), newValues(win.n)
		for i, b := range buckets {
			if b == nil {
				continue
			}
			st := b.GaugeStat(k.gauge, dyno)
			if st.Count == 0 {
				continue
			}
			mean[i] = st.Sum / float64(st.Count)
			max[i] = st.Max
		}
		if k.mean {
			body.Data[k.prefix+".mean"] = mean
		}
		body.Data[k.prefix+".max"] = max
	}
	writeJSON(w, http.StatusOK, body)
}

// eventJSON is one event in an answer; every field is always present.
type eventJSON struct {
	Time        string `json:"time"`
	Kind        string `json:"kind"`
	ProcessType string `json:"process_type"`
	Dyno        string `json:"dyno"`
	Code        string `json:"code"`
	Detail      string `json:"detail"`
}

func toEventJSON(e drainpipe.Event) eventJSON {
	return eventJSON{
		Time:        e.Time.UTC().Format(time.RFC3339Nano),
		Kind:        string(e.Kind),
		ProcessType: e.ProcessType,
		Dyno:        e.Dyno,
		Code:        e.Code,
		Detail:      e.Detail,
	}
}

// handleEvents is GET /api/apps/{app}/events: event counts per kind and
// bucket, and the events themselves. Events of every process type are
// listed unless process_type is given; app-wide events (deploys, releases,
// scaling, config) have no process type and are always listed. The counts
// cover every event the store returns; the list holds the newest
// maxEvents of them, oldest first.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, app string) {
	win, err := s.parseWindow(r)
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	pt, err := nameParam(r, "process_type")
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	dyno, err := nameParam(r, "dyno")
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	evs, err := s.store.Events(r.Context(), app, win.start, win.end, dyno)
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	kept := evs[:0] // filtered in place: the events in the answer, oldest first
	series := map[string]values{}
	seen := make([]bool, win.n)
	for _, e := range evs {
		if pt != "" && e.ProcessType != "" && e.ProcessType != pt {
			continue
		}
		i := win.index(e.Time)
		if i < 0 {
			continue
		}
		v, ok := series[string(e.Kind)]
		if !ok {
			v = newValues(win.n)
			series[string(e.Kind)] = v
		}
		if math.IsNaN(v[i]) {
			v[i] = 0
		}
		v[i]++
		seen[i] = true
		kept = append(kept, e)
	}
	body := newSeriesBody(win)
	for k, v := range series {
		for i := range v {
			if seen[i] && math.IsNaN(v[i]) {
				v[i] = 0
			}
		}
		body.Data[k] = v
	}
	if len(kept) > maxEvents {
		kept = kept[len(kept)-maxEvents:]
	}
	list := make([]eventJSON, len(kept))
	for i, e := range kept {
		list[i] = toEventJSON(e)
	}
	body.Events = &list
	writeJSON(w, http.StatusOK, body)
}

// handleFormation is GET /api/apps/{app}/formation.
func (s *Server) handleFormation(w http.ResponseWriter, r *http.Request, app string) {
	pts, err := s.store.Formation(r.Context(), app)
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	if pts == nil {
		pts = []ProcessType{}
	}
	for i := range pts {
		if pts[i].Dynos == nil {
			pts[i].Dynos = []string{}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"process_types": pts})
}

// handleCustomList is GET /api/apps/{app}/custom-metrics.
func (s *Server) handleCustomList(w http.ResponseWriter, r *http.Request, app string) {
	ms, err := s.store.CustomMetrics(r.Context(), app)
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	if ms == nil {
		ms = []CustomMetric{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"metrics": ms})
}

// customKinds maps logline.CustomKind to its API name.
var customKinds = map[logline.CustomKind]string{
	logline.CustomCount:   "count",
	logline.CustomSample:  "sample",
	logline.CustomMeasure: "measure",
}

// customKindNamed returns the CustomKind of an API kind name.
func customKindNamed(name string) (logline.CustomKind, bool) {
	for k, n := range customKinds {
		if n == name {
			return k, true
		}
	}
	return 0, false
}

// handleCustomSeries is GET /api/apps/{app}/custom-metrics/{name}. Without
// process_type every process type is merged. A name used with several
// kinds is answered for ?kind=count|sample|measure, by default for the
// first kind CustomMetrics lists for it. The data keys are fixed by kind
// and always present (all null without data): count → sum; sample → last,
// mean, max; measure → count, sum, min, max, mean, p50, p95, p99.
func (s *Server) handleCustomSeries(w http.ResponseWriter, r *http.Request, app string) {
	name := r.PathValue("name")
	wantKind := r.URL.Query().Get("kind")
	if _, ok := customKindNamed(wantKind); wantKind != "" && !ok {
		s.queryError(w, r, badRequestf("unknown kind %q (use count, sample or measure)", wantKind))
		return
	}
	ms, err := s.store.CustomMetrics(r.Context(), app)
	if err != nil {
		s.queryError(w, r, err)
		return
	}
	i := slices.IndexFunc(ms, func(m CustomMetric) bool {
		return m.Name == name && (wantKind == "" || m.Kind == wantKind)
	})
	if i < 0 {
		msg := "custom metric " + strconv.Quote(name) + " not found"
		if wantKind != "" && slices.ContainsFunc(ms, func(m CustomMetric) bool { return m.Name == name }) {
			msg = "custom metric " + strconv.Quote(name) + " has no kind " + strconv.Quote(wantKind)
		}
		writeError(w, http.StatusNotFound, msg)
		return
	}
	kindName := ms[i].Kind
	kind, _ := customKindNamed(kindName) // 0 for a kind this server does not know: read as measure
	win, buckets, ok := s.seriesRequest(w, r, app, "", "", metrics.PartCustom)
	if !ok {
		return
	}
	body := newSeriesBody(win)
	body.Kind = kindName
	n := win.n
	get := func(b *metrics.Bucket) *metrics.Custom {
		if b == nil {
			return nil
		}
		c, ok := b.Metric(name)
		if !ok || (kind != 0 && !c.Has(kind)) {
			return nil
		}
		return &c
	}
	switch kind {
	case logline.CustomCount:
		sum := newValues(n)
		for i, b := range buckets {
			if c := get(b); c != nil {
				sum[i] = c.Total
			}
		}
		body.Data["sum"] = sum
	case logline.CustomSample:
		last, mean, max := newValues(n), newValues(n), newValues(n)
		for i, b := range buckets {
			c := get(b)
			if c == nil || c.Stat == nil || c.Stat.Count == 0 {
				continue
			}
			last[i], max[i] = c.Stat.Last, c.Stat.Max
			mean[i] = c.Stat.Sum / float64(c.Stat.Count)
		}
		body.Data["last"] = last
		body.Data["mean"] = mean
		body.Data["max"] = max
	default: // measure, and anything unknown is read as a distribution
		keys := []string{"count", "sum", "min", "max", "mean", "p50", "p95", "p99"}
		vs := make([]values, len(keys))
		for k := range vs {
			vs[k] = newValues(n)
		}
		for i, b := range buckets {
			c := get(b)
			if c == nil || c.Dist == nil || c.Dist.Count == 0 {
				continue
			}
			d := c.Dist
			vs[0][i] = float64(d.Count)
			vs[1][i] = d.Sum
			vs[2][i] = d.Min
			vs[3][i] = d.Max
			vs[4][i] = d.Sum / float64(d.Count)
			for k, q := range []float64{0.50, 0.95, 0.99} {
				if v, ok := d.Quantile(q); ok {
					vs[5+k][i] = v
				}
			}
		}
		for k, key := range keys {
			body.Data[key] = vs[k]
		}
	}
	writeJSON(w, http.StatusOK, body)
}
