package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/mcptest"
)

// The MCP conveniences of issue 14 through the real server on the emulator: progress,
// cancellation, completions, resources and warning messages.

// notes collects a client's notifications.
type notes struct {
	mu  sync.Mutex
	all []mcp.JSONRPCNotification
}

func listen(c *client.Client) *notes {
	n := &notes{}
	c.OnNotification(func(m mcp.JSONRPCNotification) {
		n.mu.Lock()
		n.all = append(n.all, m)
		n.mu.Unlock()
	})
	return n
}

// progress are the progress notifications for token, in order.
func (n *notes) progress(token string) []map[string]any {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []map[string]any
	for _, m := range n.all {
		if m.Method != "notifications/progress" || m.Params.AdditionalFields["progressToken"] != token {
			continue
		}
		out = append(out, m.Params.AdditionalFields)
	}
	return out
}

func (n *notes) messages() []map[string]any {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []map[string]any
	for _, m := range n.all {
		if m.Method == "notifications/message" {
			out = append(out, m.Params.AdditionalFields)
		}
	}
	return out
}

// callWithToken is a tools/call carrying _meta.progressToken.
func callWithToken(ctx context.Context, c *client.Client, token, tool string, args map[string]any) (*mcp.CallToolResult, error) {
	var req mcp.CallToolRequest
	req.Params.Name = tool
	req.Params.Arguments = args
	req.Params.Meta = &mcp.Meta{ProgressToken: token}
	return c.CallTool(ctx, req)
}

// stepsOf checks that the updates only increase, stay within their total, and returns their
// messages.
func stepsOf(t *testing.T, what string, ps []map[string]any) []string {
	t.Helper()
	last := -1.0
	var msgs []string
	for _, p := range ps {
		v, _ := p["progress"].(float64)
		if v <= last {
			t.Errorf("%s: progress %v after %v: it must increase", what, v, last)
		}
		if total, ok := p["total"].(float64); ok && v > total {
			t.Errorf("%s: progress %v over its total %v", what, v, total)
		}
		last = v
		m, _ := p["message"].(string)
		msgs = append(msgs, m)
	}
	return msgs
}

func containsPrefix(msgs []string, prefix string) bool {
	return slices.ContainsFunc(msgs, func(m string) bool { return strings.HasPrefix(m, prefix) })
}

func TestProgressReportsTheRealSteps(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	n := listen(c)
	ctx := context.Background()

	res, err := callWithToken(ctx, c, "db", "create_database", map[string]any{"name": "progress-db"})
	if err != nil || res.IsError {
		t.Fatalf("create_database: %v %v", err, res)
	}
	id := res.StructuredContent.(map[string]any)["database_id"].(string)
	// The in-process transport delivers notifications asynchronously: wait for the last step.
	n.await(t, "db", "reading the connection string")
	msgs := stepsOf(t, "create_database", n.progress("db"))
	for _, want := range []string{"checking the database limit", `creating the Neon project for "progress-db"`, "waiting for Neon operation 1/",
		"recording the database", "reading the connection string"} {
		if !containsPrefix(msgs, want) {
			t.Errorf("create_database's progress %q lacks %q", msgs, want)
		}
	}
	if ps := n.progress("db"); len(ps) > 0 && ps[0]["total"] != float64(4) {
		t.Errorf("create_database's total: %v, want 4", ps[0]["total"])
	}

	res, err = callWithToken(ctx, c, "dev", "create_dev_branch", map[string]any{"database_id": id, "name": "feature-x"})
	if err != nil || res.IsError {
		t.Fatalf("create_dev_branch: %v %v", err, res)
	}
	n.await(t, "dev", `recording branch "feature-x"`)
	msgs = stepsOf(t, "create_dev_branch", n.progress("dev"))
	for _, want := range []string{"checking the branch limit and quota", `creating branch "feature-x" with its compute`,
		"waiting for Neon operation", `recording branch "feature-x"`} {
		if !containsPrefix(msgs, want) {
			t.Errorf("create_dev_branch's progress %q lacks %q", msgs, want)
		}
	}

	res, err = callWithToken(ctx, c, "ckpt", "checkpoint", map[string]any{"database_id": id, "name": "before"})
	if err != nil || res.IsError {
		t.Fatalf("checkpoint: %v %v", err, res)
	}
	n.await(t, "ckpt", `taking snapshot "before" of main`)

	// Fast calls report nothing, token or not, and a slow call without a token nothing either.
	for _, tool := range []string{"list_databases", "list_branches", "describe_limits"} {
		if _, err := callWithToken(ctx, c, "fast-"+tool, tool, map[string]any{"database_id": id}); err != nil {
			t.Fatal(err)
		}
	}
	n.mu.Lock()
	before := len(n.all)
	n.mu.Unlock()
	mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "quiet"}), "create_dev_branch without a token")
	// A marker call with a token: once its steps arrived, the ones before it would have too.
	if _, err := callWithToken(ctx, c, "marker", "create_dev_branch", map[string]any{"database_id": id, "name": "marker"}); err != nil {
		t.Fatal(err)
	}
	n.await(t, "marker", `recording branch "marker"`)
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.all {
		tok, _ := m.Params.AdditionalFields["progressToken"].(string)
		if m.Method == "notifications/progress" && strings.HasPrefix(tok, "fast-") {
			t.Errorf("a fast call reported progress: %v", m.Params.AdditionalFields)
		}
	}
	for _, m := range n.all[before:] {
		if m.Method == "notifications/progress" && m.Params.AdditionalFields["progressToken"] != "marker" {
			t.Errorf("a call without a progressToken got %v", m.Params.AdditionalFields)
		}
	}
}

