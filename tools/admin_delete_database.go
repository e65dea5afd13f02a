package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

type adminDeleteDatabaseArgs struct {
	Tenant      string `json:"tenant" jsonschema:"minLength=1,maxLength=63" validate:"required,max=63"`
	DatabaseID  string `json:"database_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
	ConfirmName string `json:"confirm_name" jsonschema:"minLength=1,maxLength=64" jsonschema_description:"the database's name again, to confirm" validate:"required,max=64"`
}

// AdminDeleteDatabase is admin_delete_database (admin scope): destructive, idempotent.
func AdminDeleteDatabase(d Deps) server.ServerTool {
	return newTool(d, def{
		name:  "admin_delete_database",
		title: "Delete database (admin)",
		description: "Delete a tenant's database: its Neon project with every branch and checkpoint. confirm_name must repeat the database's name. " +
			"It leaves the tenant's list_databases and its name can be used again. Deleting it again reports deleted=false.",
		hints: hints{readOnly: false, destructive: true, idempotent: true},
	}, adminCall(func(ctx context.Context, a *adminDeleteDatabaseArgs) (*guard.DeleteDatabaseResult, error) {
		return d.Admin.DeleteDatabase(ctx, a.Tenant, a.DatabaseID, a.ConfirmName)
	}))
}
