package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/mcptest"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/server"
	"github.com/neonguard/neonguard/internal/store"
)

// fakeGuard lets a test decide what each use case does; unset ones panic (the embedded nil
// interface), which is itself a case the server must survive.
type fakeGuard struct {
	guard.UseCases
	limits func(ctx context.Context) (*guard.Limits, error)
	usage  func(ctx context.Context, id string) (*guard.UsageResult, error)
}

func (f *fakeGuard) DescribeLimits(ctx context.Context) (*guard.Limits, error) { return f.limits(ctx) }
func (f *fakeGuard) GetUsage(ctx context.Context, in guard.DatabaseInput) (*guard.UsageResult, error) {
	return f.usage(ctx, in.DatabaseID)
}

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func start(t testing.TB, s *mcpserver.MCPServer) *client.Client {
	t.Helper()
	return mcptest.Connect(t, s)
}

func callTool(t *testing.T, ctx context.Context, c *client.Client, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	var req mcp.CallToolRequest
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

func errorCode(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if !res.IsError {
		return ""
	}
	var body struct{ Error struct{ Code string } }
	if err := json.Unmarshal([]byte(res.Content[0].(mcp.TextContent).Text), &body); err != nil {
		t.Fatal(err)
	}
	return body.Error.Code
}

func TestEveryCallIsAuditedWithDecisionAndOutcome(t *testing.T) {
	st := openStore(t)
	g := &fakeGuard{
		limits: func(ctx context.Context) (*guard.Limits, error) {
			p, _ := identity.FromContext(ctx)
			return &guard.Limits{Tier: "free:" + p.TenantID, Quota: []guard.Metric{}}, nil
		},
		usage: func(ctx context.Context, id string) (*guard.UsageResult, error) {
			return nil, &errcode.Error{Code: errcode.NotFound, Message: "database \"" + id + "\" not found", Hint: "list"}
		},
	}
	s := server.New(server.Options{Guard: g, Audit: st, DefaultPrincipal: &identity.Principal{TenantID: "t1"}})
	c := start(t, s)

	if code := errorCode(t, callTool(t, context.Background(), c, "describe_limits", nil)); code != "" {
		t.Fatalf("describe_limits: %s", code)
	}
	if code := errorCode(t, callTool(t, context.Background(), c, "get_usage", map[string]any{"database_id": "other-tenants-db"})); code != "NOT_FOUND" {
		t.Fatalf("get_usage: %s, want NOT_FOUND", code)
	}
	// A malformed argument is refused by the tool and still audited, with secrets redacted.
	secret := "postgresql://u:npg_SuperSecret@h/db"
	if code := errorCode(t, callTool(t, context.Background(), c, "get_usage", map[string]any{"database_id": secret})); code != "INVALID_ARGUMENT" {
		t.Fatalf("get_usage with a URI as id: %s, want INVALID_ARGUMENT", code)
	}
	rows, err := st.ListAudit(context.Background(), store.AuditFilter{TenantID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d audit rows, want 3", len(rows))
	}
	// newest first
	if r := rows[2]; r.Tool != "describe_limits" || r.Decision != "allow" || r.Outcome != "ok" {
		t.Errorf("describe_limits row = %+v", r)
	}
	if r := rows[1]; r.Tool != "get_usage" || r.Decision != "NOT_FOUND" || r.Outcome != "denied" || r.DatabaseID != "other-tenants-db" {
		t.Errorf("get_usage row = %+v", r)
	}
	if r := rows[0]; r.Decision != "INVALID_ARGUMENT" || strings.Contains(r.Args+r.DatabaseID+r.Error, "SuperSecret") {
		t.Errorf("audit row keeps a password or lacks the decision: %+v", r)
	}
}

func TestPanicsBecomeProtocolErrorsAndAreAudited(t *testing.T) {
	st := openStore(t)
	s := server.New(server.Options{Guard: &fakeGuard{}, Audit: st, DefaultPrincipal: &identity.Principal{TenantID: "t1"}})
	c := start(t, s)
	var req mcp.CallToolRequest
	req.Params.Name = "list_databases" // fakeGuard has no ListDatabases: nil interface call
	res, err := c.CallTool(context.Background(), req)
	if err == nil && (res == nil || !res.IsError) {
		t.Fatalf("a panicking use case must not succeed: %+v", res)
	}
	// The server is still alive.
	if _, err := c.ListTools(context.Background(), mcp.ListToolsRequest{}); err != nil {
		t.Fatalf("server died after a panic: %v", err)
	}
	rows, err := st.ListAudit(context.Background(), store.AuditFilter{TenantID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Tool != "list_databases" || rows[0].Outcome != "error" || rows[0].Error == "" {
		t.Fatalf("audit rows after a panic = %+v, want one error row for list_databases", rows)
	}
}

// TestPanicBelowTheAuditIsAuditedThenRecovered: a panic under the audit middleware but outside
// a tool handler's own recover (here the rate limiter's tier lookup) is recorded by the audit
// and then becomes a protocol error through mcp-go's recovery; the server lives on.
func TestPanicBelowTheAuditIsAuditedThenRecovered(t *testing.T) {
	st := openStore(t)
	s := server.New(server.Options{Guard: &fakeGuard{}, Audit: st, DefaultPrincipal: &identity.Principal{TenantID: "t1"},
		TierOf: func(context.Context, string) (policy.Tier, error) { panic("tier lookup exploded") }})
	c := start(t, s)
	var req mcp.CallToolRequest
	req.Params.Name = "describe_limits"
	if _, err := c.CallTool(context.Background(), req); err == nil {
		t.Fatal("a panic in the middleware must reach the client as a protocol error")
	}
	if _, err := c.ListTools(context.Background(), mcp.ListToolsRequest{}); err != nil {
		t.Fatalf("server died after a panic: %v", err)
	}
	rows, err := st.ListAudit(context.Background(), store.AuditFilter{TenantID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Tool != "describe_limits" || rows[0].Outcome != "error" ||
		!strings.Contains(rows[0].Error, "tier lookup exploded") {
		t.Fatalf("audit rows after a middleware panic = %+v, want one error row naming the panic", rows)
	}
}

func TestNoPrincipalIsRefusedOnMultiTenantTransports(t *testing.T) {
	called := false
	g := &fakeGuard{limits: func(context.Context) (*guard.Limits, error) {
		called = true
		return &guard.Limits{Quota: []guard.Metric{}}, nil
	}}
	s := server.New(server.Options{Guard: g}) // no DefaultPrincipal
	c := start(t, s)
	res := callTool(t, context.Background(), c, "describe_limits", nil)
	if errorCode(t, res) != "UNAUTHENTICATED" || called {
		t.Fatalf("call without a principal: code %q, guard called %v", errorCode(t, res), called)
	}
	ctx := identity.NewContext(context.Background(), identity.Principal{TenantID: "t2"})
	if code := errorCode(t, callTool(t, ctx, c, "describe_limits", nil)); code != "" || !called {
		t.Fatalf("call with a principal: %q", code)
	}
}

func TestCallTimeoutBoundsAStuckUpstream(t *testing.T) {
	g := &fakeGuard{limits: func(ctx context.Context) (*guard.Limits, error) {
		<-ctx.Done() // a stuck upstream that honours cancellation
		return nil, ctx.Err()
	}}
	s := server.New(server.Options{Guard: g, DefaultPrincipal: &identity.Principal{TenantID: "t"},
		CallTimeout: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	c := start(t, s)
	done := make(chan *mcp.CallToolResult, 1)
	go func() {
		var req mcp.CallToolRequest
		req.Params.Name = "describe_limits"
		res, _ := c.CallTool(context.Background(), req)
		done <- res
	}()
	select {
	case res := <-done:
		if res == nil || !res.IsError {
			t.Fatalf("a timed-out call must be an error result: %+v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call timeout did not end the call")
	}
}
