package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type deleteDevBranchArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	Branch     string `json:"branch" jsonschema:"minLength=1,maxLength=256" jsonschema_description:"Dev or backup branch name or id (list_branches)." validate:"required,max=256,ref"`
}

// DeleteDevBranch is delete_dev_branch: destructive, and idempotent (deleting a branch that is
// already gone succeeds with deleted=false).
func DeleteDevBranch(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "delete_dev_branch",
		title:       "Delete dev branch",
		description: "Delete a dev or backup branch to free a branch slot; main cannot be deleted. Already gone returns deleted=false.",
		hints:       hints{readOnly: false, destructive: true, idempotent: true},
	}, func(ctx context.Context, a *deleteDevBranchArgs) (*guard.DeleteBranchResult, error) {
		return d.Guard.DeleteDevBranch(ctx, guard.DeleteBranchInput{DatabaseID: a.DatabaseID, Branch: a.Branch})
	})
}
