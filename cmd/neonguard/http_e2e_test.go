package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/tools"
)

// httpEnv is a built binary, its data dir, and a `serve --transport http` running on it.
type httpEnv struct {
	bin  string
	env  []string
	base string // http://127.0.0.1:PORT
	cmd  *exec.Cmd

	mu     sync.Mutex
	stderr bytes.Buffer // the server's log, for failure messages
	exited chan struct{}
	err    error // cmd.Wait's result, once exited is closed
}

// hermeticEnv is the test process's environment without neonguard's and Neon's own settings,
// so a developer's NEON_* credentials or NEONGUARD_STORE cannot change the backend under test.
func hermeticEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NEONGUARD_") || strings.HasPrefix(kv, "NEON_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// cli runs a neonguard command on the test's data dir and returns its stdout.
func (e *httpEnv) cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = e.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("neonguard %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// createToken runs `tenant token create --output json` and returns the token's id and secret.
func (e *httpEnv) createToken(t *testing.T, tenant string, scopes ...string) (id, secret string) {
	t.Helper()
	args := []string{"tenant", "token", "create", tenant, "--output", "json"}
	for _, s := range scopes {
		args = append(args, "--scope", s)
	}
	out := e.cli(t, args...)
	var tok struct{ ID, Secret string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || !strings.HasPrefix(tok.ID, "tok_") || tok.Secret == "" {
		t.Fatalf("token create --output json printed %q (%v)", out, err)
	}
	return tok.ID, tok.Secret
}

func (e *httpEnv) log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stderr.String()
}

// start runs `serve --transport http --listen 127.0.0.1:0`, reads the bound address from the
// JSON log line "serving MCP over HTTP", and waits until /readyz answers 200.
func (e *httpEnv) start(t *testing.T) {
	t.Helper()
	e.cmd = exec.Command(e.bin, "serve", "--transport", "http", "--listen", "127.0.0.1:0", "--log-format", "json")
	e.cmd.Env = e.env
	stderr, err := e.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.exited = make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			e.mu.Lock()
			e.stderr.Write(line)
			e.stderr.WriteByte('\n')
			e.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "serving MCP over HTTP" && rec.Addr != "" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		e.err = e.cmd.Wait()
		close(e.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-e.exited:
		default:
			_ = e.cmd.Process.Kill()
			<-e.exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", e.log())
		}
	})

	select {
	case addr := <-addrc:
		e.base = "http://" + addr
	case <-e.exited:
		t.Fatalf("serve exited before listening: %v\n%s", e.err, e.log())
	case <-time.After(2 * time.Minute):
		t.Fatalf("serve did not log its address\n%s", e.log())
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(e.base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered 200 (last: %v %v)\n%s", resp, err, e.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requireNodeSDK returns the node binary, skipping (or failing with NEONGUARD_REQUIRE_NODE=1)
// when Node.js or the TypeScript MCP SDK is missing, like TestBinaryOverStdioWithTypeScriptClient.
func requireNodeSDK(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	sdk := filepath.Join("..", "..", "testdata", "e2e", "ts", "node_modules", "@modelcontextprotocol", "sdk")
	if _, statErr := os.Stat(sdk); err != nil || statErr != nil {
		if os.Getenv("NEONGUARD_REQUIRE_NODE") == "1" {
			t.Fatalf("Node.js and the TypeScript MCP SDK are required (run `make test`, which installs it): node %v, sdk %v", err, statErr)
		}
		t.Skip("Node.js or testdata/e2e/ts/node_modules missing; `make test` installs them")
	}
	return node
}

// tsHTTPResult is what testdata/e2e/ts/http.mjs prints.
type tsHTTPResult struct {
	Transport string
	Connected bool
	Error     string
	Status    *int
	Tools     []string
	Calls     []struct {
		Name       string
		IsError    bool
		Code       string
		Message    string
		Structured json.RawMessage
	}
}

// runTS runs http.mjs against the server with the token in the environment (never in argv).
func (e *httpEnv) runTS(t *testing.T, node, kind, token string, extra ...string) tsHTTPResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"http.mjs", e.base, kind}, extra...)...)
	cmd.Dir = filepath.Join("..", "..", "testdata", "e2e", "ts")
	cmd.Env = append(os.Environ(), "NEONGUARD_E2E_TOKEN="+token)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node http.mjs %s: %v\nstdout:\n%s\nstderr:\n%s", kind, err, out, stderr.Bytes())
	}
	var res tsHTTPResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("http.mjs output: %v\n%s\nstderr:\n%s", err, out, stderr.Bytes())
	}
	return res
}

