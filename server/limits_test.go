package server

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveReal runs h behind a real listener with HTTPServer's settings.
func serveReal(t *testing.T, h *harness) string {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = h.srv.HTTPServer("")
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String()
}

// closedWithin reports whether the server ends conn (EOF, reset, or an
// answer) within d while the client keeps trickling bytes through
// trickle.
func closedWithin(t *testing.T, conn net.Conn, d time.Duration, trickle func() error) (string, bool) {
	t.Helper()
	done := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(bufio.NewReader(conn))
		done <- string(b)
	}()
	deadline := time.After(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case got := <-done:
			return got, true
		case <-deadline:
			return "", false
		case <-tick.C:
			_ = trickle() // fails once the server has closed: fine
		}
	}
}

// TestSlowlorisIsCutOff: a client that sends its headers one byte at a
// time, or its body one byte at a time, is cut off after the header or
// read timeout however long it keeps trickling, nothing it sent is
// journaled, and while a hundred such clients hang on, a normal drain is
// still answered.
func TestSlowlorisIsCutOff(t *testing.T) {
	h := newHarness(t, Config{HeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond})
	addr := serveReal(t, h)
	auth := base64.StdEncoding.EncodeToString([]byte("u-storefront:s-storefront"))

	t.Run("headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /drains/storefront HTTP/1.1\r\nHost: x\r\n")
		if _, ok := closedWithin(t, conn, 5*time.Second, func() error {
			_, err := conn.Write([]byte("X-Slow: a\r\n"))
			return err
		}); !ok {
			t.Fatal("a client trickling headers was not cut off after the 300 ms header timeout")
		}
	})

	t.Run("body", func(t *testing.T) {
		before := len(h.journal.all())
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		body := frame(routerLine)
		fmt.Fprintf(conn, "POST /drains/storefront HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nContent-Type: application/logplex-1\r\nContent-Length: %d\r\n\r\n", auth, len(body))
		i := 0
		answer, ok := closedWithin(t, conn, 5*time.Second, func() error {
			if i >= len(body)-1 {
				return nil // never sends the last byte
			}
			_, err := conn.Write([]byte{body[i]})
			i++
			return err
		})
		if !ok {
			t.Fatal("a client trickling its body was not cut off after the 600 ms read timeout")
		}
		if strings.HasPrefix(answer, "HTTP/1.1 4") {
			t.Fatalf("a slow body was answered with a 4xx (Logplex would drop the batch): %q", answer)
		}
		if len(h.journal.all()) != before {
			t.Fatal("a body that never arrived whole was journaled")
		}
	})

	t.Run("many slow clients", func(t *testing.T) {
		var conns []net.Conn
		for range 100 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /drains/storefront HTTP/1.1\r\n")
			conns = append(conns, c)
		}
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		body := frame(routerLine)
		r, _ := http.NewRequest("POST", "http://"+addr+"/drains/storefront", strings.NewReader(body))
		r.SetBasicAuth("u-storefront", "s-storefront")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("drain beside 100 slow clients: %d", resp.StatusCode)
		}
	})
}

// TestLoadSheddingNeverAnswers4xx: the journal stalls (it cannot keep
// up); drains beyond MaxConcurrentDrains are shed at once with 503 and
// Retry-After, counted in drainpipe_drain_shed_total, never answered with
// a 4xx; once the journal moves again the waiting ones get their 200.
func TestLoadSheddingNeverAnswers4xx(t *testing.T) {
	h := newHarness(t, Config{MaxConcurrentDrains: 4})
	h.journal.block = make(chan struct{})
	h.journal.entered = make(chan struct{}, 4)
	codes := make(chan int, 40)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- h.drain(drainReq{body: frame(routerLine), frameID: fmt.Sprint("held-", i)}).Code
		}()
	}
	for range 4 {
		<-h.journal.entered
	}
	for i := range 36 {
		w := h.drain(drainReq{body: frame(routerLine), frameID: fmt.Sprint("shed-", i)})
		if w.Code != 503 || w.Header().Get("Retry-After") == "" {
			t.Fatalf("drain beyond the limit: %d Retry-After %q, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
		}
	}
	if got := metricValue(h.srv.m.drainShed.WithLabelValues("concurrency")); got != 36 {
		t.Errorf("shed counter = %v, want 36", got)
	}
	close(h.journal.block)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("a held drain got %d once the journal moved", c)
		}
	}
}

// TestOversizedHeadersAre431: more than 64 KiB of headers is refused
// before any handler runs.
func TestOversizedHeadersAre431(t *testing.T) {
	h := newHarness(t, Config{})
	addr := serveReal(t, h)
	r, _ := http.NewRequest("POST", "http://"+addr+"/drains/storefront", strings.NewReader(frame(routerLine)))
	r.SetBasicAuth("u-storefront", "s-storefront")
	r.Header.Set("X-Big", strings.Repeat("a", 80<<10))
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("80 KiB of headers: %d, want 431", resp.StatusCode)
	}
	if len(h.journal.all()) != 0 {
		t.Fatal("journaled a request with oversized headers")
	}
}
