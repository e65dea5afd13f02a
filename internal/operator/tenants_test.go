package operator_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neonguard/neonguard/internal/auth"
	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/operator"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

func newService(t *testing.T) *operator.Service {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &operator.Service{Store: st, Policy: policy.Default()}
}

func code(err error) string {
	if ge := errcode.As(err); ge != nil {
		return string(ge.Code)
	}
	return ""
}

func TestCreateTenant(t *testing.T) {
	ctx := context.Background()
	svc := newService(t)
	for _, id := range []string{"", "Acme", "a b", "-x", strings.Repeat("a", 64), "acme;drop"} {
		if _, err := svc.CreateTenant(ctx, id, "free"); code(err) != "INVALID_ARGUMENT" {
			t.Errorf("tenant id %q: %v, want INVALID_ARGUMENT", id, err)
		}
	}
	if _, err := svc.CreateTenant(ctx, "acme", "platinum"); code(err) != "INVALID_ARGUMENT" || !strings.Contains(errcode.As(err).Hint, "free, pro") {
		t.Fatalf("unknown tier: %v", err)
	}
	res, err := svc.CreateTenant(ctx, "acme", "free")
	if err != nil || !res.Created || res.Tenant.Tier != "free" {
		t.Fatalf("create: %+v %v", res, err)
	}
	res, err = svc.CreateTenant(ctx, "acme", "pro")
	if err != nil || res.Created || res.Tenant.Tier != "free" {
		t.Fatalf("re-create must keep the tier: %+v %v", res, err)
	}
	list, err := svc.ListTenants(ctx)
	if err != nil || len(list.Tenants) != 1 || list.Tenants[0].ID != "acme" {
		t.Fatalf("list: %+v %v", list, err)
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	svc := newService(t)
	if _, err := svc.CreateToken(ctx, "ghost", nil); code(err) != "NOT_FOUND" {
		t.Fatalf("token for a missing tenant: %v", err)
	}
	if _, err := svc.CreateTenant(ctx, "acme", "free"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateToken(ctx, "acme", []string{"root"}); code(err) != "INVALID_ARGUMENT" {
		t.Fatalf("unknown scope: %v", err)
	}
	tok, err := svc.CreateToken(ctx, "acme", []string{"admin", "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Secret, auth.Prefix) || len(tok.Token.Scopes) != 1 {
		t.Fatalf("token: %+v", tok)
	}
	// The secret authenticates as the tenant with its scope, and is not stored.
	a := &auth.Authenticator{Store: svc.Store}
	p, err := a.Authenticate(ctx, "Bearer "+tok.Secret)
	if err != nil || p.TenantID != "acme" || !p.HasScope(identity.ScopeAdmin) {
		t.Fatalf("authenticate: %+v %v", p, err)
	}
	list, err := svc.ListTokens(ctx, "acme")
	if err != nil || len(list.Tokens) != 1 || list.Tokens[0].ID != tok.Token.ID {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := svc.RevokeToken(ctx, "acme", "tok_nope"); code(err) != "NOT_FOUND" {
		t.Fatalf("revoke unknown: %v", err)
	}
	rev, err := svc.RevokeToken(ctx, "acme", tok.Token.ID)
	if err != nil || rev.Token.RevokedAt == nil {
		t.Fatalf("revoke: %+v %v", rev, err)
	}
	if _, err := a.Authenticate(ctx, "Bearer "+tok.Secret); err == nil {
		t.Fatal("a revoked token still authenticates")
	}
}
