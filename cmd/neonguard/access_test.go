package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/tools"
)

// The tools setting is validated against config's list of groups, which must be the tools'.
func TestConfigKnowsEveryToolGroup(t *testing.T) {
	if !slices.Equal(config.KnownToolGroups, tools.Groups()) {
		t.Fatalf("config.KnownToolGroups = %v, tools.Groups() = %v", config.KnownToolGroups, tools.Groups())
	}
}

func TestTokenCreateWithScope(t *testing.T) {
	t.Setenv("NEONGUARD_CONFIG", "")
	dir := t.TempDir()
	if out, err := runCLI(t, dir, "tenant", "create", "acme", "--tier", "free"); err != nil {
		t.Fatalf("tenant create: %v\n%s", err, out)
	}
	out, err := runCLI(t, dir, "tenant", "token", "create", "acme", "--scope", "read", "--output", "json")
	var tok struct{ Scopes []string }
	if err != nil || json.Unmarshal([]byte(out), &tok) != nil || !slices.Equal(tok.Scopes, []string{"read"}) {
		t.Fatalf("token create --scope read: %q, %v", out, err)
	}
	_, err = runCLI(t, dir, "tenant", "token", "create", "acme", "--scope", "readonly")
	if err == nil || !strings.Contains(err.Error(), `unknown scope "readonly"`) || !strings.Contains(err.Error(), "read, write, admin") {
		t.Fatalf("an unknown scope: %v", err)
	}
	// --read-only and --tools are checked like any setting.
	_, err = runCLI(t, dir, "serve", "--tools", "databases,schemas")
	if err == nil || !strings.Contains(err.Error(), `unknown tool group "schemas"`) {
		t.Fatalf("serve --tools with an unknown group: %v", err)
	}
}

// readOnlyToolNames are the agent tools a read principal lists: those annotated read-only,
// and run_sql; only those of groups when groups are given.
func readOnlyToolNames(groups ...string) []string {
	var out []string
	for _, st := range tools.All(tools.Deps{}) {
		if len(groups) > 0 && !slices.Contains(groups, tools.GroupOf(st.Tool.Name)) {
			continue
		}
		if *st.Tool.Annotations.ReadOnlyHint || st.Tool.Name == "run_sql" {
			out = append(out, st.Tool.Name)
		}
	}
	slices.Sort(out)
	return out
}

// accessSession is an initialized MCP client with the calls the access tests make.
type accessSession struct {
	t   *testing.T
	ctx context.Context
	c   *client.Client
}

func (s accessSession) names() []string {
	s.t.Helper()
	res, err := s.c.ListTools(s.ctx, mcp.ListToolsRequest{})
	if err != nil {
		s.t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		if a := tool.Annotations; a.ReadOnlyHint == nil || !*a.ReadOnlyHint {
			s.t.Errorf("%s listed without readOnlyHint", tool.Name)
		}
	}
	slices.Sort(names)
	return names
}

// code calls a tool and returns its error code ("" for success).
func (s accessSession) code(tool string, args map[string]any) string {
	s.t.Helper()
	var req mcp.CallToolRequest
	req.Params.Name = tool
	req.Params.Arguments = args
	res, err := s.c.CallTool(s.ctx, req)
	if err != nil {
		s.t.Fatalf("%s: %v", tool, err)
	}
	if !res.IsError {
		return ""
	}
	return errorCodeOf(s.t, res)
}

// A token with the read scope over Streamable HTTP, made with the CLI: it lists the read-only
// tools only, and a write tool or run_sql with read_only=false is refused with FORBIDDEN, while
// a token without a scope writes.
func TestBinaryReadTokenOverHTTP(t *testing.T) {
	e := &httpEnv{bin: buildBinary(t)}
	e.env = hermeticEnv(
		"NEONGUARD_DATA_DIR="+t.TempDir(),
		"NEONGUARD_BACKEND=local",
		"NEONGUARD_LOCAL_POSTGRES=off", // no SQL runs: what is refused is refused before it
		"NEONGUARD_LOCAL_OPERATION_DELAY=0s",
		"NEONGUARD_LOG_LEVEL=info",
	)
	e.cli(t, "tenant", "create", "acme", "--tier", "free")
	_, readTok := e.createToken(t, "acme", "read")
	_, writeTok := e.createToken(t, "acme")
	e.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	session := func(token string) accessSession {
		c, err := client.NewStreamableHttpClient(e.base+"/mcp",
			transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
			t.Fatalf("initialize: %v", err)
		}
		return accessSession{t: t, ctx: ctx, c: c}
	}

	w := session(writeTok)
	if code := w.code("create_database", map[string]any{"name": "shop"}); code != "" {
		t.Fatalf("create_database with a write token: %s", code)
	}
	r := session(readTok)
	if got, want := r.names(), readOnlyToolNames(); !slices.Equal(got, want) {
		t.Fatalf("a read token's tools/list = %v\nwant %v", got, want)
	}
	if code := r.code("list_databases", nil); code != "" {
		t.Errorf("list_databases with a read token: %s", code)
	}
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"create_database", map[string]any{"name": "other"}},
		{"apply_migration", map[string]any{"database_id": "x", "name": "m", "sql": "CREATE TABLE t (n int)"}},
		{"run_sql", map[string]any{"database_id": "x", "sql": "DELETE FROM t", "read_only": false}},
	} {
		if code := r.code(c.tool, c.args); code != "FORBIDDEN" {
			t.Errorf("%s with a read token: %q, want FORBIDDEN", c.tool, code)
		}
	}
}

// serve --read-only over stdio: the configured tenant behaves like a read token; --tools
// narrows the groups.
func TestBinaryServeReadOnlyOverStdio(t *testing.T) {
	bin := buildBinary(t)
	env := hermeticEnv("NEONGUARD_BACKEND=local", "NEONGUARD_LOCAL_POSTGRES=off", "NEONGUARD_LOCAL_OPERATION_DELAY=0s",
		"NEONGUARD_LOG_LEVEL=warn")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, c := range []struct {
		args   []string
		groups []string
	}{
		{[]string{"--read-only"}, nil},
		{[]string{"--read-only", "--tools", "databases,sql"}, []string{"databases", "sql"}},
	} {
		cl, err := client.NewStdioMCPClient(bin, env, append([]string{"serve", "--data-dir", t.TempDir()}, c.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
			t.Fatalf("initialize: %v", err)
		}
		s := accessSession{t: t, ctx: ctx, c: cl}
		if got, want := s.names(), readOnlyToolNames(c.groups...); !slices.Equal(got, want) {
			t.Errorf("serve %v: tools/list = %v\nwant %v", c.args, got, want)
		}
		if code := s.code("list_databases", nil); code != "" {
			t.Errorf("serve %v: list_databases: %s", c.args, code)
		}
		if code := s.code("create_database", map[string]any{"name": "shop"}); code != "FORBIDDEN" {
			t.Errorf("serve %v: create_database: %q, want FORBIDDEN", c.args, code)
		}
		if code := s.code("run_sql", map[string]any{"database_id": "x", "sql": "DELETE FROM t", "read_only": false}); code != "FORBIDDEN" {
			t.Errorf("serve %v: run_sql write: %q, want FORBIDDEN", c.args, code)
		}
		_ = cl.Close()
	}
}
