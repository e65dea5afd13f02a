package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type applyMigrationArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	Name       string `json:"name" jsonschema:"minLength=1,maxLength=64,pattern=^[A-Za-z0-9][A-Za-z0-9._-]*$" jsonschema_description:"Unique name, e.g. 0003_add_orders." validate:"required,max=64,ident"`
	SQL        string `json:"sql" jsonschema:"minLength=1,maxLength=100000" jsonschema_description:"The migration; all statements run in one transaction. No BEGIN/COMMIT." validate:"required,max=100000"`
	Branch     string `json:"branch,omitempty" jsonschema:"maxLength=256,default=main" jsonschema_description:"Branch name or id (list_branches)." validate:"omitempty,max=256,ref"`
	Confirm    bool   `json:"confirm,omitempty" jsonschema_description:"Run its destructive statements (DROP, TRUNCATE, …) on main." validate:"-"`
	DryRun     bool   `json:"dry_run,omitempty" jsonschema_description:"Rehearse on a temporary copy of the branch (takes a branch slot; deleted after). A failure is INVALID_ARGUMENT." validate:"-"`
}

// ApplyMigration is apply_migration: it changes the schema (destructive at worst), and the
// same name and SQL a second time does nothing, so it is idempotent.
func ApplyMigration(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "apply_migration",
		title:       "Apply migration",
		description: "Apply a named SQL migration to a branch (main by default) in one transaction and record it in the branch's ledger with a restore point; the same name and SQL again does nothing, other SQL under the same name is refused.",
		hints:       hints{readOnly: false, destructive: true, idempotent: true},
		progress:    true,
	}, func(ctx context.Context, a *applyMigrationArgs) (*guard.ApplyMigrationResult, error) {
		return d.Guard.ApplyMigration(ctx, guard.ApplyMigrationInput{DatabaseID: a.DatabaseID, Name: a.Name, SQL: a.SQL,
			Branch: mainAsDefault(a.Branch), Confirm: a.Confirm, DryRun: a.DryRun})
	})
}

func (a *applyMigrationArgs) confirmByUser() { a.Confirm = true }
