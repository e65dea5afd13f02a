package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/progress"
)

// withProgress wires the guard's progress reports (internal/progress) to MCP: when the call
// carries _meta.progressToken, each step becomes a notifications/progress on the call's own
// stream. Nothing is sent once the call's context has ended (cancelled, timed out) or after
// stop, so a client never hears of a call it has given up on or that has answered.
func withProgress(ctx context.Context, req mcp.CallToolRequest) (context.Context, func()) {
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil {
		return ctx, func() {}
	}
	srv := server.ServerFromContext(ctx)
	if srv == nil {
		return ctx, func() {}
	}
	token := req.Params.Meta.ProgressToken
	call := ctx
	return progress.NewContext(ctx, func(p, total float64, message string) {
		if call.Err() != nil {
			return
		}
		params := map[string]any{"progressToken": token, "progress": p, "message": message}
		if total > 0 {
			params["total"] = total
		}
		// Non-blocking: a full session queue drops the update (the result still comes).
		_ = srv.SendNotificationToClient(call, string(mcp.MethodNotificationProgress), params)
	})
}
