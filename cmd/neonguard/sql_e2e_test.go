package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/pgtest"
)

// The guarded SQL tools proved with the official TypeScript MCP client on the local backend's
// real PostgreSQL (issue 12, "Proofs"), over stdio and Streamable HTTP: testdata/e2e/ts/sql.mjs
// runs the cases and prints their facts; sqlProofs below asserts on them.

// The tier every proof runs on: the free tier with small SQL limits, so that max_rows and the
// statement timeout are reached quickly.
const (
	sqlProofMaxRows = 5
	sqlProofConfig  = `policy:
  tiers:
    free:
      sql:
        max_rows: 5
        statement_timeout: 1s
`
)

// tsCall is one call a TypeScript script made.
type tsCall struct {
	Name       string
	IsError    bool
	Code       string
	Message    string
	Structured json.RawMessage
}

// tsSQLResult is what testdata/e2e/ts/sql.mjs prints.
type tsSQLResult struct {
	Transport  string
	Tools      []string
	DatabaseID string                     `json:"database_id"`
	Cases      map[string]json.RawMessage // each case's facts, with its calls
	Setup      []tsCall                   // create_database's call, when it failed
}

// restorePoint is a write's restore_point.
type restorePoint struct {
	Time string
	LSN  string
}

// sqlProofs are the cases of sql.mjs and what each must show. A case's facts are decoded into
// the case's own struct; calls is every call it made, for failure messages.
var sqlProofs = []struct {
	name  string
	check func(t *testing.T, raw json.RawMessage)
}{
	// a. apply_migration creates a table, run_sql inserts rows, undo_migration: both gone.
	{"migration_undo", func(t *testing.T, raw json.RawMessage) {
		var f struct {
			Applied     *bool         `json:"applied"`
			Version     float64       `json:"version"`
			MigrationRP *restorePoint `json:"migration_restore_point"`
			Inserted    any           `json:"inserted"`
			InsertRP    *restorePoint `json:"insert_restore_point"`
			RowsBefore  any           `json:"rows_before"`
			TableBefore any           `json:"table_before"`
			UndoOK      bool          `json:"undo_ok"`
			Undone      []string      `json:"undone"`
			TableAfter  any           `json:"table_after"`
			SelectAfter any           `json:"select_after"`
			LedgerAfter []string      `json:"ledger_after"`
		}
		decodeCase(t, raw, &f)
		if f.Applied == nil || !*f.Applied || f.Version < 1 || f.MigrationRP == nil || f.MigrationRP.Time == "" {
			t.Fatalf("apply_migration: applied %v, version %v, restore point %v", f.Applied, f.Version, f.MigrationRP)
		}
		if f.Inserted != float64(3) || f.InsertRP == nil || f.InsertRP.LSN == "" {
			t.Fatalf("run_sql insert: row_count %v, restore point %v", f.Inserted, f.InsertRP)
		}
		if f.RowsBefore != float64(3) || f.TableBefore != "items" {
			t.Fatalf("before undo: table %v with %v rows, want items with 3", f.TableBefore, f.RowsBefore)
		}
		if !f.UndoOK || !slices.Equal(f.Undone, []string{"0001_items"}) {
			t.Fatalf("undo_migration: ok %v, undone %v", f.UndoOK, f.Undone)
		}
		if f.TableAfter != nil || f.SelectAfter != "error:INVALID_ARGUMENT" {
			t.Errorf("after undo_migration: to_regclass %v, SELECT from it %v; want the table and its rows gone", f.TableAfter, f.SelectAfter)
		}
		if len(f.LedgerAfter) != 0 {
			t.Errorf("ledger after undo_migration: %v, want empty", f.LedgerAfter)
		}
	}},
	// b. Destructive statements on main: refused without confirm, nothing changes; with
	// confirm they run, and undo_to_time to the restore point brings the data back.
	{"destructive_confirm", func(t *testing.T, raw json.RawMessage) {
		var f struct {
			SetupOK           bool          `json:"setup_ok"`
			DeleteCode        string        `json:"delete_code"`
			DeleteMessage     string        `json:"delete_message"`
			DropCode          string        `json:"drop_code"`
			DropMessage       string        `json:"drop_message"`
			RowsAfterRefusals any           `json:"rows_after_refusals"`
			ConfirmedOK       bool          `json:"confirmed_ok"`
			RestorePoint      *restorePoint `json:"restore_point"`
			TableAfterDrop    any           `json:"table_after_drop"`
			UndoOK            bool          `json:"undo_ok"`
			RowsAfterUndo     any           `json:"rows_after_undo"`
			SumAfterUndo      any           `json:"sum_after_undo"`
		}
		decodeCase(t, raw, &f)
		if !f.SetupOK {
			t.Fatal("CREATE TABLE keep and its rows failed")
		}
		if f.DeleteCode != "CONFIRMATION_REQUIRED" || !strings.Contains(f.DeleteMessage, "DELETE FROM keep") {
			t.Errorf("DELETE without WHERE, without confirm: %s %q", f.DeleteCode, f.DeleteMessage)
		}
		if f.DropCode != "CONFIRMATION_REQUIRED" || !strings.Contains(f.DropMessage, "DROP TABLE keep") {
			t.Errorf("DROP TABLE without confirm: %s %q", f.DropCode, f.DropMessage)
		}
		if f.RowsAfterRefusals != float64(5) {
			t.Errorf("rows after the refused statements: %v, want 5", f.RowsAfterRefusals)
		}
		if !f.ConfirmedOK || f.RestorePoint == nil || f.RestorePoint.Time == "" || f.TableAfterDrop != nil {
			t.Fatalf("DROP TABLE with confirm: ok %v, restore point %v, table after %v", f.ConfirmedOK, f.RestorePoint, f.TableAfterDrop)
		}
		if !f.UndoOK || f.RowsAfterUndo != float64(5) || f.SumAfterUndo != "15" && f.SumAfterUndo != float64(15) {
			t.Errorf("undo_to_time to the restore point: ok %v, %v rows summing to %v; want 5 rows summing to 15", f.UndoOK, f.RowsAfterUndo, f.SumAfterUndo)
		}
	}},
	// c. The tier's max_rows.
	{"max_rows", func(t *testing.T, raw json.RawMessage) {
		var f struct {
			OK        bool
			Code      string
			Returned  int
			RowCount  int `json:"row_count"`
			Truncated bool
		}
		decodeCase(t, raw, &f)
		if !f.OK || f.Returned != sqlProofMaxRows || f.RowCount != 50 || !f.Truncated {
			t.Errorf("50 rows with max_rows %d: ok %v (%s), %d returned, row_count %d, truncated %v", sqlProofMaxRows, f.OK, f.Code, f.Returned, f.RowCount, f.Truncated)
		}
	}},
	// d. The tier's statement_timeout.
	{"statement_timeout", func(t *testing.T, raw json.RawMessage) {
		var f struct {
			Code      string
			Message   string
			ElapsedMS float64 `json:"elapsed_ms"`
		}
		decodeCase(t, raw, &f)
		if f.Code != "INVALID_ARGUMENT" || !strings.Contains(f.Message, "statement_timeout") || !strings.Contains(f.Message, "canceling statement due to statement timeout") {
			t.Errorf("pg_sleep(30) with a 1 s statement_timeout: %s %q", f.Code, f.Message)
		}
		if f.ElapsedMS > 20_000 {
			t.Errorf("pg_sleep(30) was cancelled after %.0f ms, want about 1 s", f.ElapsedMS)
		}
	}},
	// e. Syntax errors: PostgreSQL's message and position.
	{"syntax_error", func(t *testing.T, raw json.RawMessage) {
		var f struct {
			ReadCode     string `json:"read_code"`
			ReadMessage  string `json:"read_message"`
			WriteCode    string `json:"write_code"`
			WriteMessage string `json:"write_message"`
		}
		decodeCase(t, raw, &f)
		// "SELECT 1 FROM FROM": the second FROM, at character 15.
		if f.ReadCode != "INVALID_ARGUMENT" || !strings.Contains(f.ReadMessage, `syntax error at or near "FROM"`) ||
			!strings.Contains(f.ReadMessage, "42601") || !strings.Contains(f.ReadMessage, "at character 15") {
			t.Errorf("read with a syntax error: %s %q", f.ReadCode, f.ReadMessage)
		}
		// "INSERT INTO nowhere VALUES (1) WHERE": WHERE, at character 32.
		if f.WriteCode != "INVALID_ARGUMENT" || !strings.Contains(f.WriteMessage, `syntax error at or near "WHERE"`) ||
			!strings.Contains(f.WriteMessage, "at character 32") {
			t.Errorf("write with a syntax error: %s %q", f.WriteCode, f.WriteMessage)
		}
	}},
	// f. Elicitation: a client that declares it is asked; decline runs nothing, accept runs.
	{"elicitation", func(t *testing.T, raw json.RawMessage) {
		var f struct {
			Asked            []string      `json:"asked"`
			SetupOK          bool          `json:"setup_ok"`
			DeclinedCode     string        `json:"declined_code"`
			DeclinedMessage  string        `json:"declined_message"`
			RowsAfterDecline any           `json:"rows_after_decline"`
			AcceptedOK       bool          `json:"accepted_ok"`
			RestorePoint     *restorePoint `json:"accepted_restore_point"`
			RowsAfterAccept  any           `json:"rows_after_accept"`
		}
		decodeCase(t, raw, &f)
		if !f.SetupOK {
			t.Fatal("CREATE TABLE asked and its rows failed")
		}
		if len(f.Asked) != 2 || !strings.Contains(f.Asked[0], "DELETE FROM asked") {
			t.Errorf("the user was asked %q; want twice, about DELETE FROM asked", f.Asked)
		}
		if f.DeclinedCode != "CONFIRMATION_REQUIRED" || !strings.Contains(f.DeclinedMessage, "declined") || f.RowsAfterDecline != float64(3) {
			t.Errorf("declined: %s %q, %v rows; want CONFIRMATION_REQUIRED, 3 rows", f.DeclinedCode, f.DeclinedMessage, f.RowsAfterDecline)
		}
		if !f.AcceptedOK || f.RestorePoint == nil || f.RowsAfterAccept != float64(0) {
			t.Errorf("accepted: ok %v, restore point %v, %v rows; want it run", f.AcceptedOK, f.RestorePoint, f.RowsAfterAccept)
		}
	}},
	// g. Read-only access (a read token over HTTP, serve --read-only over stdio).
	{"read_access", func(t *testing.T, raw json.RawMessage) {
		var f struct {
			Tools          []string
			NotReadOnly    []string `json:"not_read_only"`
			ReadOK         bool     `json:"read_ok"`
			ReadRows       any      `json:"read_rows"`
			WriteSQLCode   string   `json:"write_sql_code"`
			MigrationCode  string   `json:"migration_code"`
			CheckpointCode string   `json:"checkpoint_code"`
			RowsAfter      any      `json:"rows_after"`
			NopeTable      any      `json:"nope_table"`
		}
		decodeCase(t, raw, &f)
		if len(f.NotReadOnly) > 0 || !slices.Contains(f.Tools, "run_sql") || slices.Contains(f.Tools, "apply_migration") {
			t.Errorf("read access lists %v (not annotated read-only: %v); want only read-only tools, run_sql among them", f.Tools, f.NotReadOnly)
		}
		if !f.ReadOK || f.ReadRows != float64(5) {
			t.Errorf("a read with read access: ok %v, %v rows; want 5", f.ReadOK, f.ReadRows)
		}
		if f.WriteSQLCode != "FORBIDDEN" || f.MigrationCode != "FORBIDDEN" || f.CheckpointCode != "FORBIDDEN" {
			t.Errorf("writes with read access: run_sql %q, apply_migration %q, checkpoint %q; want FORBIDDEN", f.WriteSQLCode, f.MigrationCode, f.CheckpointCode)
		}
		if f.RowsAfter != float64(5) || f.NopeTable != nil {
			t.Errorf("after the refused writes: %v rows, table nope %v; want 5 rows and no table", f.RowsAfter, f.NopeTable)
		}
	}},
	// h. apply_migration dry_run: reports the changes, main and its ledger unchanged.
	{"dry_run", func(t *testing.T, raw json.RawMessage) {
		var f struct {
			OK              bool
			Code            string
			DryRun          *bool    `json:"dry_run"`
			SchemaChanges   []string `json:"schema_changes"`
			BadCode         string   `json:"bad_code"`
			BadMessage      string   `json:"bad_message"`
			SchemaUnchanged bool     `json:"schema_unchanged"`
			LedgerUnchanged bool     `json:"ledger_unchanged"`
			BranchesBefore  int      `json:"branches_before"`
			BranchesAfter   int      `json:"branches_after"`
		}
		decodeCase(t, raw, &f)
		if !f.OK || f.DryRun == nil || !*f.DryRun || !slices.ContainsFunc(f.SchemaChanges, func(c string) bool { return strings.Contains(c, "rehearsed") }) {
			t.Errorf("dry run: ok %v (%s), dry_run %v, schema_changes %q; want the new table reported", f.OK, f.Code, f.DryRun, f.SchemaChanges)
		}
		if f.BadCode != "INVALID_ARGUMENT" || !strings.Contains(f.BadMessage, "missing") {
			t.Errorf("a failing dry run: %s %q; want INVALID_ARGUMENT with PostgreSQL's message", f.BadCode, f.BadMessage)
		}
		if !f.SchemaUnchanged || !f.LedgerUnchanged || f.BranchesAfter != f.BranchesBefore {
			t.Errorf("after the dry runs: schema unchanged %v, ledger unchanged %v, branches %d → %d", f.SchemaUnchanged, f.LedgerUnchanged, f.BranchesBefore, f.BranchesAfter)
		}
	}},
}

