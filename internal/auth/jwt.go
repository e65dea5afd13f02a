package auth

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// JWT defaults.
const (
	DefaultTenantClaim = "tenant"
	DefaultScopeClaim  = "scope"
	DefaultJWTLeeway   = 30 * time.Second
	DefaultJWKSRefresh = 5 * time.Minute

	// minHS256Secret is the shortest HS256 secret accepted: RFC 7518 §3.2 requires a key at
	// least as long as the hash output.
	minHS256Secret = 32
	// maxJWTLen bounds what is parsed at all; real tokens are a few KiB.
	maxJWTLen = 16 << 10
	// maxJWKSBody bounds a JWKS response.
	maxJWKSBody = 1 << 20
	// jwksFetchTimeout bounds one JWKS fetch when the HTTP client has no timeout of its own.
	jwksFetchTimeout = 10 * time.Second
	// jwksMaxAge is how long a fetched key set is trusted before the next lookup refreshes it,
	// so a key removed from the set (rotated out, compromised) stops working without a restart.
	jwksMaxAge = time.Hour
)

// Asymmetric algorithms accepted with a JWKS, one per key type. Never HS*: an HMAC "secret"
// that is really a public key is the classic algorithm-confusion forgery.
const (
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
	algHS256 = "HS256"
)

// JWTConfig configures JWT bearer tokens. Exactly one of HS256Secret and JWKSURL is set.
type JWTConfig struct {
	// HS256Secret is the raw shared secret (at least 32 bytes); only HS256 is accepted with it.
	HS256Secret string
	// JWKSURL is an http(s) URL of a JSON Web Key Set with RS256, ES256 (P-256) or EdDSA
	// (Ed25519) public keys; a token's alg must match its key's type.
	JWKSURL string
	// TenantClaim names the top-level claim holding the tenant id (e.g. "sub", "org_id").
	// Default "tenant".
	TenantClaim string
	// ScopeClaim names the claim holding scopes: a space-separated string (RFC 8693) or an
	// array of strings. Default "scope".
	ScopeClaim string
	// Issuer and Audience, when set, must match the iss and aud claims.
	Issuer   string
	Audience string
	// Leeway tolerates clock skew on exp, nbf and iat. Default 30s.
	Leeway time.Duration
	// JWKSRefresh is the minimum interval between JWKS fetches, successful or not: a token
	// with an unknown kid triggers at most one fetch per interval. Default 5 min.
	JWKSRefresh time.Duration
	// HTTPClient fetches the JWKS. Optional.
	HTTPClient *http.Client
}

// JWTVerifier checks signed JWTs (compact JWS) and extracts the tenant and scopes. It is safe
// for concurrent use.
type JWTVerifier struct {
	tenantClaim string
	scopeClaim  string
	parser      *jwt.Parser
	methods     []string   // the pinned algorithms
	secret      []byte     // HS256 mode
	jwks        *jwksCache // JWKS mode
	// now is the clock for claim checks and the JWKS cache (tests replace it before use).
	now func() time.Time
}

// NewJWTVerifier validates cfg and returns a verifier. With a JWKS URL nothing is fetched
// until the first token arrives. logger receives JWKS fetch failures; nil discards them.
func NewJWTVerifier(cfg JWTConfig, logger *slog.Logger) (*JWTVerifier, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.HS256Secret != "" && cfg.JWKSURL != "":
		return nil, errors.New("auth: jwt: set either an HS256 secret or a JWKS URL, not both")
	case cfg.HS256Secret == "" && cfg.JWKSURL == "":
		return nil, errors.New("auth: jwt: an HS256 secret or a JWKS URL is required")
	case cfg.HS256Secret != "" && len(cfg.HS256Secret) < minHS256Secret:
		return nil, fmt.Errorf("auth: jwt: the HS256 secret must be at least %d bytes", minHS256Secret)
	case cfg.Leeway < 0:
		return nil, errors.New("auth: jwt: leeway must not be negative")
	case cfg.JWKSRefresh < 0:
		return nil, errors.New("auth: jwt: the JWKS refresh interval must not be negative")
	}
	v := &JWTVerifier{
		tenantClaim: cmp.Or(strings.TrimSpace(cfg.TenantClaim), DefaultTenantClaim),
		scopeClaim:  cmp.Or(strings.TrimSpace(cfg.ScopeClaim), DefaultScopeClaim),
		now:         time.Now,
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultJWTLeeway
	}
	methods := []string{algRS256, algES256, algEdDSA}
	if cfg.HS256Secret != "" {
		methods = []string{algHS256}
		v.secret = []byte(cfg.HS256Secret)
	} else {
		u, err := url.Parse(cfg.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("auth: jwt: the JWKS URL must be an absolute http or https URL")
		}
		if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			logger.Warn("auth: jwt: JWKS fetched over plain http; prefer https", "jwks_url", u.Redacted())
		}
		refresh := cfg.JWKSRefresh
		if refresh == 0 {
			refresh = DefaultJWKSRefresh
		}
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: jwksFetchTimeout}
		}
		v.jwks = &jwksCache{
			url:         u.String(),
			logURL:      u.Redacted(),
			client:      client,
			minInterval: refresh,
			maxAge:      max(jwksMaxAge, refresh),
			logger:      logger,
			now:         func() time.Time { return v.now() },
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser, v.methods = jwt.NewParser(opts...), methods
	return v, nil
}

