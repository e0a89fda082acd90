package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drainpipe/drainpipe/logplex"
)

// sink is the read-and-discard drain receiver of `loadgen --sink`: it
// reads every POST body to the end and answers 200, and does nothing
// else. It is the ceiling that HTTP on the machine allows the generator.
type sink struct {
	srv    *http.Server
	ln     net.Listener
	posts  atomic.Int64
	bytes  atomic.Int64
	served chan error
}

func startSink(addr string) (*sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sink: listen on %s: %w", addr, err)
	}
	s := &sink{ln: ln, served: make(chan error, 1)}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			s.posts.Add(1)
			s.bytes.Add(n)
			w.WriteHeader(http.StatusOK)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// drainURL is the sink's drain URL for app, with placeholder credentials.
func (s *sink) drainURL(app string) string {
	return "http://drain:secret@" + s.ln.Addr().String() + "/drains/" + url.PathEscape(app)
}

// close stops the receiver. Every POST has been answered by then (the
// generator waits for its answers), so open connections are just closed.
func (s *sink) close() error {
	err := s.srv.Close()
	if serr := <-s.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// routerCounter counts, per app, the router lines in bodies that were
// acknowledged, so that loadgen can check the server counted every one.
type routerCounter struct {
	mu sync.Mutex
	n  map[string]int64
}

func (c *routerCounter) add(app string, body []byte) {
	var r logplex.Reader
	var h logplex.Header
	r.Reset(body)
	var n int64
	for {
		f, err := r.Next()
		if err != nil {
			break
		}
		if logplex.ParseHeader(f, &h) == nil && string(h.AppName) == "heroku" && string(h.ProcID) == "router" {
			n++
		}
	}
	c.mu.Lock()
	c.n[app] += n
	c.mu.Unlock()
}

// countingSender counts the router lines of every batch its Sender
// delivered.
type countingSender struct {
	app  string
	next interface {
		Send(context.Context, []byte, int) error
	}
	count *routerCounter
}

func (s *countingSender) Send(ctx context.Context, body []byte, n int) error {
	err := s.next.Send(ctx, body, n)
	if err == nil {
		s.count.add(s.app, body)
	}
	return err
}

// getJSON GETs path from the server's API with the admin token.
func (c *apiClient) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.base, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := c.hc
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: server answered %s: %s", path, resp.Status, strings.TrimSpace(string(raw)))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("GET %s: decode answer: %w", path, err)
	}
	return nil
}

type seriesAnswer struct {
	Data map[string][]*float64 `json:"data"`
}

// sumSeries adds up every value of every key of a series answer for
// which keep says yes.
func sumSeries(a seriesAnswer, keep func(string) bool) int64 {
	var n float64
	for k, vs := range a.Data {
		if !keep(k) {
			continue
		}
		for _, v := range vs {
			if v != nil {
				n += *v
			}
		}
	}
	return int64(n)
}

// verifyCounted asks the server's API, until it agrees or timeout passes,
// whether every router line sent to each app in [from, to) was counted
// (the status counts of process type web add up to the router lines
// acknowledged) and that no line was rejected (no rejected.* log loss).
func verifyCounted(ctx context.Context, api *apiClient, sent map[string]int64, from, to time.Time, timeout time.Duration) error {
	q := "?process_type=web&step=1h&start_time=" + url.QueryEscape(from.Truncate(time.Hour).Format(time.RFC3339)) +
		"&end_time=" + url.QueryEscape(to.Add(time.Hour).Format(time.RFC3339))
	deadline := time.Now().Add(timeout)
	for {
		var problems []string
		for app, want := range sent {
			var status, loss seriesAnswer
			if err := api.getJSON(ctx, "/api/apps/"+url.PathEscape(app)+"/router-metrics/status"+q, &status); err != nil {
				return err
			}
			if err := api.getJSON(ctx, "/api/apps/"+url.PathEscape(app)+"/log-loss"+q, &loss); err != nil {
				return err
			}
			got := sumSeries(status, func(string) bool { return true })
			rejected := sumSeries(loss, func(k string) bool { return strings.HasPrefix(k, "rejected.") })
			if got != want || rejected != 0 {
				problems = append(problems, fmt.Sprintf("%s: %d of %d router lines counted, %d lines rejected", app, got, want, rejected))
			}
		}
		if len(problems) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not every line was counted after %s: %s", timeout, strings.Join(problems, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // fine enough to time the lag
		}
	}
}
