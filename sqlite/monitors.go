package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/monitor"
	"github.com/drainpipe/drainpipe/notify"
)

// monitorSchema holds monitors, their evaluation state and the durable
// notification outbox. Monitors and states are kept as JSON: they are
// read whole, a few hundred at most, and never queried by field.
const monitorSchema = `
CREATE TABLE IF NOT EXISTS monitors (
	id         TEXT PRIMARY KEY,
	app        TEXT NOT NULL,
	ptype      TEXT NOT NULL,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	data       TEXT NOT NULL,
	UNIQUE (app, ptype, name)
);
CREATE TABLE IF NOT EXISTS monitor_state (
	id   TEXT PRIMARY KEY,
	app  TEXT NOT NULL,
	data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	dest         TEXT NOT NULL,
	note_id      TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	payload      BLOB NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	delivered_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(dest, id) WHERE delivered_at IS NULL;
`

var (
	_ monitor.Store = (*Store)(nil)
	_ notify.Outbox = (*Store)(nil)
)

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// CreateMonitor keeps a new monitor.
func (s *Store) CreateMonitor(ctx context.Context, m monitor.Monitor) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("store: encode monitor: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO monitors(id, app, ptype, name, created_at, data) VALUES (?, ?, ?, ?, ?, ?)`,
		m.ID, m.App, m.ProcessType, string(m.Name), m.CreatedAt.UnixNano(), data)
	if isUnique(err) {
		return fmt.Errorf("store: monitor %s of %s/%s: %w", m.Name, m.App, m.ProcessType, drainpipe.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create monitor: %w", err)
	}
	return nil
}

// UpdateMonitor replaces a monitor of the same id and app.
func (s *Store) UpdateMonitor(ctx context.Context, m monitor.Monitor) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("store: encode monitor: %w", err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE monitors SET ptype = ?, name = ?, data = ? WHERE id = ? AND app = ?`,
		m.ProcessType, string(m.Name), data, m.ID, m.App)
	if isUnique(err) {
		return fmt.Errorf("store: monitor %s of %s/%s: %w", m.Name, m.App, m.ProcessType, drainpipe.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: update monitor: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: monitor %s: %w", m.ID, drainpipe.ErrNotFound)
	}
	return nil
}

// DeleteMonitor removes a monitor and its state; queued notifications
// are still delivered.
func (s *Store) DeleteMonitor(ctx context.Context, app, id string) error {
	tx, err := begin(ctx, s.db)
	if err != nil {
		return fmt.Errorf("store: delete monitor: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM monitors WHERE id = ? AND app = ?`, id, app)
	if err != nil {
		return fmt.Errorf("store: delete monitor: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: monitor %s: %w", id, drainpipe.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM monitor_state WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: delete monitor state: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: delete monitor: %w", err)
	}
	return nil
}

// Monitors lists app's monitors (every app's for ""), oldest first.
func (s *Store) Monitors(ctx context.Context, app string) ([]monitor.Monitor, error) {
	q := `SELECT data FROM monitors`
	var args []any
	if app != "" {
		q += ` WHERE app = ?`
		args = append(args, app)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list monitors: %w", err)
	}
	defer rows.Close()
	out := []monitor.Monitor{}
	for rows.Next() {
		var data []byte
		var m monitor.Monitor
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("store: scan monitor: %w", err)
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("store: decode monitor: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// stateRow is how a monitor.State is kept (its JSON form hides the
// fields only the evaluator needs).
type stateRow struct {
	monitor.State
	Run int `json:"run"`
}

// States returns every saved evaluation state.
func (s *Store) States(ctx context.Context) ([]monitor.State, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, app, data FROM monitor_state`)
	if err != nil {
		return nil, fmt.Errorf("store: monitor states: %w", err)
	}
	defer rows.Close()
	var out []monitor.State
	for rows.Next() {
		var id, app string
		var data []byte
		if err := rows.Scan(&id, &app, &data); err != nil {
			return nil, fmt.Errorf("store: scan monitor state: %w", err)
		}
		var r stateRow
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("store: decode monitor state %s: %w", id, err)
		}
		r.State.MonitorID, r.State.App, r.State.Run = id, app, r.Run
		out = append(out, r.State)
	}
	return out, rows.Err()
}

// Commit saves states, appends events and queues notifications in one
// transaction.
func (s *Store) Commit(ctx context.Context, states []monitor.State, events []drainpipe.Event, notes []monitor.Outgoing) error {
	tx, err := begin(ctx, s.db)
	if err != nil {
		return fmt.Errorf("store: begin monitor commit: %w", err)
	}
	defer tx.Rollback()
	for _, st := range states {
		data, err := json.Marshal(stateRow{State: st, Run: st.Run})
		if err != nil {
			return fmt.Errorf("store: encode monitor state: %w", err)
		}
		// A state of a monitor deleted meanwhile is not kept.
		if _, err := tx.ExecContext(ctx,
			`INSERT OR REPLACE INTO monitor_state(id, app, data) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM monitors WHERE id = ?)`,
			st.MonitorID, st.App, data, st.MonitorID); err != nil {
			return fmt.Errorf("store: save monitor state: %w", err)
		}
	}
	stmts := newStmtCache(tx.Tx)
	defer stmts.close()
	if err := insertEvents(ctx, stmts, events); err != nil {
		return err
	}
	now := time.Now().UnixNano()
	for _, n := range notes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox(dest, note_id, created_at, payload) VALUES (?, ?, ?, ?)`,
			n.Destination, n.Notification.ID, now, n.Payload); err != nil {
			return fmt.Errorf("store: queue notification: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit monitor state: %w", err)
	}
	return nil
}

// AddEvents appends events outside a flush (the autoscaler's decisions).
func (s *Store) AddEvents(ctx context.Context, events []drainpipe.Event) error {
	tx, err := begin(ctx, s.db)
	if err != nil {
		return fmt.Errorf("store: add events: %w", err)
	}
	defer tx.Rollback()
	stmts := newStmtCache(tx.Tx)
	defer stmts.close()
	if err := insertEvents(ctx, stmts, events); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: add events: %w", err)
	}
	return nil
}

