package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	sjs "github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
)

// fakeGuard records every call and answers with a fully populated fixture, or err when set.
type fakeGuard struct {
	mu    sync.Mutex
	calls []fakeCall
	err   error
	// nilResult makes every method return (nil, nil): a guard bug.
	nilResult bool
	// nilSlices makes the fixtures carry nil slices, which the guard promises never to do.
	nilSlices bool
	// confirmGate makes RunSQL answer CONFIRMATION_REQUIRED unless confirm is set.
	confirmGate bool
}

type fakeCall struct {
	method string
	in     any
}

var _ guard.UseCases = (*fakeGuard)(nil)

func (f *fakeGuard) record(method string, in any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fakeCall{method, in})
}

func (f *fakeGuard) last(t *testing.T) fakeCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("guard was not called")
	}
	return f.calls[len(f.calls)-1]
}

func (f *fakeGuard) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// answer returns (res, nil), (nil, f.err) or (nil, nil) per the fake's mode.
func answer[R any](f *fakeGuard, res *R) (*R, error) {
	if f.err != nil {
		return nil, f.err
	}
	if f.nilResult {
		return nil, nil
	}
	return res, nil
}

var (
	t0  = time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	t1  = t0.Add(24 * time.Hour)
	db0 = guard.Database{DatabaseID: "wispy-sun-12345678", Name: "shop", Region: "aws-us-east-2", PGVersion: 17, MainBranchID: "br-main-1", CreatedAt: t0}
	cp0 = guard.Checkpoint{CheckpointID: "snap-1", Name: "before-auth", CreatedAt: t0}
	ref = guard.BranchRef{BranchID: "br-backup-1", Name: "main-backup", ExpiresAt: &t1}
	m0  = guard.Metric{Name: "active_time", Unit: "s", Used: 10, Limit: 100, Percent: 10, Level: "ok"}
)

func (f *fakeGuard) strs(s ...string) []string {
	if f.nilSlices {
		return nil
	}
	return s
}

func (f *fakeGuard) CreateDatabase(_ context.Context, in guard.CreateDatabaseInput) (*guard.CreateDatabaseResult, error) {
	f.record("CreateDatabase", in)
	return answer(f, &guard.CreateDatabaseResult{Database: db0, Created: true, Tier: "free", ConnectionString: "postgresql://u:p@h/db?sslmode=require&channel_binding=require"})
}

func (f *fakeGuard) ListDatabases(context.Context) (*guard.ListDatabasesResult, error) {
	f.record("ListDatabases", nil)
	r := &guard.ListDatabasesResult{Tier: "free", Databases: []guard.Database{db0}, Limit: 5}
	if f.nilSlices {
		r.Databases = nil
	}
	return answer(f, r)
}

func (f *fakeGuard) Checkpoint(_ context.Context, in guard.CheckpointInput) (*guard.CheckpointResult, error) {
	f.record("Checkpoint", in)
	return answer(f, &guard.CheckpointResult{DatabaseID: in.DatabaseID, Checkpoint: cp0, Replaced: f.strs("old")})
}

func (f *fakeGuard) ListCheckpoints(_ context.Context, in guard.DatabaseInput) (*guard.ListCheckpointsResult, error) {
	id := in.DatabaseID
	f.record("ListCheckpoints", id)
	r := &guard.ListCheckpointsResult{DatabaseID: id, Checkpoints: []guard.Checkpoint{cp0}, Limit: 1}
	if f.nilSlices {
		r.Checkpoints = nil
	}
	return answer(f, r)
}

func (f *fakeGuard) RestoreCheckpoint(_ context.Context, in guard.RestoreCheckpointInput) (*guard.RestoreCheckpointResult, error) {
	id, cp := in.DatabaseID, in.Checkpoint
	f.record("RestoreCheckpoint", [2]string{id, cp})
	return answer(f, &guard.RestoreCheckpointResult{DatabaseID: id, Checkpoint: cp, CheckpointID: "snap-1", MainBranchID: "br-main-2", PreviousBranch: ref})
}

