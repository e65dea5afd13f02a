package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type runSQLArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	SQL        string `json:"sql" jsonschema:"minLength=1,maxLength=100000" jsonschema_description:"One or more SQL statements; they run in one transaction (all or nothing). No BEGIN/COMMIT." validate:"required,max=100000"`
	Params     []any  `json:"params,omitempty" jsonschema:"maxItems=100" jsonschema_description:"Values for $1, $2, … (one statement only)." validate:"omitempty,max=100"`
	Branch     string `json:"branch,omitempty" jsonschema:"maxLength=256,default=main" jsonschema_description:"Branch name or id (list_branches)." validate:"omitempty,max=256,ref"`
	// ReadOnly is a pointer so that an absent argument can default to true.
	ReadOnly *bool `json:"read_only,omitempty" jsonschema:"default=true" jsonschema_description:"Run in a READ ONLY transaction; false to write (a write on main returns a restore point)." validate:"-"`
	Confirm  bool  `json:"confirm,omitempty" jsonschema_description:"Run destructive statements (DROP, TRUNCATE, DELETE/UPDATE without WHERE, …) on main." validate:"-"`
}

// RunSQL is run_sql: it may write (read_only=false) and destroy (confirm), so it is annotated
// as neither read-only nor idempotent.
func RunSQL(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "run_sql",
		title:       "Run SQL",
		description: "Run SQL on a branch (main by default), read-only unless read_only=false, in one transaction bounded by the tier's limits; a write on main returns a restore_point for undo_to_time, destructive statements on main need confirm=true.",
		hints:       hints{readOnly: false, destructive: true, idempotent: false},
	}, func(ctx context.Context, a *runSQLArgs) (*guard.RunSQLResult, error) {
		return d.Guard.RunSQL(ctx, guard.RunSQLInput{DatabaseID: a.DatabaseID, SQL: a.SQL, Params: a.Params,
			Branch: mainAsDefault(a.Branch), ReadOnly: a.ReadOnly == nil || *a.ReadOnly, Confirm: a.Confirm})
	})
}

func (a *runSQLArgs) confirmByUser() { a.Confirm = true }
