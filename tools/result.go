package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/errcode"
)

// errorBody is the isError text content of DESIGN.md §3.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint"`
}

// ErrorResult is the one shape of every failure, here and in the server's middleware: isError
// with a single text content holding the error JSON and no structuredContent, because the
// TypeScript client validates structuredContent against outputSchema even on errors and
// rejects the whole answer.
func ErrorResult(code errcode.Code, msg, hint string) *mcp.CallToolResult {
	return &mcp.CallToolResult{
		IsError: true,
		Content: []mcp.Content{mcp.NewTextContent(compactJSON(errorBody{errorDetail{string(code), msg, hint}}))},
	}
}

// shaper turns a guard answer into a tool result for one tool.
type shaper struct {
	tool string
	log  *slog.Logger
}

// shape is the success/failure mapping used by every tool.
func shape[R any](ctx context.Context, sh shaper, res *R, err error) *mcp.CallToolResult {
	if err != nil {
		return sh.failure(ctx, err)
	}
	if res == nil {
		return sh.internal(ctx, errors.New("guard returned neither a result nor an error"))
	}
	// The output schema requires every non-omitempty field; a nil slice would marshal as null
	// and make a validating client reject the answer, so turn nil slices into empty ones.
	fillNilSlices(reflect.ValueOf(res))
	text, err := marshalCompact(res)
	if err != nil {
		return sh.internal(ctx, err)
	}
	return mcp.NewToolResultStructured(res, text)
}

func (sh shaper) failure(ctx context.Context, err error) *mcp.CallToolResult {
	var ae *argError
	if errors.As(err, &ae) {
		return ae.result()
	}
	if ge := errcode.As(err); ge != nil {
		if ge.Err != nil {
			// Err is the internal cause: logs only, it may hold upstream detail.
			sh.log.WarnContext(ctx, "tool failed", "tool", sh.tool, "code", string(ge.Code), "err", ge.Err)
		}
		msg := ge.Message
		if msg == "" {
			msg = string(ge.Code)
		}
		return ErrorResult(ge.Code, msg, ge.Hint)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		sh.log.WarnContext(ctx, "tool timed out", "tool", sh.tool, "err", err)
		return ErrorResult(errcode.Upstream, "the operation timed out; it may still complete",
			"check the current state (list_branches, list_checkpoints) before retrying")
	case errors.Is(err, context.Canceled):
		sh.log.InfoContext(ctx, "tool cancelled", "tool", sh.tool, "err", err)
		return ErrorResult(errcode.Upstream, "the operation was cancelled; it may have completed",
			"check the current state (list_branches, list_checkpoints) before retrying")
	}
	return sh.internal(ctx, err)
}

// internal reports an unexpected error. Its text never reaches the agent: an unknown error may
// carry a connection string or an API key.
func (sh shaper) internal(ctx context.Context, err error) *mcp.CallToolResult {
	sh.log.ErrorContext(ctx, "tool internal error", "tool", sh.tool, "err", err)
	return ErrorResult(errcode.Internal, "internal error; the operation may not have completed",
		"check the current state before retrying")
}

func marshalCompact(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep '&' in connection strings readable in the text content
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// compactJSON is marshalCompact for values that always marshal (plain strings and structs).
func compactJSON(v any) string {
	s, err := marshalCompact(v)
	if err != nil {
		return `{"error":{"code":"` + string(errcode.Internal) + `","message":"internal error","hint":""}}`
	}
	return s
}

// fillNilSlices replaces nil slices reachable through exported fields with empty ones.
func fillNilSlices(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			fillNilSlices(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fillNilSlices(f)
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			if v.CanSet() {
				v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			}
			return
		}
		for i := range v.Len() {
			fillNilSlices(v.Index(i))
		}
	}
}
