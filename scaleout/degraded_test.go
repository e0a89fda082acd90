package scaleout

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
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/kafka"
	"github.com/drainpipe/drainpipe/kafka/kafkatest"
	"github.com/drainpipe/drainpipe/logplex"
	"github.com/drainpipe/drainpipe/postgres"
	"github.com/drainpipe/drainpipe/postgres/pgtest"
)

const admin = "adm"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startNode starts roles on kc and the database at dbURL; it is closed
// when the test ends.
func startNode(t *testing.T, roles string, kc kafka.Config, dbURL string) *Node {
	t.Helper()
	r, err := ParseRoles(roles)
	if err != nil {
		t.Fatal(err)
	}
	return startConfig(t, Config{Roles: r, Kafka: kc}, dbURL)
}

// startConfig starts a node with cfg on the database at dbURL, listening
// on a free loopback port, with the admin token admin and a 200 ms flush
// interval; it is closed when the test ends.
func startConfig(t *testing.T, cfg Config, dbURL string) *Node {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.Server.AdminToken = admin
	cfg.Aggregate.FlushInterval = 200 * time.Millisecond
	n, err := Start(context.Background(), cfg, func(ctx context.Context) (Store, error) {
		st, err := postgres.Open(ctx, dbURL, nil, quiet)
		if err != nil {
			return nil, err // not a typed nil
		}
		return st, nil
	}, quiet)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Roles, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

type answer struct {
	code   int
	body   string
	header http.Header
}

func do(t *testing.T, method, u, token string, body []byte, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header}
}

