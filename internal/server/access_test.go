package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/operator"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/server"
	"github.com/neonguard/neonguard/internal/store"
	"github.com/neonguard/neonguard/tools"
)

// accessGuard records the use cases that were reached; the ones it does not implement panic
// (the embedded nil interface), which the tools answer as INTERNAL, never as FORBIDDEN.
type accessGuard struct {
	guard.UseCases
	mu      sync.Mutex
	reached []string
	sql     []guard.RunSQLInput
}

func (g *accessGuard) reach(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reached = append(g.reached, name)
}

func (g *accessGuard) Reached() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.reached)
}

func (g *accessGuard) RunSQL(_ context.Context, in guard.RunSQLInput) (*guard.RunSQLResult, error) {
	g.reach("run_sql")
	g.mu.Lock()
	g.sql = append(g.sql, in)
	g.mu.Unlock()
	return &guard.RunSQLResult{DatabaseID: in.DatabaseID, Branch: "main", Columns: []guard.SQLColumn{},
		Rows: [][]any{}, Command: "SELECT 1", Statements: []guard.SQLStatement{}}, nil
}

func (g *accessGuard) ListDatabases(context.Context) (*guard.ListDatabasesResult, error) {
	g.reach("list_databases")
	return &guard.ListDatabasesResult{Tier: "free", Databases: []guard.Database{}}, nil
}

func (g *accessGuard) CreateDatabase(_ context.Context, in guard.CreateDatabaseInput) (*guard.CreateDatabaseResult, error) {
	g.reach("create_database")
	return &guard.CreateDatabaseResult{Database: guard.Database{DatabaseID: "db1", Name: in.Name}, Created: true}, nil
}

func (g *accessGuard) DescribeLimits(context.Context) (*guard.Limits, error) {
	g.reach("describe_limits")
	return &guard.Limits{Tier: "free", Quota: []guard.Metric{}}, nil
}

func as(p identity.Principal) context.Context {
	return identity.NewContext(context.Background(), p)
}

var (
	readTok  = identity.Principal{TenantID: "t1", Scopes: []string{identity.ScopeRead}}
	writeTok = identity.Principal{TenantID: "t1"}
	adminTok = identity.Principal{TenantID: "t1", Scopes: []string{identity.ScopeAdmin}}
)

// readOnlyNames are the agent (and, with admin, admin) tools annotated read-only, and run_sql.
func readOnlyNames(admin bool) []string {
	all := tools.All(tools.Deps{})
	if admin {
		all = append(all, tools.AdminTools(tools.Deps{})...)
	}
	var out []string
	for _, st := range all {
		if *st.Tool.Annotations.ReadOnlyHint || st.Tool.Name == "run_sql" {
			out = append(out, st.Tool.Name)
		}
	}
	slices.Sort(out)
	return out
}

func listed(t *testing.T, ctx context.Context, c *client.Client) (names []string, byName map[string]mcp.Tool) {
	t.Helper()
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	byName = map[string]mcp.Tool{}
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		byName[tool.Name] = tool
	}
	slices.Sort(names)
	return names, byName
}

func errorBody(t *testing.T, res *mcp.CallToolResult) (code, message, hint string) {
	t.Helper()
	if !res.IsError {
		return "", "", ""
	}
	var body struct {
		Error struct{ Code, Message, Hint string }
	}
	if err := json.Unmarshal([]byte(res.Content[0].(mcp.TextContent).Text), &body); err != nil {
		t.Fatal(err)
	}
	return body.Error.Code, body.Error.Message, body.Error.Hint
}