func insertEvents(ctx context.Context, stmts *stmtCache, events []drainpipe.Event) error {
	for len(events) > 0 {
		n := min(len(events), eventsPerInsert)
		q := insertEventsFull
		if n < eventsPerInsert {
			q = insertEventsSQL(n)
		}
		st, err := stmts.get(ctx, q)
		if err != nil {
			return err
		}
		args := stmts.args[:0]
		for _, e := range events[:n] {
			args = append(args, e.App, e.Time.UnixNano(), e.ProcessType, e.Dyno, string(e.Kind), e.Code, e.Detail)
		}
		stmts.args = args
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("store: insert events: %w", err)
		}
		events = events[n:]
	}
	return nil
}

// eventsPerInsert is how many events one INSERT statement writes. A flush
// of thousands of busy apps carries thousands of events; one statement
// each (prepared anew by the driver) was a fifth of the server's CPU in
// the 10,000-app benchmark (docs/BENCHMARKS.md, Store flush).
const eventsPerInsert = 64

// insertEventsFull is the INSERT of eventsPerInsert events, prepared once
// per transaction.
var insertEventsFull = insertEventsSQL(eventsPerInsert)

// insertEventsSQL returns an INSERT of n events.
func insertEventsSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO events(app, ts, ptype, dyno, kind, code, detail) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, ?, ?, ?, ?, ?)`)
	}
	return b.String()
}

// NextMessage returns the oldest undelivered notification of dest, or
// drainpipe.ErrNotFound when there is none.
func (s *Store) NextMessage(ctx context.Context, dest string) (notify.Message, error) {
	var m notify.Message
	err := s.db.QueryRowContext(ctx,
		`SELECT id, note_id, payload, attempts FROM outbox WHERE dest = ? AND delivered_at IS NULL ORDER BY id LIMIT 1`, dest).
		Scan(&m.Seq, &m.ID, &m.Payload, &m.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return m, drainpipe.ErrNotFound
	}
	if err != nil {
		return m, fmt.Errorf("store: next notification for %s: %w", dest, err)
	}
	m.Destination = dest
	return m, nil
}

// MarkDelivered records that a notification reached its destination.
func (s *Store) MarkDelivered(ctx context.Context, seq int64, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?`, at.UnixNano(), seq); err != nil {
		return fmt.Errorf("store: mark notification %d delivered: %w", seq, err)
	}
	return nil
}

// MarkFailed records a failed delivery attempt.
func (s *Store) MarkFailed(ctx context.Context, seq int64, reason string) error {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?`, reason, seq); err != nil {
		return fmt.Errorf("store: mark notification %d failed: %w", seq, err)
	}
	return nil
}

// TrimDelivered forgets notifications delivered before t.
func (s *Store) TrimDelivered(ctx context.Context, before time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?`, before.UnixNano()); err != nil {
		return fmt.Errorf("store: trim outbox: %w", err)
	}
	return nil
}
