package operator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/auth"
	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// Service manages tenants and tokens in the store.
type Service struct {
	Store  store.Store
	Policy policy.Config
	// Databases runs the operations on tenants' databases (the guard: they need Neon); nil
	// where only the store is open, and those operations then fail (databases.go).
	Databases DatabaseAdmin
	// Lifecycle runs tier changes (TierChanges); nil where it is not wired, and
	// SetTier then fails (settier.go).
	Lifecycle TierChanger
}

// Tenant is a tenant as the operator sees it.
type Tenant struct {
	ID        string    `json:"id"`
	Tier      string    `json:"tier"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateTenantResult says whether the tenant is new; an existing one keeps its tier.
type CreateTenantResult struct {
	Tenant  Tenant `json:"tenant"`
	Created bool   `json:"created" jsonschema_description:"false when the tenant existed already (its tier is unchanged)"`
}

// TenantList is every tenant.
type TenantList struct {
	Tenants []Tenant `json:"tenants"`
}

// Token is a token's metadata; its secret is never stored.
type Token struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// NewToken is a created token with its secret, shown this once.
type NewToken struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret" jsonschema_description:"the bearer secret; shown only now, neonguard keeps only its hash"`
}

// TokenList is a tenant's tokens, oldest first, revoked ones included.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// RevokeResult is a revoked token.
type RevokeResult struct {
	Token Token `json:"token"`
}

var tenantID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidTenantID reports whether id is acceptable for a new tenant: lowercase letters, digits,
// '-' and '_', at most 63 characters, so it is safe in logs, metrics and Neon project names.
func ValidTenantID(id string) bool { return tenantID.MatchString(id) }

func invalid(msg, hint string) error {
	return &errcode.Error{Code: errcode.InvalidArgument, Message: msg, Hint: hint}
}

func notFound(msg, hint string) error {
	return &errcode.Error{Code: errcode.NotFound, Message: msg, Hint: hint}
}

// CreateTenant creates tenant id on tier; an existing tenant keeps its tier (Created=false).
func (s *Service) CreateTenant(ctx context.Context, id, tier string) (*CreateTenantResult, error) {
	if !ValidTenantID(id) {
		return nil, invalid(fmt.Sprintf("tenant id %q is not valid", id),
			"use 1 to 63 lowercase letters, digits, '-' or '_', starting with a letter or digit")
	}
	if _, ok := s.Policy.Tiers[tier]; !ok {
		return nil, invalid(fmt.Sprintf("unknown tier %q", tier),
			"known tiers: "+strings.Join(slices.Sorted(maps.Keys(s.Policy.Tiers)), ", "))
	}
	if t, err := s.Store.GetTenant(ctx, id); err == nil {
		return &CreateTenantResult{Tenant: tenantOf(t)}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	t, err := s.Store.EnsureTenant(ctx, id, tier)
	if err != nil {
		return nil, err
	}
	// Another caller may have created it in between, with another tier.
	return &CreateTenantResult{Tenant: tenantOf(t), Created: t.Tier == tier}, nil
}

// ListTenants lists every tenant.
func (s *Service) ListTenants(ctx context.Context) (*TenantList, error) {
	ts, err := s.Store.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	out := &TenantList{Tenants: make([]Tenant, 0, len(ts))}
	for _, t := range ts {
		out.Tenants = append(out.Tenants, tenantOf(t))
	}
	return out, nil
}

// existing returns ErrNotFound as an agent-readable NOT_FOUND.
func (s *Service) existing(ctx context.Context, id string) error {
	_, err := s.Store.GetTenant(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound(fmt.Sprintf("tenant %q does not exist", id), "create it first (neonguard tenant create, or admin_create_tenant)")
	}
	return err
}

// CreateToken makes a token for tenant with the given scopes and returns its secret once.
func (s *Service) CreateToken(ctx context.Context, tenant string, scopes []string) (*NewToken, error) {
	for _, sc := range scopes {
		if !identity.ValidScope(sc) {
			return nil, invalid(fmt.Sprintf("unknown scope %q", sc), "known scopes: "+strings.Join(identity.Scopes, ", "))
		}
	}
	if err := s.existing(ctx, tenant); err != nil {
		return nil, err
	}
	secret, tok, err := auth.NewToken()
	if err != nil {
		return nil, err
	}
	tok.TenantID = tenant
	tok.Scopes = slices.Compact(slices.Sorted(slices.Values(scopes)))
	if err := s.Store.CreateToken(ctx, tok); err != nil {
		return nil, err
	}
	return &NewToken{Token: tokenOf(tok), Secret: secret}, nil
}

// RevokeToken revokes a tenant's token; requests with it are refused from now on.
func (s *Service) RevokeToken(ctx context.Context, tenant, id string) (*RevokeResult, error) {
	if err := s.existing(ctx, tenant); err != nil {
		return nil, err
	}
	err := s.Store.RevokeToken(ctx, tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(fmt.Sprintf("tenant %s has no token %s", tenant, id), "list the tenant's tokens to find the id")
	}
	if err != nil {
		return nil, err
	}
	toks, err := s.Store.ListTokens(ctx, tenant)
	if err != nil {
		return nil, err
	}
	for _, t := range toks {
		if t.ID == id {
			return &RevokeResult{Token: tokenOf(t)}, nil
		}
	}
	return nil, fmt.Errorf("tenants: revoked token %s vanished", id)
}

// ListTokens lists a tenant's tokens, never their secrets.
func (s *Service) ListTokens(ctx context.Context, tenant string) (*TokenList, error) {
	if err := s.existing(ctx, tenant); err != nil {
		return nil, err
	}
	toks, err := s.Store.ListTokens(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := &TokenList{Tokens: make([]Token, 0, len(toks))}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, tokenOf(t))
	}
	return out, nil
}

func tenantOf(t store.Tenant) Tenant {
	return Tenant{ID: t.ID, Tier: t.Tier, CreatedAt: t.CreatedAt.UTC()}
}

func tokenOf(t store.Token) Token {
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return Token{ID: t.ID, TenantID: t.TenantID, Scopes: scopes, CreatedAt: t.CreatedAt.UTC(),
		LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}
