package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/tracing"
)

// tracingFlushTimeout bounds how long the exit waits for the last spans to reach the collector.
const tracingFlushTimeout = 5 * time.Second

// startTracing exports spans with OTLP over HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, and does nothing otherwise. The returned function
// flushes the spans still buffered; call it before the process exits.
func startTracing(ctx context.Context, log *slog.Logger) (stop func(), err error) {
	shutdown, err := tracing.Setup(ctx, app.Version, os.Getenv, log)
	if err != nil {
		return nil, err
	}
	if tracing.Enabled() {
		log.Info("tracing: exporting spans with OTLP over HTTP")
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingFlushTimeout)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			log.Warn("tracing: flushing spans failed", "err", err)
		}
	}, nil
}
