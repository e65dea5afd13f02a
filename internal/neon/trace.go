package neon

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/neonguard/neonguard/internal/tracing"
	"github.com/neonguard/neonguard/internal/truncate"
)

// callTrace follows one logical API call (do, retries included) in a span named by the route
// template, never the path: ids stay out of span names and attributes.
type callTrace struct {
	span     trace.Span
	attempts int // requests sent (the transport counts them)
	status   int // HTTP status of the last answer, 0 when none arrived
}

type callTraceKey struct{}

// traceCall starts r's span; nil (nothing to record) while tracing is off.
func (c *Client) traceCall(ctx context.Context, r *call) (context.Context, *callTrace) {
	ctx, span := tracing.Start(ctx, r.method+" "+r.route, trace.WithSpanKind(trace.SpanKindClient))
	if !span.IsRecording() {
		return ctx, nil
	}
	span.SetAttributes(
		attribute.String("http.request.method", r.method),
		attribute.String("url.template", r.route),
		attribute.String("server.address", hostOf(c.base)),
	)
	ct := &callTrace{span: span}
	return context.WithValue(ctx, callTraceKey{}, ct), ct
}

// end records how the call finished: the last status, the retries, the error (whose text the
// client already scrubbed of keys and connection strings).
func (ct *callTrace) end(res result, err error) {
	if ct == nil {
		return
	}
	ct.span.SetAttributes(tracing.AttrRetries.Int(max(ct.attempts-1, 0)))
	if ct.status != 0 {
		ct.span.SetAttributes(attribute.Int("http.response.status_code", ct.status))
	}
	if res.recovered {
		ct.span.SetAttributes(attribute.Bool("neon.answer_lost_effect_found", true))
	}
	if err != nil {
		errType := "transport"
		var ae *APIError
		switch {
		case errors.As(err, &ae):
			errType = strconv.Itoa(ae.StatusCode)
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			errType = "cancelled"
		}
		ct.span.SetAttributes(attribute.String("error.type", errType))
		ct.span.SetStatus(codes.Error, truncate.UTF8(err.Error(), 300))
	}
	ct.span.End()
}

// attemptCounter counts each request the client sends for the call in the context and keeps
// the status of its answer.
type attemptCounter struct{ next http.RoundTripper }

func (rt attemptCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	ct, _ := r.Context().Value(callTraceKey{}).(*callTrace)
	if ct == nil {
		return rt.next.RoundTrip(r)
	}
	ct.attempts++
	resp, err := rt.next.RoundTrip(r)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	ct.status = status
	if ct.attempts > 1 {
		ct.span.AddEvent("retry", trace.WithAttributes(attribute.Int("attempt", ct.attempts)))
	}
	return resp, err
}

// withAttemptCounter wraps hc's transport in an attemptCounter (http.DefaultTransport when nil).
func withAttemptCounter(hc *http.Client) *http.Client {
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	wrapped := *hc
	wrapped.Transport = attemptCounter{next: next}
	return &wrapped
}

func hostOf(base string) string {
	if u, err := url.Parse(base); err == nil {
		return u.Hostname()
	}
	return ""
}
