package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/drainpipe/drainpipe"
)

// fail wraps err with what was being done and, when err says the server
// is out of reach rather than that the request was wrong, with
// drainpipe.ErrUnavailable.
func fail(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	if inner, ok := strings.CutPrefix(err.Error(), "postgres: "); ok {
		// Already wrapped by this package: add the context, once.
		return fmt.Errorf("postgres: %s: %w", msg, wrapped{inner, err})
	}
	if unavailable(err) {
		return fmt.Errorf("postgres: %s: %w: %w", msg, drainpipe.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", msg, err)
}

// wrapped is an error with its message shortened; errors.Is and As see
// the error it wraps.
type wrapped struct {
	msg string
	err error
}

func (w wrapped) Error() string { return w.msg }
func (w wrapped) Unwrap() error { return w.err }

// unavailable tells whether err comes from the server being down,
// restarting, refusing connections or read-only after a failover.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller gave up; nothing says the server is down
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now (starting up, shutting down, recovery)
			"53300", // too_many_connections
			"25006": // read_only_sql_transaction: a standby after failover
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection_exception class
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr),
		errors.As(err, &netErr),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return true
	}
	// Whatever pgconn guarantees was never sent is a connection problem.
	return pgconn.SafeToRetry(err)
}