func decodeCase(t *testing.T, raw json.RawMessage, into any) {
	t.Helper()
	var failed struct {
		Error string
		Calls []tsCall
	}
	_ = json.Unmarshal(raw, &failed)
	if failed.Error != "" {
		t.Fatalf("the case threw: %s", failed.Error)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		t.Fatalf("facts %s: %v", raw, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range failed.Calls {
				t.Logf("  %s: error %v %s %s %s", c.Name, c.IsError, c.Code, c.Message, c.Structured)
			}
		}
	})
}

// checkSQLProofs asserts on every case of sql.mjs's output.
func checkSQLProofs(t *testing.T, res tsSQLResult) {
	t.Helper()
	if res.DatabaseID == "" {
		t.Fatalf("create_database failed: %+v", res.Setup)
	}
	for _, name := range []string{"run_sql", "apply_migration", "undo_migration", "list_migrations", "describe_schema"} {
		if !slices.Contains(res.Tools, name) {
			t.Errorf("tools/list over %s lacks %s: %v", res.Transport, name, res.Tools)
		}
	}
	for _, p := range sqlProofs {
		t.Run(p.name, func(t *testing.T) {
			raw, ok := res.Cases[p.name]
			if !ok {
				t.Fatalf("sql.mjs over %s ran no %s case", res.Transport, p.name)
			}
			p.check(t, raw)
		})
	}
}

