package monitor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// AppHandler is an endpoint under /api/apps/{app}/ whose authentication
// and app check the server has done; app is the path's app.
type AppHandler func(w http.ResponseWriter, r *http.Request, app string)

// API serves /api/apps/{app}/monitors.
type API struct {
	Store     Store
	Evaluator *Evaluator // may be nil: no evaluation state in answers
	Log       *slog.Logger
	Now       func() time.Time
}

// Routes returns the monitor endpoints by ServeMux pattern.
func (a *API) Routes() map[string]AppHandler {
	return map[string]AppHandler{
		"GET /api/apps/{app}/monitors":         a.list,
		"POST /api/apps/{app}/monitors":        a.create,
		"GET /api/apps/{app}/monitors/{id}":    a.get,
		"PATCH /api/apps/{app}/monitors/{id}":  a.update,
		"DELETE /api/apps/{app}/monitors/{id}": a.delete,
	}
}

// View is a monitor as the API shows it: its fields and its evaluation.
type View struct {
	Monitor
	Evaluation *State `json:"evaluation"`
}

// input is a create or update body; absent fields keep their value (or
// take the default on create).
type input struct {
	ProcessType        *string     `json:"process_type"`
	ActionType         *ActionType `json:"action_type"`
	Name               *Name       `json:"name"`
	Code               *string     `json:"code"`
	Op                 *Op         `json:"op"`
	Value              *float64    `json:"value"`
	Period             *int        `json:"period"`
	NotificationPeriod *int        `json:"notification_period"`
	IsActive           *bool       `json:"is_active"`
	MinQuantity        *int        `json:"min_quantity"`
	MaxQuantity        *int        `json:"max_quantity"`

	// Read-only fields of the answer are accepted and ignored, so a
	// client may send back what it read; other unknown fields are 400.
	ID         json.RawMessage `json:"id"`
	App        json.RawMessage `json:"app"`
	CreatedAt  json.RawMessage `json:"created_at"`
	UpdatedAt  json.RawMessage `json:"updated_at"`
	Evaluation json.RawMessage `json:"evaluation"`
}

func (in *input) apply(m *Monitor) {
	if in.ProcessType != nil {
		m.ProcessType = *in.ProcessType
	}
	if in.Code != nil {
		m.Code = strings.ToUpper(*in.Code)
	}
	if in.ActionType != nil {
		m.ActionType = *in.ActionType
	}
	if in.Name != nil {
		m.Name = Name(strings.ToUpper(string(*in.Name)))
	}
	if in.Op != nil {
		m.Op = Op(strings.ToUpper(string(*in.Op)))
	}
	if in.Value != nil {
		m.Value = *in.Value
	}
	if in.Period != nil {
		m.Period = *in.Period
	}
	if in.NotificationPeriod != nil {
		m.NotificationPeriod = *in.NotificationPeriod
	}
	if in.IsActive != nil {
		m.IsActive = *in.IsActive
	}
	if in.MinQuantity != nil {
		m.MinQuantity = *in.MinQuantity
	}
	if in.MaxQuantity != nil {
		m.MaxQuantity = *in.MaxQuantity
	}
}

const maxBody = 16 << 10

func readInput(w http.ResponseWriter, r *http.Request) (*input, bool) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	var in input
	if err := dec.Decode(&in); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			writeError(w, http.StatusRequestEntityTooLarge, "body too large")
		case errors.Is(err, io.EOF):
			writeError(w, http.StatusBadRequest, "missing JSON body")
		default:
			writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		}
		return nil, false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad JSON body: more than one value")
		return nil, false
	}
	return &in, true
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

func (a *API) view(m Monitor) View {
	v := View{Monitor: m}
	if a.Evaluator != nil {
		if st, ok := a.Evaluator.State(m.ID); ok {
			v.Evaluation = &st
		}
	}
	return v
}

func (a *API) list(w http.ResponseWriter, r *http.Request, app string) {
	ms, err := a.Store.Monitors(r.Context(), app)
	if err != nil {
		a.internal(w, err)
		return
	}
	out := make([]View, 0, len(ms))
	for _, m := range ms {
		out = append(out, a.view(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) find(w http.ResponseWriter, r *http.Request, app string) (Monitor, bool) {
	id := r.PathValue("id")
	ms, err := a.Store.Monitors(r.Context(), app)
	if err != nil {
		a.internal(w, err)
		return Monitor{}, false
	}
	for _, m := range ms {
		if m.ID == id {
			return m, true
		}
	}
	writeError(w, http.StatusNotFound, "monitor not found")
	return Monitor{}, false
}

func (a *API) get(w http.ResponseWriter, r *http.Request, app string) {
	if m, ok := a.find(w, r, app); ok {
		writeJSON(w, http.StatusOK, a.view(m))
	}
}

func (a *API) create(w http.ResponseWriter, r *http.Request, app string) {
	in, ok := readInput(w, r)
	if !ok {
		return
	}
	if in.Value == nil {
		writeError(w, http.StatusUnprocessableEntity, "value is required")
		return
	}
	now := a.now()
	m := Monitor{ID: uuid.NewString(), App: app, IsActive: true, CreatedAt: now, UpdatedAt: now}
	in.apply(&m)
	if err := m.Normalize(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	if err := a.Store.CreateMonitor(r.Context(), m); err != nil {
		a.storeError(w, err, m)
		return
	}
	a.changed()
	w.Header().Set("Location", "/api/apps/"+app+"/monitors/"+m.ID)
	writeJSON(w, http.StatusCreated, a.view(m))
}

func (a *API) update(w http.ResponseWriter, r *http.Request, app string) {
	m, ok := a.find(w, r, app)
	if !ok {
		return
	}
	in, ok := readInput(w, r)
	if !ok {
		return
	}
	in.apply(&m)
	if m.ActionType == ActionAlert && (in.MinQuantity == nil && in.MaxQuantity == nil) {
		m.MinQuantity, m.MaxQuantity = 0, 0 // switching a scale monitor to alert
	}
	if err := m.Normalize(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	m.UpdatedAt = a.now()
	if err := a.Store.UpdateMonitor(r.Context(), m); err != nil {
		a.storeError(w, err, m)
		return
	}
	a.changed()
	writeJSON(w, http.StatusOK, a.view(m))
}

func (a *API) delete(w http.ResponseWriter, r *http.Request, app string) {
	m, ok := a.find(w, r, app)
	if !ok {
		return
	}
	if err := a.Store.DeleteMonitor(r.Context(), app, m.ID); err != nil {
		a.storeError(w, err, m)
		return
	}
	a.changed()
	writeJSON(w, http.StatusOK, a.view(m))
}

func (a *API) changed() {
	if a.Evaluator != nil {
		a.Evaluator.Changed()
	}
}

func (a *API) storeError(w http.ResponseWriter, err error, m Monitor) {
	switch {
	case errors.Is(err, ErrExists):
		writeError(w, http.StatusConflict, fmt.Sprintf("app %s already has a %s monitor for process type %s", m.App, m.Name, m.ProcessType))
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "monitor not found")
	default:
		a.internal(w, err)
	}
}

func (a *API) internal(w http.ResponseWriter, err error) {
	if a.Log != nil {
		a.Log.Error("monitor api: request failed", "err", err)
	}
	writeError(w, http.StatusInternalServerError, "internal error")
}

// WriteJSON writes v as a JSON answer with status.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // messages say "<=", not "\u003c="
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"cannot encode answer"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
