package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type listDatabasesArgs struct{}

// ListDatabases is list_databases (read-only).
func ListDatabases(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "list_databases",
		title:       "List databases",
		description: "List your databases with their database_id.",
		hints:       readOnly(),
	}, func(ctx context.Context, _ *listDatabasesArgs) (*guard.ListDatabasesResult, error) {
		return d.Guard.ListDatabases(ctx)
	})
}