// A token with the read scope lists exactly the tools annotated read-only (run_sql among them,
// annotated read-only for it), and every other tool it calls by name is refused with FORBIDDEN
// before the guard; run_sql reads but cannot write. The refusals are audited as denials.
func TestReadScope(t *testing.T) {
	g := &accessGuard{}
	st := openStore(t)
	s := server.New(server.Options{Guard: g, Audit: st,
		Admin: &operator.Service{Store: openStore(t), Policy: policy.Default()}})
	c := start(t, s)
	ctx := as(readTok)

	names, byName := listed(t, ctx, c)
	if want := readOnlyNames(false); !slices.Equal(names, want) {
		t.Fatalf("a read token's tools/list = %v\nwant %v", names, want)
	}
	for _, tool := range byName {
		if a := tool.Annotations; a.ReadOnlyHint == nil || !*a.ReadOnlyHint || *a.DestructiveHint {
			t.Errorf("%s is listed to a read token without readOnlyHint: %+v", tool.Name, a)
		}
	}
	if !strings.Contains(byName["run_sql"].Description, "read_only=false is refused") {
		t.Errorf("run_sql's description for a read token: %q", byName["run_sql"].Description)
	}

	for _, call := range []struct {
		tool string
		args map[string]any
	}{
		{"create_database", map[string]any{"name": "x"}},
		{"apply_migration", map[string]any{"database_id": "db1", "name": "m1", "sql": "CREATE TABLE t (n int)"}},
		{"undo_migration", map[string]any{"database_id": "db1", "version": 1}},
		{"checkpoint", map[string]any{"database_id": "db1", "name": "c"}},
		{"delete_dev_branch", map[string]any{"database_id": "db1", "branch": "b"}},
	} {
		code, msg, hint := errorBody(t, callTool(t, ctx, c, call.tool, call.args))
		if code != "FORBIDDEN" || !strings.Contains(msg, call.tool) || !strings.Contains(hint, "read scope") ||
			!strings.Contains(hint, "--scope write") {
			t.Errorf("%s by a read token: %s %q %q, want FORBIDDEN naming the write scope", call.tool, code, msg, hint)
		}
	}
	// Admin tools stay unknown to a read token, as to any non-admin.
	if _, err := c.CallTool(ctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: "admin_create_token"}}); err == nil {
		t.Error("a read token reached an admin tool")
	}

	// run_sql: read_only=false refused before the guard; a read (the default) goes through,
	// read-only.
	code, msg, _ := errorBody(t, callTool(t, ctx, c, "run_sql", map[string]any{"database_id": "db1", "sql": "INSERT INTO t VALUES (1)", "read_only": false}))
	if code != "FORBIDDEN" || !strings.Contains(msg, "read_only=false") {
		t.Errorf("run_sql read_only=false by a read token: %s %q", code, msg)
	}
	for _, args := range []map[string]any{
		{"database_id": "db1", "sql": "SELECT 1"},
		{"database_id": "db1", "sql": "SELECT 1", "read_only": true},
	} {
		if code, msg, _ := errorBody(t, callTool(t, ctx, c, "run_sql", args)); code != "" {
			t.Errorf("run_sql %v by a read token: %s %s", args, code, msg)
		}
	}
	if code, _, _ := errorBody(t, callTool(t, ctx, c, "list_databases", nil)); code != "" {
		t.Errorf("list_databases by a read token: %s", code)
	}
	if got := g.Reached(); !slices.Equal(got, []string{"run_sql", "run_sql", "list_databases"}) {
		t.Errorf("the guard was reached by %v", got)
	}
	for _, in := range g.sql {
		if !in.ReadOnly {
			t.Errorf("run_sql reached the guard as a write: %+v", in)
		}
	}

	rows, err := st.ListAudit(context.Background(), store.AuditFilter{TenantID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	denied := 0
	for _, r := range rows {
		if r.Decision == "FORBIDDEN" && r.Outcome == "denied" {
			denied++
		}
	}
	if denied != 6 {
		t.Errorf("%d FORBIDDEN rows audited as denied, want 6", denied)
	}
}

// Without a scope a token writes (every agent tool, no admin tool); with admin it has
// everything; read together with a higher scope counts as the higher one.
func TestWriteAndAdminScopes(t *testing.T) {
	g := &accessGuard{}
	s := server.New(server.Options{Guard: g, Admin: &operator.Service{Store: openStore(t), Policy: policy.Default()}})
	c := start(t, s)
	agent := slices.Sorted(slices.Values(tools.Names()))
	for _, p := range []identity.Principal{writeTok, {TenantID: "t1", Scopes: []string{identity.ScopeWrite}},
		{TenantID: "t1", Scopes: []string{identity.ScopeRead, identity.ScopeWrite}}} {
		if names, _ := listed(t, as(p), c); !slices.Equal(names, agent) {
			t.Errorf("%v: tools/list = %v", p.Scopes, names)
		}
		if code, msg, _ := errorBody(t, callTool(t, as(p), c, "create_database", map[string]any{"name": "x"})); code != "" {
			t.Errorf("%v: create_database: %s %s", p.Scopes, code, msg)
		}
		if code, _, _ := errorBody(t, callTool(t, as(p), c, "run_sql", map[string]any{"database_id": "db1", "sql": "INSERT INTO t VALUES (1)", "read_only": false})); code != "" {
			t.Errorf("%v: run_sql write: %s", p.Scopes, code)
		}
	}
	names, byName := listed(t, as(identity.Principal{TenantID: "t1", Scopes: []string{identity.ScopeRead, identity.ScopeAdmin}}), c)
	if len(names) != len(agent)+len(tools.AdminTools(tools.Deps{})) || *byName["run_sql"].Annotations.ReadOnlyHint {
		t.Errorf("read+admin: tools/list = %v", names)
	}
}

// A read-only server caps every principal at reading: the default principal of stdio and
// `neonguard call`, a token with no scope, and an admin, who keeps the read-only admin tools.
func TestReadOnlyServer(t *testing.T) {
	g := &accessGuard{}
	s := server.New(server.Options{Guard: g, ReadOnly: true, DefaultPrincipal: &writeTok,
		Admin: &operator.Service{Store: openStore(t), Policy: policy.Default()}})
	c := start(t, s)

	for _, ctx := range []context.Context{context.Background(), as(writeTok)} { // the default principal, a token
		names, _ := listed(t, ctx, c)
		if want := readOnlyNames(false); !slices.Equal(names, want) {
			t.Fatalf("tools/list on a read-only server = %v\nwant %v", names, want)
		}
		code, _, hint := errorBody(t, callTool(t, ctx, c, "create_database", map[string]any{"name": "x"}))
		if code != "FORBIDDEN" || !strings.Contains(hint, "server is read-only") {
			t.Errorf("create_database on a read-only server: %s %q", code, hint)
		}
		code, _, hint = errorBody(t, callTool(t, ctx, c, "run_sql", map[string]any{"database_id": "db1", "sql": "DELETE FROM t", "read_only": false}))
		if code != "FORBIDDEN" || !strings.Contains(hint, "server is read-only") {
			t.Errorf("run_sql write on a read-only server: %s %q", code, hint)
		}
		if code, _, _ := errorBody(t, callTool(t, ctx, c, "run_sql", map[string]any{"database_id": "db1", "sql": "SELECT 1"})); code != "" {
			t.Errorf("run_sql read on a read-only server: %s", code)
		}
	}
	names, _ := listed(t, as(adminTok), c)
	if want := readOnlyNames(true); !slices.Equal(names, want) {
		t.Errorf("an admin's tools/list on a read-only server = %v\nwant %v", names, want)
	}
	if code, _, _ := errorBody(t, callTool(t, as(adminTok), c, "admin_create_tenant", map[string]any{"tenant": "new", "tier": "free"})); code != "FORBIDDEN" {
		t.Errorf("admin_create_tenant on a read-only server: %s", code)
	}
	if code, msg, _ := errorBody(t, callTool(t, as(adminTok), c, "admin_list_tenants", nil)); code != "" {
		t.Errorf("admin_list_tenants on a read-only server: %s %s", code, msg)
	}
	for _, in := range g.sql {
		if !in.ReadOnly {
			t.Errorf("run_sql reached the guard as a write: %+v", in)
		}
	}
}

// Tool groups: the tools of the groups not served are neither listed nor callable, to any
// principal; the admin tools are in no group and stay.
func TestToolGroups(t *testing.T) {
	g := &accessGuard{}
	s := server.New(server.Options{Guard: g, ToolGroups: []string{tools.GroupDatabases, tools.GroupUsage},
		Admin: &operator.Service{Store: openStore(t), Policy: policy.Default()}})
	c := start(t, s)
	want := []string{"create_database", "describe_limits", "get_connection_string", "get_usage", "list_databases"}
	if names, _ := listed(t, as(writeTok), c); !slices.Equal(names, want) {
		t.Fatalf("tools/list with databases,usage = %v, want %v", names, want)
	}
	if names, _ := listed(t, as(readTok), c); !slices.Equal(names, []string{"describe_limits", "get_connection_string", "get_usage", "list_databases"}) {
		t.Fatalf("a read token's tools/list with databases,usage = %v", names)
	}
	names, _ := listed(t, as(adminTok), c)
	for _, st := range tools.AdminTools(tools.Deps{}) {
		if !slices.Contains(names, st.Tool.Name) {
			t.Errorf("admin tool %s missing with groups set: %v", st.Tool.Name, names)
		}
	}
	for _, name := range []string{"run_sql", "checkpoint", "list_branches"} {
		var req mcp.CallToolRequest
		req.Params.Name = name
		req.Params.Arguments = map[string]any{"database_id": "db1", "sql": "SELECT 1"}
		if _, err := c.CallTool(as(adminTok), req); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("%s of a group not served: %v, want tool not found", name, err)
		}
	}
	if code, _, _ := errorBody(t, callTool(t, as(writeTok), c, "describe_limits", nil)); code != "" {
		t.Errorf("describe_limits: %s", code)
	}
	if got := g.Reached(); !slices.Equal(got, []string{"describe_limits"}) {
		t.Errorf("the guard was reached by %v", got)
	}
}

