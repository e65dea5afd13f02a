package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/operator"
)

type adminListTenantsArgs struct{}

// AdminListTenants is admin_list_tenants (admin scope, read-only).
func AdminListTenants(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "admin_list_tenants",
		title:       "List tenants (admin)",
		description: "Every tenant with its tier.",
		hints:       readOnly(),
	}, adminCall(func(ctx context.Context, _ *adminListTenantsArgs) (*operator.TenantList, error) {
		return d.Admin.ListTenants(ctx)
	}))
}
