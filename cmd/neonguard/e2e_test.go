package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/pgtest"
	"github.com/neonguard/neonguard/tools"
)

// buildBinary builds neonguard once per test binary run.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	bin := filepath.Join(dir, "neonguard")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// script is what each call of the scripted session must return: "" for success, else the
// error code. The TypeScript script (testdata/e2e/ts/stdio.mjs) makes the same calls.
var script = []struct {
	tool string
	args func(id string) map[string]any
	want string
}{
	{"describe_limits", func(string) map[string]any { return nil }, ""},
	{"list_databases", func(string) map[string]any { return nil }, ""},
	{"create_database", func(string) map[string]any { return map[string]any{"name": "e2e-app"} }, ""},
	{"create_database", func(string) map[string]any { return map[string]any{"name": "e2e-app"} }, ""},
	{"checkpoint", func(id string) map[string]any { return map[string]any{"database_id": id, "name": "first"} }, ""},
	{"checkpoint", func(id string) map[string]any { return map[string]any{"database_id": id, "name": "second"} }, "SNAPSHOT_LIMIT"},
	{"list_checkpoints", func(id string) map[string]any { return map[string]any{"database_id": id} }, ""},
	{"create_dev_branch", func(id string) map[string]any {
		return map[string]any{"database_id": id, "name": "feature-x", "ttl": "2h"}
	}, ""},
	{"list_branches", func(id string) map[string]any { return map[string]any{"database_id": id} }, ""},
	{"get_connection_string", func(id string) map[string]any {
		return map[string]any{"database_id": id, "branch": "feature-x"}
	}, ""},
	{"get_usage", func(id string) map[string]any { return map[string]any{"database_id": id} }, ""},
	{"undo_to_time", func(id string) map[string]any { return map[string]any{"database_id": id, "ago": "1s"} }, ""},
	{"restore_checkpoint", func(id string) map[string]any {
		return map[string]any{"database_id": id, "checkpoint": "first"}
	}, ""},
	{"delete_dev_branch", func(id string) map[string]any {
		return map[string]any{"database_id": id, "branch": "feature-x"}
	}, ""},
	{"get_usage", func(string) map[string]any { return map[string]any{"database_id": "no-such-db"} }, "NOT_FOUND"},
	{"undo_to_time", func(id string) map[string]any { return map[string]any{"database_id": id, "ago": "-5m"} }, "INVALID_ARGUMENT"},
}

func TestBinaryOverStdioWithMCPGoClient(t *testing.T) {
	bin := buildBinary(t)
	c, err := client.NewStdioMCPClient(bin, []string{"NEONGUARD_LOG_LEVEL=warn"}, "serve", "--data-dir", pgtest.ReachableDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	listed, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range listed.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(tools.Names()))
	if !slices.Equal(names, want) {
		t.Fatalf("tools/list = %v, want %v", names, want)
	}

	id := ""
	for i, step := range script {
		if step.tool == "undo_to_time" && step.want == "" {
			time.Sleep(1100 * time.Millisecond) // the target must be after main was created
		}
		var req mcp.CallToolRequest
		req.Params.Name = step.tool
		req.Params.Arguments = step.args(id)
		res, err := c.CallTool(ctx, req)
		if err != nil {
			t.Fatalf("step %d %s: %v", i, step.tool, err)
		}
		code := ""
		if res.IsError {
			code = errorCodeOf(t, res)
		}
		if code != step.want {
			t.Fatalf("step %d %s: got code %q, want %q: %v", i, step.tool, code, step.want, res.Content)
		}
		if step.tool == "create_database" && id == "" {
			b, _ := json.Marshal(res.StructuredContent)
			var db struct {
				DatabaseID string `json:"database_id"`
			}
			_ = json.Unmarshal(b, &db)
			id = db.DatabaseID
		}
	}
}

func errorCodeOf(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res.StructuredContent != nil {
		t.Errorf("error result carries structuredContent")
	}
	tc, ok := res.Content[0].(mcp.TextContent)
	if !ok {
		t.Fatalf("error result without text content")
	}
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(tc.Text), &body); err != nil {
		t.Fatalf("error text is not JSON: %q", tc.Text)
	}
	return body.Error.Code
}

