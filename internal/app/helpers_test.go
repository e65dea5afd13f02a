package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/mcptest"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neonlocal/spectest"
)

// newApp wires the real server on the embedded emulator, with every request and response
// between the guard and the emulator checked against Neon's OpenAPI spec.
func newApp(t *testing.T, mods ...func(*config.Config)) *app.App {
	t.Helper()
	return newAppWith(t, func(h http.Handler) http.Handler { return spectest.Wrap(t, h) }, mods...)
}

// The control-plane tests run without PostgreSQL (the API and the policy are what they test);
// the data-plane tests switch it on with withPostgres.
func newAppWith(tb testing.TB, wrap func(http.Handler) http.Handler, mods ...func(*config.Config)) *app.App {
	tb.Helper()
	cfg := config.Default()
	cfg.DataDir = tb.TempDir()
	cfg.Local.OperationDelay = 5 * time.Millisecond
	cfg.Local.Postgres = "off"
	for _, m := range mods {
		m(&cfg)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("NEONGUARD_TEST_LOG") != "" { // debug aid: the whole server's log on stderr
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := app.New(context.Background(), cfg, app.Options{
		Logger:       log,
		WrapEmulator: wrap,
		NeonClient: func(c *neon.Config) {
			c.BaseBackoff, c.MaxBackoff = time.Millisecond, 20*time.Millisecond
			c.OperationPoll = 2 * time.Millisecond
			c.EffectPause = 10 * time.Millisecond
			c.RequestsPerSecond = 10000
		},
	})
	if err != nil {
		tb.Fatalf("app.New: %v", err)
	}
	tb.Cleanup(func() { _ = a.Close() })
	return a
}

func connect(tb testing.TB, a *app.App) *client.Client {
	tb.Helper()
	return mcptest.Connect(tb, a.Local.Protocol())
}

// result is a tool call's outcome as an agent sees it.
type result struct {
	Structured map[string]any
	Code       string // the error code of an isError result
	Message    string
	Hint       string
	Text       string
}

func (r result) String() string {
	if r.Code != "" {
		return r.Code + ": " + r.Message + " (" + r.Hint + ")"
	}
	b, _ := json.Marshal(r.Structured)
	return string(b)
}

func callAs(ctx context.Context, t testing.TB, c *client.Client, tool string, args map[string]any) result {
	t.Helper()
	var req mcp.CallToolRequest
	req.Params.Name = tool
	req.Params.Arguments = args
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("%s: protocol error: %v", tool, err)
	}
	var r result
	for _, content := range res.Content {
		if tc, ok := content.(mcp.TextContent); ok {
			r.Text = tc.Text
			break
		}
	}
	if res.IsError {
		if res.StructuredContent != nil {
			t.Errorf("%s: an error result must not carry structuredContent", tool)
		}
		var body struct {
			Error struct{ Code, Message, Hint string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(r.Text), &body); err != nil || body.Error.Code == "" {
			t.Fatalf("%s: error result is not {\"error\":{code,message,hint}}: %q", tool, r.Text)
		}
		r.Code, r.Message, r.Hint = body.Error.Code, body.Error.Message, body.Error.Hint
		return r
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r.Structured); err != nil {
		t.Fatalf("%s: structuredContent is not an object: %s", tool, b)
	}
	return r
}

func call(t testing.TB, c *client.Client, tool string, args map[string]any) result {
	t.Helper()
	return callAs(context.Background(), t, c, tool, args)
}

// mustOK fails the test unless the call succeeded.
func mustOK(t testing.TB, r result, what string) map[string]any {
	t.Helper()
	if r.Code != "" {
		t.Fatalf("%s: %s", what, r)
	}
	return r.Structured
}

func asTenant(ctx context.Context, tenant string) context.Context {
	return identity.NewContext(ctx, identity.Principal{TenantID: tenant})
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}
