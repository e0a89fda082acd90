// Package drain is the client side of a Logplex HTTPS drain: it POSTs
// batches of octet-counted RFC 5424 frames to a drainpipe server's
// POST /drains/{app} the way Logplex does (same headers, same retry rules),
// so that the demo, the load generator and tests exercise the server exactly
// as production traffic would.
//
// The pieces:
//
//   - ParseDrainURL checks a drain URL and extracts app and credentials.
//   - Batcher accumulates lines into a logplex-1 body and hands it over at
//     500 messages or 1 MiB (Logplex's limits).
//   - Client sends bodies with Logplex's headers, retrying network errors,
//     timeouts and non-4xx statuses with the same Logplex-Frame-Id.
//   - AppendLogShuttleFrame and LogShuttleHeaders reproduce what Heroku's
//     log-shuttle sends, for compatibility tests.
package drain

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Logplex's request constants.
const (
	// ContentType is the media type of a Logplex drain body.
	ContentType = "application/logplex-1"
	// UserAgent is what the Client sends by default, like Logplex.
	UserAgent = "Logplex/v72"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxRetries = 5
	DefaultBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
	DefaultTimeout    = 10 * time.Second
)

// Config configures a Client.
type Config struct {
	// URL is the drain URL, http(s)://USER:SECRET@host:port/drains/app.
	URL string
	// HTTPClient sends the requests. Nil means a shared client whose
	// transport keeps up to 256 idle connections per host, so that
	// concurrent senders reuse connections instead of dialling (and using
	// up ephemeral ports) for every POST. Its dialer never binds a local
	// address before connecting.
	HTTPClient *http.Client
	// MaxRetries is how many times a batch is re-sent after the first
	// attempt failed with a network error, a timeout or a non-4xx status.
	// 0 means DefaultMaxRetries; negative means no retries.
	MaxRetries int
	// Backoff is the wait before the first retry; it doubles with each
	// further retry up to MaxBackoff, with ±50% jitter. Zero means the
	// defaults.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Timeout bounds each attempt (connect, send, response headers and
	// body). Zero means DefaultTimeout. A timed-out attempt is retried.
	Timeout time.Duration
	// DrainToken is sent as Logplex-Drain-Token. Empty means a random
	// "d.<uuid>", fixed for the Client's life, like a Logplex drain's token.
	DrainToken string
	// UserAgent overrides the User-Agent header (default "Logplex/v72").
	UserAgent string
}

// Stats are a Client's counters since it was created.
type Stats struct {
	Lines     int64 // messages in batches that were acknowledged (2xx)
	Batches   int64 // batches acknowledged
	Bytes     int64 // body bytes of acknowledged batches
	Retries   int64 // attempts beyond the first, over all batches
	Failures  int64 // batches given up: 4xx, retries exhausted, or cancelled
	NetErrors int64 // attempts that failed before any HTTP status (dial, reset, timeout)
}

// Client POSTs logplex-1 batches to one drain. It is safe for concurrent
// use; every Send is independent.
type Client struct {
	url        DrainURL
	hc         *http.Client
	maxRetries int
	backoff    time.Duration
	maxBackoff time.Duration
	timeout    time.Duration
	token      string
	userAgent  string

	lines, batches, bytes, retries, failures, netErrors atomic.Int64
}

