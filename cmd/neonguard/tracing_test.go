package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/neonguard/neonguard/internal/pgtest"
)

// otlpCollector is a local OTLP/HTTP endpoint: it decodes each protobuf export request.
type otlpCollector struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	res   []*commonpb.KeyValue
	raw   bytes.Buffer // every body received, to check what must never be exported
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces application/x-protobuf", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.raw.Write(body)
	for _, rs := range req.ResourceSpans {
		c.res = rs.GetResource().GetAttributes()
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = strconv.FormatInt(v.IntValue, 10)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.Key] = strconv.FormatFloat(v.DoubleValue, 'f', -1, 64)
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = strconv.FormatBool(v.BoolValue)
		}
	}
	return m
}

// TestTracingExportsSpansOfARealCall runs the binary over stdio with OTEL_EXPORTER_OTLP_ENDPOINT
// set to a local collector, makes real calls (a database lock, Neon requests, SQL), and checks
// the spans that arrive: names, attributes, and the parent/child structure.
func TestTracingExportsSpansOfARealCall(t *testing.T) {
	col := &otlpCollector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	bin := buildBinary(t)
	c, err := client.NewStdioMCPClient(bin, []string{"NEONGUARD_LOG_LEVEL=warn", "OTEL_EXPORTER_OTLP_ENDPOINT=" + srv.URL,
		"OTEL_SERVICE_NAME=neonguard-test", "OTEL_TRACES_SAMPLER=", "OTEL_SDK_DISABLED=",
		// Export within 100 ms of a span's end rather than only at exit: a loaded machine can
		// take longer to stop the server's postgres processes than the client waits before
		// killing it, and a killed server flushes nothing.
		"OTEL_BSP_SCHEDULE_DELAY=100"},
		"serve", "--data-dir", pgtest.ReachableDir(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	call := func(tool string, args map[string]any) *mcp.CallToolResult {
		t.Helper()
		var req mcp.CallToolRequest
		req.Params.Name, req.Params.Arguments = tool, args
		res, err := c.CallTool(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return res
	}
	res := call("create_database", map[string]any{"name": "traced"})
	if res.IsError {
		t.Fatalf("create_database: %v", res.Content)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var db struct {
		DatabaseID string `json:"database_id"`
	}
	_ = json.Unmarshal(b, &db)
	if res := call("checkpoint", map[string]any{"database_id": db.DatabaseID, "name": "before"}); res.IsError {
		t.Fatalf("checkpoint: %v", res.Content)
	}
	const secret = "s3cret-literal-in-sql"
	if res := call("run_sql", map[string]any{"database_id": db.DatabaseID, "sql": "SELECT '" + secret + "' AS x"}); res.IsError {
		t.Fatalf("run_sql: %v", res.Content)
	}
	if res := call("get_usage", map[string]any{"database_id": "no-such-db"}); !res.IsError {
		t.Fatalf("get_usage of an unknown database succeeded")
	}
	// Wait for the last call's span, then close stdin (serve flushes what it still holds).
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		col.mu.Lock()
		got := slices.ContainsFunc(col.spans, func(s *tracepb.Span) bool { return s.Name == "tools/call get_usage" })
		col.mu.Unlock()
		if got {
			break
		}
	}
	if err := c.Close(); err != nil {
		t.Logf("close: %v", err)
	}

	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.spans) == 0 {
		t.Fatal("no span arrived at the OTLP endpoint")
	}
	if got := attrs(col.res)["service.name"]; got != "neonguard-test" {
		t.Errorf("resource service.name = %q, want neonguard-test (OTEL_SERVICE_NAME)", got)
	}
	if strings.Contains(col.raw.String(), secret) {
		t.Errorf("a SQL literal was exported")
	}
	if strings.Contains(col.raw.String(), db.DatabaseID) && !strings.Contains(col.raw.String(), "neonguard.database_id") {
		t.Errorf("database id exported outside its attribute")
	}
	byID := map[string]*tracepb.Span{}
	for _, s := range col.spans {
		byID[string(s.SpanId)] = s
	}
	// ancestor returns the "tools/call" span above s, or nil.
	ancestor := func(s *tracepb.Span) *tracepb.Span {
		for p := byID[string(s.ParentSpanId)]; p != nil; p = byID[string(p.ParentSpanId)] {
			if strings.HasPrefix(p.Name, "tools/call ") {
				return p
			}
		}
		return nil
	}
	find := func(name string) []*tracepb.Span {
		var out []*tracepb.Span
		for _, s := range col.spans {
			if s.Name == name {
				out = append(out, s)
			}
		}
		return out
	}
	var names []string
	for _, s := range col.spans {
		names = append(names, s.Name)
	}
	t.Logf("spans: %v", names)

	// The tool call spans: tenant, tool, outcome, error code.
	cp := find("tools/call checkpoint")
	if len(cp) != 1 {
		t.Fatalf("want one tools/call checkpoint span, got %d", len(cp))
	}
	a := attrs(cp[0].Attributes)
	if a["neonguard.tenant"] != "local" || a["gen_ai.tool.name"] != "checkpoint" || a["neonguard.outcome"] != "ok" {
		t.Errorf("checkpoint span attributes = %v", a)
	}
	if cp[0].Kind != tracepb.Span_SPAN_KIND_SERVER || len(cp[0].ParentSpanId) > 0 {
		t.Errorf("checkpoint span: kind %v, parent %x; want a server root span", cp[0].Kind, cp[0].ParentSpanId)
	}
	bad := find("tools/call get_usage")
	if len(bad) != 1 {
		t.Fatalf("want one tools/call get_usage span, got %d", len(bad))
	}
	if a := attrs(bad[0].Attributes); a["neonguard.error_code"] != "NOT_FOUND" || a["neonguard.outcome"] == "ok" {
		t.Errorf("failed call's span attributes = %v", a)
	}

	// The database lock under the checkpoint call, and Neon requests under the lock.
	var lock *tracepb.Span
	for _, s := range find("guard.lock") {
		if p := byID[string(s.ParentSpanId)]; p != nil && p == cp[0] {
			lock = s
		}
	}
	if lock == nil {
		t.Fatal("no guard.lock span child of the checkpoint call")
	}
	if a := attrs(lock.Attributes); a["neonguard.database_id"] != db.DatabaseID || a["neonguard.lock.wait_ms"] == "" {
		t.Errorf("lock span attributes = %v", a)
	}
	var neonUnderLock, neonTotal int
	for _, s := range col.spans {
		a := attrs(s.Attributes)
		if a["http.request.method"] == "" {
			continue
		}
		neonTotal++
		if !strings.HasPrefix(s.Name, a["http.request.method"]+" /") || s.Name != a["http.request.method"]+" "+a["url.template"] {
			t.Errorf("Neon span %q: name is not METHOD + url.template %q", s.Name, a["url.template"])
		}
		if strings.Contains(s.Name, "prj-") || strings.Contains(a["url.template"], "br-") || !strings.Contains(a["url.template"]+"{", "{") {
			t.Errorf("Neon span %q carries a raw path", s.Name)
		}
		if a["http.response.status_code"] == "" || a["neon.retries"] == "" {
			t.Errorf("Neon span %q attributes = %v: want status and retries", s.Name, a)
		}
		if s.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("Neon span %q kind %v", s.Name, s.Kind)
		}
		for p := byID[string(s.ParentSpanId)]; p != nil; p = byID[string(p.ParentSpanId)] {
			if p == lock {
				neonUnderLock++
				break
			}
		}
	}
	if neonUnderLock == 0 {
		t.Errorf("no Neon request span under the checkpoint's lock (%d Neon spans in all)", neonTotal)
	}
	templated := false
	for _, s := range col.spans {
		if strings.Contains(s.Name, "/projects/{project_id}") {
			templated = true
		}
	}
	if !templated {
		t.Errorf("no Neon span named by the /projects/{project_id} template")
	}

	// The SQL statement under run_sql: its command, never its text.
	var sel *tracepb.Span
	for _, s := range find("sql SELECT") {
		if p := ancestor(s); p != nil && p.Name == "tools/call run_sql" {
			sel = s
		}
	}
	if sel == nil {
		t.Fatal("no sql SELECT span under tools/call run_sql")
	}
	if a := attrs(sel.Attributes); a["db.operation.name"] != "SELECT" || a["db.system.name"] != "postgresql" {
		t.Errorf("sql span attributes = %v", a)
	}
	// Statements pgx sends (the transaction around the agent's SQL) carry the command tag.
	begun := false
	for _, s := range find("sql BEGIN") {
		if p := ancestor(s); p != nil && p.Name == "tools/call run_sql" {
			begun = attrs(s.Attributes)["db.command_tag"] == "BEGIN"
		}
	}
	if !begun {
		t.Errorf("no sql BEGIN span with its command tag under tools/call run_sql")
	}
}
