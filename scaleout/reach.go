package scaleout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// reach caches whether a dependency (Kafka, PostgreSQL) answered at its
// last contact: a produce, a ping, an attempt to open. /healthz reads it
// without contacting anything.
type reach struct {
	name string // "kafka", "store"
	now  func() time.Time
	log  *slog.Logger // changes of state are logged

	mu      sync.Mutex
	known   bool      // at least one outcome noted
	ok      bool      // the last outcome
	checked time.Time // when it was noted
	since   time.Time // when the current state (ok or not) began
	err     error     // the last failure, while !ok
	note    string    // what the process does about it ("opening, attempt 3")
}

func newReach(name string, log *slog.Logger) *reach {
	return &reach{name: name, now: time.Now, log: log}
}

// observe notes the outcome of a contact, logging a change of state.
func (r *reach) observe(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	ok := err == nil
	if !r.known || ok != r.ok {
		switch {
		case !ok:
			r.log.Warn(r.name+" unreachable", "err", err)
		case r.known:
			r.log.Info(r.name+" reachable again", "down_for", now.Sub(r.since).Round(time.Second))
		}
		r.since = now
	}
	r.known, r.ok, r.checked, r.err = true, ok, now, err
}

// setNote sets the text of the <name>_state line ("" for none).
func (r *reach) setNote(s string) {
	r.mu.Lock()
	r.note = s
	r.mu.Unlock()
}

// age is how long ago the last outcome was noted (a large value when
// there is none).
func (r *reach) age() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.known {
		return 1<<63 - 1
	}
	return r.now().Sub(r.checked)
}

// up is 1 when the last contact succeeded, for the Prometheus gauge.
func (r *reach) up() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known && r.ok {
		return 1
	}
	return 0
}

// health is nil when the last contact succeeded.
func (r *reach) health(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !r.known:
		return fmt.Errorf("%s: not reached yet", r.name)
	case !r.ok:
		return fmt.Errorf("%s unreachable since %s: %w", r.name, r.since.UTC().Format(time.RFC3339), r.err)
	}
	return nil
}

// detail returns the /healthz lines, in the "name value" form of the
// embedded mode's: <name>_reachable 1|0, the age of the outcome, and
// while unreachable since when, the error and what is being done.
func (r *reach) detail() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.known {
		out := []string{r.name + "_reachable 0"}
		if r.note != "" {
			out = append(out, r.name+"_state "+r.note)
		}
		return out
	}
	up := "0"
	if r.ok {
		up = "1"
	}
	out := []string{
		r.name + "_reachable " + up,
		r.name + "_checked_seconds_ago " + strconv.FormatFloat(r.now().Sub(r.checked).Seconds(), 'f', 1, 64),
	}
	if !r.ok {
		out = append(out,
			r.name+"_unreachable_since "+r.since.UTC().Format(time.RFC3339),
			r.name+"_error "+oneLine(r.err))
	}
	if r.note != "" {
		out = append(out, r.name+"_state "+r.note)
	}
	return out
}

// oneLine is err's message with line breaks replaced, so that it stays
// one detail line.
func oneLine(err error) string {
	if err == nil {
		return ""
	}
	b := []byte(err.Error())
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}

// probe keeps r fresh: every interval, unless some other contact noted
// an outcome meanwhile, it calls ping (bounded by timeout) and notes the
// result. It returns when ctx ends.
func (r *reach) probe(ctx context.Context, interval, timeout time.Duration, ping func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if r.age() >= interval {
			pctx, cancel := context.WithTimeout(ctx, timeout)
			err := ping(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within %s", timeout)
			}
			r.observe(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
