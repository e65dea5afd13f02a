package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type restoreCheckpointArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	Checkpoint string `json:"checkpoint" jsonschema:"minLength=1,maxLength=64" jsonschema_description:"Checkpoint name or id (list_checkpoints)." validate:"required,max=64,ident"`
}

// RestoreCheckpoint is restore_checkpoint: it replaces the main branch's data, hence
// destructive; the replaced branch is kept as a backup, so it is not idempotent either (each
// call leaves one more backup branch).
func RestoreCheckpoint(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "restore_checkpoint",
		title:       "Restore checkpoint",
		description: "Replace the main branch's data with a checkpoint; the connection string is unchanged and the replaced branch is kept as a backup (counts toward the branch limit).",
		hints:       hints{readOnly: false, destructive: true, idempotent: false},
		progress:    true,
	}, func(ctx context.Context, a *restoreCheckpointArgs) (*guard.RestoreCheckpointResult, error) {
		return d.Guard.RestoreCheckpoint(ctx, guard.RestoreCheckpointInput{DatabaseID: a.DatabaseID, Checkpoint: a.Checkpoint})
	})
}
