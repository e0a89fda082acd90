package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/drainpipe/drainpipe/monitor"
)

// UserAgent is sent with every webhook request.
const UserAgent = "drainpipe-notify/1"

// Webhook POSTs the notification as JSON (monitor.Notification) to URL.
// Any 2xx answer means delivered. The Idempotency-Key header carries the
// notification's id, the same on every retry.
type Webhook struct {
	URL    string
	Client *http.Client // nil: http.DefaultClient
}

// Send delivers one notification.
func (h *Webhook) Send(ctx context.Context, _ *monitor.Notification, m Message) error {
	return post(ctx, h.Client, h.URL, m.ID, m.Payload)
}

// Slack POSTs a Slack incoming-webhook payload ({"text": …} with the
// dashboard link in Slack's <url|label> markup) to URL.
type Slack struct {
	URL    string
	Client *http.Client
}

// slackMessage is the body Slack's incoming webhooks accept.
type slackMessage struct {
	Text string `json:"text"`
}

// Send delivers one notification.
func (s *Slack) Send(ctx context.Context, n *monitor.Notification, m Message) error {
	icon := map[monitor.NotificationType]string{
		monitor.NotifyFiring: ":rotating_light:", monitor.NotifyReminder: ":warning:", monitor.NotifyResolved: ":white_check_mark:",
	}[n.Type]
	body, err := json.Marshal(slackMessage{Text: fmt.Sprintf("%s %s <%s|Open the dashboard>", icon, slackEscape(n.Text), n.DashboardURL)})
	if err != nil {
		return fmt.Errorf("encode slack message: %w", err)
	}
	return post(ctx, s.Client, s.URL, m.ID, body)
}

// slackEscape escapes the three characters Slack's markup reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func post(ctx context.Context, c *http.Client, url, id string, body []byte) error {
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Idempotency-Key", id)
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("post notification: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %s: %s", resp.Status, strings.TrimSpace(string(snippet)))
	}
	return nil
}
