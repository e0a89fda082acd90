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
	if code := exitCode(err); code != 0 {
		if err.Error() != "" {
			fmt.Fprintln(os.Stderr, "drainpipe:", err)
		}
		os.Exit(code)
	}
}

// usageError is a command line that names no command, an unknown one, or
// passes arguments a command does not take. run prints the command's usage;
// drainpipe exits 2, as for a bad flag.
type usageError struct {
	cmd *ffcli.Command
	msg string // "" when no command was given: the usage says it all
}

func (e *usageError) Error() string { return e.msg }

// exitCode is the process exit status for run's error: 0 for success and
// for an explicit --help, 2 for a bad command line, 1 otherwise.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// noArgs rejects positional arguments for a command that takes none. The
// flag package stops at the first one, so any flags after it would be
// silently ignored otherwise.
func noArgs(cmd *ffcli.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return &usageError{cmd: cmd, msg: fmt.Sprintf("%s: unexpected argument %q: it takes no arguments, and flags after one are not read", cmd.Name, args[0])}
}

// unknownCommand is the Exec of a command that only groups subcommands.
func unknownCommand(cmd *ffcli.Command, args []string) error {
	if len(args) == 0 {
		return &usageError{cmd: cmd}
	}
	name := args[0]
	if cmd.Name != "" {
		name = cmd.Name + " " + name
	}
	return &usageError{cmd: cmd, msg: fmt.Sprintf("unknown command %q (see --help)", name)}
}

// env holds what commands need from the process: streams and a logger.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	// DRAINPIPE_LOG_LEVEL (debug, info, warn, error) sets how much is
	// logged; info by default.
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("DRAINPIPE_LOG_LEVEL"))); err != nil {
		level = slog.LevelInfo
	}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
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
			serveCommand(e), appsCommand(e), adminCommand(e), pipeCommand(e), demoCommand(e), loadgenCommand(e), versionCommand(e),
		},
	}
	root.Exec = func(_ context.Context, args []string) error { return unknownCommand(root, args) }
	root.FlagSet = e.flags("drainpipe")
	root.FlagSet.SetOutput(stderr)
	if err := root.Parse(args); err != nil {
		return err
	}
	err := root.Run(ctx)
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, ffcli.DefaultUsageFunc(ue.cmd))
	case errors.Is(err, flag.ErrHelp):
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
