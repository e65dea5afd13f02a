package server

import (
	"context"
	"fmt"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/tools"
)

// access enforces access modes on the server side, from the principal in the context: a
// principal that may only read (a token whose highest scope is read, or any principal of a
// read-only server) sees in tools/list only the tools it may call (tools.ReadOnlyView: the
// tools annotated read-only, and run_sql as a read-only tool), and a call of any other tool, or
// run_sql with read_only=false, is refused with FORBIDDEN. The guard refuses run_sql's writes
// again, after the arguments are decoded.
//
// tools/list is narrowed by a hook rather than by a tool filter: mcp-go applies a filter to
// calls too and answers a filtered-out tool as an unknown one (-32602), and a read principal
// that calls a write tool by name must get the tool error that says why.
type access struct {
	readable map[string]bool // tools a read principal may call
	def      *identity.Principal
	readOnly bool
}

func newAccess(served []mcpserver.ServerTool, def *identity.Principal, readOnly bool) *access {
	a := &access{readable: map[string]bool{}, def: def, readOnly: readOnly}
	for _, st := range served {
		if _, ok := tools.ReadOnlyView(st.Tool); ok {
			a.readable[st.Tool.Name] = true
		}
	}
	return a
}

// principal is the caller of a request as the principal middleware will see it: the
// transport's, else the default one, capped at reading on a read-only server.
func (a *access) principal(ctx context.Context) (identity.Principal, bool) {
	p, ok := identity.FromContext(ctx)
	if !ok {
		if a.def == nil {
			return identity.Principal{}, false
		}
		p = *a.def
	}
	p.ReadOnly = p.ReadOnly || a.readOnly
	return p, true
}

func (a *access) hooks() *mcpserver.Hooks {
	h := &mcpserver.Hooks{}
	h.AddAfterListTools(func(ctx context.Context, _ any, _ *mcp.ListToolsRequest, res *mcp.ListToolsResult) {
		if res == nil {
			return
		}
		if p, ok := a.principal(ctx); ok && !p.CanWrite() {
			res.Tools = readOnlyList(res.Tools)
		}
	})
	return h
}

// readOnlyList is a new list of the tools a read principal may call, as it sees them.
func readOnlyList(ts []mcp.Tool) []mcp.Tool {
	out := make([]mcp.Tool, 0, len(ts))
	for _, t := range ts {
		if v, ok := tools.ReadOnlyView(t); ok {
			out = append(out, v)
		}
	}
	return slices.Clip(out)
}

// middleware runs after the principal middleware, which put the (capped) principal in ctx.
func (a *access) middleware() mcpserver.ToolHandlerMiddleware {
	return func(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			p, _ := identity.FromContext(ctx)
			if p.CanWrite() {
				return next(ctx, req)
			}
			name := req.Params.Name
			switch {
			case !a.readable[name]:
				return errorResult(errcode.Forbidden, fmt.Sprintf("%s changes things, and you may only read", name),
					p.ReadOnlyReason()+"; tools/list shows the tools you can call"), nil
			case tools.AsksToWrite(name, req.GetArguments()):
				return errorResult(errcode.Forbidden, name+" with read_only=false writes, and you may only read",
					"leave read_only out (it defaults to true) to read; "+p.ReadOnlyReason()), nil
			}
			return next(ctx, req)
		}
	}
}

// inGroups keeps the agent tools of the given groups; no groups keeps them all.
func inGroups(ts []mcpserver.ServerTool, groups []string) []mcpserver.ServerTool {
	if len(groups) == 0 {
		return ts
	}
	return slices.DeleteFunc(ts, func(st mcpserver.ServerTool) bool {
		return !slices.Contains(groups, tools.GroupOf(st.Tool.Name))
	})
}
