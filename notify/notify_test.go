package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe/monitor"
)

func sample() (*monitor.Notification, Message) {
	n := &monitor.Notification{
		ID: "6c1d0f3e-0000-4000-8000-000000000001", Type: monitor.NotifyFiring, App: "shop", ProcessType: "web",
		Monitor: monitor.Monitor{Name: monitor.Latency, Op: monitor.GreaterOrEqual, Value: 500},
		Minute:  time.Date(2026, 11, 25, 10, 14, 0, 0, time.UTC), Since: time.Date(2026, 11, 25, 10, 10, 0, 0, time.UTC),
		Text:         "[FIRING] shop web: LATENCY firing after 5 min: p95 912 ms (threshold ≥ 500 ms) <b>",
		DashboardURL: "https://dp.example.com/apps/shop?range=2h",
	}
	payload, _ := json.Marshal(n)
	return n, Message{Seq: 1, ID: n.ID, Destination: "x", Payload: payload}
}

func TestSlackPayload(t *testing.T) {
	var got map[string]string
	var key string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key = r.Header.Get("Idempotency-Key")
		_ = json.NewDecoder(r.Body).Decode(&got)
	}))
	defer srv.Close()
	n, m := sample()
	if err := (&Slack{URL: srv.URL}).Send(context.Background(), n, m); err != nil {
		t.Fatal(err)
	}
	text := got["text"]
	if !strings.Contains(text, "LATENCY firing") || !strings.Contains(text, "&lt;b&gt;") ||
		!strings.HasSuffix(text, "<https://dp.example.com/apps/shop?range=2h|Open the dashboard>") || key != n.ID {
		t.Errorf("slack text %q, key %q", text, key)
	}
}

func TestWebhookNon2xxIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusBadGateway)
	}))
	defer srv.Close()
	n, m := sample()
	err := (&Webhook{URL: srv.URL}).Send(context.Background(), n, m)
	if err == nil || !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "nope") {
		t.Errorf("err = %v", err)
	}
}

// smtpServer is a minimal SMTP receiver on loopback that keeps the DATA
// of every message.
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []string
	rcpt []string
}

func newSMTPServer(t *testing.T) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(line string) { io.WriteString(c, line+"\r\n") }
	say("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 test")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			s.mu.Lock()
			s.rcpt = append(s.rcpt, strings.TrimSpace(line[8:]))
			s.mu.Unlock()
			say("250 ok")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, b.String())
			s.mu.Unlock()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func TestEmailOverSMTP(t *testing.T) {
	srv := newSMTPServer(t)
	n, m := sample()
	e := &Email{Addr: srv.ln.Addr().String(), From: "drainpipe@example.com", To: []string{"ops@example.com", "dev@example.com"}}
	if err := e.Send(context.Background(), n, m); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.msgs) != 1 || len(srv.rcpt) != 2 {
		t.Fatalf("got %d messages to %v", len(srv.msgs), srv.rcpt)
	}
	msg := srv.msgs[0]
	for _, want := range []string{"Message-ID: <" + n.ID + "@drainpipe>", "Subject: =?utf-8?q?", "To: ops@example.com, dev@example.com",
		"Dashboard: https://dp.example.com/apps/shop?range=2h", "Since: 2026-11-25T10:10:00Z"} {
		if !strings.Contains(msg, want) {
			t.Errorf("mail lacks %q:\n%s", want, msg)
		}
	}
}