// await waits for token's progress to include a message starting with prefix.
func (n *notes) await(t *testing.T, token, prefix string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !containsPrefix(stepsOf(t, token, n.progress(token)), prefix) {
		if time.Now().After(deadline) {
			t.Fatalf("progress for %s: %q, never %q", token, stepsOf(t, token, n.progress(token)), prefix)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A cancelled call stops at a safe point: before its first change to Neon it does nothing
// (its intent is rolled back); after it, the change is finished and recorded (as after a
// crash), so the database never shows a half-made branch.
func TestCancelledCallsLeaveTheDatabaseConsistent(t *testing.T) {
	a := newApp(t, func(c *config.Config) { c.Local.OperationDelay = 400 * time.Millisecond })
	c := connect(t, a)
	n := listen(c)
	id := str(mustOK(t, call(t, c, "create_database", map[string]any{"name": "cancel-db"}), "create_database"), "database_id")

	// 1. Cancelled while Neon creates the branch: the branch is finished.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// In process the call runs on this context; its answer is whatever the handler returns.
		_, err := callWithToken(ctx, c, "mid", "create_dev_branch", map[string]any{"database_id": id, "name": "mid-flight"})
		done <- err
	}()
	n.await(t, "mid", "waiting for Neon operation")
	cancel()
	<-done

	// 2. Cancelled while waiting for the database (a checkpoint holds it): nothing is made.
	slow := make(chan result, 1)
	go func() { slow <- call(t, c, "checkpoint", map[string]any{"database_id": id, "name": "slow"}) }()
	time.Sleep(100 * time.Millisecond) // the checkpoint holds the database's lock
	ctx2, cancel2 := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel2()
	if res, err := callWithToken(ctx2, c, "never", "create_dev_branch", map[string]any{"database_id": id, "name": "never-made"}); err == nil && !res.IsError {
		t.Errorf("the call cancelled while waiting for the database succeeded: %v", res.StructuredContent)
	}
	mustOK(t, <-slow, "checkpoint")
	// The steps after the cancellation ran, but the client that gave up was not told of them.
	if msgs := stepsOf(t, "mid", n.progress("mid")); containsPrefix(msgs, `recording branch "mid-flight"`) {
		t.Errorf("progress after the cancellation: %q", msgs)
	}

	branches := mustOK(t, call(t, c, "list_branches", map[string]any{"database_id": id}), "list_branches")["branches"].([]any)
	var names []string
	for _, b := range branches {
		b := b.(map[string]any)
		names = append(names, str(b, "name"))
		if str(b, "name") == "mid-flight" && (str(b, "kind") != "dev" || b["expires_at"] == nil || str(b, "endpoint_state") == "none") {
			t.Errorf("the branch of the cancelled call is half-made: %v", b)
		}
	}
	if !slices.Contains(names, "mid-flight") || slices.Contains(names, "never-made") {
		t.Errorf("branches %v: want mid-flight (its create had started) and not never-made", names)
	}
	// A retry of the cancelled call answers with the branch it made.
	r := mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "mid-flight"}), "retry")
	if str(r, "name") != "mid-flight" || str(r, "connection_string") == "" {
		t.Errorf("retry: %v", r)
	}
}

