package server

import (
	"encoding/json"
	"testing"
)

// TestGetApp pins GET /api/apps/{app}: the app's entry of GET /api/apps
// (name, created_at, summary), 404 for an app the token cannot see, and
// the Location of POST /api/apps pointing at it.
func TestGetApp(t *testing.T) {
	h := newHarness(t, Config{})
	h.store.add("storefront", "web", at(10, 59), requests(100, 200))

	var list appList
	if err := json.Unmarshal(h.do("GET", "/api/apps", admin, "").Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{admin, "t-storefront"} {
		w := h.do("GET", "/api/apps/storefront", token, "")
		if w.Code != 200 {
			t.Fatalf("token %s: status %d: %s", token, w.Code, w.Body.String())
		}
		var got struct {
			Name      string `json:"name"`
			CreatedAt string `json:"created_at"`
			Summary   *struct {
				Requests int64 `json:"requests"`
			} `json:"summary"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("%v: %s", err, w.Body.String())
		}
		if got.Name != "storefront" || got.CreatedAt != list[1].CreatedAt || got.Summary == nil || got.Summary.Requests != 2 {
			t.Errorf("token %s: GET /api/apps/storefront = %s", token, w.Body.String())
		}
	}
	for _, tc := range []struct{ path, token string }{
		{"/api/apps/storefront", "t-billing"},
		{"/api/apps/nope", admin},
		{"/api/apps/Bad_Name", admin},
	} {
		if w := h.do("GET", tc.path, tc.token, ""); w.Code != 404 {
			t.Errorf("GET %s as %s: status %d, want 404", tc.path, tc.token, w.Code)
		} else {
			errorOf(t, w)
		}
	}

	// A created app is there at once, and Location names it.
	w := h.do("POST", "/api/apps", admin, `{"name":"newapp"}`)
	if w.Code != 201 || w.Header().Get("Location") != "/api/apps/newapp" {
		t.Fatalf("create: status %d Location %q", w.Code, w.Header().Get("Location"))
	}
	if w := h.do("GET", "/api/apps/newapp", admin, ""); w.Code != 200 {
		t.Errorf("GET created app: status %d: %s", w.Code, w.Body.String())
	}
}
