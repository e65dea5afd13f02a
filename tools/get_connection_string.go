package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type getConnectionStringArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	Branch     string `json:"branch,omitempty" jsonschema:"maxLength=256,default=main" jsonschema_description:"Branch name or id (list_branches)." validate:"omitempty,max=256,ref"`
	// Pooled is a pointer so that an absent argument can default to true.
	Pooled *bool `json:"pooled,omitempty" jsonschema:"default=true" jsonschema_description:"Pooled (PgBouncer) URI; false for migrations needing session features." validate:"-"`
}

// GetConnectionString is get_connection_string (read-only).
func GetConnectionString(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "get_connection_string",
		title:       "Get connection string",
		description: "Get a PostgreSQL connection URI for a branch (main by default); pooled unless pooled=false.",
		hints:       readOnly(),
	}, func(ctx context.Context, a *getConnectionStringArgs) (*guard.ConnectionResult, error) {
		pooled := a.Pooled == nil || *a.Pooled
		return d.Guard.GetConnectionString(ctx, guard.ConnectionInput{DatabaseID: a.DatabaseID, Branch: mainAsDefault(a.Branch), Pooled: pooled})
	})
}
