package drainpipe

import (
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
