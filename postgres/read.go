package postgres

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/logline"
	"github.com/drainpipe/drainpipe/metrics"
	"github.com/drainpipe/drainpipe/server"
	"github.com/jackc/pgx/v5/pgtype"
)

// Buckets returns the stored rows of tier for app in [start, end), ordered
// by time (then app and process type). app "" means every app and
// processType "" every process type. The time range prunes the scan to
// the partitions it overlaps.
func (s *Store) Buckets(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time) ([]metrics.Row, error) {
	return s.BucketParts(ctx, app, processType, tier, start, end, metrics.AllParts)
}

// BucketParts is Buckets with only parts of each bucket decoded (see
// metrics.DecodeParts); every bucket's checksum is still verified.
func (s *Store) BucketParts(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time, parts metrics.Part) ([]metrics.Row, error) {
	var out []metrics.Row
	err := s.eachRow(ctx, app, processType, tier, start, end, func(table, app, processType string, ts time.Time, data []byte) {
		// DecodeParts copies what it keeps, so data needs no copy.
		b, err := metrics.DecodeParts(data, parts)
		if err != nil {
			s.leftOut(table, app, processType, ts, err)
			return
		}
		out = append(out, metrics.Row{App: app, ProcessType: processType, Time: ts, Bucket: b})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EachLatency calls fn with the latency view of every row Buckets would
// return, in the same order (server.LatencyStore). The view reads the
// driver's row buffer in place.
func (s *Store) EachLatency(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time, fn func(t time.Time, v *metrics.LatencyView)) error {
	var v metrics.LatencyView
	return s.eachRow(ctx, app, processType, tier, start, end, func(table, app, processType string, ts time.Time, data []byte) {
		if err := metrics.ViewLatency(data, &v); err != nil {
			s.leftOut(table, app, processType, ts, err)
			return
		}
		fn(ts, &v)
	})
}

// leftOut reports a row that fails its checksum or does not decode. It is
// never silently read: the row is left out of the answer and moved to
// quarantine by the next flush that touches it.
func (s *Store) leftOut(table, app, processType string, ts time.Time, err error) {
	s.log.Error("postgres: corrupt bucket left out of a query", "table", table, "app", app, "process_type", processType, "ts", ts, "err", err)
}

// eachRow calls fn with every stored row of tier for app ("" = every app)
// and processType ("" = every one) in [start, end), ordered by time, app
// and process type. data points into the driver's row buffer
// (pgtype.DriverBytes) and is valid only during the call.
func (s *Store) eachRow(ctx context.Context, app, processType string, tier drainpipe.Tier, start, end time.Time, fn func(table, app, processType string, ts time.Time, data []byte)) error {
	table := tableOf(tier)
	q := `SELECT app, ptype, ts, data FROM ` + table + ` WHERE ts >= $1 AND ts < $2`
	args := []any{start, end}
	if app != "" {
		args = append(args, app)
		q += ` AND app = $` + strconv.Itoa(len(args))
	}
	if processType != "" {
		args = append(args, processType)
		q += ` AND ptype = $` + strconv.Itoa(len(args))
	}
	q += ` ORDER BY ts, app, ptype`
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return fail(err, "query %s", table)
	}
	defer rows.Close()
	var (
		rapp, rpt string
		ts        time.Time
		data      pgtype.DriverBytes
	)
	for rows.Next() {
		if err := rows.Scan(&rapp, &rpt, &ts, &data); err != nil {
			return fail(err, "scan %s", table)
		}
		fn(table, rapp, rpt, ts.UTC(), data)
	}
	return fail(rows.Err(), "query %s", table)
}

// RequestCounts returns per-bucket request and 5xx counts of every app
// (process types summed), ordered by time and app.
func (s *Store) RequestCounts(ctx context.Context, tier drainpipe.Tier, start, end time.Time) ([]metrics.RequestCount, error) {
	table := tableOf(tier)
	rows, err := s.pool.Query(ctx, `SELECT app, ts, sum(requests)::bigint, sum(err5xx)::bigint FROM `+table+`
		WHERE ts >= $1 AND ts < $2 GROUP BY app, ts ORDER BY ts, app`, start, end)
	if err != nil {
		return nil, fail(err, "request counts in %s", table)
	}
	defer rows.Close()
	var out []metrics.RequestCount
	for rows.Next() {
		var c metrics.RequestCount
		if err := rows.Scan(&c.App, &c.Time, &c.Requests, &c.Errors5xx); err != nil {
			return nil, fail(err, "scan request counts")
		}
		c.Time = c.Time.UTC()
		out = append(out, c)
	}
	return out, fail(rows.Err(), "request counts in %s", table)
}

// Events returns app's events in [start, end), oldest first: the newest
// 100,000 of them when there are more. A non-empty dyno keeps that dyno's
// events and the app-wide ones.
func (s *Store) Events(ctx context.Context, app string, start, end time.Time, dyno string) ([]drainpipe.Event, error) {
	q := `SELECT ts_ns, ptype, dyno, kind, code, detail FROM events WHERE app = $1 AND ts_ns >= $2 AND ts_ns < $3`
	args := []any{app, start.UnixNano(), end.UnixNano(), s.eventsLimit}
	if dyno != "" {
		args = append(args, dyno)
		q += ` AND (dyno = $5 OR dyno = '')`
	}
	q += ` ORDER BY ts_ns DESC, id DESC LIMIT $4`
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fail(err, "events of %q", app)
	}
	defer rows.Close()
	var out []drainpipe.Event
	for rows.Next() {
		e := drainpipe.Event{App: app}
		var ts int64
		var kind string
		if err := rows.Scan(&ts, &e.ProcessType, &e.Dyno, &kind, &e.Code, &e.Detail); err != nil {
			return nil, fail(err, "scan event")
		}
		e.Time = time.Unix(0, ts).UTC()
		e.Kind = drainpipe.EventKind(kind)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(err, "events of %q", app)
	}
	slices.Reverse(out) // newest first → oldest first
	return out, nil
}

// LastEvents returns each app's latest deploy, release, restart or crash.
func (s *Store) LastEvents(ctx context.Context) (map[string]drainpipe.Event, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT ON (app) app, ts_ns, ptype, dyno, kind, code, detail FROM events
		WHERE kind IN ('deploy', 'release', 'restart', 'crash')
		ORDER BY app, ts_ns DESC, id DESC`)
	if err != nil {
		return nil, fail(err, "last events")
	}
	defer rows.Close()
	out := map[string]drainpipe.Event{}
	for rows.Next() {
		var e drainpipe.Event
		var ts int64
		var kind string
		if err := rows.Scan(&e.App, &ts, &e.ProcessType, &e.Dyno, &kind, &e.Code, &e.Detail); err != nil {
			return nil, fail(err, "scan last event")
		}
		e.Time = time.Unix(0, ts).UTC()
		e.Kind = drainpipe.EventKind(kind)
		out[e.App] = e
	}
	return out, fail(rows.Err(), "last events")
}

// FormationWindow is how far back Formation looks, as in the SQLite
// store: process types and dynos not seen for longer drop out.
const FormationWindow = 7 * 24 * time.Hour

// Formation returns the process types and dynos seen for app within
// FormationWindow, "web.2" before "web.10".
func (s *Store) Formation(ctx context.Context, app string) ([]server.ProcessType, error) {
	rows, err := s.pool.Query(ctx, `SELECT ptype, dyno FROM dynos WHERE app = $1 AND last_seen >= $2
		ORDER BY ptype, octet_length(dyno), dyno`, app, time.Now().Add(-FormationWindow))
	if err != nil {
		return nil, fail(err, "formation of %q", app)
	}
	defer rows.Close()
	var out []server.ProcessType
	for rows.Next() {
		var ptype, dyno string
		if err := rows.Scan(&ptype, &dyno); err != nil {
			return nil, fail(err, "scan formation")
		}
		if len(out) == 0 || out[len(out)-1].Name != ptype {
			out = append(out, server.ProcessType{Name: ptype, Dynos: []string{}})
		}
		if dyno != "" {
			p := &out[len(out)-1]
			p.Dynos = append(p.Dynos, dyno)
		}
	}
	return out, fail(rows.Err(), "formation of %q", app)
}

var customKindNames = map[logline.CustomKind]string{
	logline.CustomCount:   "count",
	logline.CustomSample:  "sample",
	logline.CustomMeasure: "measure",
}

// CustomMetrics returns the custom metric names seen for app.
func (s *Store) CustomMetrics(ctx context.Context, app string) ([]server.CustomMetric, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, kind FROM custom_names WHERE app = $1 ORDER BY name, kind`, app)
	if err != nil {
		return nil, fail(err, "custom metrics of %q", app)
	}
	defer rows.Close()
	out := []server.CustomMetric{}
	for rows.Next() {
		var m server.CustomMetric
		var kind int16
		if err := rows.Scan(&m.Name, &kind); err != nil {
			return nil, fail(err, "scan custom metric")
		}
		m.Kind = customKindNames[logline.CustomKind(kind)]
		out = append(out, m)
	}
	return out, fail(rows.Err(), "custom metrics of %q", app)
}
