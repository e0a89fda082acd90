package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// apiClient talks to a drainpipe server's JSON API with the admin token.
type apiClient struct {
	base  string
	token string
	hc    *http.Client
}

type createdApp struct {
	Name     string `json:"name"`
	DrainURL string `json:"drain_url"`
	APIToken string `json:"api_token"`
}

// createApp creates an app and returns its drain URL and API token.
func (c *apiClient) createApp(ctx context.Context, name string) (createdApp, error) {
	var out createdApp
	body, _ := json.Marshal(map[string]string{"name": name})
	if err := c.post(ctx, "/api/apps", body, http.StatusCreated, &out); err != nil {
		return out, fmt.Errorf("create app %q: %w", name, err)
	}
	return out, nil
}

// post sends body (JSON, or nothing when nil) to path with the client's
// token and decodes an answer with status want into out.
func (c *apiClient) post(ctx context.Context, path string, body []byte, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.hc
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("server answered %s: %s", resp.Status, strings.TrimSpace(string(raw)))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

func appsCommand(e *env) *ffcli.Command {
	fs := e.flags("drainpipe apps create")
	url := fs.String("url", "http://localhost:8080", "base URL of the drainpipe server, not a drain URL; DRAINPIPE_URL sets it too, but pipe reads that variable as a drain URL")
	token := fs.String("admin-token", "", "admin bearer token of the server (required)")
	create := &ffcli.Command{
		Name:       "create",
		ShortUsage: "drainpipe apps create [--url URL] --admin-token TOKEN NAME",
		ShortHelp:  "Create an app and print its drain URL and API token.",
		LongHelp: `Creates the app NAME on a running drainpipe server and prints the drain
URL (with fresh basic-auth credentials) to give to Heroku:

    heroku drains:add "<drain URL>" -a NAME

and a read-only API token that sees only this app. The credentials are
shown once; drainpipe keeps only their hashes.
Environment: DRAINPIPE_URL, DRAINPIPE_ADMIN_TOKEN.

--url is the server's base URL (http://HOST:PORT). "drainpipe pipe --url"
reads the same DRAINPIPE_URL but wants a drain URL
(http(s)://USER:SECRET@HOST/drains/APP); set the variable per command
when you use both.`,
		FlagSet: fs,
		Options: envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			// Allow flags after the name too: apps create NAME --url URL.
			if len(args) > 1 {
				if err := fs.Parse(args[1:]); err != nil {
					return err
				}
				args = append(args[:1], fs.Args()...)
			}
			if len(args) != 1 {
				return fmt.Errorf("apps create: want exactly one app name, got %d arguments", len(args))
			}
			if *token == "" {
				return fmt.Errorf("apps create: --admin-token (or DRAINPIPE_ADMIN_TOKEN) is required")
			}
			c := &apiClient{base: *url, token: *token}
			app, err := c.createApp(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Created %s.\n\nDrain URL: %s\nAPI token: %s\n\nAttach it to the Heroku app:\n  heroku drains:add %q -a %s\n",
				app.Name, app.DrainURL, app.APIToken, app.DrainURL, app.Name)
			return nil
		},
	}
	apps := &ffcli.Command{
		Name:        "apps",
		ShortUsage:  "drainpipe apps <subcommand>",
		ShortHelp:   "Manage apps on a running server (create).",
		Subcommands: []*ffcli.Command{create},
	}
	apps.Exec = func(_ context.Context, args []string) error { return unknownCommand(apps, args) }
	return apps
}
