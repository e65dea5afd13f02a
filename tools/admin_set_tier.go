package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/operator"
)

type adminSetTierArgs struct {
	Tenant string `json:"tenant" jsonschema:"minLength=1,maxLength=63" validate:"required,max=63"`
	Tier   string `json:"tier" jsonschema:"minLength=1,maxLength=64" jsonschema_description:"A configured tier, e.g. free or pro." validate:"required,max=64,ident"`
	Force  bool   `json:"force,omitempty" jsonschema_description:"Change the tier even when databases exceed the target tier's limits (default false: refused with a report)."`
}

// AdminSetTier is admin_set_tier (admin scope): a durable, resumable tier-change job.
func AdminSetTier(d Deps) server.ServerTool {
	return newTool(d, def{
		name:  "admin_set_tier",
		title: "Change a tenant's tier (admin)",
		description: "Move a tenant to another tier: its databases' Neon projects move to the tier's org and get the tier's quotas, compute range, " +
			"suspend timeout and restore window, then the tenant's tier is set. Runs as a durable job and returns it with its steps. " +
			"A downgrade whose databases exceed the target tier (branches, checkpoints, this period's usage) is refused with INVALID_ARGUMENT naming each database, " +
			"what exceeds and by how much, unless force=true. A failed job is kept: calling again with the same tier resumes it.",
		hints:    hints{readOnly: false, destructive: true, idempotent: true},
		progress: true,
	}, adminCall(func(ctx context.Context, a *adminSetTierArgs) (*operator.Job, error) {
		return d.Admin.SetTier(ctx, a.Tenant, a.Tier, a.Force)
	}))
}
