package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type listMigrationsArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	Branch     string `json:"branch,omitempty" jsonschema:"maxLength=256,default=main" jsonschema_description:"Branch name or id (list_branches)." validate:"omitempty,max=256,ref"`
}

// ListMigrations is list_migrations: a read.
func ListMigrations(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "list_migrations",
		title:       "List migrations",
		description: "List the migrations applied to a branch (main by default), oldest first, each with its restore point.",
		hints:       hints{readOnly: true, destructive: false, idempotent: true},
	}, func(ctx context.Context, a *listMigrationsArgs) (*guard.ListMigrationsResult, error) {
		return d.Guard.ListMigrations(ctx, guard.DatabaseBranchInput{DatabaseID: a.DatabaseID, Branch: mainAsDefault(a.Branch)})
	})
}
