package store

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestTokenCreateAndLookup(t *testing.T) { forEachStore(t, testTokenCreateAndLookup) }

func testTokenCreateAndLookup(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	created := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	tok := Token{ID: "tok-1", TenantID: "t1", Hash: "h1", Scopes: []string{"admin", "read"}, CreatedAt: created}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	got, err := s.TokenByHash(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "tok-1" || got.TenantID != "t1" || got.Hash != "h1" || !slices.Equal(got.Scopes, tok.Scopes) ||
		!got.CreatedAt.Equal(created) || got.RevokedAt != nil || got.LastUsedAt != nil {
		t.Fatalf("TokenByHash = %+v, want %+v", got, tok)
	}
	if _, err := s.TokenByHash(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown hash: err = %v, want ErrNotFound", err)
	}
}

func TestTokenCreateErrors(t *testing.T) { forEachStore(t, testTokenCreateErrors) }

func testTokenCreateErrors(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	if err := s.CreateToken(ctx, Token{ID: "a", TenantID: "t1", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tok  Token
		want error // nil: any error
	}{
		{"empty id", Token{TenantID: "t1", Hash: "x"}, nil},
		{"empty hash", Token{ID: "b", TenantID: "t1"}, nil},
		{"bad scope", Token{ID: "b", TenantID: "t1", Hash: "x", Scopes: []string{"a b"}}, nil},
		{"empty scope", Token{ID: "b", TenantID: "t1", Hash: "x", Scopes: []string{""}}, nil},
		{"unknown tenant", Token{ID: "b", TenantID: "nobody", Hash: "x"}, ErrNotFound},
		{"duplicate id", Token{ID: "a", TenantID: "t1", Hash: "x"}, ErrConflict},
		{"duplicate hash", Token{ID: "b", TenantID: "t2", Hash: "h"}, ErrConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.CreateToken(ctx, tc.tok)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if toks, _ := s.ListTokens(ctx, "t1"); len(toks) != 1 {
		t.Fatalf("tokens after failed creates = %+v", toks)
	}
}

func TestTokenNoScopes(t *testing.T) { forEachStore(t, testTokenNoScopes) }

func testTokenNoScopes(t *testing.T, s Store) {
	addTenants(t, s)
	if err := s.CreateToken(t.Context(), Token{ID: "a", TenantID: "t1", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.TokenByHash(t.Context(), "h")
	if err != nil || len(got.Scopes) != 0 || got.CreatedAt.IsZero() {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestTokenRevoke(t *testing.T) { forEachStore(t, testTokenRevoke) }

func testTokenRevoke(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	if err := s.CreateToken(ctx, Token{ID: "a", TenantID: "t1", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "t2", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke by another tenant: err = %v, want ErrNotFound", err)
	}
	if err := s.RevokeToken(ctx, "t1", "zzz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke unknown: err = %v, want ErrNotFound", err)
	}
	if got, _ := s.TokenByHash(ctx, "h"); got.RevokedAt != nil {
		t.Fatal("revoked by a failed revoke")
	}
	if err := s.RevokeToken(ctx, "t1", "a"); err != nil {
		t.Fatal(err)
	}
	first, err := s.TokenByHash(ctx, "h")
	if err != nil || first.RevokedAt == nil {
		t.Fatalf("after revoke: %+v, %v", first, err)
	}
	time.Sleep(2 * time.Millisecond)
	if err := s.RevokeToken(ctx, "t1", "a"); err != nil {
		t.Fatalf("revoke twice: %v", err)
	}
	second, _ := s.TokenByHash(ctx, "h")
	if !second.RevokedAt.Equal(*first.RevokedAt) {
		t.Fatalf("second revoke moved revoked_at: %v → %v", first.RevokedAt, second.RevokedAt)
	}
}

func TestTokenList(t *testing.T) { forEachStore(t, testTokenList) }

func testTokenList(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, tok := range []Token{
		{ID: "b", TenantID: "t1", Hash: "hb", CreatedAt: base.Add(time.Minute)},
		{ID: "a", TenantID: "t1", Hash: "ha", CreatedAt: base.Add(2 * time.Minute), Scopes: []string{"admin"}},
		{ID: "c", TenantID: "t2", Hash: "hc", CreatedAt: base},
	} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(i, err)
		}
	}
	if err := s.RevokeToken(ctx, "t1", "b"); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListTokens(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tok := range got {
		ids = append(ids, tok.ID)
	}
	if !slices.Equal(ids, []string{"b", "a"}) {
		t.Fatalf("ids = %v, want [b a] (oldest first, revoked included, own tenant only)", ids)
	}
	if got[0].RevokedAt == nil || got[1].RevokedAt != nil || !slices.Equal(got[1].Scopes, []string{"admin"}) {
		t.Fatalf("tokens = %+v", got)
	}
	if none, err := s.ListTokens(ctx, "nobody"); err != nil || len(none) != 0 {
		t.Fatalf("unknown tenant: %v, %v", none, err)
	}
}

func TestTokenTouch(t *testing.T) { forEachStore(t, testTokenTouch) }

func testTokenTouch(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	if err := s.CreateToken(ctx, Token{ID: "a", TenantID: "t1", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := s.TouchToken(ctx, "a", at); err != nil {
		t.Fatal(err)
	}
	got, _ := s.TokenByHash(ctx, "h")
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(at) {
		t.Fatalf("LastUsedAt = %v, want %v", got.LastUsedAt, at)
	}
	// An older touch (arriving late) neither fails nor moves the last use back.
	if err := s.TouchToken(ctx, "a", at.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.TokenByHash(ctx, "h"); !got.LastUsedAt.Equal(at) {
		t.Fatalf("LastUsedAt moved back to %v", got.LastUsedAt)
	}
	if err := s.TouchToken(ctx, "a", at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.TokenByHash(ctx, "h"); !got.LastUsedAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("LastUsedAt = %v, want %v", got.LastUsedAt, at.Add(time.Hour))
	}
	if err := s.TouchToken(ctx, "zzz", at); !errors.Is(err, ErrNotFound) {
		t.Fatalf("touch unknown: err = %v, want ErrNotFound", err)
	}
}
