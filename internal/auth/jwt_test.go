package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/store"
)

const testSecret = "0123456789abcdef0123456789abcdef-test-secret"

// fakeClock is a settable clock for claim checks and the JWKS refresh interval.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sign makes a compact JWS of claims; kid is omitted when empty.
func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signWithHeader makes an HS256 JWS of claims with extra header parameters (name, value pairs).
func signWithHeader(t *testing.T, key []byte, claims jwt.MapClaims, kv ...any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	for i := 0; i < len(kv); i += 2 {
		tok.Header[kv[i].(string)] = kv[i+1]
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimsAt are valid claims at now for tenant with the admin scope.
func claimsAt(now time.Time, tenant string) jwt.MapClaims {
	return jwt.MapClaims{
		"tenant": tenant,
		"scope":  "admin",
		"iss":    "https://issuer.test",
		"aud":    "neonguard",
		"iat":    now.Unix(),
		"exp":    now.Add(time.Hour).Unix(),
	}
}

// with returns a copy of c with the given changes; a nil value deletes the claim.
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func newVerifier(t *testing.T, cfg JWTConfig, clk *fakeClock, logger *slog.Logger) *JWTVerifier {
	t.Helper()
	v, err := NewJWTVerifier(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	v.now = clk.Now
	return v
}

// wantRefused checks that Authenticate refused header with the bare sentinel.
func wantRefused(t *testing.T, a *Authenticator, token string) {
	t.Helper()
	p, err := a.Authenticate(t.Context(), "Bearer "+token)
	if !errors.Is(err, ErrUnauthenticated) || p.TenantID != "" {
		t.Fatalf("got %+v, %v; want ErrUnauthenticated", p, err)
	}
	if err.Error() != ErrUnauthenticated.Error() {
		t.Fatalf("message %q reveals more than the sentinel's", err)
	}
}

func wantPrincipal(t *testing.T, a *Authenticator, token, tenant string, scopes ...string) {
	t.Helper()
	p, err := a.Authenticate(t.Context(), "Bearer "+token)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if p.TenantID != tenant || !slices.Equal(p.Scopes, scopes) {
		t.Fatalf("principal = %+v, want %s %v", p, tenant, scopes)
	}
}

func TestNewJWTVerifierConfig(t *testing.T) {
	bad := []struct {
		name string
		cfg  JWTConfig
	}{
		{"neither", JWTConfig{}},
		{"both", JWTConfig{HS256Secret: testSecret, JWKSURL: "https://idp.test/jwks.json"}},
		{"short secret", JWTConfig{HS256Secret: strings.Repeat("x", 31)}},
		{"relative url", JWTConfig{JWKSURL: "/jwks.json"}},
		{"ftp url", JWTConfig{JWKSURL: "ftp://idp.test/jwks.json"}},
		{"no host", JWTConfig{JWKSURL: "https:///jwks.json"}},
		{"junk url", JWTConfig{JWKSURL: "://"}},
		{"negative leeway", JWTConfig{HS256Secret: testSecret, Leeway: -time.Second}},
		{"negative refresh", JWTConfig{JWKSURL: "https://idp.test/jwks.json", JWKSRefresh: -time.Second}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewJWTVerifier(tc.cfg, nil)
			if err == nil || v != nil {
				t.Fatalf("got %v, %v; want an error", v, err)
			}
			if tc.cfg.HS256Secret != "" && strings.Contains(err.Error(), tc.cfg.HS256Secret) {
				t.Fatalf("error %q contains the secret", err)
			}
		})
	}
	for _, cfg := range []JWTConfig{
		{HS256Secret: strings.Repeat("x", 32)},
		{JWKSURL: "https://idp.test/.well-known/jwks.json"},
		{JWKSURL: "http://127.0.0.1:8080/jwks"},
	} {
		v, err := NewJWTVerifier(cfg, nil)
		if err != nil {
			t.Fatalf("%+v: %v", cfg, err)
		}
		if v.tenantClaim != "tenant" || v.scopeClaim != "scope" {
			t.Fatalf("defaults: %q %q", v.tenantClaim, v.scopeClaim)
		}
		if cfg.JWKSURL != "" && (v.jwks.minInterval != DefaultJWKSRefresh || v.jwks.maxAge < v.jwks.minInterval) {
			t.Fatalf("jwks intervals %v %v", v.jwks.minInterval, v.jwks.maxAge)
		}
	}
}

func TestJWTHS256(t *testing.T) {
	s := openStore(t)
	clk := newClock()
	now := clk.Now()
	v := newVerifier(t, JWTConfig{HS256Secret: testSecret, Issuer: "https://issuer.test", Audience: "neonguard"}, clk, nil)
	a := &Authenticator{Store: s, JWT: v}
	key := []byte(testSecret)
	good := claimsAt(now, "acme")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("valid", func(t *testing.T) {
		wantPrincipal(t, a, sign(t, jwt.SigningMethodHS256, key, "", good), "acme", identity.ScopeAdmin)
	})
	t.Run("no scopes", func(t *testing.T) {
		wantPrincipal(t, a, sign(t, jwt.SigningMethodHS256, key, "", with(good, "scope", nil)), "acme")
	})
	t.Run("unknown scopes dropped", func(t *testing.T) {
		tok := sign(t, jwt.SigningMethodHS256, key, "", with(good, "scope", "read:db admin  superuser admin"))
		wantPrincipal(t, a, tok, "acme", identity.ScopeAdmin)
	})
	t.Run("read scope", func(t *testing.T) {
		for _, claim := range []any{"read", []any{"read"}, "openid read profile"} {
			p, err := a.Authenticate(t.Context(), "Bearer "+sign(t, jwt.SigningMethodHS256, key, "", with(good, "scope", claim)))
			if err != nil || p.TenantID != "acme" || !slices.Equal(p.Scopes, []string{identity.ScopeRead}) || p.CanWrite() {
				t.Fatalf("scope %v: principal %+v, %v; want a read-only acme", claim, p, err)
			}
		}
		p, err := a.Authenticate(t.Context(), "Bearer "+sign(t, jwt.SigningMethodHS256, key, "", with(good, "scope", "read write")))
		if err != nil || !slices.Equal(p.Scopes, []string{identity.ScopeRead, identity.ScopeWrite}) || !p.CanWrite() {
			t.Fatalf("read write: principal %+v, %v", p, err)
		}
		// Scopes are exact: an identity provider's "read:db" or "READ" grants nothing here.
		p, err = a.Authenticate(t.Context(), "Bearer "+sign(t, jwt.SigningMethodHS256, key, "", with(good, "scope", "read:db READ")))
		if err != nil || len(p.Scopes) != 0 || !p.CanWrite() {
			t.Fatalf("unknown scopes: principal %+v, %v", p, err)
		}
	})
	t.Run("array audience", func(t *testing.T) {
		tok := sign(t, jwt.SigningMethodHS256, key, "", with(good, "aud", []string{"other", "neonguard"}))
		wantPrincipal(t, a, tok, "acme", identity.ScopeAdmin)
	})
	t.Run("expired within leeway", func(t *testing.T) {
		tok := sign(t, jwt.SigningMethodHS256, key, "", with(good, "exp", now.Add(-10*time.Second).Unix()))
		wantPrincipal(t, a, tok, "acme", identity.ScopeAdmin)
	})
	t.Run("opaque tokens still work", func(t *testing.T) {
		secret, _ := issue(t, s, "other", identity.ScopeAdmin)
		wantPrincipal(t, a, secret, "other", identity.ScopeAdmin)
	})

	refused := []struct {
		name  string
		why   string // substring of the refusal; "" = Verify accepts
		token string
	}{
		{"expired", "expired", sign(t, jwt.SigningMethodHS256, key, "", with(good, "exp", now.Add(-time.Minute).Unix()))},
		{"no exp", "required claim missing", sign(t, jwt.SigningMethodHS256, key, "", with(good, "exp", nil))},
		{"not yet valid", "not valid yet", sign(t, jwt.SigningMethodHS256, key, "", with(good, "nbf", now.Add(time.Minute).Unix()))},
		{"issued in the future", "issued in the future", sign(t, jwt.SigningMethodHS256, key, "", with(good, "iat", now.Add(time.Minute).Unix()))},
		{"wrong issuer", "wrong issuer", sign(t, jwt.SigningMethodHS256, key, "", with(good, "iss", "https://evil.test"))},
		{"no issuer", "required claim missing", sign(t, jwt.SigningMethodHS256, key, "", with(good, "iss", nil))},
		{"wrong audience", "wrong audience", sign(t, jwt.SigningMethodHS256, key, "", with(good, "aud", "someone-else"))},
		{"no audience", "required claim missing", sign(t, jwt.SigningMethodHS256, key, "", with(good, "aud", nil))},
		{"bad signature", "bad signature", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("y", 40)), "", good)},
		{"tampered payload", "bad signature", tamper(t, sign(t, jwt.SigningMethodHS256, key, "", good), "other")},
		{"missing tenant", "tenant claim", sign(t, jwt.SigningMethodHS256, key, "", with(good, "tenant", nil))},
		{"empty tenant", "tenant claim", sign(t, jwt.SigningMethodHS256, key, "", with(good, "tenant", ""))},
		{"numeric tenant", "tenant claim", sign(t, jwt.SigningMethodHS256, key, "", with(good, "tenant", 42))},
		{"unknown tenant", "", sign(t, jwt.SigningMethodHS256, key, "", with(good, "tenant", "nobody"))},
		{"scope of wrong type", "scope claim", sign(t, jwt.SigningMethodHS256, key, "", with(good, "scope", 7))},
		{"HS384", "algorithm not allowed", sign(t, jwt.SigningMethodHS384, key, "", good)},
		{"RS256 with a secret verifier", "algorithm not allowed", sign(t, jwt.SigningMethodRS256, rsaKey, "", good)},
		{"alg none", "malformed", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", good)},
		{"alg none with a signature", "algorithm not allowed", noneWithSignature(good)},
		{"junk segments", "malformed", "aaaa.bbbb.cccc"},
		{"two segments", "malformed", "aaaa.bbbb"},
		{"non-base64url", "malformed", "aa+a.bbbb.cccc"},
		{"huge", "malformed", strings.Repeat("a", maxJWTLen) + ".b.c"},
		// RFC 7515 §4.1.11: an extension listed in crit that is not understood is refused,
		// even when the token is otherwise valid and the extension header is present.
		{"crit extension", "critical header", signWithHeader(t, key, good, "crit", []string{"x"}, "x", true)},
		{"crit naming a registered header", "critical header", signWithHeader(t, key, good, "crit", []string{"kid"}, "kid", "k1")},
		{"empty crit", "critical header", signWithHeader(t, key, good, "crit", []string{})},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, a, tc.token)
			wantReason(t, v, tc.token, tc.why)
		})
	}

	t.Run("no JWT verifier", func(t *testing.T) {
		wantRefused(t, &Authenticator{Store: s}, sign(t, jwt.SigningMethodHS256, key, "", good))
	})
}

