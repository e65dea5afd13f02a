package tools

import (
	"context"
	"strings"

	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/operator"
)

// AdminUseCases are the operator operations behind the admin tool set (internal/operator).
type AdminUseCases interface {
	CreateTenant(ctx context.Context, id, tier string) (*operator.CreateTenantResult, error)
	ListTenants(ctx context.Context) (*operator.TenantList, error)
	CreateToken(ctx context.Context, tenant string, scopes []string) (*operator.NewToken, error)
	RevokeToken(ctx context.Context, tenant, id string) (*operator.RevokeResult, error)
	ListTokens(ctx context.Context, tenant string) (*operator.TokenList, error)
	DeleteDatabase(ctx context.Context, tenant, databaseID, confirmName string) (*guard.DeleteDatabaseResult, error)
	SetTier(ctx context.Context, tenant, tier string, force bool) (*operator.Job, error)
}

// adminPrefix starts every admin tool's name, so the set is recognisable to agents and to the
// server's filter alike.
const adminPrefix = "admin_"

// IsAdmin reports whether a tool belongs to the admin tool set.
func IsAdmin(name string) bool { return strings.HasPrefix(name, adminPrefix) }

func adminFactories() []func(Deps) server.ServerTool {
	return []func(Deps) server.ServerTool{
		AdminCreateTenant,
		AdminListTenants,
		AdminCreateToken,
		AdminListTokens,
		AdminRevokeToken,
		AdminDeleteDatabase,
		AdminSetTier,
	}
}

// AdminTools returns the admin tool set. The server shows it only to principals with the admin
// scope; each handler checks the scope again, so a wiring mistake cannot open it.
func AdminTools(d Deps) []server.ServerTool {
	if d.validate == nil {
		d.validate = newValidator()
	}
	if d.Schemas == nil {
		d.Schemas = NewSchemas()
	}
	out := make([]server.ServerTool, 0, len(adminFactories()))
	for _, f := range adminFactories() {
		out = append(out, f(d))
	}
	return out
}

// requireAdmin refuses principals without the admin scope the way an unknown tool is refused:
// as NOT_FOUND, revealing nothing about the admin tools.
func requireAdmin(ctx context.Context) error {
	if p, ok := identity.FromContext(ctx); ok && p.HasScope(identity.ScopeAdmin) {
		return nil
	}
	return &errcode.Error{Code: errcode.NotFound, Message: "no such tool", Hint: "call tools/list for the tools available to you"}
}

// adminCall wraps an admin operation with the scope check.
func adminCall[A, R any](call func(ctx context.Context, a *A) (*R, error)) func(ctx context.Context, a *A) (*R, error) {
	return func(ctx context.Context, a *A) (*R, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, err
		}
		return call(ctx, a)
	}
}
