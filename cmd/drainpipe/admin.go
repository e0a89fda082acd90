package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// rotateAdminToken asks the server for a new admin token and returns it;
// the client's token stops working.
func (c *apiClient) rotateAdminToken(ctx context.Context) (string, error) {
	var out struct {
		Token string `json:"admin_token"`
	}
	if err := c.post(ctx, "/api/admin-token", nil, http.StatusOK, &out); err != nil {
		return "", fmt.Errorf("rotate admin token: %w", err)
	}
	if out.Token == "" {
		return "", fmt.Errorf("rotate admin token: the answer holds no token")
	}
	return out.Token, nil
}

func adminCommand(e *env) *ffcli.Command {
	fs := e.flags("drainpipe admin rotate-token")
	url := fs.String("url", "http://localhost:8080", "base URL of the drainpipe server")
	token := fs.String("admin-token", "", "the current admin bearer token (required)")
	rotate := &ffcli.Command{
		Name:       "rotate-token",
		ShortUsage: "drainpipe admin rotate-token [--url URL] --admin-token TOKEN",
		ShortHelp:  "Replace the admin token; the old one stops working at once.",
		LongHelp: `Asks a running server for a new random admin token (32 bytes) and
prints it. The server writes it to its data directory's admin-token file
(atomically: temporary file, sync, rename) before the old token stops
working, so a restart keeps the new one.

A server started with --admin-token or DRAINPIPE_ADMIN_TOKEN refuses
(409): change the setting and restart it instead.
Environment: DRAINPIPE_URL, DRAINPIPE_ADMIN_TOKEN.`,
		FlagSet: fs,
		Options: envOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 0 {
				return fmt.Errorf("admin rotate-token: takes no arguments, got %q", args[0])
			}
			if *token == "" {
				return fmt.Errorf("admin rotate-token: --admin-token (or DRAINPIPE_ADMIN_TOKEN) is required")
			}
			c := &apiClient{base: *url, token: *token}
			next, err := c.rotateAdminToken(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "New admin token: %s\nThe old one no longer works.\n", next)
			return nil
		},
	}
	admin := &ffcli.Command{
		Name:        "admin",
		ShortUsage:  "drainpipe admin <subcommand>",
		ShortHelp:   "Administer a running server (rotate-token).",
		Subcommands: []*ffcli.Command{rotate},
	}
	admin.Exec = func(_ context.Context, args []string) error { return unknownCommand(admin, args) }
	return admin
}
