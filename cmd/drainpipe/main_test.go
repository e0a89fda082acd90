package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/aggregate"
	"github.com/drainpipe/drainpipe/embedded"
)

func runCmd(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, cmd := range [][]string{{"serve"}, {"apps", "create"}, {"admin", "rotate-token"}, {"pipe"}, {"demo"}, {"loadgen"}} {
		_, stderr, err := runCmd(t, "", append(cmd, "--help")...)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v --help: err %v", cmd, err)
		}
		if !strings.Contains(stderr, "USAGE") || !strings.Contains(stderr, "FLAGS") {
			t.Errorf("%v --help printed no usage:\n%s", cmd, stderr)
		}
	}
	out, _, err := runCmd(t, "", "version")
	if err != nil || !strings.HasPrefix(out, "drainpipe ") {
		t.Errorf("version: %q %v", out, err)
	}
}

// A missing or unknown command prints usage and exits non-zero.
func TestUnknownCommand(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string // "" for no message (bare drainpipe)
	}{
		{nil, ""},
		{[]string{"foo"}, `unknown command "foo"`},
		{[]string{"foo", "--data", "x"}, `unknown command "foo"`},
		{[]string{"apps"}, ""},
		{[]string{"apps", "delete", "x"}, `unknown command "apps delete"`},
	} {
		_, stderr, err := runCmd(t, "", tc.args...)
		if code := exitCode(err); code != 2 {
			t.Errorf("%q: exit %d (err %v), want 2", tc.args, code, err)
		}
		if err == nil || err.Error() != "" && tc.wantErr == "" || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.wantErr)
		}
		if !strings.Contains(stderr, "USAGE") || !strings.Contains(stderr, "SUBCOMMANDS") {
			t.Errorf("%q printed no usage:\n%s", tc.args, stderr)
		}
	}
	// --help is not an error.
	if _, _, err := runCmd(t, "", "--help"); exitCode(err) != 0 {
		t.Errorf("--help: exit %d", exitCode(err))
	}
	if exitCode(errors.New("boom")) != 1 || exitCode(nil) != 0 {
		t.Error("exitCode of a plain error or nil")
	}
}

// serve, demo, loadgen and pipe take no positional arguments: one would
// silently hide every flag after it.
func TestStrayArgumentsRejected(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"serve", "extra", "--data", dir},
		{"serve", "--data", dir, "extra"},
		{"demo", "extra", "--listen", "127.0.0.1:0"},
		{"loadgen", "extra", "--admin-token", "x"},
		{"pipe", "extra", "--url", "http://u:p@127.0.0.1:1/drains/a"},
	} {
		_, stderr, err := runCmd(t, "", args...)
		if err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) || !strings.HasPrefix(err.Error(), args[0]+":") {
			t.Errorf("%q: err %v", args, err)
			continue
		}
		if exitCode(err) != 2 || !strings.Contains(stderr, "USAGE") {
			t.Errorf("%q: exit %d, stderr:\n%s", args, exitCode(err), stderr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("serve with a stray argument touched --data: %v", entries)
	}
}

