package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/neonguard/neonguard/internal/auth"
	"github.com/neonguard/neonguard/internal/operator"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/server"
)

// NewHTTP builds the hosted, multi-tenant endpoint: a second MCP server over the same guard
// whose calls carry the principal of their bearer credential (none is refused), with per-tenant
// rate limits, the admin tool set for admin tokens, metrics, and a tracker of calls in flight
// for graceful shutdown.
func (a *App) NewHTTP(log *slog.Logger) (*server.HTTP, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := a.Config
	authn := &auth.Authenticator{Store: a.Store, Logger: log.With("component", "auth")}
	if cfg.Auth.JWT.Enabled() {
		j := cfg.Auth.JWT
		v, err := auth.NewJWTVerifier(auth.JWTConfig{
			HS256Secret: j.HS256Secret, JWKSURL: j.JWKSURL, TenantClaim: j.TenantClaim,
			ScopeClaim: j.ScopeClaim, Issuer: j.Issuer, Audience: j.Audience,
		}, log.With("component", "jwt"))
		if err != nil {
			return nil, fmt.Errorf("auth.jwt: %w", err)
		}
		authn.JWT = v
	}
	calls := server.NewCalls()
	mcp := server.New(server.Options{
		Guard: a.Guard, Audit: a.Store, Logger: log, Version: Version,
		CallTimeout: cfg.CallTimeout, MaxConcurrent: cfg.HTTP.MaxConcurrentCalls,
		MaxConcurrentPerTenant: cfg.HTTP.TenantMaxConcurrentCalls,
		TierOf:                 a.tierOf,
		Metrics:                a.Metrics,
		Calls:                  calls,
		Admin:                  &operator.Service{Store: a.Store, Policy: cfg.Policy, Databases: a.Guard, Lifecycle: a.Lifecycle},
		// access: read-only is a ceiling over every token; tools limits the agent tool groups.
		ReadOnly:   cfg.ReadOnly(),
		ToolGroups: cfg.Tools,
	})
	return server.NewHTTP(mcp, server.HTTPOptions{
		Auth:           authn,
		PublicURL:      cfg.HTTP.PublicURL,
		MaxBodyBytes:   cfg.HTTP.MaxBodyBytes,
		SessionIdleTTL: cfg.HTTP.SessionIdleTTL,
		SSEKeepAlive:   cfg.HTTP.SSEKeepAlive,
		// Per-tenant limits on every request, so no tenant can take the endpoint from others.
		BodyReadTimeout:   cfg.HTTP.BodyReadTimeout,
		TenantMaxRequests: cfg.HTTP.TenantMaxRequests,
		TenantMaxStreams:  cfg.HTTP.TenantMaxStreams,
		TenantMaxSessions: cfg.HTTP.TenantMaxSessions,
		StreamRecheck:     cfg.HTTP.StreamRecheck,
		TierOf:            a.tierOf,
		RequestRateFactor: cfg.HTTP.RequestRateFactor,
		UnreadyDelay:      cfg.HTTP.UnreadyDelay,
		Ready:             a.Store.Ping, // ready when the store answers
		Calls:             calls,
		Metrics:           a.Metrics,
		Logger:            log.With("component", "http"),
	}), nil
}

func (a *App) tierOf(ctx context.Context, tenantID string) (policy.Tier, error) {
	t, err := a.Store.GetTenant(ctx, tenantID)
	if err != nil {
		return policy.Tier{}, err
	}
	return a.Config.Policy.Tier(t.Tier)
}
