package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/auth"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/metrics"
	"github.com/neonguard/neonguard/internal/operator"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/server"
	"github.com/neonguard/neonguard/internal/store"
)

var errRefused = fmt.Errorf("test token: %w", auth.ErrUnauthenticated)

// tokenAuth maps "Bearer <token>" to a principal; "Bearer broken" is a store failure.
type tokenAuth map[string]identity.Principal

func (a tokenAuth) Authenticate(_ context.Context, h string) (identity.Principal, error) {
	tok, _ := strings.CutPrefix(h, "Bearer ")
	if tok == "broken" {
		return identity.Principal{}, errors.New("store is down")
	}
	if p, ok := a[tok]; ok {
		return p, nil
	}
	return identity.Principal{}, errRefused
}

var testTokens = tokenAuth{
	"tok-a":     {TenantID: "tenant-a"},
	"tok-b":     {TenantID: "tenant-b"},
	"tok-admin": {TenantID: "ops", Scopes: []string{identity.ScopeAdmin}},
}

// echoGuard answers describe_limits with the caller's tenant as the tier, so a test sees which
// principal reached the guard; calls counts the calls that did.
type echoGuard struct {
	guard.UseCases
	calls   atomic.Int64
	release chan struct{} // when set, describe_limits waits for it
}

func (g *echoGuard) DescribeLimits(ctx context.Context) (*guard.Limits, error) {
	g.calls.Add(1)
	if g.release != nil {
		<-g.release
	}
	p, _ := identity.FromContext(ctx)
	return &guard.Limits{Tier: p.TenantID, Quota: []guard.Metric{}}, nil
}

type harness struct {
	url     string
	guard   *echoGuard
	metrics *metrics.Metrics
	http    *server.HTTP
}

func newHarness(t *testing.T, mod func(*server.Options, *server.HTTPOptions)) *harness {
	t.Helper()
	h := &harness{guard: &echoGuard{}, metrics: metrics.New()}
	calls := server.NewCalls()
	so := server.Options{Guard: h.guard, Audit: openStore(t), Metrics: h.metrics, Calls: calls,
		Admin: &operator.Service{Store: openStore(t), Policy: policy.Default()}}
	ho := server.HTTPOptions{Auth: testTokens,
		Calls: calls, Metrics: h.metrics}
	if mod != nil {
		mod(&so, &ho)
	}
	h.http = server.NewHTTP(server.New(so), ho)
	srv := httptest.NewServer(h.http)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func streamableClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.NewStreamableHttpClient(url+"/mcp", transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		t.Fatal(err)
	}
	initClient(t, c)
	return c
}

func sseClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.NewSSEMCPClient(url+"/sse", transport.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		t.Fatal(err)
	}
	initClient(t, c)
	return c
}

func initClient(t *testing.T, c *client.Client) {
	t.Helper()
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(t.Context(), mcp.InitializeRequest{}); err != nil {
		t.Fatal(err)
	}
}

func tierOf(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res.IsError {
		t.Fatalf("error result: %+v", res.Content)
	}
	m, _ := res.StructuredContent.(map[string]any)
	tier, _ := m["tier"].(string)
	return tier
}

