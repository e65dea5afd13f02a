package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type compareSchemaArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	Branch     string `json:"branch" jsonschema:"minLength=1,maxLength=256" jsonschema_description:"Branch name or id (list_branches)." validate:"required,max=256,ref"`
	Base       string `json:"base,omitempty" jsonschema:"maxLength=256,default=main" jsonschema_description:"Branch name or id (list_branches)." validate:"omitempty,max=256,ref"`
	Schema     string `json:"schema,omitempty" jsonschema:"maxLength=63,default=public" jsonschema_description:"PostgreSQL schema." validate:"omitempty,max=63"`
}

// CompareSchema is compare_schema: a read of two branches; the SQL it returns is not run.
func CompareSchema(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "compare_schema",
		title:       "Compare schemas",
		description: "What differs between base (main by default) and branch: tables, columns, indexes, constraints, views, enums; with the SQL that brings base to branch. Runs nothing.",
		hints:       readOnly(),
	}, func(ctx context.Context, a *compareSchemaArgs) (*guard.CompareSchemaResult, error) {
		return d.Guard.CompareSchema(ctx, guard.CompareSchemaInput{DatabaseID: a.DatabaseID, Branch: a.Branch, Base: mainAsDefault(a.Base), Schema: a.Schema})
	})
}
