package tools

import (
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/neonguard/neonguard/internal/mcptest"
)

// TestThroughServer runs the tools behind a real MCPServer (output validation on) and the
// in-process client: tools/list marshals, a call succeeds, an invalid call keeps our shape.
func TestThroughServer(t *testing.T) {
	s := server.NewMCPServer("neonguard-test", "0", server.WithOutputSchemaValidation())
	s.AddTools(All(Deps{Guard: &fakeGuard{}})...)
	c := mcptest.Connect(t, s)
	list, err := c.ListTools(t.Context(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	if len(list.Tools) != len(wantNames) {
		t.Fatalf("tools/list returned %d tools", len(list.Tools))
	}
	for _, name := range wantNames {
		res, err := c.CallTool(t.Context(), callWith(t, name, validArgs[name]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.IsError || res.StructuredContent == nil {
			t.Fatalf("%s: %+v", name, res)
		}
	}
	res, err := c.CallTool(t.Context(), callWith(t, "checkpoint", `{"database_id":"d1","name":"x","force":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if e := errorOf(t, res); e.Code != "INVALID_ARGUMENT" {
		t.Fatalf("%+v", e)
	}
}

func callWith(t *testing.T, name, args string) mcp.CallToolRequest {
	t.Helper()
	var req mcp.CallToolRequest
	req.Params.Name = name
	req.Params.Arguments = mustJSON(t, args)
	return req
}