func TestRetentionChecked(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--retention-1m", "0"}, "--retention-1m 0s: must be at least 1h"},
		{[]string{"--retention-1m", "-5h"}, "--retention-1m -5h0m0s: must be at least 1h"},
		{[]string{"--retention-10m", "30m"}, "--retention-10m 30m0s: must be at least 1h"},
		{[]string{"--retention-1h", "0s"}, "--retention-1h 0s: must be at least 1h"},
		{[]string{"--retention-1m", "1000h"}, "--retention-10m 840h0m0s is shorter than --retention-1m 1000h0m0s"},
		{[]string{"--retention-10m", "10000h"}, "--retention-1h 9600h0m0s is shorter than --retention-10m 10000h0m0s"},
		{[]string{"--journal-segment-size", "4096"}, "--journal-segment-size 4096: want at least 65536 bytes"},
	} {
		for _, cmd := range []string{"serve", "demo"} {
			dir := filepath.Join(t.TempDir(), "data")
			args := append([]string{cmd, "--data", dir, "--listen", "127.0.0.1:0"}, tc.flags...)
			_, _, err := runCmd(t, "", args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q: err %v, want %q", args, err, tc.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("%q created the data directory before rejecting", args)
			}
		}
	}
	// Through the environment too.
	t.Setenv("DRAINPIPE_RETENTION_1H", "-1h")
	if _, _, err := runCmd(t, "", "serve", "--data", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--retention-1h") {
		t.Errorf("DRAINPIPE_RETENTION_1H=-1h: err %v", err)
	}
	// Equal retentions are fine: checked without starting a server.
	f := serveFlags{keep1m: time.Hour, keep10m: time.Hour, keep1h: time.Hour}
	if err := f.checkRetention(); err != nil {
		t.Errorf("1h/1h/1h: %v", err)
	}
}

func TestListenHelp(t *testing.T) {
	_, serveHelp, _ := runCmd(t, "", "serve", "--help")
	_, demoHelp, _ := runCmd(t, "", "demo", "--help")
	if !strings.Contains(serveHelp, ":$PORT when PORT is set, else :8080") {
		t.Errorf("serve --help does not explain the listen fallback:\n%s", serveHelp)
	}
	if strings.Contains(demoHelp, "PORT") {
		t.Errorf("demo --help claims PORT is honoured:\n%s", demoHelp)
	}
	for _, cmd := range [][]string{{"pipe"}, {"apps", "create"}, {"loadgen"}} {
		_, help, _ := runCmd(t, "", append(cmd, "--help")...)
		if !strings.Contains(help, "DRAINPIPE_URL") {
			t.Errorf("%v --help does not mention DRAINPIPE_URL", cmd)
		}
	}
}

