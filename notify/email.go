package notify

import (
	"context"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"strings"
	"time"

	"github.com/drainpipe/drainpipe/monitor"
)

// Email sends notifications as plain-text mail through an SMTP server
// (STARTTLS when the server offers it; PLAIN authentication when a
// username is set, which net/smtp allows only over TLS or to localhost).
// The Message-ID is derived from the notification's id, so a repeated
// attempt is recognisable as the same message.
type Email struct {
	Addr     string // host:port
	From     string
	To       []string
	Username string
	Password string
}

// Send delivers one notification.
func (e *Email) Send(ctx context.Context, n *monitor.Notification, m Message) error {
	host, _, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return fmt.Errorf("smtp address %q: %w", e.Addr, err)
	}
	var auth smtp.Auth
	if e.Username != "" {
		auth = smtp.PlainAuth("", e.Username, e.Password, host)
	}
	msg := e.message(n, m)
	done := make(chan error, 1)
	go func() { done <- smtp.SendMail(e.Addr, auth, e.From, e.To, msg) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("send mail via %s: %w", e.Addr, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("send mail via %s: %w", e.Addr, ctx.Err())
	}
}

// message renders the mail with CRLF line ends.
func (e *Email) message(n *monitor.Notification, m Message) []byte {
	subject := strings.NewReplacer("\r", " ", "\n", " ").Replace(n.Text)
	if len(subject) > 200 {
		subject = subject[:200]
	}
	var b strings.Builder
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", e.From)
	hdr("To", strings.Join(e.To, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", subject))
	hdr("Date", time.Now().UTC().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+m.ID+"@drainpipe>")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "%s\r\n\r\n", n.Text)
	fmt.Fprintf(&b, "App: %s\r\nProcess type: %s\r\nMonitor: %s %s %g\r\nMinute: %s\r\nSince: %s\r\n\r\nDashboard: %s\r\n",
		n.App, n.ProcessType, n.Monitor.Name, n.Monitor.Op, n.Monitor.Value,
		n.Minute.Format(time.RFC3339), n.Since.Format(time.RFC3339), n.DashboardURL)
	return []byte(b.String())
}