// runSQLScript runs sql.mjs with args and the server's environment plus extra (a token).
func runSQLScript(t *testing.T, node string, env []string, args ...string) tsSQLResult {
	t.Helper()
	var res tsSQLResult
	runTSScript(t, node, env, "sql.mjs", &res, args...)
	return res
}

// runTSScript runs one of testdata/e2e/ts's scripts with args and env, failing the test when
// it exits non-zero, and decodes its JSON stdout into into. Returns the raw stdout.
func runTSScript(t *testing.T, node string, env []string, script string, into any, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = filepath.Join("..", "..", "testdata", "e2e", "ts")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s %s: %v\nstdout:\n%s\nstderr:\n%s", script, args[0], err, out, stderr.Bytes())
	}
	if err := json.Unmarshal(out, into); err != nil {
		t.Fatalf("%s output: %v\n%s\nstderr:\n%s", script, err, out, stderr.Bytes())
	}
	return out
}

// TestSQLProofsWithTypeScriptClient runs the real binary on the local backend with real
// PostgreSQL and proves the guarded SQL tools through the official TypeScript MCP client, over
// stdio and over Streamable HTTP (a tenant on the free tier with small SQL limits).
func TestSQLProofsWithTypeScriptClient(t *testing.T) {
	node := requireNodeSDK(t)
	pgtest.Require(t)
	bin := buildBinary(t)
	cfg := filepath.Join(t.TempDir(), "neonguard.yaml")
	if err := os.WriteFile(cfg, []byte(sqlProofConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	// info: httpEnv.start reads the bound address from the "serving MCP over HTTP" line.
	serverEnv := func(dataDir string) []string {
		return hermeticEnv(
			"NEONGUARD_CONFIG="+cfg,
			"NEONGUARD_DATA_DIR="+dataDir,
			"NEONGUARD_BACKEND=local",
			"NEONGUARD_LOCAL_POSTGRES=on",
			"NEONGUARD_LOCAL_OPERATION_DELAY=5ms",
			"NEONGUARD_LOG_LEVEL=info",
		)
	}

	t.Run("stdio", func(t *testing.T) {
		dir := pgtest.ReachableDir(t)
		checkSQLProofs(t, runSQLScript(t, node, serverEnv(dir), "stdio", bin, dir))
	})

	t.Run("streamable", func(t *testing.T) {
		e := &httpEnv{bin: bin, env: serverEnv(pgtest.ReachableDir(t))}
		e.cli(t, "tenant", "create", "acme", "--tier", "free")
		_, tok := e.createToken(t, "acme")
		_, readTok := e.createToken(t, "acme", "read")
		e.start(t)
		res := runSQLScript(t, node, append(os.Environ(), "NEONGUARD_E2E_TOKEN="+tok, "NEONGUARD_E2E_READ_TOKEN="+readTok), "streamable", e.base)
		checkSQLProofs(t, res) // start's cleanup logs the server's log when this fails
	})
}
