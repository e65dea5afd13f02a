package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type describeLimitsArgs struct{}

// DescribeLimits is describe_limits (read-only).
func DescribeLimits(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "describe_limits",
		title:       "Describe limits",
		description: "Your tier and all its limits (databases, branches, checkpoints, restore window, compute, TTLs, quotas); call it first to plan.",
		hints:       readOnly(),
	}, func(ctx context.Context, _ *describeLimitsArgs) (*guard.Limits, error) {
		return d.Guard.DescribeLimits(ctx)
	})
}