func (f *fakeGuard) UndoToTime(_ context.Context, in guard.UndoInput) (*guard.UndoResult, error) {
	f.record("UndoToTime", in)
	return answer(f, &guard.UndoResult{DatabaseID: in.DatabaseID, Branch: guard.BranchRef{BranchID: "br-main-1", Name: "main"}, RestoredTo: t0, BackupBranch: ref})
}

func (f *fakeGuard) CreateDevBranch(_ context.Context, in guard.DevBranchInput) (*guard.DevBranchResult, error) {
	f.record("CreateDevBranch", in)
	return answer(f, &guard.DevBranchResult{DatabaseID: in.DatabaseID, BranchID: "br-dev-1", Name: in.Name, From: in.From, ExpiresAt: t1, ConnectionString: "postgresql://u:p@h/db"})
}

func (f *fakeGuard) ListBranches(_ context.Context, in guard.DatabaseInput) (*guard.ListBranchesResult, error) {
	id := in.DatabaseID
	f.record("ListBranches", id)
	r := &guard.ListBranchesResult{DatabaseID: id, Limit: 10, Branches: []guard.Branch{
		{BranchID: "br-main-1", Name: "main", Kind: "main", CreatedAt: t0, EndpointState: "active"},
		{BranchID: "br-dev-1", Name: "feat", Kind: "dev", ParentID: "br-main-1", CreatedAt: t0, ExpiresAt: &t1, EndpointState: "idle"},
	}}
	if f.nilSlices {
		r.Branches = nil
	}
	return answer(f, r)
}

func (f *fakeGuard) DeleteDevBranch(_ context.Context, in guard.DeleteBranchInput) (*guard.DeleteBranchResult, error) {
	id, branch := in.DatabaseID, in.Branch
	f.record("DeleteDevBranch", [2]string{id, branch})
	return answer(f, &guard.DeleteBranchResult{DatabaseID: id, BranchID: "br-dev-1", Name: branch, Deleted: true})
}

func (f *fakeGuard) GetConnectionString(_ context.Context, in guard.ConnectionInput) (*guard.ConnectionResult, error) {
	f.record("GetConnectionString", in)
	return answer(f, &guard.ConnectionResult{DatabaseID: in.DatabaseID, BranchID: "br-main-1", Branch: "main", Pooled: in.Pooled, ConnectionString: "postgresql://u:p@h-pooler/db"})
}

func (f *fakeGuard) GetUsage(_ context.Context, in guard.DatabaseInput) (*guard.UsageResult, error) {
	id := in.DatabaseID
	f.record("GetUsage", id)
	u := guard.DatabaseUsage{DatabaseID: "wispy-sun-12345678", Name: "shop", PeriodStart: t0, PeriodEnd: t1,
		Metrics: []guard.Metric{m0}, Branches: guard.Count{Used: 2, Limit: 10}, Checkpoints: guard.Count{Used: 1, Limit: 1}, RestoreWindowSeconds: 86400,
		Alerts: []guard.UsageAlert{{Metric: "active_time_seconds", Threshold: 80, Level: "warning", RaisedAt: t0, Delivered: true}}}
	if f.nilSlices {
		u.Metrics, u.Alerts = nil, nil
	}
	return answer(f, &guard.UsageResult{Tier: "free", Databases: []guard.DatabaseUsage{u}})
}

func (f *fakeGuard) DescribeLimits(context.Context) (*guard.Limits, error) {
	f.record("DescribeLimits", nil)
	r := &guard.Limits{Tier: "free", Org: "free", MaxDatabases: 0, BranchesPerDatabase: 10, CheckpointsPerDatabase: 1,
		RestoreWindowSeconds: 86400, Compute: guard.ComputeLimits{MinCU: 0.25, MaxCU: 2, SuspendTimeoutSeconds: 300},
		DevBranchTTL: guard.TTLLimits{DefaultSeconds: 86400, MaxSeconds: 604800}, UndoBackupTTLSeconds: 86400, Quota: []guard.Metric{m0}}
	if f.nilSlices {
		r.Quota = nil
	}
	return answer(f, r)
}