// refusal wraps ErrUnauthenticated with a fixed reason, for logs; it never quotes the token.
func refusal(reason string) error {
	return fmt.Errorf("%w (jwt: %s)", ErrUnauthenticated, reason)
}

// Verify checks raw's signature and claims and returns its tenant and scopes (unfiltered).
// Every refusal wraps ErrUnauthenticated; other errors are a canceled ctx.
func (v *JWTVerifier) Verify(ctx context.Context, raw string) (tenantID string, scopes []string, err error) {
	if !looksLikeJWS(raw) {
		return "", nil, refusal("malformed token")
	}
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		return v.key(ctx, t)
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", nil, fmt.Errorf("auth: jwt: %w", ctx.Err())
		}
		if tok != nil && tok.Method != nil && !slices.Contains(v.methods, tok.Method.Alg()) {
			return "", nil, refusal("algorithm not allowed")
		}
		return "", nil, refusal(reason(err))
	}
	tenantID, _ = claims[v.tenantClaim].(string)
	if strings.TrimSpace(tenantID) == "" {
		return "", nil, refusal("tenant claim missing, empty or not a string")
	}
	scopes, ok := parseScopes(claims[v.scopeClaim])
	if !ok {
		return "", nil, refusal("scope claim is neither a string nor an array of strings")
	}
	return tenantID, scopes, nil
}

// key returns the verification key for t. The parser has already checked that t's alg is one
// of the pinned methods.
func (v *JWTVerifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	// RFC 7515 §4.1.11: a recipient must reject a JWS whose "crit" names an extension it does
	// not understand. This verifier understands none (and "crit" must not be empty), so any
	// "crit" header is refused, before a key is looked up.
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical
	}
	alg := t.Method.Alg()
	if v.jwks == nil {
		if alg != algHS256 {
			return nil, errAlgMismatch
		}
		return v.secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	k, err := v.jwks.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	if k.alg != alg {
		return nil, errAlgMismatch
	}
	return k.pub, nil
}

var (
	errAlgMismatch     = errors.New("algorithm does not match the key")
	errUnknownKey      = errors.New("unknown key id")
	errKeysUnavailable = errors.New("signing keys unavailable")
	errCritical        = errors.New("critical header extension not understood")
)

// reason names a parse failure from a fixed vocabulary: jwt's own messages can quote decoded
// header or claim bytes.
func reason(err error) string {
	for _, r := range []struct {
		err error
		msg string
	}{
		{errAlgMismatch, "algorithm does not match the key"},
		{errUnknownKey, "unknown key id"},
		{errKeysUnavailable, "signing keys unavailable"},
		{errCritical, "critical header extension not understood"},
		{jwt.ErrTokenMalformed, "malformed token"},
		{jwt.ErrTokenSignatureInvalid, "bad signature"},
		{jwt.ErrTokenRequiredClaimMissing, "required claim missing"},
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "issued in the future"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrInvalidType, "claim of the wrong type"},
	} {
		if errors.Is(err, r.err) {
			return r.msg
		}
	}
	return "invalid token"
}

// parseScopes accepts a space-separated string or an array of strings; absent means none.
func parseScopes(c any) ([]string, bool) {
	switch c := c.(type) {
	case nil:
		return nil, true
	case string:
		return strings.Fields(c), true
	case []any:
		out := make([]string, 0, len(c))
		for _, s := range c {
			str, ok := s.(string)
			if !ok {
				return nil, false
			}
			out = append(out, str)
		}
		return out, true
	default:
		return nil, false
	}
}

