// Package policy decides, before Neon is called, whether a tool call fits the
// caller's tier. It is pure: every function takes the tier, the current state
// (read by the caller under the database lock) and the request, and returns a
// Decision. Nothing here does I/O, so every rule is table-tested in isolation.
//
// A denial carries a Code the agent can branch on, a Reason saying what limit
// was hit, and a Hint naming the objects, numbers and tool arguments that get
// the agent unstuck.
package policy

import "slices"

// Code classifies a decision or failure for the agent. The values are part of
// the tool contract (DESIGN.md §3, §4): never rename them.
type Code string

// Decision codes. Policy functions produce the first seven; NotFound,
// RateLimited and Upstream are produced by other layers but live here so the
// whole vocabulary is in one place.
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
)

// Denial reports whether c refuses a call for a reason the caller can act on (a policy decision,
// bad input, an unknown database, a rate limit), as opposed to a failure (Upstream, or a code
// outside this vocabulary). The audit records denials as such.
func (c Code) Denial() bool {
	return c != Upstream && slices.Contains(Codes(), c)
}

// Codes lists every Code, for documentation and exhaustive tests.
func Codes() []Code {
	return []Code{BranchLimit, SnapshotLimit, RestoreWindow, ComputeRange, QuotaExceeded,
		DatabaseLimit, NotFound, InvalidArgument, RateLimited, Upstream}
}

// Decision is the outcome of a policy check. When Allow is false, Code,
// Reason and Hint are set; Reason and Hint are written for an AI agent:
// short, exact and actionable.
type Decision struct {
	Allow  bool
	Code   Code
	Reason string
	Hint   string
}

// Allowed returns a Decision that lets the call proceed.
func Allowed() Decision { return Decision{Allow: true} }

// Deny returns a Decision that refuses the call with the given code, reason
// and hint.
func Deny(code Code, reason, hint string) Decision {
	return Decision{Code: code, Reason: reason, Hint: hint}
}

// String renders the decision for logs and audit records.
func (d Decision) String() string {
	if d.Allow {
		return "allow"
	}
	s := "deny " + string(d.Code) + ": " + d.Reason
	if d.Hint != "" {
		s += " (hint: " + d.Hint + ")"
	}
	return s
}
