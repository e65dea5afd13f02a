package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type describeSchemaArgs struct {
	DatabaseID string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	Branch     string `json:"branch,omitempty" jsonschema:"maxLength=256,default=main" jsonschema_description:"Branch name or id (list_branches)." validate:"omitempty,max=256,ref"`
	Schema     string `json:"schema,omitempty" jsonschema:"maxLength=63,default=public" jsonschema_description:"PostgreSQL schema." validate:"omitempty,max=63"`
}

// DescribeSchema is describe_schema: a read.
func DescribeSchema(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "describe_schema",
		title:       "Describe schema",
		description: "Describe a schema of a branch (public on main by default): tables and views with columns, keys and indexes, and enums.",
		hints:       hints{readOnly: true, destructive: false, idempotent: true},
	}, func(ctx context.Context, a *describeSchemaArgs) (*guard.DescribeSchemaResult, error) {
		return d.Guard.DescribeSchema(ctx, guard.DescribeSchemaInput{DatabaseID: a.DatabaseID, Branch: mainAsDefault(a.Branch), Schema: a.Schema})
	})
}
