package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/server"
	"github.com/neonguard/neonguard/internal/store"
)

// staticNeon answers the read calls instantly with fixed data, so a benchmark measures only
// what neonguard itself does per call. Calls it does not implement hit the nil interface.
type staticNeon struct {
	neon.API
	project  neon.Project
	branches []neon.Branch
	snaps    []neon.Snapshot
	eps      []neon.Endpoint
}

func (s *staticNeon) GetProject(context.Context, string) (*neon.Project, error) {
	p := s.project
	return &p, nil
}
func (s *staticNeon) ListBranches(context.Context, string) ([]neon.Branch, error) {
	return slices.Clone(s.branches), nil
}
func (s *staticNeon) ListSnapshots(context.Context, string) ([]neon.Snapshot, error) {
	return slices.Clone(s.snaps), nil
}
func (s *staticNeon) ListEndpoints(context.Context, string) ([]neon.Endpoint, error) {
	return slices.Clone(s.eps), nil
}
func (s *staticNeon) ListBranchEndpoints(_ context.Context, _ string, branchID string) ([]neon.Endpoint, error) {
	var out []neon.Endpoint
	for _, e := range s.eps {
		if e.BranchID == branchID {
			out = append(out, e)
		}
	}
	return out, nil
}
func (s *staticNeon) ConnectionURI(context.Context, string, neon.ConnectionURIOptions) (string, error) {
	return "postgresql://neondb_owner:npg_x@127.0.0.1:5432/neondb?sslmode=require", nil
}

// BenchmarkGuardAndMCP measures the guard and MCP layers' own cost per tool call: the real
// MCP server, middleware (audit row included, written to SQLite), argument decoding, guard and
// store, with Neon answering instantly. Reports the median and p99 besides the mean.
func BenchmarkGuardAndMCP(b *testing.B) {
	ctx := context.Background()
	st := openStore(b)
	now := time.Now().UTC()
	api := &staticNeon{
		project:  neon.Project{ID: "p-bench", Name: "t/bench", CreatedAt: now, ConsumptionPeriodStart: now, ConsumptionPeriodEnd: now.Add(time.Hour)},
		branches: []neon.Branch{{ID: "br-main", Name: "main", Default: true, CreatedAt: now}, {ID: "br-dev", Name: "dev", ParentID: "br-main", CreatedAt: now}},
		snaps:    []neon.Snapshot{{ID: "snap-1", Name: "cp", CreatedAt: now}},
		eps:      []neon.Endpoint{{ID: "ep-1", BranchID: "br-main", Type: neon.EndpointReadWrite, CurrentState: neon.EndpointStateIdle}},
	}
	if _, err := st.EnsureTenant(ctx, "t", "free"); err != nil {
		b.Fatal(err)
	}
	if _, _, err := st.ReserveDatabase(ctx, "t", "bench"); err != nil {
		b.Fatal(err)
	}
	if err := st.CompleteDatabase(ctx, store.Database{ID: "p-bench", TenantID: "t", Name: "bench", OrgID: "org-free",
		RootBranchID: "br-main", RegionID: "aws-us-east-2", PGVersion: 17, RoleName: "neondb_owner", DatabaseName: "neondb"}); err != nil {
		b.Fatal(err)
	}
	g, err := guard.New(guard.Deps{Store: st, Locker: store.NewMemLocker(), Policy: policy.Default(),
		Orgs: []guard.Org{{Plan: "free", ID: "org-free", API: api}, {Plan: "paid", ID: "org-paid", API: api}}})
	if err != nil {
		b.Fatal(err)
	}
	c := start(b, server.New(server.Options{Guard: g, Audit: st, DefaultPrincipal: &identity.Principal{TenantID: "t"}}))

	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"describe_limits", nil},
		{"list_databases", nil},
		{"list_checkpoints", map[string]any{"database_id": "p-bench"}},
		{"list_branches", map[string]any{"database_id": "p-bench"}},
		{"get_connection_string", map[string]any{"database_id": "p-bench"}},
		{"get_usage", map[string]any{"database_id": "p-bench"}},
		{"create_database", map[string]any{"name": "bench"}},
	} {
		b.Run(tc.tool, func(b *testing.B) {
			var req mcp.CallToolRequest
			req.Params.Name = tc.tool
			req.Params.Arguments = tc.args
			took := make([]time.Duration, 0, 4096)
			for b.Loop() {
				start := time.Now()
				res, err := c.CallTool(ctx, req)
				took = append(took, time.Since(start))
				if err != nil || res.IsError {
					b.Fatalf("%s: %v %+v", tc.tool, err, res)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2]), "p50-ns")
			b.ReportMetric(float64(took[len(took)*99/100]), "p99-ns")
		})
	}
}
