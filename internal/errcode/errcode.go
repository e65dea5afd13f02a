// Package errcode owns the error vocabulary of the tool contract (DESIGN.md §3, §4): every code
// an agent or a client can see, and the one error type that carries a code with a message and
// a hint. Policy decisions, the use cases, the tools and the transports all use it, so a code
// is defined once. Standard library only.
package errcode

import (
	"errors"
	"fmt"
	"slices"
)

// Code classifies a failure for the agent. The values are part of the tool contract: never
// rename them.
type Code string

// The codes an agent acts on: policy decisions, bad input, unknown objects, limits, Neon.
const (
	BranchLimit     Code = "BRANCH_LIMIT"
	SnapshotLimit   Code = "SNAPSHOT_LIMIT"
	RestoreWindow   Code = "RESTORE_WINDOW"
	ComputeRange    Code = "COMPUTE_RANGE"
	QuotaExceeded   Code = "QUOTA_EXCEEDED"
	DatabaseLimit   Code = "DATABASE_LIMIT"
	NotFound        Code = "NOT_FOUND" // also for another tenant's database: never reveal it exists
	InvalidArgument Code = "INVALID_ARGUMENT"
	RateLimited     Code = "RATE_LIMITED"
	Upstream        Code = "UPSTREAM" // Neon failed after retries
	// ConfirmationRequired: a destructive statement on main needs confirm:true.
	ConfirmationRequired Code = "CONFIRMATION_REQUIRED"
	// Forbidden: the caller may only read (a token with the read scope, or a read-only
	// server) and the call would write; the hint says which scope it needs.
	Forbidden Code = "FORBIDDEN"
)

// Codes of the transports and of failures that are not the agent's to act on.
const (
	Unavailable     Code = "UNAVAILABLE"     // the server is shutting down: retry
	Unauthenticated Code = "UNAUTHENTICATED" // a call without a principal
	Internal        Code = "INTERNAL"        // a bug: a contract was broken
)

// Codes lists the codes an agent acts on, for documentation and exhaustive tests.
func Codes() []Code {
	return []Code{BranchLimit, SnapshotLimit, RestoreWindow, ComputeRange, QuotaExceeded,
		DatabaseLimit, NotFound, InvalidArgument, RateLimited, Upstream, ConfirmationRequired, Forbidden}
}

// Denial reports whether c refuses a call for a reason the caller can act on (a policy decision,
// bad input, an unknown database, a rate limit), as opposed to a failure (Upstream, or a code
// outside this vocabulary). The audit records denials as such.
func (c Code) Denial() bool {
	return c != Upstream && slices.Contains(Codes(), c)
}

// Error is a failure the agent can act on: a policy denial, bad input, or an upstream failure
// after retries. Message and Hint are safe to show (no keys, passwords or other tenants' data);
// Err is the internal cause, for logs only.
type Error struct {
	Code    Code
	Message string
	Hint    string
	Err     error
}

// New returns an Error without a cause.
func New(code Code, message, hint string) *Error {
	return &Error{Code: code, Message: message, Hint: hint}
}

// Invalid is the error of bad input.
func Invalid(message, hint string) *Error { return New(InvalidArgument, message, hint) }

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// As returns the *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
