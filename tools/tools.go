// Package tools declares neonguard's MCP tools (DESIGN.md §3), one file per tool. Each factory
// returns a static server.ServerTool: invopop-reflected input and output schemas, all four
// annotations set explicitly, and a handler that decodes and validates the arguments, calls
// guard.UseCases and shapes the result (result.go). Nothing here decides policy: that is the
// guard's job.
package tools

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/go-playground/validator/v10"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/guard"
)

// Deps is what the tool handlers need.
type Deps struct {
	Guard  guard.UseCases
	Admin  AdminUseCases // the admin tool set's operations; only AdminTools uses it
	Logger *slog.Logger
	// Schemas hands out the tools' schemas; nil reflects them (All and AdminTools set it).
	Schemas *Schemas

	// validate is built once by All and shared by its tools; a factory called on its own
	// builds its own (a *validator.Validate is safe for concurrent use once configured).
	validate *validator.Validate
	// confirm seals the questions put to the user through elicitation; nil (a factory called
	// on its own) means tools never ask and answer CONFIRMATION_REQUIRED instead.
	confirm *confirmations
}

func (d Deps) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

func (d Deps) validator() *validator.Validate {
	if d.validate == nil {
		return newValidator()
	}
	return d.validate
}

// factories lists the tools in their stable tools/list order: set-up and versioning first,
// then reads, then housekeeping.
func factories() []func(Deps) server.ServerTool {
	return []func(Deps) server.ServerTool{
		CreateDatabase,
		Checkpoint,
		UndoToTime,
		CreateDevBranch,
		GetUsage,
		ListDatabases,
		ListCheckpoints,
		RestoreCheckpoint,
		ListBranches,
		DeleteDevBranch,
		GetConnectionString,
		DescribeLimits,
		RunSQL,
		ApplyMigration,
		ListMigrations,
		UndoMigration,
		DescribeSchema,
		CompareSchema,
	}
}

// All returns every agent tool, in a stable order.
func All(d Deps) []server.ServerTool {
	if d.validate == nil {
		d.validate = newValidator()
	}
	if d.confirm == nil {
		d.confirm = newConfirmations()
	}
	if d.Schemas == nil {
		d.Schemas = NewSchemas()
	}
	fs := factories()
	out := make([]server.ServerTool, 0, len(fs))
	for _, f := range fs {
		out = append(out, f(d))
	}
	return out
}

// Names returns the tool names in All's order.
func Names() []string {
	names := make([]string, 0, len(factories()))
	for _, st := range All(Deps{}) {
		names = append(names, st.Tool.Name)
	}
	return names
}

// Annotations. openWorldHint is false on every tool: each one acts only on the calling
// tenant's own databases through the guard, a closed and enumerable set (list_databases), not
// on arbitrary external entities such as the web; that Neon runs the databases remotely is an
// implementation detail the agent cannot reach past.
type hints struct{ readOnly, destructive, idempotent bool }

func (h hints) annotation() mcp.ToolAnnotation {
	return mcp.ToolAnnotation{
		ReadOnlyHint:    mcp.ToBoolPtr(h.readOnly),
		DestructiveHint: mcp.ToBoolPtr(h.destructive),
		IdempotentHint:  mcp.ToBoolPtr(h.idempotent),
		OpenWorldHint:   mcp.ToBoolPtr(false),
	}
}

// readOnly is the annotation set of every tool that only reads.
func readOnly() hints { return hints{readOnly: true, destructive: false, idempotent: true} }

// def is a tool's static description.
type def struct {
	name, title, description string
	hints                    hints
	// progress: the call can take more than about a second, so a client that sends a
	// progressToken is told of each step (progress.go).
	progress bool
}

// newTool builds a ServerTool from a def, an args type A (input schema, decoding, validation)
// and the guard call returning *R (output schema). call may return *argError for checks
// beyond the validator tags; its other errors come from the guard.
func newTool[A, R any](d Deps, df def, call func(ctx context.Context, a *A) (*R, error)) server.ServerTool {
	in, err := d.Schemas.schema(df.name, reflect.TypeFor[A](), false)
	if err != nil {
		panic(fmt.Sprintf("tools: %s: input schema: %v", df.name, err)) // a bug in the args type
	}
	out, err := d.Schemas.schema(df.name, reflect.TypeFor[R](), true)
	if err != nil {
		panic(fmt.Sprintf("tools: %s: output schema: %v", df.name, err))
	}
	// NewToolWithRawSchema leaves InputSchema.Type and OutputSchema.Type empty, so setting the
	// raw schemas cannot trip Tool.MarshalJSON's "both set" error (mcp-go notes §2.3).
	tool := mcp.NewToolWithRawSchema(df.name, df.description, in)
	tool.Title = df.title
	tool.RawOutputSchema = out
	tool.Annotations = df.hints.annotation()

	dec := newDecoder[A](d.validator())
	sh := shaper{tool: df.name, log: d.logger()}
	return server.ServerTool{
		Tool: tool,
		Handler: func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
			// A panic below the handler would reach the agent as a protocol error carrying the
			// panic value; keep the error shape and the detail in the log instead.
			defer func() {
				if p := recover(); p != nil {
					res, err = sh.internal(ctx, fmt.Errorf("panic: %v", p)), nil
				}
			}()
			a := new(A)
			if ae := dec.decode(req.GetRawArguments(), a); ae != nil {
				return ae.result(), nil
			}
			ca, canConfirm := any(a).(confirmable)
			canConfirm = canConfirm && d.confirm != nil
			if canConfirm {
				switch d.confirm.answer(ctx, df.name, req, a) {
				case accepted:
					ca.confirmByUser()
				case declined:
					return shape[R](ctx, sh, nil, errDeclined), nil
				}
			}
			if df.progress {
				var stop func()
				ctx, stop = withProgress(ctx, req)
				defer stop()
			}
			r, cerr := call(ctx, a)
			if why := needsConfirmation(cerr); why != nil && canConfirm && clientCanElicit(ctx) {
				return d.confirm.ask(ctx, df.name, a, why), nil
			}
			return shape(ctx, sh, r, cerr), nil
		},
	}
}