// wantReason checks that Verify refuses token for why (or accepts it when why is empty), and
// that the error quotes none of the token.
func wantReason(t *testing.T, v *JWTVerifier, token, why string) {
	t.Helper()
	_, _, err := v.Verify(t.Context(), token)
	if why == "" {
		if err != nil {
			t.Fatalf("Verify: %v, want success", err)
		}
		return
	}
	if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), why) {
		t.Fatalf("Verify: %v, want ErrUnauthenticated for %q", err, why)
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) > 3 && strings.Contains(err.Error(), part) {
			t.Fatalf("error %q quotes the token", err)
		}
	}
}

// tamper replaces the payload's tenant, keeping the original signature.
func tamper(t *testing.T, token, tenant string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	c["tenant"] = tenant
	payload, _ = json.Marshal(c)
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// noneWithSignature is an alg "none" token with a non-empty signature segment, so it gets past
// the shape check and must be refused by the algorithm pinning.
func noneWithSignature(c jwt.MapClaims) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	p, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + ".c2ln"
}

// jwksServer serves a mutable key set and counts fetches.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64
	down     atomic.Bool
	mu       sync.Mutex
	keys     []jose.JSONWebKey
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	t.Helper()
	js := &jwksServer{keys: keys}
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.requests.Add(1)
		if js.down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		js.mu.Lock()
		body, err := json.Marshal(jose.JSONWebKeySet{Keys: js.keys})
		js.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) setKeys(keys ...jose.JSONWebKey) {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.keys = keys
}