func TestCompletionsAndResources(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	ctx := context.Background()
	alpha := str(mustOK(t, call(t, c, "create_database", map[string]any{"name": "alpha"}), "create alpha"), "database_id")
	beta := str(mustOK(t, call(t, c, "create_database", map[string]any{"name": "beta"}), "create beta"), "database_id")
	mustOK(t, call(t, c, "checkpoint", map[string]any{"database_id": alpha, "name": "cp1"}), "checkpoint")

	complete := func(ref any, value string) []string {
		t.Helper()
		var req mcp.CompleteRequest
		req.Params.Ref = ref
		req.Params.Argument.Name, req.Params.Argument.Value = "database_id", value
		res, err := c.Complete(ctx, req)
		if err != nil {
			t.Fatalf("complete %q: %v", value, err)
		}
		return res.Completion.Values
	}
	prompt := mcp.PromptReference{Type: "ref/prompt", Name: "safe_migration"}
	if got := complete(prompt, ""); !slices.Contains(got, alpha) || !slices.Contains(got, beta) {
		t.Errorf("completing an empty database_id: %v, want %s and %s", got, alpha, beta)
	}
	if got := complete(prompt, "be"); !slices.Equal(got, []string{beta}) {
		t.Errorf("completing by name \"be\": %v, want [%s]", got, beta)
	}
	if got := complete(mcp.PromptReference{Type: "ref/prompt", Name: "feature_branch"}, alpha[:len(alpha)-2]); !slices.Equal(got, []string{alpha}) {
		t.Errorf("completing by id prefix: %v, want [%s]", got, alpha)
	}
	tmpl := mcp.ResourceReference{Type: "ref/resource", URI: "neonguard://databases/{database_id}"}
	if got := complete(tmpl, "AL"); !slices.Equal(got, []string{alpha}) {
		t.Errorf("completing the template's database_id: %v, want [%s]", got, alpha)
	}

	rs, err := c.ListResources(ctx, mcp.ListResourcesRequest{})
	if err != nil || len(rs.Resources) != 1 || rs.Resources[0].URI != "neonguard://databases" {
		t.Fatalf("resources/list: %v %v", rs, err)
	}
	ts, err := c.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
	if err != nil || len(ts.ResourceTemplates) != 1 {
		t.Fatalf("resources/templates/list: %v %v", ts, err)
	}
	read := func(uri string, into any) {
		t.Helper()
		var req mcp.ReadResourceRequest
		req.Params.URI = uri
		res, err := c.ReadResource(ctx, req)
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		tc := res.Contents[0].(mcp.TextResourceContents)
		if tc.MIMEType != "application/json" || tc.URI != uri {
			t.Errorf("read %s: %s %s", uri, tc.URI, tc.MIMEType)
		}
		if err := json.Unmarshal([]byte(tc.Text), into); err != nil {
			t.Fatalf("read %s: %v\n%s", uri, err, tc.Text)
		}
	}
	var list struct {
		Databases []struct{ DatabaseID, Name string } `json:"databases"`
	}
	read("neonguard://databases", &list)
	if len(list.Databases) != 2 {
		t.Errorf("neonguard://databases: %+v", list)
	}
	var doc struct {
		DatabaseID string `json:"database_id"`
		Branches   struct {
			Branches []struct{ Name, Kind string }
		}
		Checkpoints struct {
			Checkpoints []struct{ Name string }
		}
		Usage *struct {
			Name    string
			Metrics []any
		}
	}
	read("neonguard://databases/"+alpha, &doc)
	if doc.DatabaseID != alpha || len(doc.Branches.Branches) != 1 || doc.Branches.Branches[0].Kind != "main" ||
		len(doc.Checkpoints.Checkpoints) != 1 || doc.Checkpoints.Checkpoints[0].Name != "cp1" || doc.Usage == nil || doc.Usage.Name != "alpha" {
		t.Errorf("neonguard://databases/%s: %+v", alpha, doc)
	}
}

// With logging/setLevel warning, a backup branch that expires within the hour is told once,
// as a notifications/message warning; a client that did not ask hears nothing.
func TestWarningsAreSentOnceTheClientAsks(t *testing.T) {
	a := newApp(t, func(c *config.Config) {
		for name, tier := range c.Policy.Tiers {
			tier.UndoBackupTTL = 30 * time.Minute
			c.Policy.Tiers[name] = tier
		}
	})
	c := mcptest.ConnectWith(t, a.Local.Protocol(), client.WithProtocolVersion("2025-11-25")) // a session, with logging/setLevel
	n := listen(c)
	id := str(mustOK(t, call(t, c, "create_database", map[string]any{"name": "warn-db"}), "create_database"), "database_id")
	time.Sleep(1100 * time.Millisecond)
	mustOK(t, call(t, c, "undo_to_time", map[string]any{"database_id": id, "ago": "1s"}), "undo_to_time")
	call(t, c, "list_branches", map[string]any{"database_id": id})
	if ms := n.messages(); len(ms) != 0 {
		t.Fatalf("messages before setLevel: %v", ms)
	}
	//lint:ignore SA1019 logging/setLevel is what 2025-11-25 clients (the TypeScript SDK among them) send
	if err := c.SetLevel(context.Background(), mcp.SetLevelRequest{Params: mcp.SetLevelParams{Level: mcp.LoggingLevelWarning}}); err != nil {
		t.Fatal(err)
	}
	call(t, c, "list_branches", map[string]any{"database_id": id})
	call(t, c, "list_checkpoints", map[string]any{"database_id": id})
	ms := n.messages()
	if len(ms) != 1 {
		t.Fatalf("messages after setLevel warning: %v, want the backup's warning once", ms)
	}
	data, _ := ms[0]["data"].(map[string]any)
	if fmt.Sprint(ms[0]["level"]) != "warning" || data["database_id"] != id || !strings.Contains(str(data, "message"), "expires at") {
		t.Errorf("warning: %v", ms[0])
	}
	for _, secret := range []string{"postgres://", "password", "npg_"} {
		if strings.Contains(str(data, "message"), secret) {
			t.Errorf("warning carries %q: %v", secret, data)
		}
	}
}
