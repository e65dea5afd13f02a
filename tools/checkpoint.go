package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type checkpointArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	Name       string `json:"name" jsonschema:"minLength=1,maxLength=64,pattern=^[A-Za-z0-9][A-Za-z0-9._-]*$" jsonschema_description:"Checkpoint name, e.g. before-auth." validate:"required,max=64,ident"`
	Replace    bool   `json:"replace,omitempty" jsonschema:"default=false" jsonschema_description:"At the limit, delete the oldest checkpoint first." validate:"-"`
}

// Checkpoint is checkpoint. Destructive because replace=true deletes the oldest checkpoint;
// not idempotent because each call makes a new snapshot.
func Checkpoint(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "checkpoint",
		title:       "Checkpoint database",
		description: "Save a named snapshot of the database's main branch to restore later. At the tier's checkpoint limit it fails with SNAPSHOT_LIMIT unless replace=true, which deletes the oldest first.",
		hints:       hints{readOnly: false, destructive: true, idempotent: false},
		progress:    true,
	}, func(ctx context.Context, a *checkpointArgs) (*guard.CheckpointResult, error) {
		return d.Guard.Checkpoint(ctx, guard.CheckpointInput{DatabaseID: a.DatabaseID, Name: a.Name, Replace: a.Replace})
	})
}