// testKeys are one signing key of each supported type.
type testKeys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
}

func newTestKeys(t *testing.T) testKeys {
	t.Helper()
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, d, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKeys{rsa: r, ec: e, ed: d}
}

func publicJWK(kid, alg string, priv crypto.Signer) jose.JSONWebKey {
	return jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}
}

func (k testKeys) jwks() []jose.JSONWebKey {
	return []jose.JSONWebKey{
		publicJWK("rsa-1", "RS256", k.rsa),
		publicJWK("ec-1", "ES256", k.ec),
		// No alg: the key type decides.
		{Key: k.ed.Public(), KeyID: "ed-1"},
	}
}

// jwksSetup is a JWKS verifier on a fake clock with an authenticator on the test store.
func jwksSetup(t *testing.T, cfg JWTConfig, keys ...jose.JSONWebKey) (*jwksServer, *fakeClock, *Authenticator) {
	t.Helper()
	srv := newJWKSServer(t, keys...)
	clk := newClock()
	cfg.JWKSURL = srv.URL + "/jwks.json"
	cfg.HTTPClient = srv.Client()
	v := newVerifier(t, cfg, clk, nil)
	return srv, clk, &Authenticator{Store: openStore(t), JWT: v}
}

func TestJWTJWKS(t *testing.T) {
	k := newTestKeys(t)
	secret := []byte(strings.Repeat("s", 32))
	keys := append(k.jwks(), jose.JSONWebKey{Key: secret, KeyID: "oct-1", Algorithm: "HS256", Use: "sig"})
	srv, clk, a := jwksSetup(t, JWTConfig{Issuer: "https://issuer.test", Audience: "neonguard"}, keys...)
	good := claimsAt(clk.Now(), "acme")

	wantPrincipal(t, a, sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", good), "acme", identity.ScopeAdmin)
	wantPrincipal(t, a, sign(t, jwt.SigningMethodES256, k.ec, "ec-1", good), "acme", identity.ScopeAdmin)
	wantPrincipal(t, a, sign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", with(good, "tenant", "other")), "other", identity.ScopeAdmin)

	pubDER, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name  string
		why   string // substring of the refusal; "" = Verify accepts
		token string
	}{
		// Algorithm confusion: HMAC keyed with the public key, which the attacker knows.
		{"HS256 keyed with the RSA public key PEM", "algorithm not allowed", sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-1", good)},
		{"HS256 keyed with the RSA public key DER", "algorithm not allowed", sign(t, jwt.SigningMethodHS256, pubDER, "rsa-1", good)},
		{"HS256 with a symmetric key from the set", "algorithm not allowed", sign(t, jwt.SigningMethodHS256, secret, "oct-1", good)},
		{"alg none", "malformed", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa-1", good)},
		{"alg none with a signature", "algorithm not allowed", noneWithSignature(good)},
		{"ES256 header on an RSA kid", "algorithm does not match the key", sign(t, jwt.SigningMethodES256, k.ec, "rsa-1", good)},
		{"RS256 header on an EC kid", "algorithm does not match the key", sign(t, jwt.SigningMethodRS256, k.rsa, "ec-1", good)},
		{"PS256", "algorithm not allowed", sign(t, jwt.SigningMethodPS256, k.rsa, "rsa-1", good)},
		{"RS512", "algorithm not allowed", sign(t, jwt.SigningMethodRS512, k.rsa, "rsa-1", good)},
		{"bad signature", "bad signature", sign(t, jwt.SigningMethodRS256, otherRSA, "rsa-1", good)},
		{"tampered payload", "bad signature", tamper(t, sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", good), "other")},
		{"no kid", "unknown key id", sign(t, jwt.SigningMethodRS256, k.rsa, "", good)},
		{"expired", "expired", sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", with(good, "exp", clk.Now().Add(-time.Minute).Unix()))},
		{"not yet valid", "not valid yet", sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", with(good, "nbf", clk.Now().Add(time.Minute).Unix()))},
		{"wrong issuer", "wrong issuer", sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", with(good, "iss", "https://evil.test"))},
		{"wrong audience", "wrong audience", sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", with(good, "aud", "other"))},
		{"missing tenant", "tenant claim", sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", with(good, "tenant", nil))},
		{"unknown tenant", "", sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", with(good, "tenant", "nobody"))},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, a, tc.token)
			wantReason(t, a.JWT, tc.token, tc.why)
		})
	}
	// Everything above ran inside one refresh interval: one fetch.
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
}

func TestJWTCustomClaims(t *testing.T) {
	k := newTestKeys(t)
	_, clk, a := jwksSetup(t, JWTConfig{TenantClaim: "org_id", ScopeClaim: "scp"}, k.jwks()...)
	c := jwt.MapClaims{
		"sub":    "user-1",
		"org_id": "acme",
		"scp":    []string{"openid", "admin"},
		"exp":    clk.Now().Add(time.Minute).Unix(),
	}
	wantPrincipal(t, a, sign(t, jwt.SigningMethodES256, k.ec, "ec-1", c), "acme", identity.ScopeAdmin)
	wantPrincipal(t, a, sign(t, jwt.SigningMethodES256, k.ec, "ec-1", with(c, "scp", "admin openid")), "acme", identity.ScopeAdmin)
	// The default claims mean nothing now.
	wantRefused(t, a, sign(t, jwt.SigningMethodES256, k.ec, "ec-1", with(c, "org_id", nil, "tenant", "acme")))
	wantRefused(t, a, sign(t, jwt.SigningMethodES256, k.ec, "ec-1", with(c, "scp", []any{"admin", 1})))
	wantPrincipal(t, a, sign(t, jwt.SigningMethodES256, k.ec, "ec-1", with(c, "scp", nil, "scope", "admin")), "acme")

	// The subject as the tenant.
	s := openStore(t)
	v := newVerifier(t, JWTConfig{HS256Secret: testSecret, TenantClaim: "sub"}, clk, nil)
	sub := &Authenticator{Store: s, JWT: v}
	wantPrincipal(t, sub, sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", with(c, "sub", "other")), "other")
}

func TestJWKSUnknownKidRefreshesOnce(t *testing.T) {
	k := newTestKeys(t)
	srv, clk, a := jwksSetup(t, JWTConfig{}, k.jwks()...)
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	unknown := sign(t, jwt.SigningMethodRS256, stranger, "nope", claimsAt(clk.Now(), "acme"))
	for range 5 {
		wantRefused(t, a, unknown)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
	_, _, err = a.JWT.Verify(t.Context(), unknown)
	if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "unknown key id") {
		t.Fatalf("Verify: %v", err)
	}
	clk.Advance(DefaultJWKSRefresh)
	wantRefused(t, a, unknown)
	wantRefused(t, a, unknown)
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
}

func TestJWKSRotation(t *testing.T) {
	k := newTestKeys(t)
	next := newTestKeys(t)
	srv, clk, a := jwksSetup(t, JWTConfig{}, publicJWK("rsa-1", "RS256", k.rsa))
	old := func() string { return sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", claimsAt(clk.Now(), "acme")) }
	rotated := func() string { return sign(t, jwt.SigningMethodRS256, next.rsa, "rsa-2", claimsAt(clk.Now(), "acme")) }
	wantPrincipal(t, a, old(), "acme", identity.ScopeAdmin)

	srv.setKeys(publicJWK("rsa-1", "RS256", k.rsa), publicJWK("rsa-2", "RS256", next.rsa))
	wantRefused(t, a, rotated()) // fetched moments ago: no refresh yet
	clk.Advance(DefaultJWKSRefresh)
	wantPrincipal(t, a, rotated(), "acme", identity.ScopeAdmin)
	wantPrincipal(t, a, old(), "acme", identity.ScopeAdmin)
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}

	// The old key leaves the set: it stops working once the cached set is too old.
	srv.setKeys(publicJWK("rsa-2", "RS256", next.rsa))
	wantPrincipal(t, a, old(), "acme", identity.ScopeAdmin)
	clk.Advance(jwksMaxAge)
	wantRefused(t, a, old())
	wantPrincipal(t, a, rotated(), "acme", identity.ScopeAdmin)
	if n := srv.requests.Load(); n != 3 {
		t.Fatalf("JWKS fetched %d times, want 3", n)
	}
}

func TestJWKSOutage(t *testing.T) {
	k := newTestKeys(t)
	srv := newJWKSServer(t, k.jwks()...)
	srv.down.Store(true)
	clk := newClock()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	v := newVerifier(t, JWTConfig{JWKSURL: srv.URL, HTTPClient: srv.Client()}, clk, logger)
	a := &Authenticator{Store: openStore(t), JWT: v}
	tok := func() string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", claimsAt(clk.Now(), "acme")) }

	first := tok()
	wantRefused(t, a, first)
	_, _, err := v.Verify(t.Context(), first)
	if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "signing keys unavailable") {
		t.Fatalf("Verify: %v", err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "fetch JWKS") {
		t.Fatalf("no warning logged: %q", logs.String())
	}
	if strings.Contains(logs.String(), first) {
		t.Fatal("the log quotes the token")
	}

	// Back up, but the failure counts as an attempt: no fetch until the interval passes.
	srv.down.Store(false)
	wantRefused(t, a, tok())
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
	clk.Advance(DefaultJWKSRefresh)
	wantPrincipal(t, a, tok(), "acme", identity.ScopeAdmin)
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}

	// Down again with keys cached: known keys keep working, even when the set is due for a
	// refresh that fails.
	srv.down.Store(true)
	clk.Advance(jwksMaxAge)
	wantPrincipal(t, a, tok(), "acme", identity.ScopeAdmin)
	wantPrincipal(t, a, tok(), "acme", identity.ScopeAdmin)
	if n := srv.requests.Load(); n != 3 {
		t.Fatalf("JWKS fetched %d times, want 3", n)
	}
}

func TestJWKSBurst(t *testing.T) {
	k := newTestKeys(t)
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv, clk, a := jwksSetup(t, JWTConfig{}, k.jwks()...)
	burst := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := range 50 {
			unknown := i%2 == 0
			var tok string
			if unknown {
				tok = sign(t, jwt.SigningMethodES256, stranger, "unknown-"+string(rune('a'+i%26)), claimsAt(clk.Now(), "acme"))
			} else {
				tok = sign(t, jwt.SigningMethodES256, k.ec, "ec-1", claimsAt(clk.Now(), "acme"))
			}
			wg.Go(func() {
				p, err := a.Authenticate(context.Background(), "Bearer "+tok)
				switch {
				case unknown && !errors.Is(err, ErrUnauthenticated):
					errs <- errors.New("unknown kid accepted")
				case !unknown && (err != nil || p.TenantID != "acme"):
					errs <- errors.New("known kid refused: " + errString(err))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	burst() // cold cache: one fetch serves everyone
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
	burst()
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
	clk.Advance(DefaultJWKSRefresh)
	burst()
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestJWKSWaitHonoursContext checks that a caller waiting on another's fetch gives up with its
// own context, and that its giving up is not a refusal.
func TestJWKSWaitHonoursContext(t *testing.T) {
	k := newTestKeys(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		body, _ := json.Marshal(jose.JSONWebKeySet{Keys: k.jwks()})
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	clk := newClock()
	v := newVerifier(t, JWTConfig{JWKSURL: srv.URL, HTTPClient: srv.Client()}, clk, nil)
	tok := sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", claimsAt(clk.Now(), "acme"))

	done := make(chan error, 1)
	go func() {
		_, _, err := v.Verify(context.Background(), tok)
		done <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := v.Verify(ctx, tok); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("waiting Verify: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("fetching Verify: %v", err)
	}
}

func TestUsableKey(t *testing.T) {
	k := newTestKeys(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  jose.JSONWebKey
		alg  string // "" = unusable
	}{
		{"rsa", jose.JSONWebKey{Key: &k.rsa.PublicKey}, "RS256"},
		{"ec p256", jose.JSONWebKey{Key: &k.ec.PublicKey, Algorithm: "ES256"}, "ES256"},
		{"ed25519", jose.JSONWebKey{Key: k.ed.Public(), Use: "sig"}, "EdDSA"},
		{"encryption key", jose.JSONWebKey{Key: &k.rsa.PublicKey, Use: "enc"}, ""},
		{"conflicting alg", jose.JSONWebKey{Key: &k.rsa.PublicKey, Algorithm: "HS256"}, ""},
		{"ec p384", jose.JSONWebKey{Key: &p384.PublicKey}, ""},
		{"small rsa", jose.JSONWebKey{Key: &small.PublicKey}, ""},
		{"symmetric", jose.JSONWebKey{Key: []byte(testSecret)}, ""},
		{"private", jose.JSONWebKey{Key: k.rsa}, ""},
	}
	for _, tc := range tests {
		got, ok := usableKey(tc.key)
		if ok != (tc.alg != "") || got.alg != tc.alg {
			t.Errorf("%s: got %q %v, want %q", tc.name, got.alg, ok, tc.alg)
		}
	}
}

// tenantFailingStore fails tenant lookups, as a down database would.
type tenantFailingStore struct{ store.Store }

func (tenantFailingStore) GetTenant(context.Context, string) (store.Tenant, error) {
	return store.Tenant{}, errors.New("connection refused")
}

func TestJWTStoreFailureIsNotUnauthenticated(t *testing.T) {
	clk := newClock()
	v := newVerifier(t, JWTConfig{HS256Secret: testSecret}, clk, nil)
	a := &Authenticator{Store: tenantFailingStore{}, JWT: v}
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claimsAt(clk.Now(), "acme"))
	_, err := a.Authenticate(t.Context(), "Bearer "+tok)
	if err == nil || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("err = %v, want a store error distinct from ErrUnauthenticated", err)
	}
}