// toolByName returns the named tool of All(d).
func toolByName(t testing.TB, d Deps, name string) server.ServerTool {
	t.Helper()
	for _, st := range All(d) {
		if st.Tool.Name == name {
			return st
		}
	}
	t.Fatalf("no tool %q", name)
	return server.ServerTool{}
}

// callJSON calls st as the wire would: the params decoded from JSON, so RawArguments is set.
func callJSON(t testing.TB, st server.ServerTool, args string) *mcp.CallToolResult {
	t.Helper()
	var req mcp.CallToolRequest
	params := fmt.Sprintf(`{"name":%q,"arguments":%s}`, st.Tool.Name, args)
	if err := json.Unmarshal([]byte(params), &req.Params); err != nil {
		t.Fatalf("bad test arguments %s: %v", args, err)
	}
	return callReq(t, st, req)
}

func callReq(t testing.TB, st server.ServerTool, req mcp.CallToolRequest) *mcp.CallToolResult {
	t.Helper()
	res, err := st.Handler(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: handler returned a protocol error: %v", st.Tool.Name, err)
	}
	if res == nil {
		t.Fatalf("%s: nil result", st.Tool.Name)
	}
	return res
}

// errorOf checks the isError shape of DESIGN.md §3 and returns the error object.
func errorOf(t testing.TB, res *mcp.CallToolResult) errorDetail {
	t.Helper()
	if !res.IsError {
		t.Fatalf("want isError, got %+v", res)
	}
	if res.StructuredContent != nil {
		t.Fatalf("error result must not carry structuredContent: %+v", res.StructuredContent)
	}
	if len(res.Content) != 1 {
		t.Fatalf("want one content, got %d", len(res.Content))
	}
	tc, ok := res.Content[0].(mcp.TextContent)
	if !ok {
		t.Fatalf("want text content, got %T", res.Content[0])
	}
	var body map[string]map[string]string
	dec := json.NewDecoder(bytes.NewReader([]byte(tc.Text)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error text is not the error JSON: %v: %s", err, tc.Text)
	}
	e, ok := body["error"]
	if !ok || len(body) != 1 {
		t.Fatalf("want {\"error\":{...}}, got %s", tc.Text)
	}
	for _, k := range []string{"code", "message", "hint"} {
		if _, ok := e[k]; !ok {
			t.Fatalf("error lacks %q: %s", k, tc.Text)
		}
	}
	if e["code"] == "" || e["message"] == "" {
		t.Fatalf("empty code or message: %s", tc.Text)
	}
	return errorDetail{Code: e["code"], Message: e["message"], Hint: e["hint"]}
}

// compileSchema compiles raw with a real JSON Schema validator (draft 2020-12, formats asserted).
func compileSchema(t testing.TB, name string, raw json.RawMessage) *sjs.Schema {
	t.Helper()
	doc, err := sjs.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: schema is not JSON: %v", name, err)
	}
	c := sjs.NewCompiler()
	c.DefaultDraft(sjs.Draft2020)
	c.AssertFormat()
	url := "mem://" + name + ".json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatalf("%s: schema does not compile: %v", name, err)
	}
	return s
}

// validateJSON validates v (marshalled to JSON first, as the wire does) against s.
func validateJSON(t testing.TB, s *sjs.Schema, v any) error {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	inst, err := sjs.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return s.Validate(inst)
}

func mustJSON(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *fakeGuard) RunSQL(_ context.Context, in guard.RunSQLInput) (*guard.RunSQLResult, error) {
	f.record("RunSQL", in)
	if f.confirmGate && !in.Confirm {
		return nil, errcode.New(errcode.ConfirmationRequired, `destructive statements on main: "drop table t" (drops a table)`, "confirm=true")
	}
	r := &guard.RunSQLResult{DatabaseID: in.DatabaseID, Branch: "main", Columns: []guard.SQLColumn{{Name: "n", Type: "int4"}},
		Rows: [][]any{{1}}, RowCount: 1, Command: "SELECT 1", Statements: []guard.SQLStatement{{Command: "SELECT", ReadOnly: true}}}
	if f.nilSlices {
		r.Columns, r.Rows, r.Statements = nil, nil, nil
	}
	return answer(f, r)
}

