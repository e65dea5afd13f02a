package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/operator"
)

type adminCreateTenantArgs struct {
	Tenant string `json:"tenant" jsonschema:"minLength=1,maxLength=63,pattern=^[a-z0-9][a-z0-9_-]*$" jsonschema_description:"New tenant id." validate:"required,max=63"`
	Tier   string `json:"tier" jsonschema:"minLength=1,maxLength=64" jsonschema_description:"A configured tier, e.g. free or pro." validate:"required,max=64,ident"`
}

// AdminCreateTenant is admin_create_tenant (admin scope).
func AdminCreateTenant(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "admin_create_tenant",
		title:       "Create tenant (admin)",
		description: "Create a tenant on a tier. An existing tenant keeps its tier (created=false).",
		hints:       hints{readOnly: false, destructive: false, idempotent: true},
	}, adminCall(func(ctx context.Context, a *adminCreateTenantArgs) (*operator.CreateTenantResult, error) {
		return d.Admin.CreateTenant(ctx, a.Tenant, a.Tier)
	}))
}
