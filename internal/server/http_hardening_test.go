package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/server"
)

// The HTTP layer against a hostile tenant (issue 11), in detail; the same properties are proven
// over the real binary in cmd/neonguard's TestBinaryHTTPHardening.

type answer struct {
	status int
	header http.Header
	body   string
}

// send sends one request as a Streamable HTTP client (protocol 2025-06-18) and reads the whole
// answer; not for streams.
func (h *harness) send(t *testing.T, method, path, token, session, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

func (h *harness) initialize(t *testing.T, token string) string {
	t.Helper()
	a := h.send(t, "POST", "/mcp", token, "", initBody)
	sid := a.header.Get("Mcp-Session-Id")
	if a.status != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %q %s", a.status, sid, a.body)
	}
	return sid
}

// openGET opens GET path and returns once the headers are in. protocol, when set, is sent as
// Mcp-Protocol-Version.
func (h *harness) openGET(t *testing.T, path, token, session, protocol string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	if protocol != "" {
		req.Header.Set("Mcp-Protocol-Version", protocol)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() { cancel(); _ = resp.Body.Close() })
	return resp
}

// ends reports whether r reaches EOF (or breaks) within d: a hang guard on an event.
func ends(r io.Reader, d time.Duration) bool {
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, r); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func wantRPCError(t *testing.T, what, body string, code int, contains string) {
	t.Helper()
	var m struct {
		ID    any `json:"id"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.Error == nil {
		t.Fatalf("%s: not a JSON-RPC error: %q", what, body)
	}
	if m.Error.Code != code || !strings.Contains(strings.ToLower(m.Error.Message), contains) {
		t.Errorf("%s: error %d %q, want %d mentioning %q", what, m.Error.Code, m.Error.Message, code, contains)
	}
}

func want429(t *testing.T, what string, a answer) {
	t.Helper()
	if a.status != http.StatusTooManyRequests {
		t.Fatalf("%s: %d, want 429: %s", what, a.status, a.body)
	}
	if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("%s: Retry-After %q", what, a.header.Get("Retry-After"))
	}
	wantRPCError(t, what, a.body, -32000, "")
}

// TestStreamableSessionIsCheckedOnEveryMethod: GET and DELETE check a session's tenant like POST
// (mcp-go's GET does not call the session manager at all), and a deleted session is gone.
func TestStreamableSessionIsCheckedOnEveryMethod(t *testing.T) {
	h := newHarness(t, nil)
	sid := h.initialize(t, "tok-a")
	for _, c := range []struct{ name, token, session string }{
		{"tenant B with A's session", "tok-b", sid},
		{"a made-up session", "tok-a", "nope"},
		{"a well-formed id never issued", "tok-a", "ngs-0123456789abcdef0123456789abcdef-000000000000000000000000"},
	} {
		if r := h.openGET(t, "/mcp", c.token, c.session, "2025-06-18"); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET with %s: %d %s, want 404", c.name, r.StatusCode, r.Header.Get("Content-Type"))
		}
		if a := h.send(t, "DELETE", "/mcp", c.token, c.session, ""); a.status != http.StatusNotFound {
			t.Errorf("DELETE with %s: %d %q, want 404", c.name, a.status, a.body)
		}
	}
	if r := h.openGET(t, "/mcp", "tok-a", "", "2025-06-18"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("GET without a session: %d, want 400", r.StatusCode)
	}
	// 2026-07-28 has no sessions: mcp-go's own 405, not a session error.
	if r := h.openGET(t, "/mcp", "tok-a", "", "2026-07-28"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET in protocol 2026-07-28: %d, want 405", r.StatusCode)
	}

	stream := h.openGET(t, "/mcp", "tok-a", sid, "2025-06-18")
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("GET on its own session: %d", stream.StatusCode)
	}
	if a := h.send(t, "DELETE", "/mcp", "tok-a", sid, ""); a.status != http.StatusOK {
		t.Fatalf("the owner's DELETE: %d %s", a.status, a.body)
	}
	if !ends(stream.Body, 10*time.Second) {
		t.Error("the deleted session's stream is still open")
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	if a := h.send(t, "POST", "/mcp", "tok-a", sid, list); a.status != http.StatusNotFound || strings.TrimSpace(a.body) != "Invalid session ID" {
		t.Errorf("POST on a deleted session: %d %.200q, want 404 Invalid session ID", a.status, a.body)
	}
	if r := h.openGET(t, "/mcp", "tok-a", sid, "2025-06-18"); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET on a deleted session: %d", r.StatusCode)
	}
	// A new session works as before.
	if a := h.send(t, "POST", "/mcp", "tok-a", h.initialize(t, "tok-a"), list); a.status != http.StatusOK {
		t.Errorf("a new session: %d", a.status)
	}
}

// TestTenantSessionsAreCapped: initialize beyond tenant_max_sessions gets 429 with Retry-After;
// ending one makes room; other tenants are not affected.
func TestTenantSessionsAreCapped(t *testing.T) {
	h := newHarness(t, func(_ *server.Options, ho *server.HTTPOptions) { ho.TenantMaxSessions = 2 })
	first := h.initialize(t, "tok-a")
	h.initialize(t, "tok-a")
	want429(t, "a third session", h.send(t, "POST", "/mcp", "tok-a", "", initBody))
	h.initialize(t, "tok-b")
	if a := h.send(t, "DELETE", "/mcp", "tok-a", first, ""); a.status != http.StatusOK {
		t.Fatalf("DELETE: %d", a.status)
	}
	h.initialize(t, "tok-a")
	if got := scrape(t, h.url); !strings.Contains(got, `neonguard_rate_limited_total{reason="sessions"} 1`) {
		t.Errorf("metrics do not count the refused session")
	}
}

// TestEveryRequestTakesFromTheBudget: not only tools/call; the 429 says when to retry.
func TestEveryRequestTakesFromTheBudget(t *testing.T) {
	tier := policy.Tier{Name: "tiny", CallsPerMinute: 6, CallBurst: 2}
	h := newHarness(t, func(_ *server.Options, ho *server.HTTPOptions) {
		ho.TierOf = func(context.Context, string) (policy.Tier, error) { return tier, nil }
		ho.RequestRateFactor = 2 // bursts of 4 requests, one every 5 s
	})
	sid := h.initialize(t, "tok-a")
	var statuses []int
	var refused answer
	for i := range 6 {
		a := h.send(t, "POST", "/mcp", "tok-a", sid, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, i+2))
		statuses = append(statuses, a.status)
		if a.status == http.StatusTooManyRequests {
			refused = a
		}
	}
	// initialize took the first token: three tools/list pass, the rest are refused.
	if fmt.Sprint(statuses[:3]) != "[200 200 200]" || refused.status == 0 {
		t.Fatalf("statuses %v, want three 200 then 429", statuses)
	}
	want429(t, "tools/list over the budget", refused)
	if s, _ := strconv.Atoi(refused.header.Get("Retry-After")); s > 5 {
		t.Errorf("Retry-After %d s, want at most 5 (a token every 5 s)", s)
	}
	want429(t, "initialize over the budget", h.send(t, "POST", "/mcp", "tok-a", "", initBody))
	if r := h.openGET(t, "/sse", "tok-a", "", ""); r.StatusCode != http.StatusTooManyRequests {
		t.Errorf("GET /sse over the budget: %d", r.StatusCode)
	}
	if h.initialize(t, "tok-b") == "" { // buckets are per tenant
		t.Fatal("tenant B refused")
	}
	if got := scrape(t, h.url); !strings.Contains(got, `neonguard_rate_limited_total{reason="requests"}`) {
		t.Errorf("metrics do not count refused requests")
	}
}

// TestDefaultStreamCap: by default one tenant cannot open more than 32 streams (of SSE and
// GET /mcp together); another tenant still can.
func TestDefaultStreamCap(t *testing.T) {
	h := newHarness(t, nil)
	sid := h.initialize(t, "tok-a")
	for i := range 32 {
		path, session, proto := "/sse", "", ""
		if i%2 == 1 {
			path, session, proto = "/mcp", sid, "2025-06-18"
		}
		if r := h.openGET(t, path, "tok-a", session, proto); r.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d", i, r.StatusCode)
		}
	}
	r := h.openGET(t, "/sse", "tok-a", "", "")
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("stream 33: %d Retry-After %q, want 429", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if r := h.openGET(t, "/sse", "tok-b", "", ""); r.StatusCode != http.StatusOK {
		t.Fatalf("another tenant's stream: %d", r.StatusCode)
	}
}

// slowPost sends a POST announcing a 100,000-byte body and sends only 17 bytes; it returns the
// status and whether the server closed the connection after answering.
func slowPost(t *testing.T, url, token, path string, limit time.Duration) (status int, closed bool) {
	t.Helper()
	host := strings.TrimPrefix(url, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"jsonrpc\":\"2.0\",", path, host, token)
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	_, err = br.ReadByte()
	return resp.StatusCode, err == io.EOF
}

// TestSlowBodiesAreCutAndCapped: a body that does not arrive within the read timeout gets 408
// and its connection closed, on /mcp and /message; beyond tenant_max_requests a POST gets 429 at
// once and its connection closed too (its unread body must not hold it open).
func TestSlowBodiesAreCutAndCapped(t *testing.T) {
	h := newHarness(t, func(_ *server.Options, ho *server.HTTPOptions) {
		ho.BodyReadTimeout = 300 * time.Millisecond
		ho.TenantMaxRequests = 2
	})
	sse := h.openGET(t, "/sse", "tok-a", "", "")
	endpoint := readEndpointEvent(t, sse.Body)
	for _, path := range []string{"/mcp", endpoint} {
		if status, closed := slowPost(t, h.url, "tok-a", path, 30*time.Second); status != http.StatusRequestTimeout || !closed {
			t.Errorf("slow body on %s: status %d, closed %v; want 408 and closed", path, status, closed)
		}
	}

	// Two slow bodies hold tenant A's places: a third POST is refused at once.
	h2 := newHarness(t, func(_ *server.Options, ho *server.HTTPOptions) {
		ho.BodyReadTimeout = time.Hour // they stay in their body read until the test ends
		ho.TenantMaxRequests = 2
	})
	for range 2 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(h2.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-a\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// A short wait per probe: a probe that came before the two were accepted is itself
		// admitted and would sit in its body read; it gives up, frees its place, and the next
		// probe tries again. A refusal comes at once.
		status, closed := slowPost(t, h2.url, "tok-a", "/mcp", 2*time.Second)
		if status == http.StatusTooManyRequests {
			if !closed {
				t.Error("the refused POST's connection stayed open with its body unread")
			}
			break
		}
		if time.Now().After(deadline) { // the two may take a moment to be accepted
			t.Fatalf("third slow POST: %d, want 429", status)
		}
	}
	if a := h2.send(t, "POST", "/mcp", "tok-b", "", initBody); a.status != http.StatusOK {
		t.Errorf("another tenant's POST: %d", a.status)
	}
}

func readEndpointEvent(t *testing.T, r io.Reader) string {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			return data
		}
	}
	t.Fatal("no endpoint event")
	return ""
}

// TestBatchesAreRefused: MCP 2025-06-18 removed batching; a batch gets -32600 saying so, on
// both transports (mcp-go would answer /mcp with a misleading parse error and /message with
// 202 and an error without id on the stream).
func TestBatchesAreRefused(t *testing.T) {
	h := newHarness(t, nil)
	batch := `[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`
	sid := h.initialize(t, "tok-a")
	a := h.send(t, "POST", "/mcp", "tok-a", sid, batch)
	if a.status != http.StatusBadRequest {
		t.Errorf("/mcp batch: %d", a.status)
	}
	wantRPCError(t, "/mcp batch", a.body, -32600, "batches are not supported")
	sse := h.openGET(t, "/sse", "tok-a", "", "")
	a = h.send(t, "POST", readEndpointEvent(t, sse.Body), "tok-a", "", "\n  "+batch)
	if a.status != http.StatusBadRequest {
		t.Errorf("/message batch: %d", a.status)
	}
	wantRPCError(t, "/message batch", a.body, -32600, "batches are not supported")
	if n := h.guard.calls.Load(); n != 0 {
		t.Errorf("a batch ran %d calls", n)
	}
}

// revocable is an authenticator whose tokens can be revoked while streams are open.
type revocable struct {
	mu      sync.Mutex
	revoked map[string]bool
}

func (r *revocable) Authenticate(ctx context.Context, h string) (identity.Principal, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tok, _ := strings.CutPrefix(h, "Bearer "); r.revoked[tok] {
		return identity.Principal{}, errRefused
	}
	return testTokens.Authenticate(ctx, h)
}

func (r *revocable) revoke(tok string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked[tok] = true
}

// TestRevokedCredentialClosesItsStreams: the streams a credential opened close within
// stream_recheck of its revocation; another tenant's stay open.
func TestRevokedCredentialClosesItsStreams(t *testing.T) {
	ra := &revocable{revoked: map[string]bool{}}
	h := newHarness(t, func(_ *server.Options, ho *server.HTTPOptions) {
		ho.Auth = ra
		ho.StreamRecheck = 50 * time.Millisecond
	})
	sid := h.initialize(t, "tok-a")
	streams := []*http.Response{h.openGET(t, "/mcp", "tok-a", sid, "2025-06-18"), h.openGET(t, "/sse", "tok-a", "", "")}
	other := h.openGET(t, "/sse", "tok-b", "", "")
	ra.revoke("tok-a")
	for i, s := range streams {
		if !ends(s.Body, 10*time.Second) {
			t.Errorf("stream %d of the revoked token is still open", i)
		}
	}
	// tenant B's stream is unaffected: its endpoint event arrived and it is still open
	// after tenant A's closed.
	readEndpointEvent(t, other.Body)
	if ends(other.Body, 200*time.Millisecond) {
		t.Error("another tenant's stream closed")
	}
}

// blockingGuard holds tenant-a's describe_limits until release closes.
type blockingGuard struct {
	guard.UseCases
	release chan struct{}
	started chan struct{}
}

func (g *blockingGuard) DescribeLimits(ctx context.Context) (*guard.Limits, error) {
	p, _ := identity.FromContext(ctx)
	if p.TenantID == "tenant-a" {
		g.started <- struct{}{}
		<-g.release
	}
	return &guard.Limits{Tier: p.TenantID, Quota: []guard.Metric{}}, nil
}

// TestTenantConcurrencyCap: a tenant cannot take every call slot: its call beyond its cap waits
// for one of its own (and is refused when the call timeout ends first) while another tenant's
// call runs at once.
func TestTenantConcurrencyCap(t *testing.T) {
	g := &blockingGuard{release: make(chan struct{}), started: make(chan struct{}, 1)}
	h := newHarness(t, func(so *server.Options, _ *server.HTTPOptions) {
		so.Guard = g
		so.MaxConcurrentPerTenant = 1
		so.CallTimeout = 300 * time.Millisecond // how long tenant A's second call may wait
	})
	a, b := streamableClient(t, h.url, "tok-a"), streamableClient(t, h.url, "tok-b")
	first := make(chan *mcp.CallToolResult, 1)
	go func() { first <- callTool(t, context.Background(), a, "describe_limits", nil) }()
	<-g.started
	if got := tierOf(t, callTool(t, t.Context(), b, "describe_limits", nil)); got != "tenant-b" {
		t.Errorf("tenant B's call while tenant A's place is taken: %q", got)
	}
	res := callTool(t, t.Context(), a, "describe_limits", nil)
	if code := errorCode(t, res); code != "RATE_LIMITED" || !strings.Contains(res.Content[0].(mcp.TextContent).Text, "1 of your calls are already running") {
		t.Errorf("tenant A's second call: %+v, want RATE_LIMITED", res.Content)
	}
	close(g.release)
	if res := <-first; res.IsError {
		t.Errorf("tenant A's first call: %+v", res.Content)
	}
	if got := scrape(t, h.url); !strings.Contains(got, `neonguard_rate_limited_total{reason="tenant_busy"} 1`) {
		t.Errorf("metrics do not count the refused call")
	}
}

// countingGuard records how many describe_limits run at once; each waits for release.
type countingGuard struct {
	guard.UseCases
	release  chan struct{}
	mu       sync.Mutex
	now, max int
}

func (g *countingGuard) DescribeLimits(ctx context.Context) (*guard.Limits, error) {
	g.mu.Lock()
	g.now++
	g.max = max(g.max, g.now)
	g.mu.Unlock()
	<-g.release
	g.mu.Lock()
	g.now--
	g.mu.Unlock()
	p, _ := identity.FromContext(ctx)
	return &guard.Limits{Tier: p.TenantID, Quota: []guard.Metric{}}, nil
}

func (g *countingGuard) running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now
}

// TestTenantConcurrencyCapQueues: calls beyond a tenant's cap wait their turn rather than fail,
// and no more than the cap run at once.
func TestTenantConcurrencyCapQueues(t *testing.T) {
	g := &countingGuard{release: make(chan struct{})}
	h := newHarness(t, func(so *server.Options, _ *server.HTTPOptions) {
		so.Guard = g
		so.MaxConcurrentPerTenant = 2
	})
	c := streamableClient(t, h.url, "tok-a")
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if got := tierOf(t, callTool(t, context.Background(), c, "describe_limits", nil)); got != "tenant-a" {
				t.Errorf("call: %q", got)
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); g.running() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls running, want 2", g.running())
		}
	}
	close(g.release)
	wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.max != 2 {
		t.Fatalf("%d calls of one tenant ran at once, want at most 2", g.max)
	}
}
