// Package auth turns bearer tokens into principals. A token's secret is shown to its owner once
// and never stored: the store keeps the hex SHA-256 of it, and a presented secret is found by
// looking up its hash. Comparing hashes in an index lookup leaks nothing useful through timing,
// since an attacker controls the secret, not its hash.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/store"
)

// Prefix starts every secret, so leaked tokens are easy to recognise (secret scanners, logs).
const Prefix = "ngt_"

// secretBytes of randomness, encoded in lowercase unpadded base32 (52 characters).
const secretBytes = 32

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// secretLen is the length of a well-formed secret.
var secretLen = len(Prefix) + enc.EncodedLen(secretBytes)

// ErrUnauthenticated is every refusal of a credential: missing, malformed, unknown or revoked.
// Its message says nothing about which.
var ErrUnauthenticated = errors.New("unauthenticated: a valid bearer token is required")

// NewToken makes a secret and the token that stores its hash. The caller sets TenantID and
// Scopes before storing it and shows the secret to its owner once.
func NewToken() (secret string, t store.Token, err error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", store.Token{}, fmt.Errorf("auth: new token: %w", err)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return "", store.Token{}, fmt.Errorf("auth: new token: %w", err)
	}
	secret = Prefix + strings.ToLower(enc.EncodeToString(b))
	return secret, store.Token{
		ID:        "tok_" + hex.EncodeToString(id),
		Hash:      Hash(secret),
		CreatedAt: time.Now().UTC(),
	}, nil
}

// Hash is the stored form of a secret: lowercase hex SHA-256.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// wellFormed reports whether secret could have come from NewToken, so junk never reaches the store.
func wellFormed(secret string) bool {
	if len(secret) != secretLen || !strings.HasPrefix(secret, Prefix) {
		return false
	}
	for _, c := range secret[len(Prefix):] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// DefaultTouchEvery is how stale a token's recorded last use may get before Authenticate
// writes a new one: one write per token per interval, not one per request.
const DefaultTouchEvery = time.Minute

// Authenticator checks bearer tokens against the store.
type Authenticator struct {
	Store TokenStore
	// TouchEvery overrides DefaultTouchEvery; negative touches on every request.
	TouchEvery time.Duration
	// Now overrides time.Now (tests).
	Now func() time.Time
	// Logger receives failures to record the last use, which do not fail the request, and (at
	// debug) why a JWT was refused. Optional.
	Logger *slog.Logger
	// JWT, when set, also accepts signed JWTs. A JWT names its tenant but does not create it:
	// tenants and their tiers are provisioned with `neonguard tenant create`, and a JWT for a
	// tenant the store does not know is refused. Optional.
	JWT *JWTVerifier
}

// TokenStore is what authentication reads and records: the token by its hash, its last use,
// and that the tenant a JWT names exists.
type TokenStore interface {
	TokenByHash(ctx context.Context, hash string) (store.Token, error)
	TouchToken(ctx context.Context, id string, at time.Time) error
	GetTenant(ctx context.Context, id string) (store.Tenant, error)
}

// Authenticate returns the principal of an Authorization header value ("Bearer <secret>").
// Opaque tokens (Prefix) are looked up in the store; anything shaped like a compact JWS goes to
// a.JWT when it is set. Every refused credential yields ErrUnauthenticated; any other error is
// a store failure or a canceled ctx (the caller should answer 5xx, not 401).
func (a *Authenticator) Authenticate(ctx context.Context, authorization string) (identity.Principal, error) {
	scheme, secret, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return identity.Principal{}, ErrUnauthenticated
	}
	secret = strings.TrimSpace(secret)
	if !strings.HasPrefix(secret, Prefix) && a.JWT != nil && looksLikeJWS(secret) {
		return a.authenticateJWT(ctx, secret)
	}
	if !wellFormed(secret) {
		return identity.Principal{}, ErrUnauthenticated
	}
	t, err := a.Store.TokenByHash(ctx, Hash(secret))
	if errors.Is(err, store.ErrNotFound) {
		return identity.Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return identity.Principal{}, fmt.Errorf("auth: %w", err)
	}
	if t.RevokedAt != nil || t.TenantID == "" {
		return identity.Principal{}, ErrUnauthenticated
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	at := now().UTC()
	every := a.TouchEvery
	if every == 0 {
		every = DefaultTouchEvery
	}
	if t.LastUsedAt == nil || at.Sub(*t.LastUsedAt) >= every {
		if err := a.Store.TouchToken(ctx, t.ID, at); err != nil && a.Logger != nil {
			a.Logger.WarnContext(ctx, "auth: record token use", "token_id", t.ID, "err", err)
		}
	}
	return identity.Principal{TenantID: t.TenantID, Scopes: slices.Clone(t.Scopes)}, nil
}

// authenticateJWT verifies raw and checks that its tenant exists. Only known scopes are kept: an
// identity provider's other scopes mean nothing here.
func (a *Authenticator) authenticateJWT(ctx context.Context, raw string) (identity.Principal, error) {
	tenantID, scopes, err := a.JWT.Verify(ctx, raw)
	if errors.Is(err, ErrUnauthenticated) {
		a.debug(ctx, "auth: jwt refused", "reason", err)
		return identity.Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return identity.Principal{}, fmt.Errorf("auth: %w", err)
	}
	if _, err := a.Store.GetTenant(ctx, tenantID); errors.Is(err, store.ErrNotFound) {
		a.debug(ctx, "auth: jwt refused", "reason", "unknown tenant", "tenant", tenantID)
		return identity.Principal{}, ErrUnauthenticated
	} else if err != nil {
		return identity.Principal{}, fmt.Errorf("auth: %w", err)
	}
	var known []string
	for _, s := range scopes {
		if identity.ValidScope(s) && !slices.Contains(known, s) {
			known = append(known, s)
		}
	}
	return identity.Principal{TenantID: tenantID, Scopes: known}, nil
}

func (a *Authenticator) debug(ctx context.Context, msg string, args ...any) {
	if a.Logger != nil {
		a.Logger.DebugContext(ctx, msg, args...)
	}
}