func (r tsHTTPResult) call(t *testing.T, name string, into any) {
	t.Helper()
	for _, c := range r.Calls {
		if c.Name != name {
			continue
		}
		if c.IsError {
			t.Fatalf("%s over %s failed: %s %s", name, r.Transport, c.Code, c.Message)
		}
		if err := json.Unmarshal(c.Structured, into); err != nil {
			t.Fatalf("%s over %s: structuredContent %s: %v", name, r.Transport, c.Structured, err)
		}
		return
	}
	t.Fatalf("no %s call over %s: %+v", name, r.Transport, r.Calls)
}

func adminToolNames() []string {
	var names []string
	for _, st := range tools.AdminTools(tools.Deps{}) {
		names = append(names, st.Tool.Name)
	}
	return names
}

// TestBinaryOverHTTP drives `neonguard serve --transport http` end to end: tenants and tokens
// made with the CLI, the official TypeScript MCP client over Streamable HTTP and SSE, the
// mcp-go clients over both, the 401 challenges, the protected-resource metadata, and a
// graceful SIGTERM with an SSE stream still open.
func TestBinaryOverHTTP(t *testing.T) {
	e := &httpEnv{bin: buildBinary(t)}
	e.env = hermeticEnv(
		"NEONGUARD_DATA_DIR="+t.TempDir(),
		"NEONGUARD_BACKEND=local",
		"NEONGUARD_LOCAL_POSTGRES=off", // the emulator's API only: these tests are about transports
		"NEONGUARD_LOCAL_OPERATION_DELAY=0s",
		"NEONGUARD_LOG_LEVEL=info",
	)
	e.cli(t, "tenant", "create", "acme", "--tier", "free")
	e.cli(t, "tenant", "create", "other", "--tier", "free")
	_, userTok := e.createToken(t, "acme")
	_, adminTok := e.createToken(t, "acme", "admin")
	_, otherTok := e.createToken(t, "other")
	revokedID, revokedTok := e.createToken(t, "acme")
	if out := e.cli(t, "tenant", "token", "revoke", "acme", revokedID); !strings.Contains(out, "revoked token "+revokedID) {
		t.Fatalf("revoke printed %q", out)
	}
	// Well-formed (prefix and length) but never issued: refused by the store lookup.
	last := "a"
	if strings.HasSuffix(userTok, "a") {
		last = "b"
	}
	wrongTok := userTok[:len(userTok)-1] + last

	e.start(t)
	agentTools := tools.Names()
	adminTools := adminToolNames()
	if len(adminTools) == 0 {
		t.Fatal("no admin tools")
	}

	t.Run("Unauthorized", func(t *testing.T) {
		metadata := e.base + "/.well-known/oauth-protected-resource/mcp"
		requests := []struct{ method, path, body string }{
			{"POST", "/mcp", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`},
			{"GET", "/mcp", ""},
			{"GET", "/sse", ""},
			{"POST", "/message?sessionId=whatever", `{"jsonrpc":"2.0","id":1,"method":"ping"}`},
		}
		creds := []struct{ name, authz, wantErr string }{
			{"no token", "", ""},
			{"wrong token", "Bearer " + wrongTok, "invalid_token"},
			{"malformed token", "Bearer not-a-token", "invalid_token"},
			{"revoked token", "Bearer " + revokedTok, "invalid_token"},
		}
		for _, r := range requests {
			for _, c := range creds {
				req, err := http.NewRequest(r.method, e.base+r.path, strings.NewReader(r.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Accept", "application/json, text/event-stream")
				if r.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				if c.authz != "" {
					req.Header.Set("Authorization", c.authz)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("%s %s (%s): %v", r.method, r.path, c.name, err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s %s (%s): status %d, want 401", r.method, r.path, c.name, resp.StatusCode)
					continue
				}
				ch := resp.Header.Get("WWW-Authenticate")
				if !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, fmt.Sprintf("resource_metadata=%q", metadata)) {
					t.Errorf("%s %s (%s): WWW-Authenticate %q, want Bearer with resource_metadata=%q", r.method, r.path, c.name, ch, metadata)
				}
				if hasErr := strings.Contains(ch, `error="invalid_token"`); hasErr != (c.wantErr != "") {
					t.Errorf("%s %s (%s): WWW-Authenticate %q: error=\"invalid_token\" present %v, want %v", r.method, r.path, c.name, ch, hasErr, c.wantErr != "")
				}
			}
		}
	})

	t.Run("ProtectedResourceMetadata", func(t *testing.T) {
		resp, err := http.Get(e.base + "/.well-known/oauth-protected-resource/mcp")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var md struct {
			Resource               string   `json:"resource"`
			BearerMethodsSupported []string `json:"bearer_methods_supported"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
			t.Fatal(err)
		}
		if md.Resource != e.base+"/mcp" {
			t.Errorf("resource = %q, want %q", md.Resource, e.base+"/mcp")
		}
		if !slices.Contains(md.BearerMethodsSupported, "header") {
			t.Errorf("bearer_methods_supported = %v, want header", md.BearerMethodsSupported)
		}
	})

	t.Run("TypeScriptClient", func(t *testing.T) {
		node := requireNodeSDK(t)
		for _, kind := range []string{"streamable", "sse"} {
			t.Run(kind, func(t *testing.T) {
				res := e.runTS(t, node, kind, userTok)
				if !res.Connected {
					t.Fatalf("TS client over %s did not connect: %s", kind, res.Error)
				}
				if got, want := slices.Sorted(slices.Values(res.Tools)), slices.Sorted(slices.Values(agentTools)); !slices.Equal(got, want) {
					t.Errorf("tools over %s = %v, want the agent tools %v (no admin tools for a token without the admin scope)", kind, got, want)
				}
				for _, c := range res.Calls {
					if c.IsError {
						t.Errorf("%s over %s: %s %s", c.Name, kind, c.Code, c.Message)
					}
				}
				var limits struct{ Tier string }
				res.call(t, "describe_limits", &limits)
				if limits.Tier != "free" {
					t.Errorf("describe_limits over %s: tier %q, want free", kind, limits.Tier)
				}
				var created struct {
					DatabaseID string `json:"database_id"`
					Name       string
					Tier       string
				}
				res.call(t, "create_database", &created)
				if created.DatabaseID == "" || created.Name != "ts-"+kind || created.Tier != "free" {
					t.Errorf("create_database over %s = %+v", kind, created)
				}
				type database struct {
					DatabaseID string `json:"database_id"`
					Name       string
				}
				var list struct {
					Tier      string
					Databases []database
				}
				res.call(t, "list_databases", &list)
				if !slices.Contains(list.Databases, database{created.DatabaseID, "ts-" + kind}) {
					t.Errorf("list_databases over %s = %+v, want it to hold %s (%s)", kind, list.Databases, "ts-"+kind, created.DatabaseID)
				}
			})
		}
		t.Run("admin", func(t *testing.T) {
			for _, kind := range []string{"streamable", "sse"} {
				res := e.runTS(t, node, kind, adminTok)
				if !res.Connected {
					t.Fatalf("TS client over %s with the admin token did not connect: %s", kind, res.Error)
				}
				for _, name := range append(slices.Clone(agentTools), adminTools...) {
					if !slices.Contains(res.Tools, name) {
						t.Errorf("admin token over %s: %s not listed in %v", kind, name, res.Tools)
					}
				}
			}
		})
		t.Run("refused", func(t *testing.T) {
			for _, kind := range []string{"streamable", "sse"} {
				for _, c := range []struct{ name, token string }{{"wrong", wrongTok}, {"revoked", revokedTok}, {"none", ""}} {
					res := e.runTS(t, node, kind, c.token, "--expect-unauthorized")
					if res.Connected {
						t.Errorf("TS client over %s with the %s token connected: %s", kind, c.name, res.Error)
						continue
					}
					// StreamableHTTPError and SseError both carry the HTTP status as .code.
					if res.Status == nil || *res.Status != http.StatusUnauthorized {
						t.Errorf("TS client over %s with the %s token: status %v, error %q, want a 401", kind, c.name, res.Status, res.Error)
					}
				}
			}
		})
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	initialize := func(t *testing.T, c *client.Client) {
		t.Helper()
		req := mcp.InitializeRequest{}
		req.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
		req.Params.ClientInfo = mcp.Implementation{Name: "neonguard-e2e-go", Version: "1.0.0"}
		if _, err := c.Initialize(ctx, req); err != nil {
			t.Fatalf("initialize: %v", err)
		}
	}
	callTool := func(t *testing.T, c *client.Client, name string, args map[string]any, into any) {
		t.Helper()
		var req mcp.CallToolRequest
		req.Params.Name = name
		req.Params.Arguments = args
		res, err := c.CallTool(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.IsError {
			t.Fatalf("%s: error result %v", name, res.Content)
		}
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: structuredContent %s: %v", name, b, err)
		}
	}

	t.Run("GoStreamableClient", func(t *testing.T) {
		c, err := client.NewStreamableHttpClient(e.base+"/mcp",
			transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + userTok}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		initialize(t, c)
		var created struct {
			DatabaseID string `json:"database_id"`
			Name       string
			Created    bool
		}
		callTool(t, c, "create_database", map[string]any{"name": "go-streamable"}, &created)
		if created.DatabaseID == "" || created.Name != "go-streamable" || !created.Created {
			t.Errorf("create_database = %+v", created)
		}
	})

	// The SSE client stays connected through the SIGTERM below: shutdown must not wait on it.
	var sseClient *client.Client
	t.Run("GoSSEClient", func(t *testing.T) {
		c, err := client.NewSSEMCPClient(e.base+"/sse",
			transport.WithHeaders(map[string]string{"Authorization": "Bearer " + userTok}))
		if err != nil {
			t.Fatal(err)
		}
		sseClient = c
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		initialize(t, c)
		var list struct {
			Tier      string
			Databases []struct{ Name string }
		}
		callTool(t, c, "list_databases", nil, &list)
		if list.Tier != "free" || !slices.ContainsFunc(list.Databases, func(d struct{ Name string }) bool { return d.Name == "go-streamable" }) {
			t.Errorf("list_databases over SSE = %+v, want the database made over Streamable HTTP", list)
		}

		// Another tenant's valid token cannot post to this tenant's SSE session.
		endpoint := client.GetEndpoint(c)
		if endpoint == nil {
			t.Fatal("no SSE message endpoint")
		}
		req, _ := http.NewRequest("POST", endpoint.String(), strings.NewReader(`{"jsonrpc":"2.0","id":99,"method":"tools/list"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+otherTok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s with another tenant's token: status %d, want 404", endpoint.Path, resp.StatusCode)
		}
	})
	if sseClient != nil {
		defer sseClient.Close()
	}

	t.Run("GracefulShutdown", func(t *testing.T) {
		if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-e.exited:
		case <-time.After(90 * time.Second): // a hang guard, not a timing assertion
			t.Fatalf("serve did not exit after SIGTERM\n%s", e.log())
		}
		if e.err != nil {
			var ee *exec.ExitError
			if errors.As(e.err, &ee) {
				t.Fatalf("serve exited with %v after SIGTERM, want 0\n%s", ee, e.log())
			}
			t.Fatal(e.err)
		}
		if !strings.Contains(e.log(), "shutting down") {
			t.Errorf("no shutdown message in the log:\n%s", e.log())
		}
	})
}
