package monitor

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// FuzzCreate posts arbitrary bodies to the create endpoint: every answer
// is 201, 400, 413 or 422, and every monitor kept is one Normalize
// accepts with its fields in their allowed sets.
func FuzzCreate(f *testing.F) {
	for _, s := range []string{
		`{"action_type":"alert","name":"LATENCY","value":500}`,
		`{"action_type":"scale","name":"LATENCY","value":800,"min_quantity":1,"max_quantity":4}`,
		`{"action_type":"alert","name":"ROUTER_ERRORS","code":"h12","value":3,"period":10,"notification_period":1440}`,
		`{"action_type":"alert","name":"ERROR_RATE","value":1e308}`,
		`{"action_type":"alert","name":"MEMORY_QUOTA","value":-0,"op":"greater_than"}`,
		`{"value":null}`, `[]`, `{"is_active":"yes"}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		st := &memStore{states: map[string]State{}}
		a := &API{Store: st}
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/api/apps/shop/monitors", bytes.NewReader(body))
		a.create(w, r, "shop")
		switch w.Code {
		case http.StatusCreated:
			if len(st.mons) != 1 {
				t.Fatalf("201 but %d monitors kept", len(st.mons))
			}
			m := st.mons[0]
			again := m
			if err := again.Normalize(); err != nil || again != m {
				t.Fatalf("kept a monitor Normalize refuses or changes: %+v: %v", m, err)
			}
			if !slices.Contains(Periods, m.Period) || !slices.Contains(NotificationPeriods, m.NotificationPeriod) || m.App != "shop" || m.ID == "" {
				t.Fatalf("kept %+v", m)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			if len(st.mons) != 0 {
				t.Fatalf("%d but kept %+v", w.Code, st.mons)
			}
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
	})
}
