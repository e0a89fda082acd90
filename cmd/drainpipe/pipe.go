package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/drainpipe/drainpipe/drain"
	"github.com/drainpipe/drainpipe/logplex"
)

func pipeCommand(e *env) *ffcli.Command {
	fs := e.flags("drainpipe pipe")
	app := fs.String("app", "", "app name (must match the drain URL's app when both are given)")
	drainURL := fs.String("url", "", "drain URL with credentials, http(s)://USER:SECRET@HOST/drains/APP (required); DRAINPIPE_URL sets it too, but apps create and loadgen read that variable as the server's base URL")
	batch := fs.Int("batch", 500, "lines per POST at most")
	every := fs.Duration("flush", time.Second, "send a partial batch after this long")
	cmd := &ffcli.Command{
		Name:       "pipe",
		ShortUsage: "heroku logs --tail -a APP | drainpipe pipe --app APP --url DRAIN_URL",
		ShortHelp:  "Send `heroku logs --tail` output from stdin through the drain endpoint.",
		LongHelp: `Reads lines in the format of "heroku logs" (TIMESTAMP SOURCE[PROC]: MSG)
from stdin, re-frames them as Logplex would, and POSTs them to the drain
URL printed by "drainpipe apps create". Lines that are not in that format
are skipped and counted. A live count of sent lines is shown on stderr.
Works for a file of saved logs too: drainpipe pipe --app APP --url URL < app.log
Environment: DRAINPIPE_APP, DRAINPIPE_URL.

Here --url (and DRAINPIPE_URL) is the drain URL, with credentials; a URL
without a /drains/APP path gets one from --app. "apps create --url" and
"loadgen --url" read the same DRAINPIPE_URL as the server's base URL, so
set the variable per command when you use both.`,
		FlagSet: fs,
		Options: envOptions(),
	}
	cmd.Exec = func(ctx context.Context, args []string) error {
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		u, err := pipeURL(*drainURL, *app)
		if err != nil {
			return err
		}
		client, err := drain.NewClient(drain.Config{URL: u})
		if err != nil {
			return err
		}
		sent, skipped, err := pipeLines(ctx, e.stdin, client, *batch, *every, e.stderr)
		fmt.Fprintf(e.stderr, "\rsent %d lines, skipped %d            \n", sent, skipped)
		return err
	}
	return cmd
}

// pipeURL checks the drain URL against --app, adding /drains/APP when the
// URL names only the server.
func pipeURL(raw, app string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("pipe: --url (or DRAINPIPE_URL) is required: the drain URL printed by 'drainpipe apps create'")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("pipe: --url: %w", err)
	}
	if !strings.Contains(u.Path, "/drains/") {
		if app == "" {
			return "", fmt.Errorf("pipe: --url has no /drains/APP path and --app is not set")
		}
		u.Path = strings.TrimRight(u.Path, "/") + "/drains/" + app
	}
	d, err := drain.ParseDrainURL(u.String())
	if err != nil {
		return "", fmt.Errorf("pipe: %w", err)
	}
	if app != "" && d.App != app {
		return "", fmt.Errorf("pipe: --app %q does not match the drain URL's app %q", app, d.App)
	}
	return u.String(), nil
}

// pipeLines reads tail-format lines and sends them in batches, flushing a
// partial batch after every. It reports progress to status.
func pipeLines(ctx context.Context, in io.Reader, c *drain.Client, batch int, every time.Duration, status io.Writer) (sent, skipped int64, err error) {
	lines := make(chan []byte, 1024)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64*1024), logplex.MaxFrameLen)
		for sc.Scan() {
			l := append([]byte(nil), sc.Bytes()...)
			select {
			case lines <- l:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
		}
		close(lines)
		readErr <- sc.Err()
	}()
	b := drain.SenderBatcher(ctx, c, batch, 0)
	tick := time.NewTicker(every)
	defer tick.Stop()
	show := time.NewTicker(200 * time.Millisecond)
	defer show.Stop()
	tty := isTerminal(status)
	lastShown := time.Now()
	var h logplex.Header
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				if err := b.Flush(); err != nil {
					return c.Stats().Lines, skipped, err
				}
				return c.Stats().Lines, skipped, <-readErr
			}
			if len(strings.TrimSpace(string(l))) == 0 {
				continue
			}
			if perr := logplex.ParseTail(l, &h); perr != nil {
				skipped++
				continue
			}
			if err := b.AddBytes(time.Unix(0, h.Time), string(h.AppName), string(h.ProcID), h.Msg); err != nil {
				return c.Stats().Lines, skipped, err
			}
		case <-tick.C:
			if b.Len() > 0 {
				if err := b.Flush(); err != nil {
					return c.Stats().Lines, skipped, err
				}
			}
		case <-show.C:
			if tty {
				fmt.Fprintf(status, "\rsent %d lines, skipped %d", c.Stats().Lines, skipped)
			} else if time.Since(lastShown) >= 5*time.Second {
				fmt.Fprintf(status, "sent %d lines, skipped %d\n", c.Stats().Lines, skipped)
				lastShown = time.Now()
			}
		case <-ctx.Done():
			return c.Stats().Lines, skipped, ctx.Err()
		}
	}
}

// isTerminal reports whether w is a character device (a terminal), where
// a counter updated in place with \r reads well.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
