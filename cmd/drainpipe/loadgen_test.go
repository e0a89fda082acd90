package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLoadgenSinkAndVerify runs the same traffic into the read-and-discard
// receiver and into a real node, and checks that loadgen prints both
// rates, their ratio, and that the node's API counted every router line.
func TestLoadgenSinkAndVerify(t *testing.T) {
	n := startNode(t)
	out, stderr, err := runCmd(t, "", "loadgen", "--url", n.URL, "--admin-token", "adm", "--sink", "127.0.0.1:0",
		"--backfill", "10m", "--prefix", "lg-")
	if err != nil {
		t.Fatalf("loadgen: %v\n%s\n%s", err, out, stderr)
	}
	sink := regexp.MustCompile(`sink: sent (\d+) lines`).FindStringSubmatch(out)
	dp := regexp.MustCompile(`drainpipe: sent (\d+) lines`).FindStringSubmatch(out)
	if sink == nil || dp == nil || sink[1] != dp[1] || sink[1] == "0" {
		t.Fatalf("the sink and the server should get the same lines:\n%s", out)
	}
	if !regexp.MustCompile(`ratio drainpipe/sink: \d+\.\d{3}`).MatchString(out) {
		t.Fatalf("no ratio printed:\n%s", out)
	}
	m := regexp.MustCompile(`all (\d+) router lines acknowledged were counted`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no verification printed:\n%s", out)
	}
	if k, _ := strconv.Atoi(m[1]); k == 0 {
		t.Fatalf("verified no router lines:\n%s", out)
	}
	lag := regexp.MustCompile(`counted (\S+) after the last 2xx`).FindStringSubmatch(out)
	if lag == nil {
		t.Fatalf("no lag printed:\n%s", out)
	}
	if d, err := time.ParseDuration(lag[1]); err != nil || d < 0 || d > 30*time.Second {
		t.Fatalf("lag %q: %v (want a duration within --verify's 30 s)", lag[1], err)
	}
}

// TestLoadgenSinkAlone measures only the receiver when no server is given.
func TestLoadgenSinkAlone(t *testing.T) {
	out, stderr, err := runCmd(t, "", "loadgen", "--sink", "127.0.0.1:0", "--backfill", "5m")
	if err != nil {
		t.Fatalf("loadgen: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "sink: sent") || strings.Contains(out, "drainpipe:") {
		t.Fatalf("printed:\n%s", out)
	}
}

// TestVerifyCountedFails checks that the check can fail: a server that
// counted fewer router lines than were sent is reported.
func TestVerifyCountedFails(t *testing.T) {
	n := startNode(t)
	api := &apiClient{base: n.URL, token: "adm"}
	if _, err := api.createApp(context.Background(), "quiet"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err := verifyCounted(context.Background(), api, map[string]int64{"quiet": 5}, now.Add(-time.Hour), now, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "quiet: 0 of 5 router lines counted") {
		t.Fatalf("err = %v", err)
	}
}

// TestLoadgenFreshness runs the freshness probe during live traffic: every
// probe line must show in the API, and the figures get printed.
func TestLoadgenFreshness(t *testing.T) {
	n := startNode(t)
	out, stderr, err := runCmd(t, "", "loadgen", "--url", n.URL, "--admin-token", "adm",
		"--backfill", "1m", "--duration", "3s", "--freshness", "500ms", "--prefix", "fr-", "--verify", "0")
	if err != nil {
		t.Fatalf("loadgen: %v\n%s\n%s", err, out, stderr)
	}
	m := regexp.MustCompile(`freshness \(2xx to counted in the API, step 1m\): (\d+) probes, p50 \S+, p90 \S+, max \S+; \d+ over 10s, (\d+) not seen`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no freshness figures printed:\n%s", out)
	}
	if k, _ := strconv.Atoi(m[1]); k == 0 || m[2] != "0" {
		t.Fatalf("probes: %s seen, %s missed:\n%s", m[1], m[2], out)
	}
}

// TestFreshnessProbeMisses checks that the probe can fail: a line the API
// never counts is reported as not seen.
func TestFreshnessProbeMisses(t *testing.T) {
	n := startNode(t)
	api := &apiClient{base: n.URL, token: "adm"}
	if _, err := api.createApp(context.Background(), "silent"); err != nil {
		t.Fatal(err)
	}
	p := &freshnessProbe{api: api, app: "silent", timeout: 200 * time.Millisecond}
	seen, err := p.waitCounted(context.Background(), time.Now().Truncate(time.Minute), 1, time.Now().Add(p.timeout))
	if err != nil || seen {
		t.Fatalf("seen = %v, err = %v; want not seen", seen, err)
	}
	var b strings.Builder
	p.missed = 1
	p.report(&b)
	if !strings.Contains(b.String(), "no probe seen (1 missed") {
		t.Fatalf("report: %s", b.String())
	}
}
