package server

import (
	"strings"
	"testing"
)

func TestMeTellsTheRole(t *testing.T) {
	h := newHarness(t, Config{})
	if w := h.do("GET", "/api/me", "admin-secret", ""); w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"role":"admin"}` {
		t.Errorf("admin: %d %s", w.Code, w.Body.String())
	}
	if w := h.do("GET", "/api/me", h.cr["billing"], ""); w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"app":"billing","role":"app"}` {
		t.Errorf("app token: %d %s", w.Code, w.Body.String())
	}
	if w := h.do("GET", "/api/me", "nope", ""); w.Code != 401 {
		t.Errorf("bad token: %d", w.Code)
	}
}