func TestHTTPRefusesMissingAndBadCredentials(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"describe_limits"}}`},
		{"GET", "/sse", ""},
		{"POST", "/message?sessionId=x", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"describe_limits"}}`},
	} {
		for _, authz := range []string{"", "Bearer nope", "Basic dXNlcjpwdw==", "Bearer broken"} {
			req, _ := http.NewRequest(tc.method, h.url+tc.path, strings.NewReader(tc.body))
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if authz == "Bearer broken" { // the store failed: not the caller's fault
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("%s %s with a failing store: %d, want 503", tc.method, tc.path, resp.StatusCode)
				}
				continue
			}
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: %d, want 401", tc.method, tc.path, authz, resp.StatusCode)
			}
			challenge := resp.Header.Get("WWW-Authenticate")
			wantMeta := `resource_metadata="` + h.url + `/.well-known/oauth-protected-resource/mcp"`
			if !strings.HasPrefix(challenge, "Bearer ") || !strings.Contains(challenge, wantMeta) {
				t.Errorf("%s %s: WWW-Authenticate %q lacks %s", tc.method, tc.path, challenge, wantMeta)
			}
			if authz != "" && !strings.Contains(challenge, `error="invalid_token"`) {
				t.Errorf("a bad credential's challenge must say invalid_token: %q", challenge)
			}
		}
	}
	if n := h.guard.calls.Load(); n != 0 {
		t.Fatalf("%d tool calls ran without valid credentials", n)
	}
	// The metadata the challenge points at is served without credentials.
	resp, err := http.Get(h.url + "/.well-known/oauth-protected-resource/mcp")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"resource":"`+h.url+`/mcp"`) {
		t.Fatalf("metadata: %d %s", resp.StatusCode, body)
	}
}

func TestHTTPPrincipalComesFromTheCredentialOnBothTransports(t *testing.T) {
	h := newHarness(t, nil)
	for name, dial := range map[string]func(*testing.T, string, string) *client.Client{
		"streamable": streamableClient, "sse": sseClient,
	} {
		t.Run(name, func(t *testing.T) {
			for _, tok := range []string{"tok-a", "tok-b"} {
				c := dial(t, h.url, tok)
				// Arguments cannot choose the tenant: unknown keys are refused or ignored, the
				// principal stays the token's.
				var req mcp.CallToolRequest
				req.Params.Name = "describe_limits"
				req.Params.Arguments = map[string]any{}
				res, err := c.CallTool(t.Context(), req)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := tierOf(t, res), testTokens[tok].TenantID; got != want {
					t.Fatalf("token %s reached the guard as %q, want %q", tok, got, want)
				}
			}
		})
	}
}

// readEndpoint opens an SSE stream and returns the message URL of its session.
func readEndpoint(t *testing.T, base, token string) (endpoint string, closeStream func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			endpoint = data
			break
		}
	}
	if endpoint == "" {
		t.Fatal("no endpoint event")
	}
	if !strings.HasPrefix(endpoint, "http") {
		endpoint = base + endpoint
	}
	return endpoint, func() { cancel(); _ = resp.Body.Close() }
}

func TestSSESessionBelongsToTheTenantThatOpenedIt(t *testing.T) {
	h := newHarness(t, nil)
	endpoint, closeStream := readEndpoint(t, h.url, "tok-a")
	defer closeStream()
	post := func(token string) int {
		req, _ := http.NewRequest("POST", endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("tok-b"); code != http.StatusNotFound {
		t.Fatalf("tenant B posting to tenant A's SSE session: %d, want 404", code)
	}
	if code := post("tok-a"); code != http.StatusAccepted {
		t.Fatalf("tenant A posting to its own session: %d, want 202", code)
	}
}

func TestAdminToolsNeedTheAdminScope(t *testing.T) {
	h := newHarness(t, nil)
	names := func(c *client.Client) []string {
		list, err := c.ListTools(t.Context(), mcp.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tl := range list.Tools {
			out = append(out, tl.Name)
		}
		return out
	}
	agent, admin := streamableClient(t, h.url, "tok-a"), streamableClient(t, h.url, "tok-admin")
	for _, n := range names(agent) {
		if strings.HasPrefix(n, "admin_") {
			t.Errorf("agent token sees %s", n)
		}
	}
	if got := strings.Join(names(admin), ","); !strings.Contains(got, "admin_create_token") || !strings.Contains(got, "describe_limits") {
		t.Errorf("admin token sees %s", got)
	}
	var req mcp.CallToolRequest
	req.Params.Name = "admin_list_tenants"
	if res, err := agent.CallTool(t.Context(), req); err == nil && !res.IsError {
		t.Fatalf("an agent token called an admin tool: %+v", res)
	}
	req.Params.Name = "admin_create_tenant"
	req.Params.Arguments = map[string]any{"tenant": "newco", "tier": "free"}
	res, err := admin.CallTool(t.Context(), req)
	if err != nil || res.IsError {
		t.Fatalf("admin_create_tenant: %v %+v", err, res)
	}
}

func TestTenantRateLimitSaysWhenToRetry(t *testing.T) {
	tier := policy.Tier{Name: "tiny", CallsPerMinute: 6, CallBurst: 2} // a token every 10 s
	h := newHarness(t, func(so *server.Options, _ *server.HTTPOptions) {
		so.TierOf = func(context.Context, string) (policy.Tier, error) { return tier, nil }
	})
	a, b := streamableClient(t, h.url, "tok-a"), streamableClient(t, h.url, "tok-b")
	call := func(c *client.Client) *mcp.CallToolResult {
		return callTool(t, t.Context(), c, "describe_limits", nil)
	}
	for i := range 2 {
		if res := call(a); res.IsError {
			t.Fatalf("call %d within the burst refused: %+v", i, res.Content)
		}
	}
	res := call(a)
	if errorCode(t, res) != "RATE_LIMITED" {
		t.Fatalf("third call: %+v", res.Content)
	}
	text := res.Content[0].(mcp.TextContent).Text
	if !strings.Contains(text, "retry after 10 s") && !strings.Contains(text, "retry after 9 s") {
		t.Errorf("the refusal must say when to retry: %s", text)
	}
	if res := call(b); res.IsError { // buckets are per tenant
		t.Fatalf("tenant B limited by tenant A's calls: %+v", res.Content)
	}
	if n := h.guard.calls.Load(); n != 3 {
		t.Errorf("guard ran %d calls, want 3 (the refused one must not run)", n)
	}
	metricsText := scrape(t, h.url)
	for _, want := range []string{
		`neonguard_rate_limited_total{reason="tenant"} 1`,
		`neonguard_tool_calls_total{code="RATE_LIMITED",outcome="denied",tool="describe_limits"} 1`,
		`neonguard_tool_calls_total{code="allow",outcome="ok",tool="describe_limits"} 3`,
		`neonguard_tool_call_duration_seconds_count{outcome="ok",tool="describe_limits"} 3`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestHTTPBodyLimit(t *testing.T) {
	h := newHarness(t, func(_ *server.Options, ho *server.HTTPOptions) { ho.MaxBodyBytes = 1024 })
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"describe_limits","arguments":{"x":"` +
		strings.Repeat("a", 4096) + `"}}}`
	req, _ := http.NewRequest("POST", h.url+"/mcp", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok-a")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 400 || h.guard.calls.Load() != 0 {
		t.Fatalf("oversized body: status %d, guard calls %d", resp.StatusCode, h.guard.calls.Load())
	}
}

