package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/operator"
)

type adminListTokensArgs struct {
	Tenant string `json:"tenant" jsonschema:"minLength=1,maxLength=63" validate:"required,max=63"`
}

// AdminListTokens is admin_list_tokens (admin scope, read-only): ids and use, never secrets.
func AdminListTokens(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "admin_list_tokens",
		title:       "List tokens (admin)",
		description: "A tenant's tokens (ids, scopes, last use, revocation), never their secrets.",
		hints:       readOnly(),
	}, adminCall(func(ctx context.Context, a *adminListTokensArgs) (*operator.TokenList, error) {
		return d.Admin.ListTokens(ctx, a.Tenant)
	}))
}
