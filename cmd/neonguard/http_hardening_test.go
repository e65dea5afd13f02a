package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The hosted endpoint against a hostile tenant (issue 11), over the real binary: sessions are
// bound to their tenant on every method, every request counts toward a budget, slow bodies and
// stream floods are capped, a JWT with a `crit` header is refused, a revoked token's streams
// close, batches get the JSON-RPC error, and `tenant token create` prints only the secret.

// hardenedJWTSecret is the HS256 secret the hardening server accepts JWTs with.
const hardenedJWTSecret = "hardening-test-secret-0123456789abcdef"

// newHardenedEnv prepares (not starts) a server with small caps, a short body read timeout and
// stream re-check, JWTs accepted, and the pro tier cut to 6 tool calls a minute (bursts of 2)
// so a tenant on it runs out of its request budget quickly (4 × that: bursts of 8).
func newHardenedEnv(t *testing.T, extra ...string) *httpEnv {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "neonguard.yaml")
	if err := os.WriteFile(cfg, []byte("policy:\n  tiers:\n    pro:\n      calls_per_minute: 6\n      call_burst: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &httpEnv{bin: buildBinary(t)}
	e.env = hermeticEnv(append([]string{
		"NEONGUARD_CONFIG=" + cfg,
		"NEONGUARD_DATA_DIR=" + t.TempDir(),
		"NEONGUARD_BACKEND=local",
		"NEONGUARD_LOCAL_POSTGRES=off",
		"NEONGUARD_LOCAL_OPERATION_DELAY=0s",
		"NEONGUARD_LOG_LEVEL=info",
		"NEONGUARD_AUTH_JWT_HS256_SECRET=" + hardenedJWTSecret,
		"NEONGUARD_HTTP_TENANT_MAX_STREAMS=3",
		"NEONGUARD_HTTP_TENANT_MAX_REQUESTS=3",
		"NEONGUARD_HTTP_TENANT_MAX_SESSIONS=4",
		"NEONGUARD_HTTP_BODY_READ_TIMEOUT=1s",
		"NEONGUARD_HTTP_STREAM_RECHECK=300ms",
	}, extra...)...)
	return e
}

var (
	secretRE  = regexp.MustCompile(`ngt_[a-z2-7]{52}`)
	tokenIDRE = regexp.MustCompile(`tok_[0-9a-f]+`)
)

// cliSplit runs a neonguard command and returns its stdout and stderr apart.
func (e *httpEnv) cliSplit(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = e.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("neonguard %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.Bytes(), errb.Bytes())
	}
	return out.String(), errb.String()
}

// tenantWithToken creates tenant on tier and a token for it; it returns the token's id and secret.
func (e *httpEnv) tenantWithToken(t *testing.T, tenant, tier string) (id, secret string) {
	t.Helper()
	e.cli(t, "tenant", "create", tenant, "--tier", tier)
	out, errOut := e.cliSplit(t, "tenant", "token", "create", tenant)
	secret = secretRE.FindString(out)
	id = tokenIDRE.FindString(out + errOut)
	if secret == "" || id == "" {
		t.Fatalf("token create: stdout %q stderr %q", out, errOut)
	}
	return id, secret
}

// rawResp is a finished HTTP exchange.
type rawResp struct {
	status int
	header http.Header
	body   string
}

// raw sends one request with the headers a Streamable HTTP client sends and reads the whole
// answer. Not for GET streams (see openStream).
func (e *httpEnv) raw(t *testing.T, method, path, token, session, body string) rawResp {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a hang guard
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return rawResp{resp.StatusCode, resp.Header, string(b)}
}

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"hardening","version":"1"}}}`

// initSession opens a Streamable HTTP session (protocol 2025-06-18) and returns its id.
func (e *httpEnv) initSession(t *testing.T, token string) string {
	t.Helper()
	r := e.raw(t, "POST", "/mcp", token, "", initializeBody)
	sid := r.header.Get("Mcp-Session-Id")
	if r.status != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d, session %q: %s", r.status, sid, r.body)
	}
	if r := e.raw(t, "POST", "/mcp", token, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); r.status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: %d %s", r.status, r.body)
	}
	return sid
}

// stream is an open GET /mcp or GET /sse answer.
type stream struct {
	resp   *http.Response
	cancel context.CancelFunc
}

func (s stream) Close() { s.cancel(); _ = s.resp.Body.Close() }

// openStream sends GET path and returns as soon as the headers arrive. The caller closes it.
func (e *httpEnv) openStream(t *testing.T, path, token, session string) stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	// A fresh connection per stream, so a refused one is not reused and counts are exact.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	s := stream{resp, cancel}
	t.Cleanup(s.Close)
	return s
}

// sseEndpoint reads an SSE stream's endpoint event and returns its message URL.
func (s stream) sseEndpoint(t *testing.T, base string) string {
	t.Helper()
	sc := bufio.NewScanner(s.resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if !strings.HasPrefix(data, "http") {
				data = base + data
			}
			return data
		}
	}
	t.Fatalf("no endpoint event: %v", sc.Err())
	return ""
}

// endsWithin reports whether r reaches its end (EOF or a broken connection) within d: a hang
// guard on an event, not a measure of how fast it happens.
func endsWithin(r io.Reader, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, r)
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// postMessage posts body to an SSE session's message URL.
func postMessage(t *testing.T, endpoint, token, body string) rawResp {
	t.Helper()
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResp{resp.StatusCode, resp.Header, string(b)}
}

// rpcError decodes a JSON-RPC error answer.
func rpcError(t *testing.T, body string) (code int, message string) {
	t.Helper()
	var m struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.Error == nil {
		t.Fatalf("not a JSON-RPC error: %q (%v)", body, err)
	}
	return m.Error.Code, m.Error.Message
}

// wantTooMany checks a 429 with a Retry-After of whole seconds and a JSON-RPC error body.
func wantTooMany(t *testing.T, what string, r rawResp) {
	t.Helper()
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("%s: status %d, want 429: %s", what, r.status, r.body)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("%s: Retry-After %q, want a number of seconds", what, r.header.Get("Retry-After"))
	}
	if _, msg := rpcError(t, r.body); msg == "" {
		t.Errorf("%s: empty error message", what)
	}
}

func TestBinaryHTTPHardening(t *testing.T) {
	e := newHardenedEnv(t)
	_, tokA := e.tenantWithToken(t, "tenant-a", "free")
	_, tokB := e.tenantWithToken(t, "tenant-b", "free")
	e.start(t)

	// 1. GET /mcp checks the session's tenant like POST does: another tenant's id, a made-up
	// one and a forged-looking one answer 404 as an unknown session, and open no stream.
	t.Run("GetChecksTheSessionsTenant", func(t *testing.T) {
		sid := e.initSession(t, tokA)
		for _, c := range []struct{ name, token, session string }{
			{"another tenant's session", tokB, sid},
			{"a made-up session", tokA, "made-up-session"},
			{"a well-formed session never issued", tokA, "ngs-0123456789abcdef0123456789abcdef-000000000000000000000000"},
		} {
			s := e.openStream(t, "/mcp", c.token, c.session)
			if s.resp.StatusCode != http.StatusNotFound || strings.HasPrefix(s.resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Errorf("GET /mcp with %s: %d %s, want 404 and no stream", c.name, s.resp.StatusCode, s.resp.Header.Get("Content-Type"))
			}
			s.Close()
		}
		// The answer is the one POST gives for an unknown session.
		post := e.raw(t, "POST", "/mcp", tokB, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
		if post.status != http.StatusNotFound {
			t.Errorf("POST /mcp with another tenant's session: %d, want 404", post.status)
		}
		if s := e.openStream(t, "/mcp", tokA, ""); s.resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /mcp without a session: %d, want 400", s.resp.StatusCode)
		}
		own := e.openStream(t, "/mcp", tokA, sid)
		if own.resp.StatusCode != http.StatusOK || !strings.HasPrefix(own.resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Errorf("GET /mcp with its own session: %d %s, want 200 text/event-stream", own.resp.StatusCode, own.resp.Header.Get("Content-Type"))
		}
		own.Close()

		// SSE: a session's /message accepts only the tenant whose stream opened it.
		sse := e.openStream(t, "/sse", tokA, "")
		endpoint := sse.sseEndpoint(t, e.base)
		if r := postMessage(t, endpoint, tokB, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); r.status != http.StatusNotFound {
			t.Errorf("POST /message on another tenant's SSE session: %d, want 404", r.status)
		}
		sse.Close()
	})

	// 2. DELETE with another tenant's session id is 404 (never 5xx) and leaves it alone; the
	// owner's DELETE ends it, after which every method on it answers 404.
	t.Run("DeleteEndsOnlyYourOwnSession", func(t *testing.T) {
		sid := e.initSession(t, tokA)
		if r := e.raw(t, "DELETE", "/mcp", tokB, sid, ""); r.status != http.StatusNotFound {
			t.Errorf("DELETE with another tenant's session: %d %q, want 404", r.status, r.body)
		}
		list := `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`
		if r := e.raw(t, "POST", "/mcp", tokA, sid, list); r.status != http.StatusOK {
			t.Fatalf("the owner's session after another tenant's DELETE: %d %s", r.status, r.body)
		}
		listening := e.openStream(t, "/mcp", tokA, sid)
		if listening.resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /mcp on its own session: %d", listening.resp.StatusCode)
		}
		if r := e.raw(t, "DELETE", "/mcp", tokA, sid, ""); r.status != http.StatusOK {
			t.Fatalf("the owner's DELETE: %d %s", r.status, r.body)
		}
		if !endsWithin(listening.resp.Body, 30*time.Second) {
			t.Errorf("the session's GET stream is still open after its DELETE")
		}
		if r := e.raw(t, "POST", "/mcp", tokA, sid, list); r.status != http.StatusNotFound {
			t.Errorf("POST on a deleted session: %d, want 404", r.status)
		}
		if s := e.openStream(t, "/mcp", tokA, sid); s.resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET on a deleted session: %d, want 404", s.resp.StatusCode)
		}
		if r := e.raw(t, "DELETE", "/mcp", tokA, sid, ""); r.status != http.StatusNotFound {
			t.Errorf("DELETE of a deleted session: %d, want 404", r.status)
		}

		// SSE: once the stream is gone, its session is unknown.
		sse := e.openStream(t, "/sse", tokA, "")
		endpoint := sse.sseEndpoint(t, e.base)
		sse.Close()
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := postMessage(t, endpoint, tokA, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
			if r.status == http.StatusNotFound {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("POST /message after its stream closed: %d, want 404", r.status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	// 3. Every authenticated request takes from the tenant's budget, not only tools/call:
	// tools/list, initialize, and the SSE stream and its messages get 429 with Retry-After.
	t.Run("EveryRequestCountsTowardTheBudget", func(t *testing.T) {
		_, tok := e.tenantWithToken(t, "limited", "pro")
		sid := e.initSession(t, tok)
		var tooMany []rawResp
		for i := range 20 {
			r := e.raw(t, "POST", "/mcp", tok, sid, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, 10+i))
			if r.status == http.StatusTooManyRequests {
				tooMany = append(tooMany, r)
			} else if r.status != http.StatusOK {
				t.Fatalf("tools/list %d: %d %s", i, r.status, r.body)
			}
		}
		if len(tooMany) == 0 {
			t.Fatalf("20 tools/list on a tier of bursts of 2 calls: none refused")
		}
		wantTooMany(t, "tools/list over the budget", tooMany[0])
		refusedInit := 0
		for range 20 {
			r := e.raw(t, "POST", "/mcp", tok, "", initializeBody)
			if r.status == http.StatusTooManyRequests {
				wantTooMany(t, "initialize over the budget", r)
				refusedInit++
			}
		}
		if refusedInit == 0 {
			t.Errorf("20 initialize over the budget: none refused")
		}
		// Another tenant is not affected.
		if r := e.raw(t, "POST", "/mcp", tokB, e.initSession(t, tokB), `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); r.status != http.StatusOK {
			t.Errorf("another tenant's tools/list: %d", r.status)
		}

		// SSE: the stream and the messages count too.
		_, tokS := e.tenantWithToken(t, "limited-sse", "pro")
		sse := e.openStream(t, "/sse", tokS, "")
		endpoint := sse.sseEndpoint(t, e.base)
		refused := 0
		for i := range 20 {
			r := postMessage(t, endpoint, tokS, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, i))
			if r.status == http.StatusTooManyRequests {
				wantTooMany(t, "POST /message over the budget", r)
				refused++
			}
		}
		if refused == 0 {
			t.Errorf("20 POST /message on a tier of bursts of 2 calls: none refused")
		}
		if s := e.openStream(t, "/sse", tokS, ""); s.resp.StatusCode != http.StatusTooManyRequests || s.resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET /sse over the budget: %d Retry-After %q, want 429 with Retry-After", s.resp.StatusCode, s.resp.Header.Get("Retry-After"))
		}
	})

	// 4. A body that does not arrive within http.body_read_timeout gets 408 and its connection
	// closed; a tenant's open requests and streams are capped (429 beyond).
	t.Run("SlowBodiesAndStreamFloodsAreCapped", func(t *testing.T) {
		_, tok := e.tenantWithToken(t, "slow", "free")
		statuses := slowBodies(t, e.base, tok, 5, 30*time.Second)
		count := map[int]int{}
		for _, s := range statuses {
			count[s]++
		}
		// tenant_max_requests=3: three are read (and time out), two are refused at once.
		if count[http.StatusRequestTimeout] != 3 || count[http.StatusTooManyRequests] != 2 {
			t.Errorf("5 slow bodies with a cap of 3: statuses %v, want 3×408 and 2×429", statuses)
		}

		_, tokS := e.tenantWithToken(t, "streamer", "free")
		sid := e.initSession(t, tokS)
		open := []stream{e.openStream(t, "/sse", tokS, ""), e.openStream(t, "/sse", tokS, ""), e.openStream(t, "/mcp", tokS, sid)}
		for i, s := range open {
			if s.resp.StatusCode != http.StatusOK {
				t.Fatalf("stream %d within the cap: %d", i, s.resp.StatusCode)
			}
		}
		for _, path := range []string{"/sse", "/mcp"} {
			s := e.openStream(t, path, tokS, map[string]string{"/mcp": sid}[path])
			if s.resp.StatusCode != http.StatusTooManyRequests || s.resp.Header.Get("Retry-After") == "" {
				t.Errorf("GET %s beyond tenant_max_streams: %d Retry-After %q, want 429", path, s.resp.StatusCode, s.resp.Header.Get("Retry-After"))
			}
			s.Close()
		}
		// Another tenant still opens streams.
		if s := e.openStream(t, "/sse", tokB, ""); s.resp.StatusCode != http.StatusOK {
			t.Errorf("another tenant's stream: %d", s.resp.StatusCode)
		}
		// A closed stream frees its place.
		open[0].Close()
		deadline := time.Now().Add(30 * time.Second)
		for {
			s := e.openStream(t, "/sse", tokS, "")
			if s.resp.StatusCode == http.StatusOK {
				break
			}
			s.Close()
			if time.Now().After(deadline) {
				t.Fatalf("a stream's place was not freed when it closed: %d", s.resp.StatusCode)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	// 5. RFC 7515 §4.1.11: a JWT naming a critical header extension the server does not
	// understand is refused; the same token without it is accepted.
	t.Run("JWTWithCritIsRefused", func(t *testing.T) {
		e.cli(t, "tenant", "create", "jwt-tenant", "--tier", "free")
		jwtFor := func(crit bool) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
				"tenant": "jwt-tenant", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
			})
			if crit {
				tok.Header["crit"] = []string{"x"}
				tok.Header["x"] = true
			}
			s, err := tok.SignedString([]byte(hardenedJWTSecret))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		if r := e.raw(t, "POST", "/mcp", jwtFor(false), "", initializeBody); r.status != http.StatusOK {
			t.Fatalf("a valid JWT: %d %s", r.status, r.body)
		}
		if r := e.raw(t, "POST", "/mcp", jwtFor(true), "", initializeBody); r.status != http.StatusUnauthorized {
			t.Errorf("POST /mcp with a crit JWT: %d, want 401", r.status)
		}
		if s := e.openStream(t, "/sse", jwtFor(true), ""); s.resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /sse with a crit JWT: %d, want 401", s.resp.StatusCode)
		}
	})

	// 6. Revoking a token closes the streams it opened (GET /mcp and GET /sse) within
	// http.stream_recheck; new requests with it are refused at once.
	t.Run("RevokedTokenClosesItsStreams", func(t *testing.T) {
		id, tok := e.tenantWithToken(t, "revoked", "free")
		sid := e.initSession(t, tok)
		listening := e.openStream(t, "/mcp", tok, sid)
		sse := e.openStream(t, "/sse", tok, "")
		if listening.resp.StatusCode != http.StatusOK || sse.resp.StatusCode != http.StatusOK {
			t.Fatalf("streams: %d %d", listening.resp.StatusCode, sse.resp.StatusCode)
		}
		e.cli(t, "tenant", "token", "revoke", "revoked", id)
		if !endsWithin(listening.resp.Body, 30*time.Second) {
			t.Errorf("GET /mcp stream of a revoked token still open")
		}
		if !endsWithin(sse.resp.Body, 30*time.Second) {
			t.Errorf("GET /sse stream of a revoked token still open")
		}
		if r := e.raw(t, "POST", "/mcp", tok, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); r.status != http.StatusUnauthorized {
			t.Errorf("a request with the revoked token: %d, want 401", r.status)
		}
	})

	// 7. MCP 2025-06-18 removed JSON-RPC batching: a batch is answered with -32600 Invalid
	// Request saying so, on /mcp and on SSE's /message (not 202 and a stray parse error).
	t.Run("BatchesGetInvalidRequest", func(t *testing.T) {
		batch := `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`
		sid := e.initSession(t, tokA)
		check := func(what string, r rawResp) {
			t.Helper()
			if r.status != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400: %s", what, r.status, r.body)
				return
			}
			code, msg := rpcError(t, r.body)
			if code != -32600 || !strings.Contains(strings.ToLower(msg), "batch") {
				t.Errorf("%s: error %d %q, want -32600 saying batches are not supported", what, code, msg)
			}
		}
		check("POST /mcp batch", e.raw(t, "POST", "/mcp", tokA, sid, batch))
		sse := e.openStream(t, "/sse", tokA, "")
		check("POST /message batch", postMessage(t, sse.sseEndpoint(t, e.base), tokA, batch))
	})

	// 8. `tenant token create` prints only the secret on stdout, so TOKEN=$(…) captures it;
	// --output json gives the id too.
	t.Run("TokenCreatePrintsOnlyTheSecret", func(t *testing.T) {
		e.cli(t, "tenant", "create", "ops", "--tier", "free")
		out, errOut := e.cliSplit(t, "tenant", "token", "create", "ops", "--scope", "admin")
		if !regexp.MustCompile(`^ngt_[a-z2-7]{52}\n$`).MatchString(out) {
			t.Errorf("stdout %q, want the secret and a newline only", out)
		}
		if !regexp.MustCompile(`created token tok_[0-9a-f]+ for tenant ops \(scopes: admin\)`).MatchString(errOut) || !strings.Contains(errOut, "shown only once") {
			t.Errorf("stderr %q, want the token id and the warning", errOut)
		}
		js, _ := e.cliSplit(t, "tenant", "token", "create", "ops", "--output", "json")
		var tok struct {
			ID     string   `json:"id"`
			Tenant string   `json:"tenant"`
			Scopes []string `json:"scopes"`
			Secret string   `json:"secret"`
		}
		if err := json.Unmarshal([]byte(js), &tok); err != nil || !tokenIDRE.MatchString(tok.ID) || tok.Tenant != "ops" || !secretRE.MatchString(tok.Secret) || tok.Scopes == nil {
			t.Errorf("--output json: %q (%v)", js, err)
		}
		if r := e.raw(t, "POST", "/mcp", strings.TrimSpace(out), "", initializeBody); r.status != http.StatusOK {
			t.Errorf("the printed secret does not authenticate: %d", r.status)
		}
	})

	t.Run("READMECurlExample", func(t *testing.T) {
		testREADMECurlExample(t, e)
	})
}

