package app_test

import (
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkToolCall measures the guard and MCP layers' own cost per tool call: the wall time
// of a call through the in-process MCP client minus the time the emulator spent in its
// handlers. What remains is the MCP server and middleware, argument decoding, the guard, the
// store (audit row included) and the Neon client with its loopback HTTP round trips.
// Reported: own-ns/op (mean), own-p50-ns and own-p99-ns.
func BenchmarkToolCall(b *testing.B) {
	var inEmulator atomic.Int64
	timed := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			h.ServeHTTP(w, r)
			inEmulator.Add(int64(time.Since(start)))
		})
	}
	a := newAppWith(b, timed)
	c := connect(b, a)
	id := str(mustOK(b, call(b, c, "create_database", map[string]any{"name": "bench"}), "create"), "database_id")
	mustOK(b, call(b, c, "checkpoint", map[string]any{"database_id": id, "name": "cp"}), "checkpoint")

	cases := []struct {
		tool string
		args map[string]any
	}{
		{"describe_limits", nil},
		{"list_databases", nil},
		{"list_checkpoints", map[string]any{"database_id": id}},
		{"list_branches", map[string]any{"database_id": id}},
		{"get_connection_string", map[string]any{"database_id": id}},
		{"get_usage", map[string]any{"database_id": id}},
		{"create_database", map[string]any{"name": "bench"}}, // the idempotent path
	}
	for _, tc := range cases {
		b.Run(tc.tool, func(b *testing.B) {
			own := make([]time.Duration, 0, 1024)
			for b.Loop() {
				before := inEmulator.Load()
				start := time.Now()
				r := call(b, c, tc.tool, tc.args)
				wall := time.Since(start)
				if r.Code != "" {
					b.Fatalf("%s: %s", tc.tool, r)
				}
				own = append(own, wall-time.Duration(inEmulator.Load()-before))
			}
			slices.Sort(own)
			var sum time.Duration
			for _, d := range own {
				sum += d
			}
			b.ReportMetric(float64(sum)/float64(len(own)), "own-ns/op")
			b.ReportMetric(float64(own[len(own)/2]), "own-p50-ns")
			b.ReportMetric(float64(own[len(own)*99/100]), "own-p99-ns")
		})
	}
}
