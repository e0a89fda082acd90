package drainpipe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestNewCredentials(t *testing.T) {
	a, err := NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || a.DrainSecret == b.DrainSecret || a.APIToken == b.APIToken {
		t.Fatalf("two calls gave shared values: %+v %+v", a, b)
	}
	if !strings.HasPrefix(a.DrainUser, "u") || strings.ToLower(a.DrainUser) != a.DrainUser || strings.ContainsAny(a.DrainUser, "-_") {
		t.Errorf("drain user %q: want lower case letters and digits after a 'u'", a.DrainUser)
	}
	if len(a.DrainSecret) != 43 || !strings.HasPrefix(a.APIToken, "dpa_") || len(a.APIToken) != 47 {
		t.Errorf("secret %q / token %q: want 32 random bytes each, base64url", a.DrainSecret, a.APIToken)
	}
}

func TestDrainPairMatches(t *testing.T) {
	cr, err := NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	h := HashSecret(cr.DrainSecret)
	if h != HashSecret(cr.DrainSecret) || len(h) != 64 || h == HashSecret(cr.APIToken) {
		t.Fatalf("HashSecret is not a stable hex SHA-256: %q", h)
	}
	for _, tc := range []struct {
		user, secret string
		want         bool
	}{
		{cr.DrainUser, cr.DrainSecret, true},
		{cr.DrainUser, cr.DrainSecret + "x", false},
		{cr.DrainUser + "x", cr.DrainSecret, false},
		{"", "", false},
		{cr.DrainUser, h, false}, // the hash itself is not the secret
	} {
		if got := DrainPairMatches(tc.user, tc.secret, cr.DrainUser, h); got != tc.want {
			t.Errorf("DrainPairMatches(%q, %q) = %v, want %v", tc.user, tc.secret, got, tc.want)
		}
	}
}

func TestDrainAuthsLooksUpOnce(t *testing.T) {
	ctx := context.Background()
	var c DrainAuths
	calls := 0
	lookup := func(_ context.Context, app string) (string, string, error) {
		calls++
		if app != "web" {
			return "", "", fmt.Errorf("app %q: %w", app, ErrNotFound)
		}
		return "u1", HashSecret("s3cret"), nil
	}
	if err := c.Verify(ctx, "web", "u1", "s3cret", lookup); err != nil {
		t.Fatalf("good pair: %v", err)
	}
	if err := c.Verify(ctx, "web", "u1", "wrong", lookup); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong secret: got %v, want ErrUnauthorized", err)
	}
	if calls != 1 {
		t.Fatalf("lookup called %d times for one app, want 1", calls)
	}
	if err := c.Verify(ctx, "nope", "u1", "s3cret", lookup); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown app: got %v, want ErrNotFound", err)
	}
	if err := c.Verify(ctx, "nope", "u1", "s3cret", lookup); !errors.Is(err, ErrNotFound) || calls != 3 {
		t.Fatalf("unknown app again: got %v after %d lookups; a failed lookup must not be cached", err, calls)
	}
}
