package gen

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/drain"
	"github.com/drainpipe/drainpipe/logplex"
)

// sink is a drain endpoint that counts frames per app and checks them.
type sink struct {
	t      *testing.T
	mu     sync.Mutex
	lines  map[string]int
	maxT   map[string]time.Time
	status int // answer with this instead of 204 when set
	posts  atomic.Int64
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.posts.Add(1)
	if s.status != 0 {
		http.Error(w, "nope", s.status)
		return
	}
	app := strings.TrimPrefix(r.URL.Path, "/drains/")
	if u, p, ok := r.BasicAuth(); !ok || u != "u-"+app || p != "s3cret" {
		http.Error(w, "bad credentials", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// The client gave up half-way (a run whose context ended): the
		// body is cut short and was never acknowledged.
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rd := logplex.NewReader(body)
	n := 0
	var last time.Time
	for {
		fr, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.t.Errorf("bad body: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var h logplex.Header
		if err := logplex.ParseHeader(fr, &h); err != nil {
			s.t.Errorf("bad frame %q: %v", fr, err)
		}
		if tm := time.Unix(0, h.Time); tm.After(last) {
			last = tm
		}
		n++
	}
	if c, _ := strconv.Atoi(r.Header.Get("Logplex-Msg-Count")); c != n {
		s.t.Errorf("Logplex-Msg-Count %d, body has %d frames", c, n)
	}
	s.mu.Lock()
	s.lines[app] += n
	if last.After(s.maxT[app]) {
		s.maxT[app] = last
	}
	s.mu.Unlock()
	w.WriteHeader(204)
}

func newSink(t *testing.T) (*sink, *httptest.Server) {
	s := &sink{t: t, lines: map[string]int{}, maxT: map[string]time.Time{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func senders(t *testing.T, srv *httptest.Server, fleet []AppSpec) map[string]Sender {
	m := map[string]Sender{}
	for _, a := range fleet {
		u := strings.Replace(srv.URL, "http://", "http://u-"+a.Name+":s3cret@", 1) + "/drains/" + a.Name
		c, err := drain.NewClient(drain.Config{URL: u, Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		m[a.Name] = c
	}
	return m
}

func TestRunBackfill(t *testing.T) {
	s, srv := newSink(t)
	fleet := DemoFleet(3, 9)
	to := testTo
	from := to.Add(-30 * time.Minute)
	var calls atomic.Int32
	p, err := Run(context.Background(), fleet, senders(t, srv, fleet), from, to, Options{
		Seed: 9, Chunk: 7 * time.Minute, BatchMessages: 300, Concurrency: 4,
		Progress: func(Progress) { calls.Add(1) }, ProgressInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Phase != "done" || p.Generated == 0 || p.Sent != p.Generated || p.Failed != 0 || p.Backfilled != 1 {
		t.Fatalf("progress %+v", p)
	}
	if calls.Load() == 0 {
		t.Error("no progress callbacks")
	}
	var total int
	for _, a := range fleet {
		want := NewGenerator(a, 9, from, to).Generate(from, to, func(*Line) {})
		if s.lines[a.Name] != want {
			t.Errorf("%s: server got %d lines, generator makes %d", a.Name, s.lines[a.Name], want)
		}
		total += want
	}
	if int64(total) != p.Sent || p.Batches < int64(total/300) {
		t.Errorf("sent %d (%d batches), want %d", p.Sent, p.Batches, total)
	}
}

func TestRunLive(t *testing.T) {
	s, srv := newSink(t)
	fleet := DemoFleet(3, 2)[:2]
	to := time.Now().Truncate(time.Second)
	start := time.Now()
	// A clock running 30 times faster than real time.
	now := func() time.Time { return to.Add(30 * time.Since(start)) }
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var live atomic.Bool
	p, err := Run(ctx, fleet, senders(t, srv, fleet), to.Add(-time.Minute), to, Options{
		Seed: 2, Live: true, Now: now, ProgressInterval: 20 * time.Millisecond,
		Progress: func(p Progress) {
			if p.Phase == "live" {
				live.Store(true)
			}
		},
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's", err)
	}
	if !live.Load() || p.Cursor.Sub(to) < 5*time.Second {
		t.Fatalf("live mode did not advance: %+v", p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range fleet {
		if !s.maxT[a.Name].After(to) {
			t.Errorf("%s: no live lines (latest %v, to %v)", a.Name, s.maxT[a.Name], to)
		}
		if s.maxT[a.Name].After(p.Cursor) {
			t.Errorf("%s: line at %v after the cursor %v", a.Name, s.maxT[a.Name], p.Cursor)
		}
	}
}

func TestRunStopsOnAuthError(t *testing.T) {
	s, srv := newSink(t)
	s.status = 401
	fleet := DemoFleet(3, 1)
	start := time.Now()
	p, err := Run(context.Background(), fleet, senders(t, srv, fleet), testTo.Add(-6*time.Hour), testTo, Options{Seed: 1})
	var se *drain.StatusError
	if !errors.As(err, &se) || se.Code != 401 || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second || p.Backfilled > 0.5 {
		t.Errorf("did not stop early: %v, %+v", time.Since(start), p)
	}
	if _, err := Run(context.Background(), fleet, map[string]Sender{}, testFrom, testTo, Options{}); err == nil {
		t.Error("missing senders accepted")
	}
}

func TestRunCountsOtherFailures(t *testing.T) {
	s, srv := newSink(t)
	s.status = 400
	fleet := DemoFleet(3, 1)[:1]
	p, err := Run(context.Background(), fleet, senders(t, srv, fleet), testTo.Add(-10*time.Minute), testTo, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p.Sent != 0 || p.Failed != p.Generated || p.FailedBatches == 0 || !strings.Contains(p.LastError, "400") {
		t.Fatalf("progress %+v", p)
	}
}
