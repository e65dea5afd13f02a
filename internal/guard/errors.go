package guard

import (
	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/policy"
)

// denied is the error of a policy decision that refuses the call.
func denied(d policy.Decision) *errcode.Error {
	return errcode.New(d.Code, d.Reason, d.Hint)
}

// invalid is the error of bad input.
func invalid(msg, hint string) *errcode.Error { return errcode.Invalid(msg, hint) }
