package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
	"github.com/drainpipe/drainpipe/metrics"
)

// Events keeps the newest events when there are more than its limit, and
// returns them oldest first.
func TestEventsKeepsTheNewestOldestFirst(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	s.eventsLimit = 4

	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f := &metrics.Flush{Position: 1}
	for i := range 6 {
		f.Events = append(f.Events, drainpipe.Event{Time: t0.Add(time.Duration(i) * time.Second), App: "a",
			Kind: drainpipe.EventRestart, ProcessType: "web", Dyno: "web.1", Detail: fmt.Sprint("e", i)})
	}
	// Two events at the same instant keep their insertion order.
	f.Events = append(f.Events, drainpipe.Event{Time: t0.Add(5 * time.Second), App: "a", Kind: drainpipe.EventDeploy, Detail: "e6"})
	f.Events = append(f.Events, drainpipe.Event{Time: t0.Add(3 * time.Second), App: "b", Kind: drainpipe.EventDeploy, Detail: "other app"})
	if err := s.Apply(ctx, f); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(ctx, "a", t0, t0.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Detail)
	}
	if want := "[e3 e4 e5 e6]"; fmt.Sprint(got) != want {
		t.Fatalf("events = %v, want %s", got, want)
	}
	if !evs[0].Time.Equal(t0.Add(3*time.Second)) || evs[0].Dyno != "web.1" || evs[3].Kind != drainpipe.EventDeploy {
		t.Fatalf("events = %+v", evs)
	}

	// Within the limit, everything comes back, oldest first.
	s.eventsLimit = 100
	evs, err = s.Events(ctx, "a", t0.Add(time.Second), t0.Add(4*time.Second), "")
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, e := range evs {
		got = append(got, e.Detail)
	}
	if want := "[e1 e2 e3]"; fmt.Sprint(got) != want {
		t.Fatalf("window events = %v, want %s", got, want)
	}
}

// A flush's events go in by eventsPerInsert at a time: more than one
// statement's worth, with a partial last one, all arrive intact and in
// order (events at the same instant keep their insertion order).
func TestManyEventsInOneFlush(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	n := 2*eventsPerInsert + 7
	f := &metrics.Flush{Position: 1}
	for i := range n {
		f.Events = append(f.Events, drainpipe.Event{Time: t0.Add(time.Duration(i/3) * time.Millisecond), App: "a",
			Kind: drainpipe.EventError, ProcessType: "web", Dyno: fmt.Sprint("web.", i%5), Code: "R14", Detail: fmt.Sprint("e", i)})
	}
	if err := s.Apply(ctx, f); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(ctx, "a", t0, t0.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Fatalf("%d events stored, want %d", len(evs), n)
	}
	for i, e := range evs {
		if e.Detail != fmt.Sprint("e", i) || e.Dyno != fmt.Sprint("web.", i%5) || e.Code != "R14" || e.Kind != drainpipe.EventError ||
			!e.Time.Equal(t0.Add(time.Duration(i/3)*time.Millisecond)) {
			t.Fatalf("event %d = %+v", i, e)
		}
	}
}