// NewClient checks cfg.URL with ParseDrainURL and returns a Client for it.
func NewClient(cfg Config) (*Client, error) {
	u, err := ParseDrainURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	c := &Client{
		url:        u,
		hc:         cfg.HTTPClient,
		maxRetries: cfg.MaxRetries,
		backoff:    cfg.Backoff,
		maxBackoff: cfg.MaxBackoff,
		timeout:    cfg.Timeout,
		token:      cfg.DrainToken,
		userAgent:  cfg.UserAgent,
	}
	if c.hc == nil {
		c.hc = sharedHTTPClient()
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.backoff <= 0 {
		c.backoff = DefaultBackoff
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = DefaultMaxBackoff
	}
	if c.maxBackoff < c.backoff {
		c.maxBackoff = c.backoff
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.token == "" {
		c.token = "d." + NewFrameID()
	}
	if c.userAgent == "" {
		c.userAgent = UserAgent
	}
	return c, nil
}

// App returns the app name from the drain URL.
func (c *Client) App() string { return c.url.App }

// URL returns the parsed drain URL.
func (c *Client) URL() DrainURL { return c.url }

// DrainToken returns the Logplex-Drain-Token this client sends.
func (c *Client) DrainToken() string { return c.token }

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	return Stats{
		Lines:     c.lines.Load(),
		Batches:   c.batches.Load(),
		Bytes:     c.bytes.Load(),
		Retries:   c.retries.Load(),
		Failures:  c.failures.Load(),
		NetErrors: c.netErrors.Load(),
	}
}

// Send POSTs body, which holds msgCount frames, under a fresh
// Logplex-Frame-Id, retrying as described on SendFrame. body is not
// modified or retained after Send returns.
func (c *Client) Send(ctx context.Context, body []byte, msgCount int) error {
	return c.SendFrame(ctx, NewFrameID(), body, msgCount)
}

// SendFrame POSTs body under the given Logplex-Frame-Id. Like Logplex it
// treats 2xx as delivered; a 4xx as permanent (a *StatusError, not
// retried); and a network error, an attempt timeout or any other status as
// temporary, re-sending the same body with the same Frame-Id up to
// MaxRetries times with exponential backoff. When ctx ends it stops and
// returns ctx's error. Tests use SendFrame directly to replay a frame id.
func (c *Client) SendFrame(ctx context.Context, frameID string, body []byte, msgCount int) error {
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.retries.Add(1)
		}
		err := c.post(ctx, frameID, body, msgCount)
		if err == nil {
			c.lines.Add(int64(msgCount))
			c.batches.Add(1)
			c.bytes.Add(int64(len(body)))
			return nil
		}
		last = err
		var se *StatusError
		if errors.As(err, &se) && se.Permanent() {
			c.failures.Add(1)
			return err
		}
		if ctx.Err() != nil {
			c.failures.Add(1)
			return fmt.Errorf("drain: POST %s: %w (last attempt: %v)", c.url.Endpoint, ctx.Err(), last)
		}
		if attempt >= c.maxRetries {
			c.failures.Add(1)
			return fmt.Errorf("drain: gave up after %d attempts: %w", attempt+1, last)
		}
		t := time.NewTimer(c.wait(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			c.failures.Add(1)
			return fmt.Errorf("drain: POST %s: %w (last attempt: %v)", c.url.Endpoint, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// wait returns the backoff before retry number attempt+1.
func (c *Client) wait(attempt int) time.Duration {
	d := c.backoff
	for i := 0; i < attempt && d < c.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.maxBackoff)
	// ±50% jitter so that many senders do not retry in lockstep.
	return d/2 + rand.N(d)
}

func (c *Client) post(ctx context.Context, frameID string, body []byte, msgCount int) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url.Endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	h := req.Header
	h["Content-Type"] = []string{ContentType}
	h["Logplex-Msg-Count"] = []string{strconv.Itoa(msgCount)}
	h["Logplex-Frame-Id"] = []string{frameID}
	h["Logplex-Drain-Token"] = []string{c.token}
	h["User-Agent"] = []string{c.userAgent}
	req.SetBasicAuth(c.url.User, c.url.Secret)
	resp, err := c.hc.Do(req)
	if err != nil {
		c.netErrors.Add(1)
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Drain the (small) body so the connection goes back to the pool.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return &StatusError{
		Endpoint: c.url.Endpoint,
		FrameID:  frameID,
		Code:     resp.StatusCode,
		Status:   resp.Status,
		Body:     string(bytes.TrimSpace(msg)),
	}
}

// StatusError is a non-2xx answer from the drain endpoint.
type StatusError struct {
	Endpoint string
	FrameID  string
	Code     int    // HTTP status code
	Status   string // e.g. "400 Bad Request"
	Body     string // up to 4 KiB of the response body, trimmed
}

// Permanent reports whether Logplex would drop the batch rather than retry
// it: any 4xx status.
func (e *StatusError) Permanent() bool { return e.Code >= 400 && e.Code < 500 }

// Error says the status and the body text.
func (e *StatusError) Error() string {
	s := e.Status
	if s == "" {
		s = strconv.Itoa(e.Code)
	}
	if e.Body == "" {
		return fmt.Sprintf("drain: POST %s: %s (frame %s)", e.Endpoint, s, e.FrameID)
	}
	return fmt.Sprintf("drain: POST %s: %s: %s (frame %s)", e.Endpoint, s, e.Body, e.FrameID)
}

// NewFrameID returns a random version-4 UUID string, the shape of id the
// Client uses for Logplex-Frame-Id and drain tokens.
func NewFrameID() string {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; fall back anyway.
		binaryPut(b[:8], rand.Uint64())
		binaryPut(b[8:], rand.Uint64())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return string(AppendUUID(make([]byte, 0, 36), b))
}

// AppendUUID appends the 16 bytes b in the 8-4-4-4-12 hex form of a UUID.
func AppendUUID(dst []byte, b [16]byte) []byte {
	const hex = "0123456789abcdef"
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[c>>4], hex[c&0xf])
	}
	return dst
}

func binaryPut(b []byte, v uint64) {
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
}

var (
	sharedOnce sync.Once
	shared     *http.Client
)

// sharedHTTPClient is the default client: one transport for every Client
// in the process, so connections to a server are pooled and reused.
func sharedHTTPClient() *http.Client {
	sharedOnce.Do(func() { shared = NewHTTPClient(256) })
	return shared
}

// NewHTTPClient returns an *http.Client suited to posting drains at volume:
// up to maxConnsPerHost idle keep-alive connections per host (Go's default
// of 2 would make concurrent senders dial a new connection for most
// requests), a dialer that connects without binding a local address first,
// HTTP/2 when the server offers it over TLS, and no redirect following.
// Per-request timeouts come from the Client, not from here.
func NewHTTPClient(maxConnsPerHost int) *http.Client {
	if maxConnsPerHost <= 0 {
		maxConnsPerHost = 64
	}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * maxConnsPerHost,
		MaxIdleConnsPerHost:   maxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		// Like Logplex, never follow a redirect (Go would turn the POST
		// into a body-less GET): a 3xx is an answer, and not a 2xx.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
