package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// countingTenants counts GetTenant calls that reach the real store.
type countingTenants struct {
	Store
	gets int
}

func (c *countingTenants) GetTenant(ctx context.Context, id string) (Tenant, error) {
	c.gets++
	return c.Store.GetTenant(ctx, id)
}

func TestTenantCache(t *testing.T) {
	ctx := context.Background()
	base, _ := openTest(t)
	inner := &countingTenants{Store: base}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := NewTenantCache(inner, 2*time.Second)
	st.(*TenantCache).now = func() time.Time { return now }

	if _, err := st.EnsureTenant(ctx, "acme", "free"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if tn, err := st.GetTenant(ctx, "acme"); err != nil || tn.Tier != "free" {
			t.Fatalf("GetTenant = %+v, %v", tn, err)
		}
	}
	if inner.gets != 1 {
		t.Fatalf("%d reads reached the store within the TTL, want 1", inner.gets)
	}
	// A change through the cache is seen at once.
	if err := st.SetTenantTier(ctx, "acme", "pro"); err != nil {
		t.Fatal(err)
	}
	if tn, _ := st.GetTenant(ctx, "acme"); tn.Tier != "pro" {
		t.Fatalf("tier after SetTenantTier = %q", tn.Tier)
	}
	// A change by another replica (straight to the store) is seen once the TTL passed.
	if err := base.SetTenantTier(ctx, "acme", "free"); err != nil {
		t.Fatal(err)
	}
	if tn, _ := st.GetTenant(ctx, "acme"); tn.Tier != "pro" {
		t.Fatalf("within the TTL the cached tier stays: %q", tn.Tier)
	}
	now = now.Add(3 * time.Second)
	if tn, _ := st.GetTenant(ctx, "acme"); tn.Tier != "free" {
		t.Fatalf("after the TTL: tier %q, want free", tn.Tier)
	}
	// Unknown tenants are not cached: one created elsewhere is usable at once.
	if _, err := st.GetTenant(ctx, "newco"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	if _, err := base.EnsureTenant(ctx, "newco", "free"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetTenant(ctx, "newco"); err != nil {
		t.Fatalf("tenant created elsewhere: %v", err)
	}
	if NewTenantCache(base, 0) != Store(base) {
		t.Fatal("a zero TTL must return the store itself")
	}
}