// The official TypeScript MCP client validates every structuredContent against the tool's
// outputSchema and rejects the answer on a mismatch, errors included.
func TestBinaryOverStdioWithTypeScriptClient(t *testing.T) {
	node, err := exec.LookPath("node")
	sdk := filepath.Join("..", "..", "testdata", "e2e", "ts", "node_modules", "@modelcontextprotocol", "sdk")
	if _, statErr := os.Stat(sdk); err != nil || statErr != nil {
		if os.Getenv("NEONGUARD_REQUIRE_NODE") == "1" {
			t.Fatalf("Node.js and the TypeScript MCP SDK are required (run `make test`, which installs it): node %v, sdk %v", err, statErr)
		}
		t.Skip("Node.js or testdata/e2e/ts/node_modules missing; `make test` installs them")
	}
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "stdio.mjs", bin, pgtest.ReachableDir(t))
	cmd.Dir = filepath.Join("..", "..", "testdata", "e2e", "ts")
	cmd.Env = append(os.Environ(), "NEONGUARD_LOG_LEVEL=warn")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node stdio.mjs: %v\n%s\n%s", err, out, stderr)
	}
	var got struct {
		Tools []string
		Calls []struct {
			Name    string
			IsError bool
			Code    string
			Message string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("script output: %v\n%s", err, out)
	}
	if len(got.Tools) != len(tools.Names()) {
		t.Errorf("TS client listed %d tools, want %d: %v", len(got.Tools), len(tools.Names()), got.Tools)
	}
	if len(got.Calls) != len(script) {
		t.Fatalf("TS client made %d calls, want %d", len(got.Calls), len(script))
	}
	for i, c := range got.Calls {
		if c.Name != script[i].tool || c.Code != script[i].want {
			t.Errorf("call %d %s: code %q (%s), want %s %q", i, c.Name, c.Code, c.Message, script[i].tool, script[i].want)
		}
	}
}

// BenchmarkStartup measures the binary's start until it answers initialize (and exits).
//
// existing-data-dir is the usual start (the data dir and its template exist); first-start
// is a fresh data dir each time (the template is then made in the background, so it is not
// waited for). Both report the p50 of the starts. NEONGUARD_BENCH_BIN runs another build
// (an A/B of two binaries in one run).
//
//	go test -run '^$' -bench Startup -benchtime 40x ./cmd/neonguard
func BenchmarkStartup(b *testing.B) {
	bin := os.Getenv("NEONGUARD_BENCH_BIN")
	if bin == "" {
		bin = buildBinary(b)
	}
	// Raw pipes rather than an MCP client: what is timed is the binary, from exec until its
	// answer to initialize is read.
	start := func(b *testing.B, dir string) (stop func()) {
		cmd := exec.Command(bin, "serve", "--data-dir", dir)
		cmd.Env = append(os.Environ(), "NEONGUARD_LOG_LEVEL=error")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(stdin, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`+"\n"); err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || !strings.Contains(line, `"result"`) {
			b.Fatalf("initialize: %q, %v", line, err)
		}
		return func() {
			_ = stdin.Close()
			_ = cmd.Wait()
		}
	}
	run := func(b *testing.B, dirFor func() string) {
		var took []time.Duration
		for b.Loop() {
			b.StopTimer()
			dir := dirFor()
			b.StartTimer()
			t0 := time.Now()
			stop := start(b, dir)
			took = append(took, time.Since(t0))
			b.StopTimer()
			stop()
			b.StartTimer()
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	}
	b.Run("existing-data-dir", func(b *testing.B) {
		dir := pgtest.ReachableDir(b)
		// Made once, template included (a first start makes it in the background and a stop
		// cancels it): the first start of a data dir is the other case.
		stop := start(b, dir)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			m, _ := filepath.Glob(filepath.Join(dir, "pg", "template", "*", "PG_VERSION"))
			if slices.ContainsFunc(m, func(p string) bool { return !strings.HasSuffix(filepath.Dir(p), ".tmp") }) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("no template two minutes after the first start")
			}
			time.Sleep(50 * time.Millisecond)
		}
		stop()
		run(b, func() string { return dir })
	})
	b.Run("first-start", func(b *testing.B) {
		root := pgtest.ReachableDir(b)
		n := 0
		run(b, func() string {
			n++
			return filepath.Join(root, strconv.Itoa(n))
		})
	})
}
