package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
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
	for _, cmd := range [][]string{{"serve"}, {"apps", "create"}, {"pipe"}, {"demo"}, {"loadgen"}} {
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

func TestServeRejectsScaleOutRoles(t *testing.T) {
	_, _, err := runCmd(t, "", "serve", "--role", "ingest", "--data", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "Kafka") {
		t.Fatalf("serve --role ingest: %v", err)
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
