package identity

import (
	"context"
	"strings"
	"testing"
)

func TestPrincipalTravelsInContext(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("a principal in an empty context")
	}
	if _, ok := FromContext(NewContext(context.Background(), Principal{})); ok {
		t.Fatal("a principal without a tenant was accepted")
	}
	p, ok := FromContext(NewContext(context.Background(), Principal{TenantID: "t1", Scopes: []string{ScopeAdmin}}))
	if !ok || p.TenantID != "t1" || !p.HasScope(ScopeAdmin) || p.HasScope("other") {
		t.Fatalf("got %+v, %v", p, ok)
	}
	if !ValidScope(ScopeAdmin) || ValidScope("root") {
		t.Fatal("ValidScope")
	}
}

// A credential's access is its highest scope; none means write; a read-only deployment caps
// every principal, admin included, at reading.
func TestCanWrite(t *testing.T) {
	for _, c := range []struct {
		scopes   []string
		readOnly bool
		want     bool
	}{
		{nil, false, true},
		{[]string{ScopeRead}, false, false},
		{[]string{ScopeWrite}, false, true},
		{[]string{ScopeAdmin}, false, true},
		{[]string{ScopeRead, ScopeWrite}, false, true},
		{[]string{ScopeRead, ScopeAdmin}, false, true},
		{nil, true, false},
		{[]string{ScopeWrite}, true, false},
		{[]string{ScopeAdmin}, true, false},
	} {
		p := Principal{TenantID: "t", Scopes: c.scopes, ReadOnly: c.readOnly}
		if got := p.CanWrite(); got != c.want {
			t.Errorf("%+v: CanWrite = %v, want %v", p, got, c.want)
		}
		if !c.want && p.ReadOnlyReason() == "" {
			t.Errorf("%+v: no reason", p)
		}
	}
	for _, s := range []string{"read", "write", "admin"} {
		if !ValidScope(s) {
			t.Errorf("scope %q is not valid", s)
		}
	}
	if ValidScope("Read") || ValidScope("readonly") {
		t.Error("ValidScope is not exact")
	}
	if got := (Principal{ReadOnly: true}).ReadOnlyReason(); !strings.Contains(got, "read-only") {
		t.Errorf("a read-only server's reason: %q", got)
	}
	if got := (Principal{Scopes: []string{ScopeRead}}).ReadOnlyReason(); !strings.Contains(got, "--scope write") {
		t.Errorf("a read token's reason: %q", got)
	}
}
