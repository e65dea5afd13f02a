package server

import (
	"cmp"
	"context"
	"fmt"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/tracing"
)

// traceCall puts each tool call in a "tools/call <tool>" span (the parent of the guard's lock,
// Neon request and SQL spans) with the tenant, the tool and the outcome: ok, denied (a policy,
// access or limit refusal), error or asked_user, and the error code when there is one. It runs
// right after the principal middleware, so refused and timed-out calls have their span too.
func traceCall() mcpserver.ToolHandlerMiddleware {
	return func(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
			if !tracing.Enabled() {
				return next(ctx, req) // no span name to build, no context to wrap
			}
			tool := req.Params.Name
			ctx, span := tracing.Start(ctx, "tools/call "+tool, trace.WithSpanKind(trace.SpanKindServer))
			if !span.IsRecording() {
				return next(ctx, req)
			}
			p, _ := identity.FromContext(ctx)
			span.SetAttributes(
				attribute.String("mcp.method.name", "tools/call"),
				attribute.String("gen_ai.operation.name", "execute_tool"),
				attribute.String("gen_ai.tool.name", tool),
				tracing.AttrTenant.String(p.TenantID),
			)
			defer func() {
				if v := recover(); v != nil {
					endCall(span, nil, fmt.Errorf("panic: %v", v))
					panic(v)
				}
				endCall(span, res, err)
			}()
			return next(ctx, req)
		}
	}
}

// endCall records a call's outcome on its span and ends it.
func endCall(span trace.Span, res *mcp.CallToolResult, err error) {
	outcome, code := "ok", ""
	switch {
	case err != nil:
		outcome, code = "error", string(errcode.Internal)
	case res != nil && res.NeedsInput():
		outcome = "asked_user"
	case res != nil && res.IsError:
		c, _ := errorCode(res)
		code = cmp.Or(c, string(errcode.Internal))
		outcome = "error"
		if errcode.Code(code).Denial() {
			outcome = "denied"
		}
	}
	span.SetAttributes(tracing.AttrOutcome.String(outcome))
	if code != "" {
		span.SetAttributes(tracing.AttrErrorCode.String(code), attribute.String("error.type", code))
	}
	if outcome == "error" {
		span.SetStatus(codes.Error, code)
	}
	span.End()
}
