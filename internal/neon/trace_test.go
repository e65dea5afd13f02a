package neon

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/neonguard/neonguard/internal/tracing"
)

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestCallSpanCountsRetries: one span per logical call, named by the route template, with the
// retries the client made and the status of the last answer.
func TestCallSpanCountsRetries(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	defer tracing.Use(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))()

	var hits atomic.Int32
	c, _ := newTestClient(t, scripted(t, &hits, []int{503, 429, 200}, nil))
	if _, err := c.do(context.Background(), &call{method: http.MethodGet, route: "/projects/{project_id}",
		path: "/projects/prj-secret-id"}); err != nil {
		t.Fatal(err)
	}
	var hits2 atomic.Int32
	c2, _ := newTestClient(t, scripted(t, &hits2, []int{404}, nil))
	_, err := c2.do(context.Background(), &call{method: http.MethodDelete, route: "/projects/{project_id}/branches/{branch_id}",
		path: "/projects/p/branches/b"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want not found", err)
	}

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2 (one per call, not per attempt)", len(spans))
	}
	ok, failed := spans[0], spans[1]
	if ok.Name() != "GET /projects/{project_id}" {
		t.Errorf("span name %q", ok.Name())
	}
	a := spanAttrs(ok)
	if a["neon.retries"].AsInt64() != 2 || a["http.response.status_code"].AsInt64() != 200 ||
		a["url.template"].AsString() != "/projects/{project_id}" || a["http.request.method"].AsString() != "GET" {
		t.Errorf("span attributes = %v", a)
	}
	if ok.Status().Code == codes.Error {
		t.Errorf("a call that succeeded after retries has status %v", ok.Status())
	}
	for _, kv := range ok.Attributes() {
		if kv.Value.String() == "/projects/prj-secret-id" {
			t.Errorf("raw path exported in %s", kv.Key)
		}
	}
	if len(ok.Events()) != 2 {
		t.Errorf("%d retry events, want 2", len(ok.Events()))
	}
	b := spanAttrs(failed)
	if failed.Status().Code != codes.Error || b["http.response.status_code"].AsInt64() != 404 ||
		b["error.type"].AsString() != "404" || b["neon.retries"].AsInt64() != 0 {
		t.Errorf("failed call: status %v, attributes %v", failed.Status(), b)
	}
}

// TestNoSpansWhileTracingIsOff: without Setup (no endpoint) nothing records.
func TestNoSpansWhileTracingIsOff(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestClient(t, scripted(t, &hits, []int{200}, nil))
	ctx, ct := c.traceCall(context.Background(), &call{method: http.MethodGet, route: "/x", path: "/x"})
	if ct != nil || ctx.Value(callTraceKey{}) != nil {
		t.Fatal("a call was traced with tracing off")
	}
}