// waitHealth polls n's /healthz until it answers code with a body
// containing want.
func waitHealth(t *testing.T, n *Node, code int, want string, within time.Duration) answer {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a := do(t, "GET", n.URL+"/healthz", "", nil, nil)
		if a.code == code && strings.Contains(a.body, want) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz: %d %q; want %d with %q", n.URL, a.code, a.body, code, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var frameSeq atomic.Int64

// drain posts one frame of one router line for app.
func drain(t *testing.T, n *Node, app, user, pass string) answer {
	t.Helper()
	body := logplex.AppendMessage(nil, time.Now().UTC(), "host", "heroku", "router",
		`at=info method=GET path=/ host=x.herokuapp.com dyno=web.1 connect=1ms service=12ms status=200 bytes=10 protocol=https`)
	u := n.URL + "/drains/" + app
	return do(t, "POST", u, "", body, map[string]string{
		"Authorization":     "Basic " + basic(user, pass),
		"Content-Type":      "application/logplex-1",
		"Logplex-Msg-Count": "1",
		"Logplex-Frame-Id":  fmt.Sprintf("%032x", frameSeq.Add(1)),
	})
}

// drainUntilOK posts drains until one is acknowledged, as Logplex
// retries: only 503s may come before, for at most a minute after engine
// came back.
func drainUntilOK(t *testing.T, n *Node, app, user, pass, engine string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		a := drain(t, n, app, user, pass)
		if a.code == http.StatusOK {
			return
		}
		if a.code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("drain once %s is up: %d %s", engine, a.code, a.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func basic(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// createApp creates app through n's API and returns its drain credentials.
func createApp(t *testing.T, n *Node, app string) (user, pass string) {
	t.Helper()
	a := do(t, "POST", n.URL+"/api/apps", admin, []byte(`{"name":"`+app+`"}`), nil)
	if a.code != http.StatusCreated {
		t.Fatalf("create app: %d %s", a.code, a.body)
	}
	var c struct {
		DrainURL string `json:"drain_url"`
	}
	if err := json.Unmarshal([]byte(a.body), &c); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(c.DrainURL)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ = u.User.Password()
	return u.User.Username(), pass
}

// TestStartWithPostgreSQLDown starts an api, an ingest and an aggregate
// process while PostgreSQL is down: each starts, /healthz says what it
// waits for, the API and drains answer 503 with the reason; once the
// server is up the store opens by itself, an app is created, a drain is
// taken and folded into the store; when the server goes down again
// ingest keeps taking that app's drains and the api's /healthz turns 503.
func TestStartWithPostgreSQLDown(t *testing.T) {
	pg := pgtest.StartCluster(t)
	pg.Stop()
	kc := kafka.Config{Brokers: kafkatest.Brokers(t), Topic: kafkatest.Name("drains"), Group: kafkatest.Name("agg"), Partitions: 1}
	api := startNode(t, "api", kc, pg.URL)
	ingest := startNode(t, "ingest", kc, pg.URL)
	agg := startNode(t, "aggregate", kc, pg.URL)

	h := waitHealth(t, api, http.StatusServiceUnavailable, "store_error", 30*time.Second)
	for _, want := range []string{"unavailable: store unreachable since ", "\nstore_reachable 0\n", "\nstore_unreachable_since ", "\nstore_state not open: attempt "} {
		if !strings.Contains(h.body, want) {
			t.Errorf("api /healthz with PostgreSQL down lacks %q:\n%s", want, h.body)
		}
	}
	waitHealth(t, agg, http.StatusServiceUnavailable, "store_reachable 0", 30*time.Second)
	if a := do(t, "GET", api.URL+"/api/apps", admin, nil, nil); a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || !strings.Contains(a.body, "metrics store is unavailable") {
		t.Errorf("GET /api/apps with PostgreSQL down: %d Retry-After=%q %s", a.code, a.header.Get("Retry-After"), a.body)
	}
	// Ingest is healthy: it can take drains (Kafka answers) even though
	// it knows no credentials yet.
	h = waitHealth(t, ingest, http.StatusOK, "kafka_reachable 1", time.Minute)
	if !strings.Contains(h.body, "\nstore_reachable 0\n") {
		t.Errorf("ingest /healthz does not show the store down:\n%s", h.body)
	}
	if a := drain(t, ingest, "shop", "u", "p"); a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || !strings.Contains(a.body, "store is unavailable") {
		t.Errorf("drain of unverified credentials with PostgreSQL down: %d Retry-After=%q %s", a.code, a.header.Get("Retry-After"), a.body)
	}

	pg.Start()
	// The open is retried with a backoff of at most 30 s.
	waitHealth(t, api, http.StatusOK, "store_reachable 1", time.Minute)
	user, pass := createApp(t, api, "shop")
	drainUntilOK(t, ingest, "shop", user, pass, "PostgreSQL")
	// The aggregator joined once the store opened and folds the batch.
	st, err := postgres.Open(context.Background(), pg.URL, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		off, err := st.PartitionOffset(context.Background(), kc.GroupName(), kc.TopicName(), 0)
		if err == nil && off >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the aggregator never stored the batch: offset %d, %v", off, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	st.Close()
	waitHealth(t, agg, http.StatusOK, "store_reachable 1", 30*time.Second)

	pg.Stop()
	if a := drain(t, ingest, "shop", user, pass); a.code != http.StatusOK {
		t.Errorf("drain of verified credentials with PostgreSQL down again: %d %s", a.code, a.body)
	}
	waitHealth(t, api, http.StatusServiceUnavailable, "store_error", 30*time.Second)
	waitHealth(t, ingest, http.StatusOK, "store_reachable 0", 30*time.Second)
}

// TestIngestStartsWithKafkaDown starts an api,ingest process while the
// broker is down: it starts, /healthz answers 503 saying Kafka is
// unreachable, drains get 503 + Retry-After; once the broker is up the
// topic is created and drains are acknowledged.
func TestIngestStartsWithKafkaDown(t *testing.T) {
	broker := kafkatest.StartBroker(t)
	broker.Stop()
	kc := kafka.Config{Brokers: []string{broker.Addr}, Topic: "drains", Group: "agg", Partitions: 1}
	n := startNode(t, "api,ingest", kc, pgtest.DB(t))

	h := waitHealth(t, n, http.StatusServiceUnavailable, "kafka_error", 30*time.Second)
	for _, want := range []string{"unavailable: kafka unreachable since ", "\nkafka_reachable 0\n", "\nkafka_unreachable_since "} {
		if !strings.Contains(h.body, want) {
			t.Errorf("/healthz with Kafka down lacks %q:\n%s", want, h.body)
		}
	}
	waitHealth(t, n, http.StatusServiceUnavailable, "store_reachable 1", 30*time.Second)
	user, pass := createApp(t, n, "shop")
	if a := drain(t, n, "shop", user, pass); a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Errorf("drain with Kafka down: %d Retry-After=%q %s", a.code, a.header.Get("Retry-After"), a.body)
	}

	broker.Start()
	waitHealth(t, n, http.StatusOK, "kafka_reachable 1", time.Minute)
	drainUntilOK(t, n, "shop", user, pass, "Kafka")
	if h := waitHealth(t, n, http.StatusOK, "kafka_reachable 1", time.Second); !strings.Contains(h.body, "\nstore_reachable 1\n") {
		t.Errorf("/healthz does not show the store up:\n%s", h.body)
	}
}
