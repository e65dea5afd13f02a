package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/identity"
)

// Local is the single-tenant server of stdio and of `neonguard call`: every call is the
// configured principal's. With the HTTP server beside it, it keeps the MCP library inside this
// package (and tools/, which declares the tools).
type Local struct {
	srv       *mcpserver.MCPServer
	principal identity.Principal
	log       *slog.Logger
}

// NewLocal builds the single-tenant server; o.DefaultPrincipal names the tenant.
func NewLocal(o Options) (*Local, error) {
	if o.DefaultPrincipal == nil || o.DefaultPrincipal.TenantID == "" {
		return nil, errors.New("server: a local server needs a default principal")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Local{srv: New(o), principal: *o.DefaultPrincipal, log: o.Logger}, nil
}

// ServeStdio speaks MCP on in and out until ctx ends or the client closes in (both a normal
// stop: nil). Logs go to the logger, never to out.
func (l *Local) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	stdio := mcpserver.NewStdioServer(l.srv)
	stdio.SetContextFunc(func(ctx context.Context) context.Context {
		return identity.NewContext(ctx, l.principal)
	})
	stdio.SetErrorLogger(slog.NewLogLogger(l.log.Handler(), slog.LevelWarn))
	// A cancelled call's answer is not written (cancelled.go).
	cf := newCancelFilter()
	err := stdio.Listen(ctx, cf.input(in), cf.output(out))
	if err != nil && (ctx.Err() != nil || errors.Is(err, io.EOF)) {
		return nil
	}
	return err
}

// CallResult is one tool call's answer: the structured result, or the error JSON as text.
type CallResult struct {
	IsError    bool
	Structured any    // the structured content of a success
	Text       string // the text content (the error JSON of a failure)
}

// ErrUnknownTool is Call's error for a tool the server does not offer this caller; its text
// lists the tools it does offer.
var ErrUnknownTool = errors.New("unknown tool")

// Call runs one tool through the full server (middleware included), as an MCP client in this
// process would.
func (l *Local) Call(ctx context.Context, tool string, args map[string]any) (CallResult, error) {
	return l.CallWithProgress(ctx, tool, args, nil)
}

// CallWithProgress is Call with onProgress, when not nil, told of each real step of a long
// operation (the notifications/progress an MCP client gets for a progressToken): progress is
// the steps finished, total the steps planned (0 when unknown).
func (l *Local) CallWithProgress(ctx context.Context, tool string, args map[string]any, onProgress func(progress, total float64, message string)) (CallResult, error) {
	c, err := client.NewInProcessClient(l.srv)
	if err != nil {
		return CallResult{}, err
	}
	defer c.Close()
	if onProgress != nil {
		// Notifications arrive on the client's own goroutine, possibly after the result: the
		// callback runs one at a time and never once this call has returned, so the caller's
		// writer needs no lock of its own.
		var mu sync.Mutex
		returned := false
		defer func() {
			mu.Lock()
			returned = true
			mu.Unlock()
		}()
		c.OnNotification(func(n mcp.JSONRPCNotification) {
			if n.Method != string(mcp.MethodNotificationProgress) {
				return
			}
			f := n.Params.AdditionalFields
			message, _ := f["message"].(string)
			mu.Lock()
			defer mu.Unlock()
			if !returned {
				onProgress(number(f["progress"]), number(f["total"]), message)
			}
		})
	}
	if err := c.Start(ctx); err != nil {
		return CallResult{}, err
	}
	if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
		return CallResult{}, fmt.Errorf("server: initialize: %w", err)
	}
	// The tools this caller may call (tool groups and access mode applied), named in the error
	// for any other: mcp-go's own "tool not found" names none.
	listed, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return CallResult{}, fmt.Errorf("server: tools/list: %w", err)
	}
	names := make([]string, 0, len(listed.Tools))
	for _, t := range listed.Tools {
		names = append(names, t.Name)
	}
	if !slices.Contains(names, tool) {
		slices.Sort(names)
		return CallResult{}, fmt.Errorf("%w %q: the tools are %s", ErrUnknownTool, tool, strings.Join(names, ", "))
	}
	var req mcp.CallToolRequest
	req.Params.Name = tool
	req.Params.Arguments = args
	if onProgress != nil {
		req.Params.Meta = &mcp.Meta{ProgressToken: "call"}
	}
	res, err := c.CallTool(ctx, req)
	if err != nil {
		return CallResult{}, err
	}
	out := CallResult{IsError: res.IsError, Structured: res.StructuredContent}
	for _, content := range res.Content {
		if tc, ok := content.(mcp.TextContent); ok {
			out.Text = tc.Text
			break
		}
	}
	return out, nil
}

// number reads a JSON number of a notification's parameters (float64, or an integer type when
// the server built the map in process); anything else is 0.
func number(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case float32:
		return float64(n)
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case json.Number:
		f, _ := n.Float64()
		return f
	}
	return 0
}

// Protocol is the underlying MCP server, for in-process MCP clients in tests.
func (l *Local) Protocol() *mcpserver.MCPServer { return l.srv }
