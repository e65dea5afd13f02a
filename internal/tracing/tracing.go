// Package tracing holds neonguard's OpenTelemetry traces: the process's tracer, off unless
// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, and then exported
// with OTLP over HTTP. Every layer starts its spans through Start; while tracing is off that is
// the OpenTelemetry no-op tracer (no exporter, no allocation of attributes: callers set
// attributes only on a span that IsRecording).
//
// The spans, their names and attributes (the README's "Tracing" section lists them):
//
//	tools/call <tool>         internal/server: one per tool call (tenant, tool, outcome, error code)
//	guard.lock                internal/guard: a database's lock, from the request to its release
//	<METHOD> <route template> internal/neon: one per Neon API request, retries included
//	sql <COMMAND>             internal/guard: one per SQL statement on a branch (no text, no parameters)
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Name is the instrumentation scope of neonguard's spans.
const Name = "github.com/neonguard/neonguard"

// Attribute keys neonguard sets besides OpenTelemetry's semantic conventions.
const (
	AttrTenant    = attribute.Key("neonguard.tenant")
	AttrOutcome   = attribute.Key("neonguard.outcome")
	AttrErrorCode = attribute.Key("neonguard.error_code")
	AttrDatabase  = attribute.Key("neonguard.database_id")
	AttrLockWait  = attribute.Key("neonguard.lock.wait_ms")
	AttrRetries   = attribute.Key("neon.retries")
)

var noopTracer trace.Tracer = noop.NewTracerProvider().Tracer(Name)

// tracer is the process's tracer: the no-op one until Setup installs an exporting one.
var tracer atomic.Pointer[trace.Tracer]

func init() { tracer.Store(&noopTracer) }

// Start starts a span as a child of the one in ctx (if any). With tracing off it costs an
// atomic load and the no-op tracer's Start.
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return (*tracer.Load()).Start(ctx, name, opts...)
}

// Enabled reports whether spans are being recorded and exported.
func Enabled() bool { return *tracer.Load() != noopTracer }

// Env is how Setup reads the environment (os.Getenv in the binary).
type Env func(string) string

// Configured reports whether the environment asks for traces: an OTLP endpoint is set (for
// all signals or for traces) and neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none.
func Configured(getenv Env) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp != "" && !strings.EqualFold(exp, "otlp") {
		return false // "none", or an exporter this binary does not have
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs the exporting tracer when the environment asks for traces (Configured) and
// returns the function that flushes and stops it, to call before the process exits. Without
// an endpoint it installs nothing and the returned function does nothing. The exporter reads
// the standard OTEL_EXPORTER_OTLP_* variables itself (endpoint, headers, timeout,
// compression, certificates); OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the
// service (default service.name: neonguard). OTEL_EXPORTER_OTLP_PROTOCOL, when set, must be
// http/protobuf: this binary exports over HTTP only.
// Export failures are logged to log (at most one a minute), not to OpenTelemetry's default
// logger.
func Setup(ctx context.Context, version string, getenv Env, log *slog.Logger) (shutdown func(context.Context) error, err error) {
	nothing := func(context.Context) error { return nil }
	if !Configured(getenv) {
		return nothing, nil
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(v)); p != "" {
			if p != "http/protobuf" {
				return nothing, fmt.Errorf("tracing: %s=%q: only http/protobuf is supported (OTLP over HTTP)", v, p)
			}
			break
		}
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nothing, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "neonguard"), attribute.String("service.version", version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil && res == nil {
		return nothing, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(2*time.Second)),
		sdktrace.WithResource(res),
		// OTEL_TRACES_SAMPLER and its argument apply; the default samples every trace.
	)
	otel.SetErrorHandler(errorLogger(log))
	install(tp)
	return func(ctx context.Context) error {
		uninstall()
		return errors.Join(tp.ForceFlush(ctx), tp.Shutdown(ctx))
	}, nil
}

// install makes tp the process's tracer provider, for neonguard's spans and any library
// that uses OpenTelemetry's global one; W3C trace context is propagated.
func install(tp trace.TracerProvider) {
	t := tp.Tracer(Name)
	tracer.Store(&t)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
}

func uninstall() { tracer.Store(&noopTracer) }

// Use makes tp the process's tracer provider until the returned function restores the no-op
// one. Tests record spans with it (an SDK provider with an in-memory exporter).
func Use(tp trace.TracerProvider) (restore func()) {
	install(tp)
	return uninstall
}

// Millis is a duration as float milliseconds, the unit of neonguard's *_ms attributes.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// errorLogger reports OpenTelemetry's errors (a collector that is down) on log, at most one a
// minute, so an unreachable endpoint does not flood the log.
func errorLogger(log *slog.Logger) otel.ErrorHandler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var mu sync.Mutex
	var last time.Time
	return otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < time.Minute {
			return
		}
		last = time.Now()
		log.Warn("tracing: exporting spans failed", "err", err)
	})
}
