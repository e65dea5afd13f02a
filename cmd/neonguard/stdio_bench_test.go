package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/loadtest"
)

// BenchmarkStdioServerCPU measures the server's own CPU per tool call over stdio: the binary
// runs `serve` (local backend, emulator API only, default log level, audit rows in SQLite),
// the test calls one tool in a loop and reads the child's user+system time from /proc.
// NEONGUARD_BENCH_BIN runs another build instead (an A/B of two binaries in one run).
//
//	go test -run '^$' -bench StdioServerCPU -benchtime 5000x ./cmd/neonguard
func BenchmarkStdioServerCPU(b *testing.B) {
	bin := os.Getenv("NEONGUARD_BENCH_BIN")
	if bin == "" {
		bin = buildBinary(b)
	}
	for _, tc := range []struct {
		tool string
		args func(id string) map[string]any
	}{
		{"list_databases", func(string) map[string]any { return nil }},
		{"describe_limits", func(string) map[string]any { return nil }},
		{"list_checkpoints", func(id string) map[string]any { return map[string]any{"database_id": id} }},
	} {
		b.Run(tc.tool, func(b *testing.B) {
			ctx := context.Background()
			var cmd *exec.Cmd
			c, err := client.NewStdioMCPClientWithOptions(bin,
				[]string{"NEONGUARD_LOCAL_POSTGRES=off", "NEONGUARD_LOCAL_OPERATION_DELAY=0s",
					"NEONGUARD_MONITOR_INTERVAL=0s", "NEONGUARD_JANITOR_INTERVAL=0s"},
				[]string{"serve", "--data-dir", b.TempDir()},
				transport.WithCommandFunc(func(ctx context.Context, command string, env, args []string) (*exec.Cmd, error) {
					cmd = exec.CommandContext(ctx, command, args...)
					cmd.Env = append(os.Environ(), env...)
					return cmd, nil
				}))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
				b.Fatal(err)
			}
			call := func(tool string, args map[string]any) *mcp.CallToolResult {
				var req mcp.CallToolRequest
				req.Params.Name, req.Params.Arguments = tool, args
				res, err := c.CallTool(ctx, req)
				if err != nil || res.IsError {
					b.Fatalf("%s: %v %+v", tool, err, res)
				}
				return res
			}
			res := call("create_database", map[string]any{"name": "bench"})
			id, _ := res.StructuredContent.(map[string]any)["database_id"].(string)
			args := tc.args(id)
			for range 200 { // warm-up
				call(tc.tool, args)
			}
			pid := cmd.Process.Pid
			cpu0, err := loadtest.ProcCPUSeconds(pid)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for b.Loop() {
				call(tc.tool, args)
			}
			wall := time.Since(start)
			cpu1, _ := loadtest.ProcCPUSeconds(pid)
			b.ReportMetric((cpu1-cpu0)*1e3/float64(b.N), "server-cpu-ms/call")
			b.ReportMetric(float64(wall.Microseconds())/1e3/float64(b.N), "wall-ms/call")
		})
	}
}
