package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type listCheckpointsArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
}

// ListCheckpoints is list_checkpoints (read-only).
func ListCheckpoints(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "list_checkpoints",
		title:       "List checkpoints",
		description: "List a database's checkpoints, oldest first, and the tier's checkpoint limit.",
		hints:       readOnly(),
	}, func(ctx context.Context, a *listCheckpointsArgs) (*guard.ListCheckpointsResult, error) {
		return d.Guard.ListCheckpoints(ctx, guard.DatabaseInput{DatabaseID: a.DatabaseID})
	})
}
