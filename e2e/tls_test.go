package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/embedded"
	"github.com/drainpipe/drainpipe/internal/tlsconf/tlstest"
	"github.com/drainpipe/drainpipe/logplex"
)

// TestHTTPSDrain serves HTTPS, as a Heroku drain URL needs, and checks that
// a drain POST over TLS is counted, and that session resumption works.
func TestHTTPSDrain(t *testing.T) {
	dir := t.TempDir()
	cert, pool := tlstest.SelfSigned(t, tlstest.ECDSAKey(t))
	certFile, keyFile := tlstest.WritePEM(t, dir, "cert", cert)
	n, err := embedded.Start(context.Background(), embedded.Config{
		DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0", AdminToken: adminToken,
		TLSCert: certFile, TLSKey: keyFile,
		Aggregate: aggregate.Config{FlushInterval: 200 * time.Millisecond},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !strings.HasPrefix(n.URL, "https://") {
		t.Fatalf("URL %s", n.URL)
	}
	cache := tls.NewLRUClientSessionCache(8)
	hc := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ClientSessionCache: cache},
		DisableKeepAlives: true, // a new handshake per request, to see resumption
	}}
	req := func(method, u, token string, body string) (*http.Response, string) {
		t.Helper()
		r, _ := http.NewRequest(method, u, strings.NewReader(body))
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		if pu, _ := url.Parse(u); pu.User != nil {
			p, _ := pu.User.Password()
			r.SetBasicAuth(pu.User.Username(), p)
			pu.User = nil
			r.URL = pu
		}
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := req("POST", n.URL+"/api/apps", adminToken, `{"name":"secure"}`)
	if resp.StatusCode != 201 || !strings.Contains(body, `"drain_url":"https://`) {
		t.Fatalf("create over TLS: %d %s", resp.StatusCode, body)
	}
	var created struct {
		DrainURL string `json:"drain_url"`
	}
	if err := jsonUnmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	frames := string(logplex.AppendMessage(nil, now, "host", "heroku", "router", "at=info method=GET path=/ dyno=web.1 connect=1ms service=9ms status=200"))
	for i := 0; i < 3; i++ {
		resp, _ = req("POST", created.DrainURL, "", frames)
		if resp.StatusCode != 200 {
			t.Fatalf("drain over TLS: %d", resp.StatusCode)
		}
		if i > 0 && !resp.TLS.DidResume {
			t.Errorf("handshake %d did not resume the TLS session", i+1)
		}
	}
	eventually(t, "TLS drain lines counted", func() bool {
		q := fmt.Sprintf("%s/api/apps/secure/router-metrics/status?step=1h&start_time=%s", n.URL, now.Add(-time.Hour).Truncate(time.Hour).Format(time.RFC3339))
		_, b := req("GET", q, adminToken, "")
		return strings.Contains(b, `"200":[null,3]`) || strings.Contains(b, `"200":[3]`)
	})
}
