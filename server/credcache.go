package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"github.com/drainpipe/drainpipe"
)

// DefaultCredentialRefresh is how long a verified drain credential is
// trusted before the store is asked again.
const DefaultCredentialRefresh = time.Minute

// CredentialCache is a Store whose VerifyDrain remembers the drain
// credentials the store verified, so that ingest keeps accepting drains
// into the journal while the store is unreachable (PostgreSQL maintenance
// or failover in the scale-out mode). Within the refresh interval a known
// pair is accepted without asking the store; after it the store is asked
// again, and a pair it now refuses is forgotten. While the store cannot
// be asked at all, a pair it verified before is accepted however old; an
// unknown one gets the store's error (a 503, so Logplex retries).
//
// Only keyed hashes are kept (HMAC-SHA-256 under a key made at start), one
// per app. All other methods go to the wrapped Store.
type CredentialCache struct {
	Store
	refresh time.Duration
	now     func() time.Time
	key     [32]byte

	mu   sync.Mutex
	apps map[string]cachedCred
}

type cachedCred struct {
	mac      [sha256.Size]byte
	verified time.Time
}

// NewCredentialCache wraps st; refresh <= 0 means DefaultCredentialRefresh.
func NewCredentialCache(st Store, refresh time.Duration) *CredentialCache {
	if refresh <= 0 {
		refresh = DefaultCredentialRefresh
	}
	c := &CredentialCache{Store: st, refresh: refresh, now: time.Now, apps: map[string]cachedCred{}}
	_, _ = rand.Read(c.key[:])
	return c
}

func (c *CredentialCache) mac(app, user, secret string) [sha256.Size]byte {
	h := hmac.New(sha256.New, c.key[:])
	for _, s := range []string{app, user, secret} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// VerifyDrain checks a drain's basic-auth pair as described on
// CredentialCache.
func (c *CredentialCache) VerifyDrain(ctx context.Context, app, user, secret string) error {
	mac := c.mac(app, user, secret)
	c.mu.Lock()
	e, known := c.apps[app]
	c.mu.Unlock()
	known = known && hmac.Equal(e.mac[:], mac[:])
	if known && c.now().Sub(e.verified) < c.refresh {
		return nil
	}
	err := c.Store.VerifyDrain(ctx, app, user, secret)
	switch {
	case err == nil:
		c.mu.Lock()
		c.apps[app] = cachedCred{mac: mac, verified: c.now()}
		c.mu.Unlock()
		return nil
	case errors.Is(err, drainpipe.ErrNotFound), errors.Is(err, drainpipe.ErrUnauthorized):
		if known { // the store no longer takes this pair
			c.mu.Lock()
			delete(c.apps, app)
			c.mu.Unlock()
		}
		return err
	case known:
		return nil // the store is unreachable; it verified this pair before
	default:
		return err
	}
}
