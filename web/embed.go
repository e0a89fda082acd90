// Package web holds the dashboard: a single-page app built from web/src into
// web/dist (committed, so `go build` needs no Node) and embedded here.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed dist
var dist embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body   []byte
	gz     []byte // gzip-compressed body, nil when not worth it
	ctype  string
	etag   string
	hashed bool // name carries a content hash: cache forever
}

// csp allows only same-origin scripts, styles, images and API calls: the
// dashboard loads nothing from the internet. Inline styles are allowed for
// uPlot's positioning.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the dashboard. Files in dist are served with their content
// type, an ETag, gzip when the client accepts it, `Cache-Control: no-cache`
// for index.html and a year-long immutable cache for the content-hashed
// app-<hash>.js/.css. Any other GET path (a client-side route such as
// /apps/storefront/dynos/web.1) answers index.html, so deep links work; a
// missing top-level file such as /app-old.js, or anything under /api/ or
// /drains/, is a 404. Mount it at "/" after the API routes.
func Handler() http.Handler {
	assets, err := load()
	if err != nil {
		panic("web: embedded dist is unreadable: " + err.Error())
	}
	return handler{assets: assets}
}

func load() (map[string]*asset, error) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, err
	}
	assets := map[string]*asset{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		a := &asset{
			body:   body,
			ctype:  contentType(p),
			etag:   `"` + hex.EncodeToString(sum[:8]) + `"`,
			hashed: strings.HasPrefix(path.Base(p), "app-"),
		}
		if len(body) > 1024 && compressible(a.ctype) {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			zw.Write(body)
			zw.Close()
			if buf.Len() < len(body) {
				a.gz = buf.Bytes()
			}
		}
		assets["/"+p] = a
		return nil
	})
	if err == nil && assets["/index.html"] == nil {
		err = fs.ErrNotExist
	}
	return assets, err
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json":
		return "application/json"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.Contains(ctype, "svg") || strings.Contains(ctype, "json")
}

type handler struct {
	assets map[string]*asset
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	if strings.HasPrefix(p, "/api/") || p == "/api" || strings.HasPrefix(p, "/drains/") {
		http.NotFound(w, r)
		return
	}
	a := h.assets[p]
	if p == "/index.html" {
		a = nil // serve the SPA shell only through routes
	}
	if a == nil {
		// A missing top-level file (/app-old.js, /robots.txt) is a 404;
		// every other path is a client-side route.
		if strings.Count(p, "/") == 1 && strings.Contains(p, ".") {
			http.NotFound(w, r)
			return
		}
		a = h.assets["/index.html"]
		p = "/index.html"
	}
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("ETag", a.etag)
	if a.gz != nil {
		hd.Set("Vary", "Accept-Encoding")
	}
	if a.hashed {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	if p == "/index.html" {
		hd.Set("Content-Security-Policy", csp)
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r) {
		hd.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// acceptsGzip reports whether the request accepts gzip with a non-zero q.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if enc = strings.TrimSpace(enc); enc != "gzip" && enc != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.TrimSpace(k) == "q" {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		return q > 0
	}
	return false
}