func (f *fakeGuard) ApplyMigration(_ context.Context, in guard.ApplyMigrationInput) (*guard.ApplyMigrationResult, error) {
	f.record("ApplyMigration", in)
	r := &guard.ApplyMigrationResult{DatabaseID: in.DatabaseID, Branch: "main", Applied: true, Destructive: []string{},
		SchemaChanges: []string{"table public.t added (table)"},
		Migration:     guard.Migration{Version: 1, Name: in.Name, Checksum: "c", Statements: 1, AppliedAt: t0, RestorePoint: guard.RestorePoint{Time: t0, LSN: "0/1"}}}
	if f.nilSlices {
		r.Destructive, r.SchemaChanges = nil, nil
	}
	return answer(f, r)
}

func (f *fakeGuard) ListMigrations(_ context.Context, in guard.DatabaseBranchInput) (*guard.ListMigrationsResult, error) {
	f.record("ListMigrations", in)
	r := &guard.ListMigrationsResult{DatabaseID: in.DatabaseID, Branch: "main",
		Migrations: []guard.Migration{{Version: 1, Name: "0001_init", Checksum: "c", Statements: 2, AppliedAt: t0, RestorePoint: guard.RestorePoint{Time: t0, LSN: "0/1"}}}}
	if f.nilSlices {
		r.Migrations = nil
	}
	return answer(f, r)
}

func (f *fakeGuard) UndoMigration(_ context.Context, in guard.UndoMigrationInput) (*guard.UndoMigrationResult, error) {
	f.record("UndoMigration", in)
	r := &guard.UndoMigrationResult{Migration: guard.Migration{Version: in.Version, Name: "0001_init", Checksum: "c", Statements: 1, AppliedAt: t0,
		RestorePoint: guard.RestorePoint{Time: t0, LSN: "0/1"}}, Undone: []string{"0001_init"},
		Undo: guard.UndoResult{DatabaseID: in.DatabaseID, Branch: guard.BranchRef{BranchID: "br-main-1", Name: "main"}, RestoredTo: t0, BackupBranch: ref}}
	if f.nilSlices {
		r.Undone = nil
	}
	return answer(f, r)
}

func (f *fakeGuard) DescribeSchema(_ context.Context, in guard.DescribeSchemaInput) (*guard.DescribeSchemaResult, error) {
	f.record("DescribeSchema", in)
	r := &guard.DescribeSchemaResult{DatabaseID: in.DatabaseID, Branch: "main", Schema: "public",
		Tables: []guard.SchemaTable{{Name: "t", Columns: []guard.SchemaColumn{{Name: "id", Type: "integer"}}, PrimaryKey: []string{"id"}}},
		Views:  []guard.SchemaTable{}, Enums: []guard.SchemaEnum{{Name: "mood", Values: []string{"ok"}}}}
	if f.nilSlices {
		r.Tables, r.Views, r.Enums = nil, nil, nil
	}
	return answer(f, r)
}

func (f *fakeGuard) CompareSchema(_ context.Context, in guard.CompareSchemaInput) (*guard.CompareSchemaResult, error) {
	f.record("CompareSchema", in)
	r := &guard.CompareSchemaResult{DatabaseID: in.DatabaseID, Base: "main", Branch: in.Branch, Schema: "public",
		Differences: []guard.SchemaDifference{{Kind: "column", Name: "t.note", Change: "added", Branch: "text"}},
		SQL:         []string{"ALTER TABLE t ADD COLUMN note text"}, Unsafe: []string{}}
	if f.nilSlices {
		r.Differences, r.SQL, r.Unsafe = nil, nil, nil
	}
	return answer(f, r)
}