func TestServeScaleOutNeedsKafkaAndPostgres(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--role", "ingest"}, "Kafka (--kafka-url or KAFKA_URL) and PostgreSQL"},
		{[]string{"--kafka-url", "kafka://127.0.0.1:1"}, "needs PostgreSQL (--database-url or DATABASE_URL)"},
		{[]string{"--role", "api", "--database-url", "postgres://x@127.0.0.1:1/x"}, "needs Kafka"},
		{[]string{"--role", "ingester", "--kafka-url", "kafka://127.0.0.1:1", "--database-url", "postgres://x@127.0.0.1:1/x"}, `unknown role "ingester"`},
		{[]string{"--role", "api", "--kafka-url", "kafka://127.0.0.1:1", "--database-url", "postgres://x@127.0.0.1:1/x"}, "needs --admin-token"},
	} {
		t.Setenv("KAFKA_URL", "")
		t.Setenv("DATABASE_URL", "")
		_, _, err := runCmd(t, "", append([]string{"serve", "--data", t.TempDir()}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}

func startNode(t *testing.T) *embedded.Node {
	t.Helper()
	n, err := embedded.Start(context.Background(), embedded.Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: "adm",
		Aggregate: aggregate.Config{FlushInterval: 100 * time.Millisecond},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestAppsCreateAndPipe creates an app with the CLI against a running
// node, then pipes `heroku logs --tail` output through `drainpipe pipe`
// and checks every router line was counted and bad lines were skipped.
func TestAppsCreateAndPipe(t *testing.T) {
	n := startNode(t)
	out, _, err := runCmd(t, "", "apps", "create", "tailed", "--url", n.URL, "--admin-token", "adm")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Drain URL: (\S+)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "heroku drains:add") {
		t.Fatalf("apps create printed:\n%s", out)
	}
	drainURL := m[1]

	now := time.Now().UTC()
	var in strings.Builder
	for i := 0; i < 1200; i++ {
		ts := now.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000000+00:00")
		fmt.Fprintf(&in, "%s heroku[router]: at=info method=GET path=/ host=tailed.herokuapp.com dyno=web.%d connect=0ms service=%dms status=200 bytes=10 protocol=https\n", ts, i%2+1, 10+i%50)
	}
	in.WriteString("this is not a heroku logs line\n")
	fmt.Fprintf(&in, "%s app[web.1]: count#orders=5\n", now.Format(time.RFC3339))

	_, stderr, err := runCmd(t, in.String(), "pipe", "--app", "tailed", "--url", drainURL)
	if err != nil {
		t.Fatalf("pipe: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "sent 1201 lines, skipped 1") {
		t.Fatalf("pipe progress: %q", stderr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows, err := n.Store.Buckets(context.Background(), "tailed", "web", drainpipe.Tier1h, now.Add(-time.Hour), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var reqs int64
		for _, r := range rows {
			reqs += r.Bucket.Requests
		}
		if reqs == 1200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counted %d of 1200 piped requests", reqs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPipeURLChecks(t *testing.T) {
	if _, err := pipeURL("", "x"); err == nil {
		t.Error("empty URL accepted")
	}
	if _, err := pipeURL("http://u:p@host/drains/a", "b"); err == nil {
		t.Error("app mismatch accepted")
	}
	u, err := pipeURL("http://u:p@host:8080", "a")
	if err != nil {
		t.Fatal(err)
	}
	if parsed, _ := url.Parse(u); parsed.Path != "/drains/a" {
		t.Errorf("path = %q", parsed.Path)
	}
}

// TestServeScaleOutStartsWithEnginesDown: a scale-out process starts with
// neither PostgreSQL nor Kafka reachable, says so on /healthz and answers
// the API with 503, and a database URL that cannot be parsed is refused
// at once.
func TestServeScaleOutStartsWithEnginesDown(t *testing.T) {
	t.Setenv("KAFKA_URL", "")
	t.Setenv("DATABASE_URL", "")
	if _, _, err := runCmd(t, "", "serve", "--role", "api", "--admin-token", "adm",
		"--kafka-url", "kafka://127.0.0.1:1", "--database-url", "postgres://x@127.0.0.1:1/x?pool_max_conns=nope"); err == nil || !strings.Contains(err.Error(), "database URL is not valid") {
		t.Errorf("serve with a bad --database-url: %v, want it refused", err)
	}

	_, base, stop := startServe(t, "--role", "api,aggregate", "--admin-token", "adm",
		"--kafka-url", "kafka://127.0.0.1:1", "--database-url", "postgres://x@127.0.0.1:1/x")
	var code int
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
			if strings.Contains(body, "store_error") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never reported the store's error: %d %q (%v)", code, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "unavailable: store unreachable since ") ||
		!strings.Contains(body, "\nstore_reachable 0\n") || !strings.Contains(body, "\nstore_state not open: attempt ") {
		t.Errorf("/healthz with PostgreSQL down: %d\n%s", code, body)
	}
	req, _ := http.NewRequest("GET", base+"/api/apps", nil)
	req.Header.Set("Authorization", "Bearer adm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "metrics store is unavailable") {
		t.Errorf("GET /api/apps with PostgreSQL down: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if err := stop(); err != nil {
		t.Errorf("serve after cancel: %v", err)
	}
}

// startServe runs "drainpipe serve" with args on a free port until stop,
// which cancels it and returns its error; the test fails if serve exits
// before.
func startServe(t *testing.T, args ...string) (ctx context.Context, base string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		var out, errb bytes.Buffer // read once run returned
		err := run(ctx, append([]string{"serve", "--listen", addr}, args...), strings.NewReader(""), &out, &errb)
		select {
		case <-stopped:
		default:
			t.Errorf("serve %v exited before the test stopped it: %v\n%s%s", args, err, &out, &errb)
		}
		done <- err
	}()
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			close(stopped)
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("serve did not stop within 30 s of its context ending")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return ctx, "http://" + addr, stop
}
