package app_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/operator"
)

// serveHTTP serves a's hosted endpoint on a test server and returns its base URL.
func serveHTTP(t testing.TB, a *app.App) string {
	t.Helper()
	h, err := a.NewHTTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// newTenantToken creates tenant (if needed) on tier and returns a fresh bearer secret for it.
func newTenantToken(t testing.TB, a *app.App, tenant, tier string, scopes ...string) string {
	t.Helper()
	svc := &operator.Service{Store: a.Store, Policy: a.Config.Policy}
	if _, err := svc.CreateTenant(context.Background(), tenant, tier); err != nil {
		t.Fatal(err)
	}
	tok, err := svc.CreateToken(context.Background(), tenant, scopes)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Secret
}

func dialHTTP(t testing.TB, url, transportName, secret string) *client.Client {
	t.Helper()
	var c *client.Client
	var err error
	header := map[string]string{"Authorization": "Bearer " + secret}
	switch transportName {
	case "streamable":
		c, err = client.NewStreamableHttpClient(url+"/mcp", transport.WithHTTPHeaders(header))
	case "sse":
		c, err = client.NewSSEMCPClient(url+"/sse", transport.WithHeaders(header))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(context.Background(), mcp.InitializeRequest{}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTenantsCannotReachEachOthersDatabases is the isolation proof: tenant A holds a valid
// token and knows tenant B's database id, checkpoint and branch names; every tool that takes a
// database_id, over both transports, answers NOT_FOUND without echoing any of B's names or
// ids, and B's database is unchanged afterwards.
func TestTenantsCannotReachEachOthersDatabases(t *testing.T) {
	// Tenant A calls every tool over both transports: more than the free tier's burst.
	a := newApp(t, func(c *config.Config) {
		tier := c.Policy.Tiers["free"]
		tier.CallBurst = 100
		c.Policy.Tiers["free"] = tier
	})
	url := serveHTTP(t, a)
	secretA := newTenantToken(t, a, "tenant-a", "free")
	secretB := newTenantToken(t, a, "tenant-b", "free")

	b := dialHTTP(t, url, "streamable", secretB)
	db := mustOK(t, call(t, b, "create_database", map[string]any{"name": "bravo-secret-db"}), "B create_database")
	bID := str(db, "database_id")
	mustOK(t, call(t, b, "checkpoint", map[string]any{"database_id": bID, "name": "bravo-ckpt"}), "B checkpoint")
	dev := mustOK(t, call(t, b, "create_dev_branch", map[string]any{"database_id": bID, "name": "bravo-dev"}), "B dev branch")
	secrets := []string{bID, "bravo-secret-db", "bravo-ckpt", "bravo-dev", str(dev, "branch_id")}
	before := call(t, b, "list_branches", map[string]any{"database_id": bID}).Text

	for _, tr := range []string{"streamable", "sse"} {
		t.Run(tr, func(t *testing.T) {
			ca := dialHTTP(t, url, tr, secretA)
			list, err := ca.ListTools(context.Background(), mcp.ListToolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var tried []string
			for _, tool := range list.Tools {
				schema := tool.InputSchema
				if _, ok := schema.Properties["database_id"]; !ok {
					continue
				}
				// Every other argument is valid and names B's objects, so only the ownership
				// check can refuse the call.
				args := map[string]any{"database_id": bID}
				for prop, val := range map[string]any{"name": "alpha-probe", "checkpoint": "bravo-ckpt", "branch": "bravo-dev", "ago": "1m", "sql": "SELECT 1", "version": 1} {
					if _, ok := schema.Properties[prop]; ok {
						args[prop] = val
					}
				}
				tried = append(tried, tool.Name)
				r := call(t, ca, tool.Name, args)
				if r.Code != "NOT_FOUND" {
					t.Errorf("%s with B's database: %s, want NOT_FOUND", tool.Name, r)
				}
				for _, s := range secrets {
					if s != "" && strings.Contains(r.Text, s) {
						t.Errorf("%s reveals %q: %s", tool.Name, s, r.Text)
					}
				}
			}
			want := []string{"apply_migration", "checkpoint", "compare_schema", "create_dev_branch", "delete_dev_branch", "describe_schema", "get_connection_string", "get_usage",
				"list_branches", "list_checkpoints", "list_migrations", "restore_checkpoint", "run_sql", "undo_migration", "undo_to_time"}
			slices.Sort(tried)
			if !slices.Equal(tried, want) {
				t.Errorf("tools tried %v, want every tool with a database_id %v", tried, want)
			}
			for _, tool := range []string{"list_databases", "get_usage"} {
				r := call(t, ca, tool, nil)
				for _, s := range secrets {
					if s != "" && strings.Contains(r.Text, s) {
						t.Errorf("A's %s shows B's %q: %s", tool, s, r.Text)
					}
				}
			}
			checkResourcesIsolated(t, ca, bID, secrets)
		})
	}
	if after := call(t, b, "list_branches", map[string]any{"database_id": bID}).Text; after != before {
		t.Errorf("B's branches changed:\nbefore %s\nafter  %s", before, after)
	}
	cps := call(t, b, "list_checkpoints", map[string]any{"database_id": bID}).Text
	if !strings.Contains(cps, "bravo-ckpt") {
		t.Errorf("B's checkpoint is gone: %s", cps)
	}
}

// TestAdminTokenLifecycleOverHTTP: an admin creates a tenant and a token through the admin
// tools; the token works, and after admin_revoke_token it is refused with 401 while the
// tenant's other tokens keep working.
func TestAdminTokenLifecycleOverHTTP(t *testing.T) {
	a := newApp(t)
	url := serveHTTP(t, a)
	admin := dialHTTP(t, url, "streamable", newTenantToken(t, a, "ops", "free", "admin"))
	if r := call(t, admin, "admin_create_token", map[string]any{"tenant": "acme"}); r.Code != "NOT_FOUND" {
		t.Fatalf("token for a missing tenant: %s", r)
	}
	mustOK(t, call(t, admin, "admin_create_tenant", map[string]any{"tenant": "acme", "tier": "pro"}), "create tenant")
	tok := mustOK(t, call(t, admin, "admin_create_token", map[string]any{"tenant": "acme"}), "create token")
	secret := str(tok, "secret")
	id := str(tok["token"].(map[string]any), "id")
	other := newTenantToken(t, a, "acme", "pro")

	c := dialHTTP(t, url, "streamable", secret)
	if lim := mustOK(t, call(t, c, "describe_limits", nil), "limits"); str(lim, "tier") != "pro" {
		t.Fatalf("new tenant's tier: %v", lim)
	}
	mustOK(t, call(t, admin, "admin_revoke_token", map[string]any{"tenant": "acme", "token_id": id}), "revoke")
	for _, tr := range []string{"streamable", "sse"} {
		var cl *client.Client
		var err error
		h := map[string]string{"Authorization": "Bearer " + secret}
		if tr == "streamable" {
			cl, err = client.NewStreamableHttpClient(url+"/mcp", transport.WithHTTPHeaders(h))
		} else {
			cl, err = client.NewSSEMCPClient(url+"/sse", transport.WithHeaders(h))
		}
		if err != nil {
			t.Fatal(err)
		}
		err = cl.Start(context.Background())
		if err == nil {
			_, err = cl.Initialize(context.Background(), mcp.InitializeRequest{})
		}
		_ = cl.Close()
		// mcp-go reports a 401 as ErrAuthorizationRequired on both transports.
		if !errors.Is(err, transport.ErrAuthorizationRequired) {
			t.Errorf("%s with a revoked token: %v, want 401", tr, err)
		}
	}
	mustOK(t, call(t, dialHTTP(t, url, "sse", other), "list_databases", nil), "the tenant's other token")
	list := mustOK(t, call(t, admin, "admin_list_tokens", map[string]any{"tenant": "acme"}), "list tokens")
	if !strings.Contains(call(t, admin, "admin_list_tokens", map[string]any{"tenant": "acme"}).Text, `"revoked_at"`) || list == nil {
		t.Errorf("the revoked token is not shown as revoked: %v", list)
	}
}

// TestJWTCredentialsOverHTTP: with auth.jwt.hs256_secret set, a JWT naming an existing tenant
// works like its bearer token, its admin scope shows the admin tools, and a JWT for a tenant
// that does not exist, or signed with another secret, is refused with 401.
func TestJWTCredentialsOverHTTP(t *testing.T) {
	secret := strings.Repeat("s3cr3t-", 6)
	a := newApp(t, func(c *config.Config) { c.Auth.JWT.HS256Secret = secret })
	url := serveHTTP(t, a)
	newTenantToken(t, a, "acme", "pro")
	sign := func(key, tenant, scope string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"tenant": tenant, "scope": scope, "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	c := dialHTTP(t, url, "streamable", sign(secret, "acme", ""))
	if lim := mustOK(t, call(t, c, "describe_limits", nil), "limits"); str(lim, "tier") != "pro" {
		t.Fatalf("JWT tenant's tier: %v", lim)
	}
	admin := dialHTTP(t, url, "sse", sign(secret, "acme", "admin other"))
	mustOK(t, call(t, admin, "admin_list_tenants", nil), "admin tools with an admin-scoped JWT")
	for name, tok := range map[string]string{
		"unknown tenant": sign(secret, "nobody", ""),
		"other secret":   sign(strings.Repeat("x", 40), "acme", ""),
	} {
		cl, err := client.NewStreamableHttpClient(url+"/mcp", transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + tok}))
		if err != nil {
			t.Fatal(err)
		}
		err = cl.Start(context.Background())
		if err == nil {
			_, err = cl.Initialize(context.Background(), mcp.InitializeRequest{})
		}
		_ = cl.Close()
		if !errors.Is(err, transport.ErrAuthorizationRequired) {
			t.Errorf("%s: %v, want 401", name, err)
		}
	}
}

// TestMetricsCountToolCallsAndNeonRequests scrapes /metrics after real calls: the tool call by
// outcome and decision code, and the Neon API requests the guard made, by method and status.
func TestMetricsCountToolCallsAndNeonRequests(t *testing.T) {
	a := newApp(t)
	url := serveHTTP(t, a)
	c := dialHTTP(t, url, "streamable", newTenantToken(t, a, "acme", "free"))
	mustOK(t, call(t, c, "create_database", map[string]any{"name": "metered"}), "create_database")
	if r := call(t, c, "list_branches", map[string]any{"database_id": "nope"}); r.Code != "NOT_FOUND" {
		t.Fatalf("unknown id: %s", r)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, want := range []string{
		`neonguard_tool_calls_total{code="allow",outcome="ok",tool="create_database"} 1`,
		`neonguard_tool_calls_total{code="NOT_FOUND",outcome="denied",tool="list_branches"} 1`,
		`neonguard_neon_api_requests_total{method="POST",status="201"}`,
		`neonguard_neon_api_requests_total{method="GET",status="200"}`,
		`neonguard_tool_calls_in_flight 0`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// checkResourcesIsolated: the resources and completions (issue 14) are tenant-scoped exactly
// like the tools. c's tenant does not own bID: its databases resource and its completions do
// not show it, and reading bID's resource fails with the very text of an id that does not
// exist.
func checkResourcesIsolated(t *testing.T, c *client.Client, bID string, secrets []string) {
	t.Helper()
	ctx := context.Background()
	read := func(uri string) (string, error) {
		var req mcp.ReadResourceRequest
		req.Params.URI = uri
		res, err := c.ReadResource(ctx, req)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, rc := range res.Contents {
			if tc, ok := rc.(mcp.TextResourceContents); ok {
				b.WriteString(tc.Text)
			}
		}
		return b.String(), nil
	}
	list, err := read("neonguard://databases")
	if err != nil {
		t.Fatalf("read neonguard://databases: %v", err)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(list, s) {
			t.Errorf("neonguard://databases shows B's %q: %s", s, list)
		}
	}
	_, other := read("neonguard://databases/" + bID)
	_, missing := read("neonguard://databases/no-such-database")
	if other == nil || missing == nil {
		t.Fatalf("reading another tenant's database: %v; a missing one: %v; want both refused", other, missing)
	}
	if other.Error() != missing.Error() || !strings.Contains(other.Error(), "NOT_FOUND") {
		t.Errorf("another tenant's database reads %q, a missing one %q: want the same NOT_FOUND", other, missing)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(other.Error(), s) {
			t.Errorf("reading B's database reveals %q: %v", s, other)
		}
	}
	for _, prefix := range []string{"", bID[:3], "bravo"} {
		var req mcp.CompleteRequest
		req.Params.Ref = mcp.PromptReference{Type: "ref/prompt", Name: "safe_migration"}
		req.Params.Argument.Name, req.Params.Argument.Value = "database_id", prefix
		res, err := c.Complete(ctx, req)
		if err != nil {
			t.Fatalf("complete %q: %v", prefix, err)
		}
		if slices.Contains(res.Completion.Values, bID) {
			t.Errorf("completing database_id %q offers B's %s: %v", prefix, bID, res.Completion.Values)
		}
	}
}
