package scaleout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
)

// TestOpenErrorIsFatal: an error other than unavailability (wrong
// password, no such database) ends the process instead of being retried;
// unavailability is retried.
func TestOpenErrorIsFatal(t *testing.T) {
	var calls atomic.Int32
	open := func(context.Context) (Store, error) {
		if calls.Add(1) == 1 {
			return nil, fmt.Errorf("postgres: connect: %w: connection refused", drainpipe.ErrUnavailable)
		}
		return nil, errors.New("postgres: connect: password authentication failed")
	}
	n, err := Start(context.Background(), Config{Roles: Roles{RoleAPI: true}, Listen: "127.0.0.1:0"}, open, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	select {
	case err := <-n.Err():
		if !strings.Contains(err.Error(), "password authentication failed") || calls.Load() != 2 {
			t.Errorf("fatal error %v after %d attempts, want the password error after 2", err, calls.Load())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a fatal open error did not end the node")
	}
}
