package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/embedded"
	"github.com/drainpipe/drainpipe/logplex"
)

// TestAdminRotateToken: with the admin token kept in the data directory,
// `drainpipe admin rotate-token` gets a new one; the old token is refused
// at once, the new one works, the file holds the new token (written
// atomically, mode 0600) and a restarted node reads it. A node whose token
// comes from its configuration refuses to rotate.
func TestAdminRotateToken(t *testing.T) {
	dir := t.TempDir()
	old, file, err := adminToken(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(old) < len("dpk_")+43 {
		t.Fatalf("admin token %q is shorter than 32 random bytes", old)
	}
	start := func(token, file string) *embedded.Node {
		n, err := embedded.Start(context.Background(), embedded.Config{
			DataDir: dir, Listen: "127.0.0.1:0", AdminToken: token, AdminTokenFile: file,
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	me := func(n *embedded.Node, token string) int {
		req, _ := http.NewRequest("GET", n.URL+"/api/me", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	n := start(old, file)
	out, _, err := runCmd(t, "", "admin", "rotate-token", "--url", n.URL, "--admin-token", old)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`New admin token: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output: %s", out)
	}
	next := m[1]
	if me(n, old) != 401 || me(n, next) != 200 {
		t.Fatalf("after rotation: old token %d, new token %d; want 401 and 200", me(n, old), me(n, next))
	}
	b, _ := os.ReadFile(file)
	if strings.TrimSpace(string(b)) != next {
		t.Fatalf("admin-token file holds %q, want the new token", b)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Fatalf("admin-token file mode %v", st.Mode().Perm())
	}
	if _, _, err := runCmd(t, "", "admin", "rotate-token", "--url", n.URL, "--admin-token", old); err == nil {
		t.Fatal("rotation with the old token succeeded")
	}
	n.Close()

	token, _, err := adminToken(dir, "")
	if err != nil || token != next {
		t.Fatalf("restart reads %q (%v), want the rotated token", token, err)
	}
	n = start(token, filepath.Join(dir, "admin-token"))
	if me(n, next) != 200 {
		t.Fatal("rotated token refused after restart")
	}
	n.Close()

	n = start("configured-token", "")
	defer n.Close()
	_, _, err = runCmd(t, "", "admin", "rotate-token", "--url", n.URL, "--admin-token", "configured-token")
	if err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("rotation of a configured token: %v, want a 409 refusal", err)
	}
}

// TestServeLimitFlags: serve's --max-body-bytes reaches the drain
// endpoint (413 above it, 200 below), and cancelling serve's context (what
// SIGTERM does) stops it without an error.
func TestServeLimitFlags(t *testing.T) {
	ctx, base, stop := startServe(t, "--data", t.TempDir(), "--admin-token", "adm", "--max-body-bytes", "2000")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := &apiClient{base: base, token: "adm"}
	app, err := c.createApp(ctx, "limited")
	if err != nil {
		t.Fatal(err)
	}
	post := func(lines int) int {
		var body []byte
		for range lines {
			body = logplex.AppendMessage(body, time.Now(), "host", "heroku", "router", "at=info method=GET path=/ dyno=web.1 connect=1ms service=5ms status=200")
		}
		u, _ := url.Parse(app.DrainURL)
		pass, _ := u.User.Password()
		user := u.User.Username()
		u.User = nil
		req, _ := http.NewRequest("POST", u.String(), bytes.NewReader(body))
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(30); code != 413 {
		t.Errorf("body above --max-body-bytes: %d, want 413", code)
	}
	if code := post(5); code != 200 {
		t.Errorf("body below --max-body-bytes: %d, want 200", code)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve after its context ended: %v", err)
	}
}
