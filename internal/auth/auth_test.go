package auth

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/store"
)

func openStore(t *testing.T) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "neonguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, id := range []string{"acme", "other"} {
		if _, err := s.EnsureTenant(t.Context(), id, "free"); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// issue stores a new token for tenant and returns its secret and row.
func issue(t *testing.T, s store.Store, tenant string, scopes ...string) (string, store.Token) {
	t.Helper()
	secret, tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tok.TenantID, tok.Scopes = tenant, scopes
	if err := s.CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	return secret, tok
}

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		secret, tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !wellFormed(secret) || len(secret) != len(Prefix)+52 {
			t.Fatalf("secret %q is not well formed", secret)
		}
		if tok.Hash != Hash(secret) || len(tok.Hash) != 64 || strings.Contains(tok.Hash, secret) {
			t.Fatalf("hash %q of %q", tok.Hash, secret)
		}
		if !strings.HasPrefix(tok.ID, "tok_") || tok.CreatedAt.IsZero() || tok.TenantID != "" {
			t.Fatalf("token %+v", tok)
		}
		if seen[secret] || seen[tok.ID] {
			t.Fatal("repeated secret or id")
		}
		seen[secret], seen[tok.ID] = true, true
	}
}

func TestHashKnownValue(t *testing.T) {
	// sha256("abc")
	if got := Hash("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("Hash(abc) = %s", got)
	}
}

func TestAuthenticate(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	good, goodTok := issue(t, s, "acme", identity.ScopeAdmin)
	plain, _ := issue(t, s, "other")
	readOnly, _ := issue(t, s, "acme", identity.ScopeRead)
	revoked, revokedTok := issue(t, s, "acme")
	if err := s.RevokeToken(ctx, "acme", revokedTok.ID); err != nil {
		t.Fatal(err)
	}
	unknown, _, _ := NewToken()
	a := &Authenticator{Store: s}

	tests := []struct {
		name       string
		header     string
		wantTenant string
		wantScopes []string
	}{
		{"valid admin", "Bearer " + good, "acme", []string{identity.ScopeAdmin}},
		{"scheme case-insensitive", "bearer " + good, "acme", []string{identity.ScopeAdmin}},
		{"surrounding space", "  Bearer   " + good + " ", "acme", []string{identity.ScopeAdmin}},
		{"valid no scopes", "Bearer " + plain, "other", nil},
		{"valid read", "Bearer " + readOnly, "acme", []string{identity.ScopeRead}},
		{"empty", "", "", nil},
		{"scheme only", "Bearer", "", nil},
		{"scheme and space", "Bearer ", "", nil},
		{"basic scheme", "Basic " + good, "", nil},
		{"no scheme", good, "", nil},
		{"unknown token", "Bearer " + unknown, "", nil},
		{"revoked", "Bearer " + revoked, "", nil},
		{"hash instead of secret", "Bearer " + goodTok.Hash, "", nil},
		{"wrong prefix", "Bearer xyz_" + good[len(Prefix):], "", nil},
		{"truncated", "Bearer " + good[:len(good)-1], "", nil},
		{"upper case", "Bearer " + Prefix + strings.ToUpper(good[len(Prefix):]), "", nil},
		{"trailing junk", "Bearer " + good + "x", "", nil},
		{"two tokens", "Bearer " + good + " " + plain, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(ctx, tc.header)
			if tc.wantTenant == "" {
				if !errors.Is(err, ErrUnauthenticated) || p.TenantID != "" {
					t.Fatalf("got %+v, %v; want ErrUnauthenticated", p, err)
				}
				if err.Error() != ErrUnauthenticated.Error() {
					t.Fatalf("message %q reveals more than the sentinel's", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.TenantID != tc.wantTenant || !slices.Equal(p.Scopes, tc.wantScopes) {
				t.Fatalf("principal = %+v, want %s %v", p, tc.wantTenant, tc.wantScopes)
			}
		})
	}
}

func TestAuthenticateTouchesLastUse(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	secret, tok := issue(t, s, "acme")
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	a := &Authenticator{Store: s, Now: func() time.Time { return now }}
	lastUsed := func() *time.Time {
		t.Helper()
		got, err := s.TokenByHash(ctx, tok.Hash)
		if err != nil {
			t.Fatal(err)
		}
		return got.LastUsedAt
	}
	if _, err := a.Authenticate(ctx, "Bearer "+secret); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); got == nil || !got.Equal(now) {
		t.Fatalf("last use = %v, want %v", got, now)
	}
	// Within TouchEvery: no write.
	first := now
	now = now.Add(DefaultTouchEvery / 2)
	if _, err := a.Authenticate(ctx, "Bearer "+secret); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(first) {
		t.Fatalf("last use = %v, want unchanged %v", got, first)
	}
	now = first.Add(DefaultTouchEvery)
	if _, err := a.Authenticate(ctx, "Bearer "+secret); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(now) {
		t.Fatalf("last use = %v, want %v", got, now)
	}
}

func TestAuthenticateRefusalDoesNotTouch(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	secret, tok := issue(t, s, "acme")
	if err := s.RevokeToken(ctx, "acme", tok.ID); err != nil {
		t.Fatal(err)
	}
	a := &Authenticator{Store: s}
	if _, err := a.Authenticate(ctx, "Bearer "+secret); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("err = %v", err)
	}
	if got, _ := s.TokenByHash(ctx, tok.Hash); got.LastUsedAt != nil {
		t.Fatal("a refused token recorded a use")
	}
}

// failingStore fails every lookup, as a down database would.
type failingStore struct{ store.Store }

func (failingStore) TokenByHash(context.Context, string) (store.Token, error) {
	return store.Token{}, errors.New("connection refused")
}

func TestAuthenticateStoreFailureIsNotUnauthenticated(t *testing.T) {
	secret, _, _ := NewToken()
	a := &Authenticator{Store: failingStore{}}
	_, err := a.Authenticate(t.Context(), "Bearer "+secret)
	if err == nil || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("err = %v, want a store error distinct from ErrUnauthenticated", err)
	}
}
