package store

import (
	"context"
	"sync"
	"time"
)

// TenantCache is a Store whose GetTenant answers from memory for up to TTL. Every tool call
// reads its tenant (for the tier) once in the rate limiter and once in the guard, and on a
// busy endpoint those reads were a large share of a read-only call's cost. Changes made
// through this Store (EnsureTenant, SetTenantTier) drop the entry at once; a change made by
// another replica is seen within TTL.
type TenantCache struct {
	Store
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cachedTenant
}

type cachedTenant struct {
	t       Tenant
	expires time.Time
}

// maxCachedTenants bounds the map; past it, the cache is simply emptied (cheap, and rare:
// it takes that many distinct tenants within one TTL).
const maxCachedTenants = 10000

// NewTenantCache wraps st. A ttl of zero or less returns st unchanged.
func NewTenantCache(st Store, ttl time.Duration) Store {
	if ttl <= 0 {
		return st
	}
	return &TenantCache{Store: st, ttl: ttl, now: time.Now, entries: make(map[string]cachedTenant)}
}

// GetTenant implements Store. Only found tenants are cached, so a tenant created elsewhere is
// usable at once.
func (c *TenantCache) GetTenant(ctx context.Context, id string) (Tenant, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.t, nil
	}
	t, err := c.Store.GetTenant(ctx, id)
	if err != nil {
		return t, err
	}
	c.mu.Lock()
	if len(c.entries) >= maxCachedTenants {
		clear(c.entries)
	}
	c.entries[id] = cachedTenant{t: t, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return t, nil
}

// EnsureTenant implements Store.
func (c *TenantCache) EnsureTenant(ctx context.Context, id, tier string) (Tenant, error) {
	c.forget(id)
	return c.Store.EnsureTenant(ctx, id, tier)
}

// SetTenantTier implements Store.
func (c *TenantCache) SetTenantTier(ctx context.Context, id, tier string) error {
	c.forget(id)
	err := c.Store.SetTenantTier(ctx, id, tier)
	c.forget(id) // a GetTenant racing with the update may have cached the old tier
	return err
}

func (c *TenantCache) forget(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}
