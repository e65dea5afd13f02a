package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type undoMigrationArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	Version    int64  `json:"version" jsonschema:"minimum=1" jsonschema_description:"Migration version (list_migrations)." validate:"required,min=1"`
	Branch     string `json:"branch,omitempty" jsonschema:"maxLength=256,default=main" jsonschema_description:"Branch name or id (list_branches)." validate:"omitempty,max=256,ref"`
	Confirm    bool   `json:"confirm,omitempty" jsonschema_description:"Also undo the migrations applied after it." validate:"-"`
}

// UndoMigration is undo_migration: an in-place restore like undo_to_time, hence destructive and
// not idempotent.
func UndoMigration(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "undo_migration",
		title:       "Undo migration",
		description: "Restore the branch in place to just before a migration (undo_to_time to its restore point; backup branch kept, connection string unchanged); later migrations are undone too and need confirm=true.",
		hints:       hints{readOnly: false, destructive: true, idempotent: false},
	}, func(ctx context.Context, a *undoMigrationArgs) (*guard.UndoMigrationResult, error) {
		return d.Guard.UndoMigration(ctx, guard.UndoMigrationInput{DatabaseID: a.DatabaseID, Version: a.Version,
			Branch: mainAsDefault(a.Branch), Confirm: a.Confirm})
	})
}

func (a *undoMigrationArgs) confirmByUser() { a.Confirm = true }
