package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type getUsageArgs struct {
	DatabaseID string `json:"database_id,omitempty" jsonschema:"maxLength=64" jsonschema_description:"Omit for all databases." validate:"omitempty,max=64,ident"`
}

// GetUsage is get_usage (read-only).
func GetUsage(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "get_usage",
		title:       "Get usage",
		description: "Consumption this billing period against the tier's quotas, per metric with level ok/warning (80%)/critical (95%)/exceeded, plus branch and checkpoint counts.",
		hints:       readOnly(),
	}, func(ctx context.Context, a *getUsageArgs) (*guard.UsageResult, error) {
		return d.Guard.GetUsage(ctx, guard.DatabaseInput{DatabaseID: a.DatabaseID})
	})
}
