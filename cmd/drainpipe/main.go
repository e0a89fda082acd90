// Command drainpipe turns Heroku Logplex log drains into app metrics: it
// receives drains, aggregates router and runtime-metrics lines per app and
// process type, and serves them through a JSON API and a web dashboard.
//
// Run `drainpipe --help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "drainpipe:", err)
		os.Exit(1)
	}
}

// env holds what commands need from the process: streams and a logger.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	root := &ffcli.Command{
		ShortUsage: "drainpipe <command> [flags]",
		ShortHelp:  "Heroku log drains in, app metrics out.",
		LongHelp: `drainpipe receives Heroku Logplex HTTPS log drains (and piped
"heroku logs --tail" output), aggregates router and runtime-metrics lines
per app and process type, and serves response-time percentiles, throughput
by status, H/R errors, memory, load and events through a JSON API and a
web dashboard.

Every flag can also be set in the environment as DRAINPIPE_<FLAG>, with
dashes as underscores (for example DRAINPIPE_ADMIN_TOKEN).`,
		Subcommands: []*ffcli.Command{
			serveCommand(e), appsCommand(e), pipeCommand(e), demoCommand(e), loadgenCommand(e), versionCommand(e),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
	root.FlagSet = e.flags("drainpipe")
	root.FlagSet.SetOutput(stderr)
	if err := root.Parse(args); err != nil {
		return err
	}
	err := root.Run(ctx)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, ffcli.DefaultUsageFunc(root))
	}
	return err
}

// envOptions makes every flag settable as DRAINPIPE_<NAME>.
func envOptions() []ff.Option {
	return []ff.Option{ff.WithEnvVarPrefix("DRAINPIPE")}
}

func versionCommand(e *env) *ffcli.Command {
	return &ffcli.Command{
		Name:       "version",
		ShortUsage: "drainpipe version",
		ShortHelp:  "Print the version.",
		Exec: func(context.Context, []string) error {
			fmt.Fprintln(e.stdout, "drainpipe", version)
			return nil
		},
	}
}

// flags returns a flag set for a command that reports errors and usage on
// the command's stderr.
func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}
