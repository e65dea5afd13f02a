package guard

import (
	"context"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/identity"
)

// requireWrite refuses a write by a principal that may only read (a read token, or any
// principal of a read-only server). The server refuses such a principal's calls of tools that
// write before they get here; this is for the use cases that write only when asked (run_sql),
// checked on the decoded input.
func requireWrite(ctx context.Context, what string) error {
	p, ok := identity.FromContext(ctx)
	if !ok || p.CanWrite() {
		return nil // no principal: caller() has refused already
	}
	return errcode.New(errcode.Forbidden, what+" writes, and you may only read",
		"leave read_only out (it defaults to true) to read; "+p.ReadOnlyReason())
}
