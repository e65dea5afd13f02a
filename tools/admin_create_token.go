package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/operator"
)

type adminCreateTokenArgs struct {
	Tenant string   `json:"tenant" jsonschema:"minLength=1,maxLength=63" validate:"required,max=63"`
	Scopes []string `json:"scopes,omitempty" jsonschema:"maxItems=4" jsonschema_description:"Scopes: read (read-only tools only; run_sql only reads), write (every agent tool: the default without scopes), admin (the admin tools too)." validate:"max=4,dive,max=32"`
}

// AdminCreateToken is admin_create_token (admin scope). The secret is in the result once.
func AdminCreateToken(d Deps) server.ServerTool {
	return newTool(d, def{
		name:        "admin_create_token",
		title:       "Create token (admin)",
		description: "Create a bearer token for a tenant. The secret is returned only now; neonguard keeps only its hash.",
		hints:       hints{readOnly: false, destructive: false, idempotent: false},
	}, adminCall(func(ctx context.Context, a *adminCreateTokenArgs) (*operator.NewToken, error) {
		return d.Admin.CreateToken(ctx, a.Tenant, a.Scopes)
	}))
}
