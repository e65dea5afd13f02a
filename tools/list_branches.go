package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type listBranchesArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
}

// ListBranches is list_branches (read-only).
func ListBranches(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "list_branches",
		title:       "List branches",
		description: "List a database's branches (main, dev, backup) with expiry and endpoint state, and the tier's branch limit.",
		hints:       readOnly(),
	}, func(ctx context.Context, a *listBranchesArgs) (*guard.ListBranchesResult, error) {
		return d.Guard.ListBranches(ctx, guard.DatabaseInput{DatabaseID: a.DatabaseID})
	})
}
