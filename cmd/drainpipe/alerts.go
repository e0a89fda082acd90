package main

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/drainpipe/drainpipe/autoscale"
	"github.com/drainpipe/drainpipe/embedded"
	"github.com/drainpipe/drainpipe/notify"
)

// alertFlags configure where monitor notifications go and how scale
// monitors reach the Heroku Platform API.
type alertFlags struct {
	webhooks  string
	slack     string
	smtpAddr  string
	smtpFrom  string
	smtpTo    string
	smtpUser  string
	smtpPass  string
	dashboard string
	apiURL    string
	apiKey    string
	dryRun    bool
}

func (f *alertFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.webhooks, "alert-webhook", "", "comma-separated URLs that get every monitor notification as JSON (POST, Idempotency-Key header)")
	fs.StringVar(&f.slack, "alert-slack-webhook", "", "Slack incoming-webhook URL for monitor notifications")
	fs.StringVar(&f.smtpAddr, "smtp-addr", "", "SMTP server host:port for monitor notifications by email (with --smtp-from and --smtp-to)")
	fs.StringVar(&f.smtpFrom, "smtp-from", "", "sender address of notification emails")
	fs.StringVar(&f.smtpTo, "smtp-to", "", "comma-separated recipients of notification emails")
	fs.StringVar(&f.smtpUser, "smtp-user", "", "SMTP username (PLAIN auth, over TLS or to localhost only)")
	fs.StringVar(&f.smtpPass, "smtp-password", "", "SMTP password (prefer the DRAINPIPE_SMTP_PASSWORD environment variable)")
	fs.StringVar(&f.apiURL, "heroku-api-url", autoscale.DefaultAPIURL, "Heroku Platform API base URL the autoscaler calls (PATCH /apps/{app}/formation/{type})")
	fs.StringVar(&f.apiKey, "heroku-api-key", "", "Heroku API key for autoscaling (or HEROKU_API_KEY); without one, scale monitors run in dry-run mode")
	fs.BoolVar(&f.dryRun, "autoscale-dry-run", false, "decide and record scaling events, but never change a formation")
	fs.StringVar(&f.dashboard, "dashboard-url", "", "base URL of the dashboard for links in notifications (default: --public-url, else the listen address)")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func checkURL(flagName, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--%s %q: want an http(s):// URL", flagName, raw)
	}
	return nil
}

// config fills the notification side of cfg.Alerts.
func (f *alertFlags) config(cfg *embedded.Config) error {
	var dests []notify.Destination
	for i, u := range splitList(f.webhooks) {
		if err := checkURL("alert-webhook", u); err != nil {
			return err
		}
		dests = append(dests, notify.Destination{Name: fmt.Sprintf("webhook:%d", i+1), Sender: &notify.Webhook{URL: u}})
	}
	if f.slack != "" {
		if err := checkURL("alert-slack-webhook", f.slack); err != nil {
			return err
		}
		dests = append(dests, notify.Destination{Name: "slack", Sender: &notify.Slack{URL: f.slack}})
	}
	if f.smtpAddr != "" {
		if _, _, err := net.SplitHostPort(f.smtpAddr); err != nil {
			return fmt.Errorf("--smtp-addr %q: want host:port", f.smtpAddr)
		}
		to := splitList(f.smtpTo)
		if f.smtpFrom == "" || len(to) == 0 {
			return fmt.Errorf("--smtp-addr needs --smtp-from and --smtp-to")
		}
		dests = append(dests, notify.Destination{Name: "email", Sender: &notify.Email{
			Addr: f.smtpAddr, From: f.smtpFrom, To: to, Username: f.smtpUser, Password: f.smtpPass,
		}})
	}
	cfg.Alerts.Destinations = dests
	if err := checkURL("heroku-api-url", f.apiURL); err != nil {
		return err
	}
	key := f.apiKey
	if key == "" {
		key = os.Getenv("HEROKU_API_KEY")
	}
	cfg.Alerts.Autoscale = autoscale.Config{Platform: &autoscale.Platform{URL: f.apiURL, Key: key}, DryRun: f.dryRun}
	cfg.Alerts.Evaluator.PublicURL = f.dashboard
	return nil
}