// looksLikeJWS reports whether s is shaped like a compact JWS: three non-empty base64url
// segments. An unsigned token (alg "none") has an empty signature and stops here.
func looksLikeJWS(s string) bool {
	if len(s) > maxJWTLen {
		return false
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for _, c := range p {
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// jwk is a usable public key and the one algorithm it verifies.
type jwk struct {
	alg string
	pub any
}

// jwksCache holds a JWKS's keys by kid. Keys are fetched lazily and refetched when a kid is
// unknown or the set is older than maxAge, but never more than once per minInterval (failed
// fetches count too), so bad tokens cannot make us hammer the JWKS server. One fetch runs at a
// time; concurrent lookups wait for it. A failed fetch keeps the previous keys and is retried
// after minInterval, so an outage is not remembered as "no keys".
type jwksCache struct {
	url         string
	logURL      string // without userinfo password
	client      *http.Client
	minInterval time.Duration
	maxAge      time.Duration
	logger      *slog.Logger
	now         func() time.Time

	mu        sync.Mutex
	keys      map[string]jwk
	fetchedOK time.Time     // last successful fetch
	attempted time.Time     // last fetch attempt
	lastErr   error         // of the last attempt
	inflight  chan struct{} // closed when the running fetch ends; nil when none runs
}

func (c *jwksCache) key(ctx context.Context, kid string) (jwk, error) {
	for {
		c.mu.Lock()
		k, known := c.keys[kid]
		now := c.now()
		fresh := !c.fetchedOK.IsZero() && now.Sub(c.fetchedOK) < c.maxAge
		if known && fresh {
			c.mu.Unlock()
			return k, nil
		}
		if ch := c.inflight; ch != nil {
			c.mu.Unlock()
			select {
			case <-ch:
				continue // look again; the fetch just counted as an attempt, so no second one
			case <-ctx.Done():
				return jwk{}, ctx.Err()
			}
		}
		if !c.attempted.IsZero() && now.Sub(c.attempted) < c.minInterval {
			lastErr := c.lastErr
			c.mu.Unlock()
			switch {
			case known:
				return k, nil // stale, but the best we have until the next fetch is allowed
			case lastErr != nil:
				return jwk{}, errKeysUnavailable
			default:
				return jwk{}, errUnknownKey
			}
		}
		ch := make(chan struct{})
		c.inflight, c.attempted = ch, now
		c.mu.Unlock()

		// Detached from the caller: others wait on this fetch, and one client hanging up
		// must not fail it for all of them (and block retries for minInterval).
		keys, err := c.fetch(context.WithoutCancel(ctx))

		c.mu.Lock()
		c.lastErr = err
		if err != nil {
			c.logger.WarnContext(ctx, "auth: jwt: fetch JWKS", "jwks_url", c.logURL, "err", err)
		} else {
			c.keys, c.fetchedOK = keys, c.now()
		}
		c.inflight = nil
		close(ch)
		c.mu.Unlock()
	}
}

// fetch downloads and parses the key set. Keys that are unusable (symmetric, private, of another
// type or use, or with a conflicting alg) are skipped, not fatal: one odd key must not lock out
// the others.
func (c *jwksCache) fetch(ctx context.Context) (map[string]jwk, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBody+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(body) > maxJWKSBody {
		return nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBody)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode key set: %w", err)
	}
	keys := make(map[string]jwk, len(set.Keys))
	for i, raw := range set.Keys {
		var jk jose.JSONWebKey
		if err := jk.UnmarshalJSON(raw); err != nil {
			c.logger.Warn("auth: jwt: skip unparsable JWKS key", "jwks_url", c.logURL, "index", i, "err", err)
			continue
		}
		k, ok := usableKey(jk)
		if !ok {
			c.logger.Debug("auth: jwt: skip unusable JWKS key", "jwks_url", c.logURL, "kid", jk.KeyID)
			continue
		}
		if _, dup := keys[jk.KeyID]; dup {
			c.logger.Warn("auth: jwt: skip JWKS key with a repeated kid", "jwks_url", c.logURL, "kid", jk.KeyID)
			continue
		}
		keys[jk.KeyID] = k
	}
	return keys, nil
}

// usableKey maps a JWK to the single algorithm it may verify, or reports it unusable.
func usableKey(jk jose.JSONWebKey) (jwk, bool) {
	if jk.Use != "" && jk.Use != "sig" {
		return jwk{}, false
	}
	var k jwk
	switch pub := jk.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return jwk{}, false
		}
		k = jwk{alg: algRS256, pub: pub}
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return jwk{}, false
		}
		k = jwk{alg: algES256, pub: pub}
	case ed25519.PublicKey:
		k = jwk{alg: algEdDSA, pub: pub}
	default:
		// Symmetric ("oct") keys never verify here, and a set that publishes private keys is
		// broken: anyone could sign with them.
		return jwk{}, false
	}
	if jk.Algorithm != "" && jk.Algorithm != k.alg {
		return jwk{}, false
	}
	return k, true
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}