// Over Streamable HTTP the principal comes from the bearer token: a read token is read-only,
// and a read-only deployment caps even an admin token.
func TestAccessOverHTTP(t *testing.T) {
	auth := tokenAuth{"tok-read": readTok, "tok-write": writeTok, "tok-admin": adminTok}
	for _, readOnly := range []bool{false, true} {
		h := newHarness(t, func(so *server.Options, ho *server.HTTPOptions) {
			so.ReadOnly = readOnly
			ho.Auth = auth
		})
		for _, c := range []struct {
			token     string
			wantWrite bool
		}{{"tok-read", false}, {"tok-write", !readOnly}, {"tok-admin", !readOnly}} {
			cl := streamableClient(t, h.url, c.token)
			names, _ := listed(t, t.Context(), cl)
			if !c.wantWrite && slices.Contains(names, "create_database") || c.wantWrite != slices.Contains(names, "apply_migration") {
				t.Errorf("read-only server %v, %s: tools/list = %v", readOnly, c.token, names)
			}
			code, _, _ := errorBody(t, callTool(t, t.Context(), cl, "run_sql", map[string]any{"database_id": "db1", "sql": "DELETE FROM t", "read_only": false}))
			if (code == "FORBIDDEN") == c.wantWrite {
				t.Errorf("read-only server %v, %s: run_sql write answered %q", readOnly, c.token, code)
			}
		}
	}
}
