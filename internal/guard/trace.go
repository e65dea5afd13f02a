package guard

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/neonguard/neonguard/internal/tracing"
)

// lock takes key's lock (acquire) in a "guard.lock" span that lasts until unlock, so the
// Neon requests and SQL made under the lock are its children; its wait is an attribute.
func (g *Guard) lock(ctx context.Context, key string) (context.Context, func(), error) {
	ctx, span := tracing.Start(ctx, "guard.lock")
	if !span.IsRecording() {
		return g.acquire(ctx, key)
	}
	kind, id, _ := strings.Cut(key, ":")
	span.SetAttributes(attribute.String("neonguard.lock.kind", kind)) // db or tenant
	if kind == "db" {
		span.SetAttributes(tracing.AttrDatabase.String(id))
	} else {
		span.SetAttributes(tracing.AttrTenant.String(id))
	}
	start := time.Now()
	held, unlock, err := g.acquire(ctx, key)
	span.SetAttributes(tracing.AttrLockWait.Float64(tracing.Millis(time.Since(start))))
	if err != nil {
		span.SetStatus(codes.Error, "lock not acquired")
		span.End()
		return nil, nil, err
	}
	var once sync.Once
	return held, func() {
		unlock()
		once.Do(func() { span.End() })
	}, nil
}

// sqlTracer puts each statement a tool runs on a branch in a "sql <COMMAND>" span, and the
// connection in "sql connect". Neither the statement's text nor its parameters are recorded
// (an agent's SQL may hold data and secrets): only its command (the first keyword), the
// server's command tag and, on failure, the SQLSTATE. Statements outside a traced call (the
// pool's reset) are not traced.
type sqlTracer struct{}

var (
	_ pgx.QueryTracer   = sqlTracer{}
	_ pgx.ConnectTracer = sqlTracer{}
)

type sqlSpanKey struct{}

func (sqlTracer) start(ctx context.Context, name, op string) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	ctx, span := tracing.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	span.SetAttributes(attribute.String("db.system.name", "postgresql"), attribute.String("db.operation.name", op))
	return context.WithValue(ctx, sqlSpanKey{}, span)
}

func (sqlTracer) end(ctx context.Context, err error, attrs ...attribute.KeyValue) {
	span, ok := ctx.Value(sqlSpanKey{}).(trace.Span)
	if !ok {
		return
	}
	span.SetAttributes(attrs...)
	if err != nil {
		errType := "error"
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr):
			errType = pgErr.Code // the SQLSTATE; the message may quote data
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			errType = "cancelled"
		}
		span.SetAttributes(attribute.String("error.type", errType), attribute.String("db.response.status_code", errType))
		span.SetStatus(codes.Error, errType)
	}
	span.End()
}

func (t sqlTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !tracing.Enabled() {
		return ctx
	}
	op := sqlCommand(data.SQL)
	return t.start(ctx, "sql "+op, op)
}

func (t sqlTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	var attrs []attribute.KeyValue
	if data.Err == nil {
		attrs = append(attrs, attribute.String("db.command_tag", truncateTag(data.CommandTag.String())),
			attribute.Int64("db.response.rows_affected", data.CommandTag.RowsAffected()))
	}
	t.end(ctx, data.Err, attrs...)
}

func (t sqlTracer) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	if !tracing.Enabled() {
		return ctx
	}
	return t.start(ctx, "sql connect", "connect")
}

func (t sqlTracer) TraceConnectEnd(ctx context.Context, data pgx.TraceConnectEndData) {
	t.end(ctx, data.Err)
}

// traceSQL starts the span of SQL a tool sends with pgconn directly, which pgx's tracer does
// not see (run_sql's statements): "sql <COMMAND>" of its first statement. The returned
// function ends it with the call's error.
func traceSQL(ctx context.Context, sql string) (context.Context, func(error)) {
	if !tracing.Enabled() {
		return ctx, func(error) {}
	}
	op := sqlCommand(sql)
	ctx = sqlTracer{}.start(ctx, "sql "+op, op)
	return ctx, func(err error) { sqlTracer{}.end(ctx, err) }
}

// sqlCommand is a statement's first keyword, upper-cased ("SELECT", "WITH", "CREATE"), past
// leading blanks and comments: all the statement text a span carries.
func sqlCommand(sql string) string {
	s := sql
	for {
		s = strings.TrimLeft(s, " \t\r\n\f;(")
		switch {
		case strings.HasPrefix(s, "--"):
			_, rest, ok := strings.Cut(s, "\n")
			if !ok {
				return "UNKNOWN"
			}
			s = rest
			continue
		case strings.HasPrefix(s, "/*"):
			_, rest, ok := strings.Cut(s, "*/")
			if !ok {
				return "UNKNOWN"
			}
			s = rest
			continue
		}
		break
	}
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
	})
	if end < 0 {
		end = len(s)
	}
	if end == 0 || end > 32 {
		return "UNKNOWN"
	}
	return strings.ToUpper(s[:end])
}

// truncateTag keeps a command tag's words ("INSERT 0 5", "SELECT 3"): tags are short, but a
// tag is the server's text, so it is capped.
func truncateTag(tag string) string {
	if len(tag) > 64 {
		return tag[:64]
	}
	return tag
}
