package scaleout

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReachDetail(t *testing.T) {
	now := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	r := newReach("kafka", slog.New(slog.NewTextHandler(&logs, nil)))
	r.now = func() time.Time { return now }
	if err := r.health(context.Background()); err == nil || err.Error() != "kafka: not reached yet" {
		t.Errorf("health before any contact: %v", err)
	}
	if got, want := r.detail(), []string{"kafka_reachable 0"}; !slices.Equal(got, want) {
		t.Errorf("detail before any contact: %q, want %q", got, want)
	}

	r.observe(errors.New("dial tcp 127.0.0.1:9092: connection refused\nmore"))
	now = now.Add(2 * time.Second)
	r.observe(errors.New("dial tcp 127.0.0.1:9092: connection refused"))
	r.setNote("retrying")
	now = now.Add(1500 * time.Millisecond)
	if err := r.health(context.Background()); err == nil || err.Error() != "kafka unreachable since 2026-11-26T01:00:00Z: dial tcp 127.0.0.1:9092: connection refused" {
		t.Errorf("health while down: %v", err)
	}
	want := []string{
		"kafka_reachable 0",
		"kafka_checked_seconds_ago 1.5",
		"kafka_unreachable_since 2026-11-26T01:00:00Z",
		"kafka_error dial tcp 127.0.0.1:9092: connection refused",
		"kafka_state retrying",
	}
	if got := r.detail(); !slices.Equal(got, want) {
		t.Errorf("detail while down:\n%q\nwant\n%q", got, want)
	}
	if r.up() != 0 {
		t.Error("up while down")
	}

	r.setNote("")
	r.observe(nil)
	now = now.Add(time.Second)
	if err := r.health(context.Background()); err != nil {
		t.Errorf("health once up: %v", err)
	}
	if got, want := r.detail(), []string{"kafka_reachable 1", "kafka_checked_seconds_ago 1.0"}; !slices.Equal(got, want) {
		t.Errorf("detail once up: %q, want %q", got, want)
	}
	if r.up() != 1 {
		t.Error("not up once up")
	}
	// Changes of state are logged, once each.
	if got := logs.String(); strings.Count(got, `msg="kafka unreachable"`) != 1 || strings.Count(got, `msg="kafka reachable again" down_for=4s`) != 1 {
		t.Errorf("logs:\n%s", got)
	}
}

// TestReachProbe: the probe pings only when no other contact refreshed
// the outcome within the interval.
func TestReachProbe(t *testing.T) {
	r := newReach("store", slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	pings := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.probe(ctx, 200*time.Millisecond, time.Second, func(context.Context) error {
			pings <- struct{}{}
			return errors.New("down")
		})
	}()
	<-pings // at once: nothing known yet
	if r.health(ctx) == nil {
		t.Error("healthy after a failed ping")
	}
	// Traffic keeps the outcome fresh: no pings meanwhile.
	for range 50 {
		r.observe(nil)
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-pings:
		t.Error("pinged although the outcome was fresh")
	default:
	}
	<-pings // idle again: pinged
	cancel()
	<-done
}
