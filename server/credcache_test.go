package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/drainpipe/drainpipe"
)

// credStore answers VerifyDrain from a map, or fails with down.
type credStore struct {
	Store
	pairs map[string]string // app → "user:secret"
	down  error
	calls int
}

func (s *credStore) VerifyDrain(_ context.Context, app, user, secret string) error {
	s.calls++
	if s.down != nil {
		return s.down
	}
	p, ok := s.pairs[app]
	if !ok {
		return drainpipe.ErrNotFound
	}
	if p != user+":"+secret {
		return drainpipe.ErrUnauthorized
	}
	return nil
}

func TestCredentialCache(t *testing.T) {
	ctx := context.Background()
	st := &credStore{pairs: map[string]string{"shop": "u:s"}}
	c := NewCredentialCache(st, time.Minute)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }

	if err := c.VerifyDrain(ctx, "shop", "u", "s"); err != nil {
		t.Fatal(err)
	}
	if err := c.VerifyDrain(ctx, "shop", "u", "s"); err != nil || st.calls != 1 {
		t.Fatalf("second verify within the refresh: err %v, store asked %d times, want once", err, st.calls)
	}
	if err := c.VerifyDrain(ctx, "shop", "u", "wrong"); !errors.Is(err, drainpipe.ErrUnauthorized) {
		t.Fatalf("wrong secret: %v", err)
	}

	st.down = errors.New("connection refused")
	now = now.Add(time.Hour)
	if err := c.VerifyDrain(ctx, "shop", "u", "s"); err != nil {
		t.Errorf("store down, pair verified before: %v, want accepted", err)
	}
	if err := c.VerifyDrain(ctx, "shop", "u", "wrong"); err == nil {
		t.Error("store down: an unverified secret was accepted")
	}
	if err := c.VerifyDrain(ctx, "other", "u", "s"); err == nil {
		t.Error("store down: an app never verified was accepted")
	}

	st.down = nil
	st.pairs["shop"] = "u:rotated"
	if err := c.VerifyDrain(ctx, "shop", "u", "s"); !errors.Is(err, drainpipe.ErrUnauthorized) {
		t.Fatalf("after the refresh, a rotated secret: %v", err)
	}
	st.down = errors.New("connection refused")
	if err := c.VerifyDrain(ctx, "shop", "u", "s"); err == nil {
		t.Error("a pair the store refused was still accepted while the store is down")
	}
}
