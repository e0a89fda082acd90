package drainpipe

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
)

// NewCredentials returns fresh random credentials for an app: a drain
// user name, a 32-byte drain secret and a 32-byte API token ("dpa_…").
// Stores keep only HashSecret of the secret and the token: with 32 random
// bytes there is nothing to brute-force, so no slow KDF is needed.
func NewCredentials() (Credentials, error) {
	user, err := randomToken(9)
	if err != nil {
		return Credentials{}, err
	}
	secret, err := randomToken(32)
	if err != nil {
		return Credentials{}, err
	}
	token, err := randomToken(32)
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{
		DrainUser:   "u" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(user)),
		DrainSecret: secret,
		APIToken:    "dpa_" + token,
	}, nil
}

// HashSecret is what a store keeps of a drain secret or an API token: its
// SHA-256 in hex.
func HashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// DrainPairMatches compares a presented drain user and secret with the
// stored user and secret hash, in constant time.
func DrainPairMatches(user, secret, storedUser, storedSecretHash string) bool {
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(storedUser)) == 1
	secretOK := subtle.ConstantTimeCompare([]byte(HashSecret(secret)), []byte(storedSecretHash)) == 1
	return userOK && secretOK
}

// DrainAuths caches each app's drain user and secret hash, which never
// change once the app exists, so that a store checks a drain's basic-auth
// pair without a query per request. The zero value is ready to use.
type DrainAuths struct {
	mu sync.Mutex
	m  map[string]drainAuth
}

type drainAuth struct {
	user       string
	secretHash string
}

// Verify checks a drain's user and secret for app against the stored pair,
// in constant time, calling lookup for the stored user and secret hash the
// first time it sees app. lookup's error is returned as it is (wrapping
// ErrNotFound for an unknown app); a pair that does not match gives
// ErrUnauthorized.
func (c *DrainAuths) Verify(ctx context.Context, app, user, secret string, lookup func(ctx context.Context, app string) (storedUser, storedSecretHash string, err error)) error {
	c.mu.Lock()
	a, ok := c.m[app]
	c.mu.Unlock()
	if !ok {
		var err error
		if a.user, a.secretHash, err = lookup(ctx, app); err != nil {
			return err
		}
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]drainAuth{}
		}
		c.m[app] = a
		c.mu.Unlock()
	}
	if !DrainPairMatches(user, secret, a.user, a.secretHash) {
		return fmt.Errorf("app %q: %w", app, ErrUnauthorized)
	}
	return nil
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
