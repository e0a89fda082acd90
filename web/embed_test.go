package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestIndexAndClientRoutes(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/", "/apps/storefront", "/apps/storefront/dynos/web.1?range=2h", "/some/deep/link"} {
		w := get(t, h, p, nil)
		if w.Code != 200 {
			t.Fatalf("%s: status %d", p, w.Code)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: content type %q", p, ct)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: cache-control %q", p, cc)
		}
		if !strings.Contains(w.Body.String(), `<div id="root"`) {
			t.Errorf("%s: not the SPA shell", p)
		}
		if w.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("%s: no CSP", p)
		}
	}
}

func TestAssets(t *testing.T) {
	h := Handler()
	index := get(t, h, "/", nil).Body.String()
	var js, css string
	for a := range h.(handler).assets {
		switch {
		case strings.HasSuffix(a, ".js"):
			js = a
		case strings.HasSuffix(a, ".css"):
			css = a
		}
	}
	if js == "" || css == "" || !strings.Contains(index, js) || !strings.Contains(index, css) {
		t.Fatalf("index.html does not reference the bundle (%q, %q)", js, css)
	}
	w := get(t, h, js, nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("js: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if !strings.Contains(w.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("hashed asset not cached long: %q", w.Header().Get("Cache-Control"))
	}
	plain := w.Body.Bytes()

	w = get(t, h, css, map[string]string{"Accept-Encoding": "gzip, deflate"})
	if w.Header().Get("Content-Type") != "text/css; charset=utf-8" || w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("css: %q %q", w.Header().Get("Content-Type"), w.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); !bytes.Contains(b, []byte(".uplot")) {
		t.Error("css does not inline uPlot's stylesheet")
	}

	etag := get(t, h, js, nil).Header().Get("ETag")
	if w := get(t, h, js, map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d", w.Code)
	}
	if w := get(t, h, js, map[string]string{"Accept-Encoding": "gzip;q=0"}); w.Header().Get("Content-Encoding") != "" || !bytes.Equal(w.Body.Bytes(), plain) {
		t.Error("gzip;q=0 still got gzip")
	}
	if w := get(t, h, "/favicon.svg", nil); w.Code != 200 || w.Header().Get("Content-Type") != "image/svg+xml" {
		t.Errorf("favicon: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
}

func TestNotFound(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/app-0000000000.js", "/robots.txt", "/api/nope", "/drains/x"} {
		if w := get(t, h, p, nil); w.Code != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, w.Code)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d", w.Code)
	}
}
