package drain

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DrainURL is a parsed drain URL such as
// https://USER:SECRET@drainpipe.example.com/drains/myapp.
type DrainURL struct {
	// Endpoint is the URL to POST to, without the credentials.
	Endpoint string
	// App is the app name: the last path segment after /drains/.
	App string
	// User and Secret are the HTTP basic-auth pair from the URL.
	User   string
	Secret string
}

// String returns the drain URL with the secret masked.
func (d DrainURL) String() string {
	u, err := url.Parse(d.Endpoint)
	if err != nil {
		return d.Endpoint
	}
	u.User = url.UserPassword(d.User, "xxxxx")
	return u.String()
}

// ParseDrainURL validates a drain URL and splits it into endpoint, app name
// and credentials. The URL must be http or https, name a host, carry both a
// user and a secret, and have a path ending in /drains/{app} (a prefix
// before /drains/ is allowed, for drainpipe behind a path-routing proxy). It
// may not have a query or a fragment. The app name is 1–100 characters of
// letters, digits, '-', '_' and '.'.
func ParseDrainURL(raw string) (DrainURL, error) {
	var d DrainURL
	if strings.TrimSpace(raw) == "" {
		return d, errors.New("drain URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return d, fmt.Errorf("drain URL: %w", err)
	}
	switch u.Scheme {
	case "http", "https":
	case "":
		return d, fmt.Errorf("drain URL %q has no scheme: want http:// or https://", redact(u))
	default:
		return d, fmt.Errorf("drain URL %q has scheme %q: want http or https", redact(u), u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return d, fmt.Errorf("drain URL %q has no host", redact(u))
	}
	if p := u.Port(); p != "" {
		if !allDigits(p) {
			return d, fmt.Errorf("drain URL %q has an invalid port %q", redact(u), p)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return d, fmt.Errorf("drain URL %q must not have a query or fragment", redact(u))
	}
	if u.User == nil {
		return d, fmt.Errorf("drain URL %q has no credentials: want %s://USER:SECRET@%s%s", redact(u), u.Scheme, u.Host, u.EscapedPath())
	}
	d.User = u.User.Username()
	d.Secret, _ = u.User.Password()
	if d.User == "" {
		return d, fmt.Errorf("drain URL %q has an empty user", redact(u))
	}
	if d.Secret == "" {
		return d, fmt.Errorf("drain URL %q has no secret: want USER:SECRET@ before the host", redact(u))
	}
	path := strings.TrimSuffix(u.Path, "/")
	if strings.HasSuffix(path, "/drains") {
		return d, fmt.Errorf("drain URL %q: no app name after /drains/", redact(u))
	}
	i := strings.LastIndex(path, "/drains/")
	if i < 0 {
		return d, fmt.Errorf("drain URL %q: path %q does not end in /drains/{app}", redact(u), u.Path)
	}
	d.App = path[i+len("/drains/"):]
	if err := checkAppName(d.App); err != nil {
		return d, fmt.Errorf("drain URL %q: %w", redact(u), err)
	}
	e := *u
	e.User = nil
	d.Endpoint = e.String()
	return d, nil
}

func checkAppName(app string) error {
	if app == "" {
		return errors.New("no app name after /drains/")
	}
	if len(app) > 100 {
		return fmt.Errorf("app name is %d characters long; at most 100 allowed", len(app))
	}
	for i := 0; i < len(app); i++ {
		c := app[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return fmt.Errorf("app name %q contains %q: only letters, digits, '-', '_' and '.' are allowed", app, c)
		}
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// redact renders u with any password masked, for error messages.
func redact(u *url.URL) string { return u.Redacted() }
