// Package identity is who calls: the principal (a tenant and its scopes) and how it travels in
// a context. It is standard library only, so the transports (server), the credentials (auth),
// the tools and the use cases (guard) share it without importing each other.
package identity

import (
	"context"
	"slices"
)

// Principal is who calls: the tenant always comes from the credential (or, over stdio, from
// configuration), never from tool arguments.
type Principal struct {
	TenantID string
	Scopes   []string
}

// ScopeAdmin is the operator scope: it shows the admin tool set (tenants, tokens, tiers).
const ScopeAdmin = "admin"

// Scopes are the scopes a credential may carry.
var Scopes = []string{ScopeAdmin}

// ValidScope reports whether s is a known scope.
func ValidScope(s string) bool { return slices.Contains(Scopes, s) }

// HasScope reports whether the principal holds scope.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

type principalKey struct{}

// NewContext attaches p to ctx.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal attached to ctx; false when there is none or it names no
// tenant.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok && p.TenantID != ""
}
