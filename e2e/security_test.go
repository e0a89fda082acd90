package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/monitor"
)

// routePatterns returns every ServeMux pattern the server registers: read
// from server/server.go's source (so a route added later is caught by
// TestEveryEndpointCrossApp's coverage check) plus the monitor routes.
func routePatterns(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("../server/server.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`mux\.Handle(?:Func)?\("([^"]+)"`).FindAllSubmatch(src, -1) {
		out = append(out, string(m[1]))
	}
	for p := range (&monitor.API{}).Routes() {
		out = append(out, p)
	}
	return out
}

// TestEveryEndpointCrossApp tries every endpoint of the API with another
// app's token (and the drain with another app's credentials): every path
// under /api/apps/alpha answers beta's token 404, exactly as for an app
// that does not exist, nothing of alpha's changes, the app list shows beta
// only its own app, and admin-only actions answer 403. Without a token
// every API endpoint answers 401. The route list is read from the
// server's source, so a new endpoint cannot be left out.
func TestEveryEndpointCrossApp(t *testing.T) {
	n := startNode(t, t.TempDir())
	alpha := createApp(t, n.URL, "alpha")
	beta := createApp(t, n.URL, "beta")
	now := time.Now().UTC()
	if code := postDrain(t, alpha.DrainURL, "a1", routerBatch(20, 200, now), 20); code != 200 {
		t.Fatalf("alpha drain: %d", code)
	}
	settled(t, n.URL)
	mon := createMonitor(t, n.URL, adminToken, "alpha", `{"action_type":"alert","name":"ERROR_RATE","value":0.5,"period":5,"notification_period":5}`)

	tested := map[string]bool{}
	for _, p := range routePatterns(t) {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			method, path = "GET", p // a pattern for every method
		}
		concrete := strings.NewReplacer("{app}", "alpha", "{type}", "web", "{name...}", "signups", "{id}", mon.ID).Replace(path)
		body := []byte(`{"name":"x","value":1}`)
		switch {
		case strings.HasPrefix(path, "/api/apps/{app}"):
			code, resp := do(t, method, n.URL+concrete, beta.APIToken, nil, body)
			if code != http.StatusNotFound || !strings.Contains(string(resp), "app not found") {
				t.Errorf("%s %s with beta's token: %d %s, want 404 app not found", method, concrete, code, resp)
			}
			missing := strings.Replace(concrete, "/alpha", "/no-such-app", 1)
			if code2, resp2 := do(t, method, n.URL+missing, beta.APIToken, nil, body); code2 != code || string(resp2) != string(resp) {
				t.Errorf("%s: beta tells alpha (%d %s) from a missing app (%d %s)", p, code, resp, code2, resp2)
			}
			if method == "GET" {
				if code, resp := do(t, "GET", n.URL+concrete, adminToken, nil, nil); code == http.StatusNotFound && !strings.Contains(p, "{name...}") {
					t.Errorf("control: admin GET %s: %d %s", concrete, code, resp)
				}
			}
		case p == "GET /api/me":
			code, resp := do(t, "GET", n.URL+path, beta.APIToken, nil, nil)
			if code != 200 || !strings.Contains(string(resp), `"app":"beta"`) {
				t.Errorf("GET /api/me with beta's token: %d %s", code, resp)
			}
		case p == "GET /api/apps":
			code, resp := do(t, "GET", n.URL+path, beta.APIToken, nil, nil)
			var apps []struct{ Name string }
			if code != 200 || json.Unmarshal(resp, &apps) != nil || len(apps) != 1 || apps[0].Name != "beta" {
				t.Errorf("GET /api/apps with beta's token: %d %s, want beta only", code, resp)
			}
		case p == "POST /api/apps", p == "POST /api/admin-token":
			if code, resp := do(t, "POST", n.URL+path, beta.APIToken, nil, []byte(`{"name":"gamma"}`)); code != http.StatusForbidden {
				t.Errorf("%s with beta's token: %d %s, want 403", p, code, resp)
			}
		case strings.HasPrefix(path, "/drains/{app}"):
			d := targetOf(t, beta.DrainURL)
			req, _ := http.NewRequest("POST", n.URL+"/drains/alpha", strings.NewReader(string(routerBatch(1, 500, now))))
			req.SetBasicAuth(d.user, d.secret)
			if code, _ := doReq(t, req, routerBatch(1, 500, now)); code != http.StatusUnauthorized {
				t.Errorf("POST /drains/alpha with beta's drain credentials: %d, want 401", code)
			}
		case path == "/drains/":
			if code, resp := do(t, "POST", n.URL+"/drains/", "", nil, routerBatch(1, 500, now)); code != http.StatusNotFound {
				t.Errorf("POST /drains/: %d %s, want 404", code, resp)
			}
		case path == "/api/":
			if code, _ := do(t, "GET", n.URL+"/api/nothing", beta.APIToken, nil, nil); code != http.StatusNotFound {
				t.Errorf("unknown API path: %d", code)
			}
		case path == "/healthz", path == "/metrics", path == "/":
			// No app data behind a token: health, self-metrics and the
			// dashboard's static files (documented in RELIABILITY.md).
		default:
			t.Errorf("route %q is not covered by this test: add it", p)
		}
		if strings.HasPrefix(path, "/api/") && path != "/api/" {
			if code, _ := do(t, method, n.URL+concrete, "", nil, body); code != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d, want 401", method, concrete, code)
			}
		}
		tested[p] = true
	}
	if len(tested) < 20 {
		t.Fatalf("only %d routes found in the server's source", len(tested))
	}
	// Nothing of alpha's changed.
	if got := countStatus(t, n.URL, "alpha", 200, now); got != 20 {
		t.Errorf("alpha counts %v lines after beta's attempts, want 20", got)
	}
	if got := countStatus(t, n.URL, "alpha", 500, now); got != 0 {
		t.Errorf("beta's drain attempt reached alpha: %v lines", got)
	}
	if code, resp := do(t, "GET", n.URL+"/api/apps/alpha/monitors/"+mon.ID, alpha.APIToken, nil, nil); code != 200 {
		t.Errorf("alpha's monitor after beta's attempts: %d %s", code, resp)
	}
	t.Logf("%d routes tried cross-app", len(tested))
}

// TestSecretsNeverLogged runs the real binary with a generated admin
// token, creates apps, drains with right and wrong credentials, uses good
// and bad tokens, sends oversized and unframeable bodies, and stops it
// with SIGTERM; then greps everything it printed: no admin token, API
// token, drain secret (right or wrong), or Authorization header value
// appears.
func TestSecretsNeverLogged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := freePort(t)
	srv := startChildArgs(t, bin, "serve", "--data", dir, "--listen", addr, "--max-body-bytes", "4096")
	defer srv.kill9()
	base := "http://" + addr
	raw, err := os.ReadFile(dir + "/admin-token")
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(raw))
	secrets := []string{admin}
	var apps []created
	for _, name := range []string{"logged-a", "logged-b"} {
		code, body := do(t, "POST", base+"/api/apps", admin, nil, []byte(`{"name":"`+name+`"}`))
		if code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", name, code, body)
		}
		var c created
		if err := json.Unmarshal(body, &c); err != nil {
			t.Fatal(err)
		}
		d := targetOf(t, c.DrainURL)
		secrets = append(secrets, c.APIToken, d.secret)
		apps = append(apps, c)
	}
	now := time.Now().UTC()
	wrongSecret := "wrong-secret-0123456789abcdef"
	wrongToken := "dpa_wrong-token-0123456789abcdef"
	secrets = append(secrets, wrongSecret, wrongToken)
	for i, c := range apps {
		d := targetOf(t, c.DrainURL)
		post := func(user, secret string, body []byte) int {
			req, _ := http.NewRequest("POST", d.endpoint, nil)
			req.SetBasicAuth(user, secret)
			req.Header.Set("Logplex-Frame-Id", "f-"+secret[:4])
			code, _ := doReq(t, req, body)
			return code
		}
		if code := post(d.user, d.secret, routerBatch(5, 200, now)); code != 200 {
			t.Fatalf("drain: %d", code)
		}
		post(d.user, wrongSecret, routerBatch(1, 200, now))
		post(d.user, d.secret, routerBatch(100, 200, now)) // 413
		post(d.user, d.secret, []byte("garbage"))          // 400
		do(t, "GET", base+"/api/apps/"+c.Name+"/router-metrics/status", c.APIToken, nil, nil)
		do(t, "GET", base+"/api/apps/"+apps[1-i].Name+"/events", c.APIToken, nil, nil)
		do(t, "GET", base+"/api/apps/"+c.Name+"/router-metrics/status?step=9h", c.APIToken, nil, nil)
		do(t, "GET", base+"/api/apps", wrongToken, nil, nil)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	logs := srv.logs.String()
	if !strings.Contains(logs, "level=") {
		t.Fatalf("the server printed no logs to check:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%.6s…) appears in the logs", s)
		}
		if strings.Contains(logs, base64.StdEncoding.EncodeToString([]byte(s))[:12]) {
			t.Errorf("a secret's base64 (%.6s…) appears in the logs", s)
		}
	}
	t.Logf("%d secrets checked against %d bytes of logs", len(secrets), len(logs))
}
