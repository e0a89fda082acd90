// Package e2e holds drainpipe's end-to-end tests: the whole single-process
// stack on a real port, driven only through HTTP, as Logplex and a user
// would drive it.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/embedded"
)

const adminToken = "test-admin-token"

// startNode runs the embedded stack in-process on a free loopback port.
func startNode(t *testing.T, dir string) *embedded.Node {
	t.Helper()
	return startNodeWith(t, embedded.Config{DataDir: dir}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startNodeWith is startNode with more of the configuration given; the
// listen address, admin token and a 200 ms flush interval are filled in.
func startNodeWith(t *testing.T, cfg embedded.Config, log *slog.Logger) *embedded.Node {
	t.Helper()
	cfg.Listen, cfg.AdminToken = "127.0.0.1:0", adminToken
	if cfg.Aggregate.FlushInterval == 0 {
		cfg.Aggregate.FlushInterval = 200 * time.Millisecond
	}
	n, err := embedded.Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

type created struct {
	Name     string `json:"name"`
	DrainURL string `json:"drain_url"`
	APIToken string `json:"api_token"`
}

func createApp(t *testing.T, base, name string) created {
	t.Helper()
	code, body := do(t, "POST", base+"/api/apps", adminToken, nil, []byte(`{"name":"`+name+`"}`))
	if code != http.StatusCreated {
		t.Fatalf("create app %s: %d %s", name, code, body)
	}
	var c created
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	if c.Name != name || !strings.Contains(c.DrainURL, "/drains/"+name) || c.APIToken == "" {
		t.Fatalf("create answer: %+v", c)
	}
	return c
}

// do sends one request and returns the status and body.
func do(t *testing.T, method, u, token string, header http.Header, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return doReq(t, req, body)
}

// doReq sends a prepared request with body and returns status and body.
func doReq(t *testing.T, req *http.Request, body []byte) (int, []byte) {
	t.Helper()
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// postDrain POSTs a logplex-1 body to a drain URL with credentials, under
// the given frame id.
func postDrain(t *testing.T, drainURL, frameID string, body []byte, msgs int) int {
	t.Helper()
	u, err := url.Parse(drainURL)
	if err != nil {
		t.Fatal(err)
	}
	user := u.User.Username()
	secret, _ := u.User.Password()
	u.User = nil
	req, err := http.NewRequest("POST", u.String(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, secret)
	req.Header.Set("Content-Type", "application/logplex-1")
	req.Header.Set("Logplex-Msg-Count", fmt.Sprint(msgs))
	req.Header.Set("Logplex-Frame-Id", frameID)
	req.Header.Set("Logplex-Drain-Token", "d.01234567-89ab-cdef-0123-456789abcdef")
	req.Header.Set("User-Agent", "Logplex/v72")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// series is the SPEC §3 answer of a series endpoint.
type series struct {
	StartTime string                `json:"start_time"`
	EndTime   string                `json:"end_time"`
	Step      string                `json:"step"`
	Data      map[string][]*float64 `json:"data"`
	Summary   map[string]*float64   `json:"summary"`
	Events    []struct {
		Time   time.Time `json:"time"`
		Kind   string    `json:"kind"`
		Dyno   string    `json:"dyno"`
		Code   string    `json:"code"`
		Detail string    `json:"detail"`
	} `json:"events"`
	Kind string `json:"kind"`
}

func query(t *testing.T, base, token, path string, start, end time.Time, step string, extra url.Values) series {
	t.Helper()
	q := url.Values{"start_time": {start.Format(time.RFC3339)}, "end_time": {end.Format(time.RFC3339)}, "step": {step}}
	for k, v := range extra {
		q[k] = v
	}
	code, body := do(t, "GET", base+path+"?"+q.Encode(), token, nil, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var s series
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return s
}

// sum adds the non-null values of a series key.
func sum(vals []*float64) float64 {
	var s float64
	for _, v := range vals {
		if v != nil {
			s += *v
		}
	}
	return s
}

// eventually polls cond until it is true or the freshness bound of SPEC §4
// (10 s) has passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
