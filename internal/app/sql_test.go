package app_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// run_sql on real PostgreSQL through the whole server: reads in a READ ONLY transaction,
// writes with a restore point that undo_to_time can go back to, destructive statements only
// with confirm, the tier's row and time limits, and PostgreSQL's own errors.
func TestRunSQL(t *testing.T) {
	pgtest.Require(t)
	a := newAppWith(t, spectestWrap(t), pgConfig(pgtest.ReachableDir(t)), func(c *config.Config) {
		tier := c.Policy.Tiers["free"]
		tier.SQL.MaxRows, tier.SQL.StatementTimeout = 5, 2*time.Second
		c.Policy.Tiers["free"] = tier
	})
	c := connect(t, a)
	id, uri := createDBWithURI(t, c, "sql")
	insert(t, uri, 1, 3)
	sql := func(args map[string]any) result {
		args["database_id"] = id
		return call(t, c, "run_sql", args)
	}

	r := mustOK(t, sql(map[string]any{"sql": "SELECT n, n * 1.5 AS f, 'x' || n AS s, n > 1 AS b, NULL AS z FROM t ORDER BY n"}), "select")
	if rows := r["rows"].([]any); len(rows) != 3 || r["row_count"] != float64(3) || r["truncated"] != false {
		t.Fatalf("select: %v", r)
	}
	first := r["rows"].([]any)[0].([]any)
	if first[0] != float64(1) || first[2] != "x1" || first[3] != false || first[4] != nil {
		t.Fatalf("values as JSON: %v", first)
	}
	if cols := r["columns"].([]any); cols[0].(map[string]any)["type"] != "int4" {
		t.Fatalf("columns: %v", cols)
	}
	if _, ok := r["restore_point"]; ok {
		t.Fatalf("a read has no restore point: %v", r)
	}

	// Several statements in a read: the last one's rows. One that tries to leave the READ ONLY
	// transaction is refused, and nothing is written.
	two := mustOK(t, sql(map[string]any{"sql": "SELECT 1; SELECT n FROM t ORDER BY n"}), "two reads")
	if len(two["rows"].([]any)) != 3 {
		t.Fatalf("two reads: %v", two)
	}
	escape := sql(map[string]any{"sql": "COMMIT; SET default_transaction_read_only = off; INSERT INTO t VALUES (99)"})
	if escape.Code != "INVALID_ARGUMENT" || slices.Contains(rows(t, uri), 99) {
		t.Fatalf("a read that commits and writes: %s, rows %v", escape, rows(t, uri))
	}
	// A read that turns the session's read-only default off must not open writes to a later
	// call (it would, were connections ever reused without a READ ONLY transaction).
	single := sql(map[string]any{"sql": "SELECT set_config('default_transaction_read_only', 'off', false)"})
	if single.Code != "" {
		t.Fatalf("a single read that changes a setting: %s", single)
	}
	if r := sql(map[string]any{"sql": "INSERT INTO t VALUES (98)"}); r.Code != "INVALID_ARGUMENT" {
		t.Fatalf("the setting outlived its call: %s", r)
	}

	// Read-only by default: a write is refused by PostgreSQL and changes nothing.
	if r := sql(map[string]any{"sql": "INSERT INTO t VALUES (10)"}); r.Code != "INVALID_ARGUMENT" || !strings.Contains(r.Hint, "read_only=false") {
		t.Fatalf("write without read_only=false: %s", r)
	}
	// A write with parameters, on main: a restore point from the database's own clock.
	w := mustOK(t, sql(map[string]any{"sql": "INSERT INTO t SELECT generate_series($1::int, $2::int)", "params": []any{10, 12}, "read_only": false}), "insert")
	rp := w["restore_point"].(map[string]any)
	if w["row_count"] != float64(3) || rp["lsn"] == "" || rp["time"] == "" {
		t.Fatalf("write: %v", w)
	}
	if got := rows(t, uri); !slices.Equal(got, []int{1, 2, 3, 10, 11, 12}) {
		t.Fatalf("after the insert: %v", got)
	}
	// Destructive without confirm: refused before it runs, naming the statement.
	time.Sleep(1100 * time.Millisecond)
	d := sql(map[string]any{"sql": "SELECT 1; DELETE FROM t", "read_only": false})
	if d.Code != "CONFIRMATION_REQUIRED" || !strings.Contains(d.Message, "DELETE FROM t") || !strings.Contains(d.Hint, "confirm=true") {
		t.Fatalf("destructive without confirm: %s", d)
	}
	if got := rows(t, uri); len(got) != 6 {
		t.Fatalf("a refused DELETE changed the data: %v", got)
	}
	d2 := mustOK(t, sql(map[string]any{"sql": "DELETE FROM t", "read_only": false, "confirm": true}), "delete with confirm")
	if got := rows(t, uri); len(got) != 0 {
		t.Fatalf("after DELETE: %v", got)
	}
	// Its restore point takes the data back.
	at := d2["restore_point"].(map[string]any)["time"].(string)
	mustOK(t, call(t, c, "undo_to_time", map[string]any{"database_id": id, "timestamp": at}), "undo_to_time to the restore point")
	if got := rows(t, uri); !slices.Equal(got, []int{1, 2, 3, 10, 11, 12}) {
		t.Fatalf("after undo to the restore point: %v", got)
	}

	// All or nothing: the second statement fails, the first is not kept.
	if r := sql(map[string]any{"sql": "INSERT INTO t VALUES (20); INSERT INTO t VALUES (1)", "read_only": false}); r.Code != "INVALID_ARGUMENT" || !strings.Contains(r.Message, "23505") {
		t.Fatalf("duplicate key: %s", r)
	}
	if got := rows(t, uri); slices.Contains(got, 20) {
		t.Fatalf("a failed transaction kept a row: %v", got)
	}
	// The tier's max_rows (5 here) cuts the rows, not the count.
	r = mustOK(t, sql(map[string]any{"sql": "SELECT generate_series(1, 50)"}), "many rows")
	if len(r["rows"].([]any)) != 5 || r["truncated"] != true || r["row_count"] != float64(50) {
		t.Fatalf("max_rows: %d rows, truncated %v, row_count %v", len(r["rows"].([]any)), r["truncated"], r["row_count"])
	}
	// The tier's statement timeout (2 s here).
	if r := sql(map[string]any{"sql": "SELECT pg_sleep(5)"}); r.Code != "INVALID_ARGUMENT" || !strings.Contains(r.Message, "statement_timeout") {
		t.Fatalf("statement timeout: %s", r)
	}
	// Errors: PostgreSQL's parser with the position, transaction control, params with two statements.
	for sqlText, want := range map[string]string{
		"SELEC 1":              "syntax error",
		"BEGIN; SELECT 1":      "transaction control",
		"SELECT * FROM nosuch": "42P01",
	} {
		if r := sql(map[string]any{"sql": sqlText}); r.Code != "INVALID_ARGUMENT" || !strings.Contains(r.Message, want) {
			t.Errorf("%q: %s, want INVALID_ARGUMENT with %q", sqlText, r, want)
		}
	}
	if r := sql(map[string]any{"sql": "SELECT $1; SELECT 2", "params": []any{1}}); r.Code != "INVALID_ARGUMENT" {
		t.Errorf("params with two statements: %s", r)
	}
	// A dev branch: writes there need no confirm and take no restore point.
	mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "scratch"}), "dev branch")
	r = mustOK(t, sql(map[string]any{"sql": "DROP TABLE t", "branch": "scratch", "read_only": false}), "drop on a dev branch")
	if _, ok := r["restore_point"]; ok {
		t.Fatalf("a dev branch write took a restore point: %v", r)
	}
	if got := rows(t, uri); len(got) != 6 {
		t.Fatalf("main changed by a dev branch's DROP: %v", got)
	}
}
