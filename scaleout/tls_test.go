package scaleout

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/internal/tlsconf/tlstest"
	"github.com/drainpipe/drainpipe/kafka"
	"github.com/drainpipe/drainpipe/kafka/kafkatest"
	"github.com/drainpipe/drainpipe/logplex"
	"github.com/drainpipe/drainpipe/postgres/pgtest"
)

// TestScaleOutServesHTTPS runs an api,ingest,aggregate process with a TLS
// configuration: the app's drain URL is https, a drain POST over TLS is
// acknowledged and counted, and plain HTTP on the same port gets no API.
func TestScaleOutServesHTTPS(t *testing.T) {
	cert, pool := tlstest.SelfSigned(t, tlstest.ECDSAKey(t))
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	kc := kafka.Config{Brokers: kafkatest.Brokers(t), Topic: kafkatest.Name("drains"), Group: kafkatest.Name("agg"), Partitions: 1}
	r, err := ParseRoles("api,ingest,aggregate")
	if err != nil {
		t.Fatal(err)
	}
	n := startConfig(t, Config{Roles: r, TLS: srvTLS, Kafka: kc}, pgtest.DB(t))
	if !strings.HasPrefix(n.URL, "https://") {
		t.Fatalf("node URL %s, want https://", n.URL)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(method, u string, body []byte, set func(*http.Request)) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		set(req)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+admin) }

	deadline := time.Now().Add(time.Minute)
	var code int
	var body string
	for {
		// The store is opened in the background: 503 until it is.
		code, body = call("POST", n.URL+"/api/apps", []byte(`{"name":"secure"}`), bearer)
		if code == http.StatusCreated {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("create app over TLS: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var app struct {
		DrainURL string `json:"drain_url"` // with the drain's credentials
	}
	if err := json.Unmarshal([]byte(body), &app); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(app.DrainURL, "https://") {
		t.Errorf("drain URL %q, want https://", app.DrainURL)
	}
	frames := logplex.AppendMessage(nil, time.Now().UTC(), "host", "heroku", "router",
		`at=info method=GET path=/ host=secure.herokuapp.com dyno=web.1 connect=1ms service=12ms status=200 bytes=10 protocol=https`)
	for {
		code, body = call("POST", app.DrainURL, frames, func(r *http.Request) {
			r.Header.Set("Content-Type", "application/logplex-1")
			r.Header.Set("Logplex-Msg-Count", "1")
			r.Header.Set("Logplex-Frame-Id", "tls-1")
		})
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drain over TLS: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond) // the topic is created in the background
	}

	// The aggregate role counts the request; the latency summary over the
	// last hour shows it.
	q := n.URL + "/api/apps/secure/router-metrics/latency?step=1m&start_time=" +
		time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	for {
		code, body = call("GET", q, nil, bearer)
		if code == http.StatusOK && strings.Contains(body, `"requests":1,`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the drained request was not counted: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	resp, err := http.Get("http://" + strings.TrimPrefix(n.URL, "https://") + "/healthz")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP on the TLS port answered 200: %s", b)
		}
	}
}
