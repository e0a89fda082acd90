package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/drainpipe/drainpipe/monitor"
)

// TestMonitorsAPI checks the monitors endpoints' answers: defaults, clear
// 4xx for bad input, one monitor per app, process type and name, partial
// updates, deletion, and that an app's token reaches only its own app.
func TestMonitorsAPI(t *testing.T) {
	n := startNode(t, t.TempDir())
	base := n.URL
	shop := createApp(t, base, "shop")
	other := createApp(t, base, "other")
	u := base + "/api/apps/shop/monitors"

	bad := []struct {
		body   string
		status int
		want   string
	}{
		{`{"action_type":"alert","name":"LATENCY","value":20}`, 422, "from 50 to 30000"},
		{`{"action_type":"alert","name":"ERROR_RATE","value":5}`, 422, "0.05 is 5%"},
		{`{"action_type":"alert","name":"LATENCY","value":500,"period":3}`, 422, "period 3: want 1, 5 or 10"},
		{`{"action_type":"alert","name":"LATENCY","value":500,"notification_period":30}`, 422, "want 5, 60 or 1440"},
		{`{"action_type":"page","name":"LATENCY","value":500}`, 422, "want alert or scale"},
		{`{"action_type":"alert","name":"CPU","value":500}`, 422, `CPU`},
		{`{"action_type":"scale","name":"ERROR_RATE","value":0.1,"min_quantity":1,"max_quantity":2}`, 422, "LATENCY only"},
		{`{"action_type":"scale","name":"LATENCY","value":500,"min_quantity":3,"max_quantity":2}`, 422, "min_quantity <= max_quantity"},
		{`{"action_type":"alert","name":"LATENCY","value":500,"min_quantity":1}`, 422, "scale only"},
		{`{"action_type":"alert","name":"LATENCY","value":500,"code":"H12"}`, 422, "only ROUTER_ERRORS"},
		{`{"action_type":"alert","name":"LATENCY","value":500,"process_type":"Web!"}`, 422, "process_type"},
		{`{"action_type":"alert","name":"LATENCY"}`, 422, "value is required"},
		{`{"action_type":"alert","name":"LATENCY","value":500,"colour":"red"}`, 400, "unknown field"},
		{`{"action_type":`, 400, "bad JSON"},
		{``, 400, "missing JSON body"},
	}
	for _, b := range bad {
		code, body := do(t, "POST", u, adminToken, nil, []byte(b.body))
		if code != b.status || !strings.Contains(string(body), b.want) {
			t.Errorf("POST %s: %d %s, want %d with %q", b.body, code, body, b.status, b.want)
		}
	}

	code, body := do(t, "POST", u, shop.APIToken, nil, []byte(`{"action_type":"alert","name":"router_errors","code":"h12","value":10}`))
	var m monitor.View
	if code != http.StatusCreated || json.Unmarshal(body, &m) != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	if m.Name != monitor.RouterErrors || m.Code != "H12" || m.ProcessType != "web" || m.Period != 5 || m.NotificationPeriod != 60 || !m.IsActive || m.Op != monitor.GreaterOrEqual {
		t.Errorf("defaults: %+v", m.Monitor)
	}
	if code, body := do(t, "POST", u, adminToken, nil, []byte(`{"action_type":"alert","name":"ROUTER_ERRORS","value":3}`)); code != http.StatusConflict {
		t.Errorf("duplicate: %d %s", code, body)
	}
	// Same name, other process type: fine.
	if code, body := do(t, "POST", u, adminToken, nil, []byte(`{"action_type":"alert","name":"ROUTER_ERRORS","process_type":"api","value":3}`)); code != http.StatusCreated {
		t.Errorf("other process type: %d %s", code, body)
	}

	one := u + "/" + m.ID
	code, body = do(t, "PATCH", one, shop.APIToken, nil, []byte(`{"value":25,"is_active":false}`))
	var p monitor.View
	if code != http.StatusOK || json.Unmarshal(body, &p) != nil || p.Value != 25 || p.IsActive || p.Code != "H12" || !p.UpdatedAt.After(p.CreatedAt) && !p.UpdatedAt.Equal(p.CreatedAt) {
		t.Errorf("PATCH: %d %s", code, body)
	}
	// What GET answered may be sent back: the read-only fields are ignored.
	_, got := do(t, "GET", one, adminToken, nil, nil)
	if code, body := do(t, "PATCH", one, adminToken, nil, got); code != http.StatusOK {
		t.Errorf("PATCH with the GET answer: %d %s", code, body)
	}
	if code, body := do(t, "PATCH", one, adminToken, nil, []byte(`{"period":7}`)); code != 422 {
		t.Errorf("PATCH bad period: %d %s", code, body)
	}

	// Isolation: another app's token sees 404, no token 401.
	for _, r := range []struct{ method, url string }{{"GET", u}, {"GET", one}, {"PATCH", one}, {"DELETE", one}, {"POST", u}, {"GET", base + "/api/apps/shop/autoscaling"}} {
		if code, _ := do(t, r.method, r.url, other.APIToken, nil, []byte(`{}`)); code != http.StatusNotFound {
			t.Errorf("%s %s with another app's token: %d, want 404", r.method, r.url, code)
		}
	}
	if code, _ := do(t, "GET", u, "", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}

	if code, body := do(t, "DELETE", one, shop.APIToken, nil, nil); code != http.StatusOK {
		t.Errorf("DELETE: %d %s", code, body)
	}
	if code, _ := do(t, "GET", one, adminToken, nil, nil); code != http.StatusNotFound {
		t.Errorf("GET deleted: %d", code)
	}
	code, body = do(t, "GET", u, adminToken, nil, nil)
	var list []monitor.View
	if code != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list) != 1 || list[0].ProcessType != "api" {
		t.Errorf("list after delete: %d %s", code, body)
	}
}
