package autoscale

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DefaultAPIURL is the Heroku Platform API.
const DefaultAPIURL = "https://api.heroku.com"

// Platform is the part of the Heroku Platform API the autoscaler uses:
// reading and changing one process type's dyno count.
type Platform struct {
	URL    string // base URL, default DefaultAPIURL
	Key    string // API key, sent as a bearer token
	Client *http.Client
}

// UnavailableError is an answer that means "try again later": a 5xx
// (Heroku answers 503 "API in maintenance" during maintenance), a 429,
// a timeout or a connection failure.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// IsUnavailable reports whether err means the API is unavailable for now.
func IsUnavailable(err error) bool {
	var u *UnavailableError
	return errors.As(err, &u)
}

// apiFormation is the part of Heroku's formation resource drainpipe reads.
type apiFormation struct {
	Quantity int    `json:"quantity"`
	Type     string `json:"type"`
}

// apiError is Heroku's error body.
type apiError struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// Quantity returns the dyno count of app's process type.
func (p *Platform) Quantity(ctx context.Context, app, ptype string) (int, error) {
	var f apiFormation
	if err := p.do(ctx, http.MethodGet, app, ptype, nil, &f); err != nil {
		return 0, err
	}
	return f.Quantity, nil
}

// Scale sets the dyno count of app's process type
// (PATCH /apps/{app}/formation/{type}) and returns the count the API
// answered.
func (p *Platform) Scale(ctx context.Context, app, ptype string, quantity int) (int, error) {
	body, _ := json.Marshal(map[string]int{"quantity": quantity})
	var f apiFormation
	if err := p.do(ctx, http.MethodPatch, app, ptype, body, &f); err != nil {
		return 0, err
	}
	return f.Quantity, nil
}

func (p *Platform) do(ctx context.Context, method, app, ptype string, body []byte, out any) error {
	base := p.URL
	if base == "" {
		base = DefaultAPIURL
	}
	u := strings.TrimRight(base, "/") + "/apps/" + url.PathEscape(app) + "/formation/" + url.PathEscape(ptype)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("platform api: %w", err)
	}
	req.Header.Set("Accept", "application/vnd.heroku+json; version=3")
	req.Header.Set("Authorization", "Bearer "+p.Key)
	req.Header.Set("User-Agent", "drainpipe-autoscale/1")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := p.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return &UnavailableError{fmt.Errorf("platform api %s %s: %w", method, u, err)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		var ae apiError
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &ae) == nil && ae.Message != "" {
			msg = ae.Message
		}
		if len(msg) > 200 {
			msg = msg[:200]
		}
		err := fmt.Errorf("platform api %s /apps/%s/formation/%s: %s: %s", method, app, ptype, resp.Status, msg)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return &UnavailableError{err}
		}
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("platform api %s: decode formation: %w", method, err)
	}
	return nil
}
