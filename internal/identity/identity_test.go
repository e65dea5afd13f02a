package identity

import (
	"context"
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
