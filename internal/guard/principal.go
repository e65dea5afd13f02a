package guard

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/neonguard/neonguard/internal/policy"
)

// Principal is who calls: the tenant always comes from the credential (or, over stdio, from
// configuration), never from tool arguments.
type Principal struct {
	TenantID string
	Scopes   []string
}

// ScopeAdmin is the operator scope: it shows the admin tool set (tenants, tokens).
const ScopeAdmin = "admin"

// HasScope reports whether the principal holds scope.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

type principalKey struct{}

// ContextWithPrincipal attaches p to ctx.
func ContextWithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal attached to ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok && p.TenantID != ""
}

// Code is a decision code of DESIGN.md §4.
type Code = policy.Code

// Error is a failure the agent can act on: a policy denial, bad input, or an upstream failure
// after retries. Message and Hint are safe to show (no keys, passwords or other tenants' data);
// Err is the internal cause, for logs only.
type Error struct {
	Code    Code
	Message string
	Hint    string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// AsError returns the *Error in err's chain, or nil.
func AsError(err error) *Error {
	var ge *Error
	if errors.As(err, &ge) {
		return ge
	}
	return nil
}

func denied(d policy.Decision) *Error {
	return &Error{Code: d.Code, Message: d.Reason, Hint: d.Hint}
}

func invalid(msg, hint string) *Error {
	return &Error{Code: policy.InvalidArgument, Message: msg, Hint: hint}
}
