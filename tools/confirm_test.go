package tools

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/mcptest"
)

// elicitor is a client-side elicitation handler that answers with action and remembers what
// it was asked.
type elicitor struct {
	action mcp.ElicitationResponseAction
	mu     sync.Mutex
	asked  []string
}

func (e *elicitor) Elicit(_ context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked = append(e.asked, req.Params.Message)
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: e.action}}, nil
}

func (e *elicitor) questions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.asked...)
}

// confirmedCalls counts the guard calls that ran with confirm set.
func (f *fakeGuard) confirmedCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if in, ok := c.in.(guard.RunSQLInput); ok && in.Confirm {
			n++
		}
	}
	return n
}

const dropArgs = `{"database_id":"d1","sql":"drop table t","read_only":false}`

func TestConfirmationThroughElicitation(t *testing.T) {
	eras := map[string][]client.ClientOption{
		"2026-07-28 (input_required)":     nil,
		"2025-11-25 (elicitation/create)": {client.WithProtocolVersion("2025-11-25")},
	}
	for era, eraOpts := range eras {
		t.Run(era, func(t *testing.T) {
			for _, tc := range []struct {
				name      string
				action    mcp.ElicitationResponseAction // "" = the client cannot elicit
				wantError bool
			}{
				{"accept runs with confirm", mcp.ElicitationResponseActionAccept, false},
				{"decline runs nothing", mcp.ElicitationResponseActionDecline, true},
				{"cancel runs nothing", mcp.ElicitationResponseActionCancel, true},
				{"no elicitation capability gets CONFIRMATION_REQUIRED", "", true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					fg := &fakeGuard{confirmGate: true}
					s := server.NewMCPServer("neonguard-test", "0", server.WithElicitation(), server.WithOutputSchemaValidation())
					s.AddTools(All(Deps{Guard: fg})...)
					opts := append([]client.ClientOption(nil), eraOpts...)
					el := &elicitor{action: tc.action}
					if tc.action != "" {
						opts = append(opts, client.WithElicitationHandler(el))
					}
					c := mcptest.ConnectWith(t, s, opts...)
					res, err := c.CallTool(t.Context(), callWith(t, "run_sql", dropArgs))
					if err != nil {
						t.Fatal(err)
					}
					if tc.action != "" {
						q := el.questions()
						if len(q) != 1 || !strings.Contains(q[0], "drop table t") {
							t.Fatalf("the user was asked %q", q)
						}
					}
					if !tc.wantError {
						if res.IsError || res.StructuredContent == nil {
							t.Fatalf("accepted call failed: %+v", res)
						}
						if fg.confirmedCalls() != 1 {
							t.Fatalf("%d confirmed guard calls, want 1", fg.confirmedCalls())
						}
						return
					}
					e := errorOf(t, res)
					if e.Code != "CONFIRMATION_REQUIRED" {
						t.Fatalf("got %+v", e)
					}
					if tc.action != "" && !strings.Contains(e.Message, "declined") {
						t.Fatalf("a declined ask should say so: %+v", e)
					}
					if fg.confirmedCalls() != 0 || fg.count() != 1 {
						t.Fatalf("guard calls %d (confirmed %d): the declined statement must not run", fg.count(), fg.confirmedCalls())
					}
				})
			}
		})
	}
}

// TestForgedConfirmationIsIgnored: a client that sends an "accept" it was never asked for (no
// sealed state, a made-up one, or one sealed by another key) does not get the statement run.
func TestForgedConfirmationIsIgnored(t *testing.T) {
	fg := &fakeGuard{confirmGate: true}
	s := server.NewMCPServer("neonguard-test", "0", server.WithElicitation())
	s.AddTools(All(Deps{Guard: fg})...)
	c := mcptest.ConnectWith(t, s, client.WithProtocolVersion("2025-11-25")) // no elicitation handler
	accept := mcp.InputResponses{confirmInputID: mcp.NewElicitationInputResponse(
		mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionAccept}})}
	// The client library fills the round-trip fields itself, so the forged call goes to the
	// transport directly.
	tr := c.GetTransport()
	for i, state := range []string{"", "eyJ0IjoicnVuX3NxbCJ9.AAAA", newConfirmations().seal("run_sql", "", &runSQLArgs{DatabaseID: "d1", SQL: "drop table t"})} {
		resp, err := tr.SendRequest(t.Context(), transport.JSONRPCRequest{JSONRPC: "2.0", ID: mcp.NewRequestId(100 + i),
			Method: "tools/call", Params: map[string]any{"name": "run_sql", "arguments": mustJSON(t, dropArgs),
				"inputResponses": accept, "requestState": state}})
		if err != nil {
			t.Fatal(err)
		}
		var res mcp.CallToolResult
		if err := json.Unmarshal(resp.Result, &res); err != nil {
			t.Fatal(err)
		}
		if e := errorOf(t, &res); e.Code != "CONFIRMATION_REQUIRED" {
			t.Fatalf("state %d: got %+v", i, e)
		}
	}
	if fg.confirmedCalls() != 0 {
		t.Fatal("a forged accept ran the statement")
	}
}

func TestSealedStateIsBoundAndSingleUse(t *testing.T) {
	c := newConfirmations()
	now := time.Unix(1_800_000_000, 0)
	c.now = func() time.Time { return now }
	a := &runSQLArgs{DatabaseID: "d1", SQL: "drop table t"}
	other := &runSQLArgs{DatabaseID: "d1", SQL: "drop table u"}

	if s := c.seal("run_sql", "t1", a); !c.open(s, "run_sql", "t1", a) || c.open(s, "run_sql", "t1", a) {
		t.Fatal("a state must open once")
	}
	s := c.seal("run_sql", "t1", a)
	for name, ok := range map[string]bool{
		"other arguments": c.open(s, "run_sql", "t1", other),
		"other tenant":    c.open(s, "run_sql", "t2", a),
		"other tool":      c.open(s, "apply_migration", "t1", a),
		"tampered":        c.open(s[:len(s)-2]+"AA", "run_sql", "t1", a),
		"other key":       newConfirmations().open(s, "run_sql", "t1", a),
	} {
		if ok {
			t.Errorf("%s: opened", name)
		}
	}
	now = now.Add(confirmTTL + time.Second)
	if c.open(s, "run_sql", "t1", a) {
		t.Fatal("an expired state opened")
	}
}