func TestHealthAndReadiness(t *testing.T) {
	var failing atomic.Bool
	h := newHarness(t, func(_ *server.Options, ho *server.HTTPOptions) {
		ho.Ready = func(context.Context) error {
			if failing.Load() {
				return errors.New("store down")
			}
			return nil
		}
	})
	status := func(path string) int {
		resp, err := http.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if status("/healthz") != 200 || status("/readyz") != 200 {
		t.Fatal("healthy server not ready")
	}
	failing.Store(true)
	if status("/readyz") != 503 || status("/healthz") != 200 {
		t.Fatal("a failing store must make /readyz 503 and leave /healthz 200")
	}
}

// TestGracefulShutdownFinishesCallsInFlight starts an SSE call (detached from its request, so
// only the tracker sees it), stops the server, and checks the call still completes.
func TestGracefulShutdownFinishesCallsInFlight(t *testing.T) {
	g := &echoGuard{release: make(chan struct{})}
	calls := server.NewCalls()
	m := metrics.New()
	h := server.NewHTTP(server.New(server.Options{Guard: g, Calls: calls, Metrics: m}),
		server.HTTPOptions{Auth: testTokens, Calls: calls, Metrics: m})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.Serve(ctx, ln, 30*time.Second) }()
	url := "http://" + ln.Addr().String()

	c := sseClient(t, url, "tok-a")
	var wg sync.WaitGroup
	var res *mcp.CallToolResult
	var callErr error
	wg.Go(func() {
		var req mcp.CallToolRequest
		req.Params.Name = "describe_limits"
		res, callErr = c.CallTool(context.Background(), req)
	})
	for g.calls.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if got := scrape(t, url); !strings.Contains(got, "neonguard_tool_calls_in_flight 1") {
		t.Errorf("/metrics does not count the call in flight")
	}
	stop()
	for !calls.Draining() {
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-served:
		t.Fatalf("server stopped with a call in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(g.release)
	wg.Wait()
	if callErr != nil || tierOf(t, res) != "tenant-a" {
		t.Fatalf("in-flight call: %v %+v", callErr, res)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestDrainingRefusesNewCallsAndWaitsForRunningOnes(t *testing.T) {
	g := &echoGuard{release: make(chan struct{})}
	calls := server.NewCalls()
	c := start(t, server.New(server.Options{Guard: g, Calls: calls, DefaultPrincipal: &identity.Principal{TenantID: "t"}}))
	first := make(chan *mcp.CallToolResult, 1)
	go func() { first <- callTool(t, context.Background(), c, "describe_limits", nil) }()
	for g.calls.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	drained := make(chan error, 1)
	go func() { drained <- calls.Drain(context.Background()) }()
	for !calls.Draining() {
		time.Sleep(5 * time.Millisecond)
	}
	if code := errorCode(t, callTool(t, context.Background(), c, "list_databases", nil)); code != "UNAVAILABLE" {
		t.Fatalf("a call while draining: %q, want UNAVAILABLE", code)
	}
	if calls.Running() != 1 {
		t.Fatalf("running = %d, want 1", calls.Running())
	}
	close(g.release)
	if res := <-first; res.IsError {
		t.Fatalf("the running call failed: %+v", res.Content)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
}

// countingStore records how audit rows arrive: in how many writes, and how many rows in all.
type countingStore struct {
	store.Store
	mu     sync.Mutex
	writes int
	rows   int
	gate   chan struct{} // when set, the first write waits for it
}

func (c *countingStore) AppendAudits(ctx context.Context, es []store.AuditEntry) error {
	c.mu.Lock()
	first := c.writes == 0
	c.writes++
	c.rows += len(es)
	c.mu.Unlock()
	if first && c.gate != nil {
		<-c.gate
	}
	return c.Store.AppendAudits(ctx, es)
}

// TestAuditRowsOfConcurrentCallsAreGroupCommitted: while one audit write is under way, the rows
// of other calls queue and go in together; every call's row is stored before its answer.
func TestAuditRowsOfConcurrentCallsAreGroupCommitted(t *testing.T) {
	cs := &countingStore{Store: openStore(t), gate: make(chan struct{})}
	g := &echoGuard{}
	c := start(t, server.New(server.Options{Guard: g, Audit: cs, DefaultPrincipal: &identity.Principal{TenantID: "t"}}))
	const n = 20
	var wg sync.WaitGroup
	wg.Go(func() { callTool(t, context.Background(), c, "describe_limits", nil) }) // holds the writer
	for cs.writesSoFar() == 0 {
		time.Sleep(time.Millisecond)
	}
	for range n {
		wg.Go(func() { callTool(t, context.Background(), c, "describe_limits", nil) })
	}
	for g.calls.Load() < n+1 {
		time.Sleep(time.Millisecond)
	}
	close(cs.gate)
	wg.Wait()
	rows, err := cs.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n+1 {
		t.Fatalf("%d audit rows, want %d", len(rows), n+1)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.rows != n+1 || cs.writes >= n {
		t.Fatalf("%d rows in %d writes: the queued rows were not grouped", cs.rows, cs.writes)
	}
}

func (c *countingStore) writesSoFar() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// TestStreamableSessionBelongsToItsTenant: a Streamable HTTP session id issued to tenant A is
// refused with tenant B's valid token (post, listen, delete), and works with A's.
func TestStreamableSessionBelongsToItsTenant(t *testing.T) {
	h := newHarness(t, nil)
	do := func(method, token, session, body string) *http.Response {
		req, _ := http.NewRequest(method, h.url+"/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	resp := do("POST", "tok-a", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	session := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || session == "" {
		t.Fatalf("initialize: %d, session %q", resp.StatusCode, session)
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	if r := do("POST", "tok-a", session, list); r.StatusCode != 200 {
		t.Fatalf("tenant A in its own session: %d", r.StatusCode)
	}
	for _, m := range []string{"POST", "DELETE"} {
		if r := do(m, "tok-b", session, list); r.StatusCode < 400 {
			t.Errorf("%s with tenant B's token in tenant A's session: %d, want refused", m, r.StatusCode)
		}
	}
	if r := do("POST", "tok-a", session, list); r.StatusCode != 200 {
		t.Fatalf("tenant A's session after B's attempts: %d", r.StatusCode)
	}
}

// TestUnreadyDelayFailsReadinessBeforeClosing: on shutdown with an unready delay, /readyz
// answers 503 while the server still serves requests, and only then does it stop.
func TestUnreadyDelayFailsReadinessBeforeClosing(t *testing.T) {
	m := metrics.New()
	h := server.NewHTTP(server.New(server.Options{Guard: &echoGuard{}, Metrics: m}),
		server.HTTPOptions{Auth: testTokens, Metrics: m, UnreadyDelay: 3 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.Serve(ctx, ln, 5*time.Second) }()
	url := "http://" + ln.Addr().String()
	status := func(path string) int {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if status("/readyz") != 200 {
		t.Fatal("not ready before shutdown")
	}
	stop()
	for status("/readyz") != http.StatusServiceUnavailable {
		time.Sleep(5 * time.Millisecond)
	}
	if status("/healthz") != 200 {
		t.Fatal("requests must still be served while unready")
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("the listener is still open after Serve returned")
	}
}
