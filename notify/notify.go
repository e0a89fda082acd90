// Package notify delivers monitor notifications from the durable outbox
// to their destinations: generic JSON webhooks, Slack-compatible incoming
// webhooks and email over SMTP.
//
// Delivery runs on its own goroutines, one per destination, outside the
// ingest and evaluation paths. Each destination gets its notifications in
// the order they were queued: the oldest undelivered one is retried, with
// exponential backoff, until it succeeds, and only then the next one is
// sent. A notification is marked delivered only after its destination
// accepted it; every attempt carries the notification's id (the webhook's
// Idempotency-Key header, the email's Message-ID), so a receiver that saw
// an attempt whose acknowledgement was lost can drop the repeat.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/monitor"
)

// Message is one queued notification for one destination.
type Message struct {
	Seq         int64  // outbox position: the delivery order
	ID          string // the notification's id, the same on every attempt
	Destination string
	Payload     []byte // monitor.Notification as JSON
	Attempts    int
}

// Outbox is the durable queue the evaluator writes (monitor.Store.Commit)
// and the worker drains. sqlite.Store implements it.
type Outbox interface {
	// NextMessage returns the oldest undelivered message of dest, or
	// drainpipe.ErrNotFound.
	NextMessage(ctx context.Context, dest string) (Message, error)
	MarkDelivered(ctx context.Context, seq int64, at time.Time) error
	MarkFailed(ctx context.Context, seq int64, reason string) error
	// TrimDelivered forgets messages delivered before the given time.
	TrimDelivered(ctx context.Context, before time.Time) error
}

// Sender delivers one notification to one destination.
type Sender interface {
	Send(ctx context.Context, n *monitor.Notification, m Message) error
}

// Destination is a named Sender; the name is what outbox rows refer to.
type Destination struct {
	Name   string
	Sender Sender
}

// Config tunes the Worker; zero fields take the defaults.
type Config struct {
	// MinBackoff and MaxBackoff bound the wait between attempts of one
	// message (defaults 1 s and 5 min); the wait doubles per failure.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// Poll is how often an idle destination looks for work without being
	// woken (default 5 s).
	Poll time.Duration
	// Keep is how long delivered messages stay in the outbox (default 7
	// days).
	Keep time.Duration
}

func (c *Config) defaults() {
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Minute
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = 5 * time.Second
	}
	if c.Keep <= 0 {
		c.Keep = 7 * 24 * time.Hour
	}
}

// Worker drains the outbox.
type Worker struct {
	cfg   Config
	box   Outbox
	dests []Destination
	log   *slog.Logger
	wake  map[string]chan struct{}

	mSent, mFailed *prometheus.CounterVec
	mPending       *prometheus.GaugeVec
}

// NewWorker returns a worker delivering box's messages to dests.
func NewWorker(cfg Config, box Outbox, dests []Destination, log *slog.Logger, reg prometheus.Registerer) *Worker {
	cfg.defaults()
	w := &Worker{cfg: cfg, box: box, dests: dests, log: log, wake: map[string]chan struct{}{},
		mSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drainpipe_notifications_delivered_total", Help: "Notifications delivered, by destination.",
		}, []string{"destination"}),
		mFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drainpipe_notification_attempts_failed_total", Help: "Failed delivery attempts (retried), by destination.",
		}, []string{"destination"}),
		mPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drainpipe_notification_retrying", Help: "1 while a destination's oldest notification is being retried.",
		}, []string{"destination"}),
	}
	for _, d := range dests {
		w.wake[d.Name] = make(chan struct{}, 1)
	}
	if reg != nil {
		reg.MustRegister(w.mSent, w.mFailed, w.mPending)
	}
	return w
}

// Destinations returns the destination names, for the evaluator.
func (w *Worker) Destinations() []string {
	names := make([]string, len(w.dests))
	for i, d := range w.dests {
		names[i] = d.Name
	}
	return names
}

// Wake tells every destination that new messages were queued. It never
// blocks.
func (w *Worker) Wake() {
	for _, c := range w.wake {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Run delivers until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, d := range w.dests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.deliver(ctx, d)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			if err := w.box.TrimDelivered(ctx, time.Now().Add(-w.cfg.Keep)); err != nil && ctx.Err() == nil {
				w.log.Error("notify: trim outbox", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	wg.Wait()
	return nil
}

// deliver sends d's messages one at a time, in order, retrying the head
// of the queue until it gets through.
func (w *Worker) deliver(ctx context.Context, d Destination) {
	backoff := w.cfg.MinBackoff
	for ctx.Err() == nil {
		m, err := w.box.NextMessage(ctx, d.Name)
		if errors.Is(err, drainpipe.ErrNotFound) {
			w.wait(ctx, d.Name, w.cfg.Poll)
			continue
		}
		if err != nil {
			w.log.Error("notify: read outbox", "destination", d.Name, "err", err)
			w.wait(ctx, "", backoff)
			continue
		}
		if err := w.attempt(ctx, d, m); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.mFailed.WithLabelValues(d.Name).Inc()
			w.mPending.WithLabelValues(d.Name).Set(1)
			w.log.Warn("notify: delivery failed; will retry", "destination", d.Name, "notification", m.ID,
				"attempts", m.Attempts+1, "retry_in", backoff, "err", err)
			if err := w.box.MarkFailed(ctx, m.Seq, err.Error()); err != nil {
				w.log.Error("notify: record failed attempt", "err", err)
			}
			w.wait(ctx, "", jitter(backoff))
			backoff = min(2*backoff, w.cfg.MaxBackoff)
			continue
		}
		backoff = w.cfg.MinBackoff
		w.mPending.WithLabelValues(d.Name).Set(0)
		w.mSent.WithLabelValues(d.Name).Inc()
		// Marking can fail only with the store; the message is then sent
		// again with the same id, which receivers drop.
		for ctx.Err() == nil {
			if err := w.box.MarkDelivered(context.WithoutCancel(ctx), m.Seq, time.Now()); err != nil {
				w.log.Error("notify: record delivery; will retry", "err", err)
				w.wait(ctx, "", w.cfg.MinBackoff)
				continue
			}
			break
		}
	}
}

func (w *Worker) attempt(ctx context.Context, d Destination, m Message) error {
	var n monitor.Notification
	if err := json.Unmarshal(m.Payload, &n); err != nil {
		return fmt.Errorf("decode queued notification %d: %w", m.Seq, err)
	}
	actx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	return d.Sender.Send(actx, &n, m)
}

// jitter spreads retries by up to a fifth, so destinations that failed
// together do not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

func (w *Worker) wait(ctx context.Context, dest string, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	var wake chan struct{}
	if dest != "" {
		wake = w.wake[dest]
	}
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}
