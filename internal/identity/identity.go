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
	// ReadOnly caps the principal at reading whatever its scopes: the server sets it on every
	// principal of a read-only deployment (serve --read-only, access: read-only).
	ReadOnly bool
}

// The scopes. A credential's access is its highest scope: read < write < admin. A credential
// with none writes (the default, and what every token was before scopes existed).
const (
	// ScopeRead may call only the tools annotated read-only; run_sql only reads.
	ScopeRead = "read"
	// ScopeWrite may call every agent tool: the default of a credential without scopes.
	ScopeWrite = "write"
	// ScopeAdmin is the operator scope: every agent tool and the admin tool set (tenants,
	// tokens, tiers).
	ScopeAdmin = "admin"
)

// Scopes are the scopes a credential may carry.
var Scopes = []string{ScopeRead, ScopeWrite, ScopeAdmin}

// CanWrite reports whether the principal may change things: false for a read-only deployment's
// principals and for a credential whose highest scope is read.
func (p Principal) CanWrite() bool {
	if p.ReadOnly {
		return false
	}
	return p.HasScope(ScopeWrite) || p.HasScope(ScopeAdmin) || !p.HasScope(ScopeRead)
}

// ReadOnlyReason says, for the hint of a refusal, why a principal that cannot write may only
// read and what would let it write.
func (p Principal) ReadOnlyReason() string {
	if p.ReadOnly {
		return "this server is read-only (serve --read-only, or access: read-only in its configuration): only tools annotated read-only can be called"
	}
	return "this token has only the read scope: writes need a token with the write scope (neonguard tenant token create TENANT --scope write)"
}

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