// slowBodies opens n connections that each send a POST /mcp announcing a 100,000-byte body and
// then only 17 bytes, and returns each one's status once its connection has closed (0 when it
// did not within limit).
func slowBodies(t *testing.T, base, token string, n int, limit time.Duration) []int {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	statuses := make([]int, n)
	done := make(chan struct{}, n)
	for i := range n {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		_, err = fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n%s", host, token, `{"jsonrpc":"2.0",`)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer func() { done <- struct{}{} }()
			_ = conn.SetReadDeadline(time.Now().Add(limit))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			// The server must close the connection: it cannot serve another request on it.
			if _, err := br.ReadByte(); err == io.EOF {
				statuses[i] = resp.StatusCode
			} else {
				statuses[i] = -resp.StatusCode // answered, but the connection stayed open
			}
		}()
	}
	for range n {
		<-done
	}
	return statuses
}

// testREADMECurlExample runs the README's curl example (initialize, then tools/call over /mcp
// with a token) against the running server, with `neonguard` on PATH.
func testREADMECurlExample(t *testing.T, e *httpEnv) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- curl-example:begin -->")
	block, _, ok2 := strings.Cut(rest, "<!-- curl-example:end -->")
	if !ok || !ok2 {
		t.Fatal("README has no curl example between <!-- curl-example:begin --> and <!-- curl-example:end -->")
	}
	script, _, _ := strings.Cut(strings.SplitN(block, "```sh\n", 2)[1], "```")
	script = strings.ReplaceAll(script, "http://127.0.0.1:8080", e.base)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	bin := t.TempDir()
	if err := os.Symlink(e.bin, filepath.Join(bin, "neonguard")); err != nil {
		t.Fatal(err)
	}
	e.cli(t, "tenant", "create", "acme", "--tier", "free")
	cmd := exec.Command("sh", "-eu", "-c", script)
	cmd.Env = append(append([]string{}, e.env...), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README curl example: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"id":2`) || !strings.Contains(string(out), `"structuredContent"`) || !strings.Contains(string(out), `"tier":"free"`) {
		t.Fatalf("README curl example did not answer the tool call:\n%s", out)
	}
}
