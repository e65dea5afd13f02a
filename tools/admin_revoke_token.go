package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/operator"
)

type adminRevokeTokenArgs struct {
	Tenant  string `json:"tenant" jsonschema:"minLength=1,maxLength=63" validate:"required,max=63"`
	TokenID string `json:"token_id" jsonschema:"minLength=1,maxLength=64" validate:"required,max=64,ident"`
}

// AdminRevokeToken is admin_revoke_token (admin scope): destructive, idempotent.
func AdminRevokeToken(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "admin_revoke_token",
		title:       "Revoke token (admin)",
		description: "Revoke a tenant's token; requests with it get 401 from now on. Revoking twice keeps the first time.",
		hints:       hints{readOnly: false, destructive: true, idempotent: true},
	}, adminCall(func(ctx context.Context, a *adminRevokeTokenArgs) (*operator.RevokeResult, error) {
		return d.Admin.RevokeToken(ctx, a.Tenant, a.TokenID)
	}))
}
