// Package policy decides, before Neon is called, whether a tool call fits the
// caller's tier. It is pure: every function takes the tier, the current state
// (read by the caller under the database lock) and the request, and returns a
// Decision. Nothing here does I/O, so every rule is table-tested in isolation.
//
// A denial carries a Code the agent can branch on, a Reason saying what limit
// was hit, and a Hint naming the objects, numbers and tool arguments that get
// the agent unstuck.
package policy

import "github.com/neonguard/neonguard/internal/errcode"

// Decision is the outcome of a policy check. When Allow is false, Code,
// Reason and Hint are set; Reason and Hint are written for an AI agent:
// short, exact and actionable.
type Decision struct {
	Allow  bool
	Code   errcode.Code
	Reason string
	Hint   string
}

// Allowed returns a Decision that lets the call proceed.
func Allowed() Decision { return Decision{Allow: true} }

// Deny returns a Decision that refuses the call with the given code, reason
// and hint.
func Deny(code errcode.Code, reason, hint string) Decision {
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
