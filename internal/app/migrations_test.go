package app_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/pgtest"
)

// apply_migration and list_migrations on real PostgreSQL: the ledger lives in the database,
// a migration is applied once per name and SQL, its schema changes are reported, a failing
// migration changes nothing, and its restore point takes the database back.
func TestMigrations(t *testing.T) {
	a := newPGApp(t, pgtest.ReachableDir(t))
	c := connect(t, a)
	id, uri := createDBWithURI(t, c, "migrated")
	list := func() []string {
		var names []string
		for _, m := range mustOK(t, call(t, c, "list_migrations", map[string]any{"database_id": id}), "list_migrations")["migrations"].([]any) {
			names = append(names, str(m.(map[string]any), "name"))
		}
		return names
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("a new database's ledger: %v", got)
	}
	apply := func(name, sql string, extra ...any) result {
		args := map[string]any{"database_id": id, "name": name, "sql": sql}
		for i := 0; i+1 < len(extra); i += 2 {
			args[extra[i].(string)] = extra[i+1]
		}
		return call(t, c, "apply_migration", args)
	}

	first := mustOK(t, apply("0001_init", "CREATE TABLE t (n int PRIMARY KEY); CREATE INDEX t_n ON t (n)"), "0001")
	if first["applied"] != true || first["version"] != float64(1) || first["statements"] != float64(2) {
		t.Fatalf("0001: %v", first)
	}
	changes := strings.Join(anyStrings(first["schema_changes"]), "\n")
	for _, want := range []string{"table public.t added", "column public.t.n added (integer not null)", "index public.t_n added"} {
		if !strings.Contains(changes, want) {
			t.Errorf("schema changes %q lack %q", changes, want)
		}
	}
	// describe_schema sees what the migration made.
	mustOK(t, apply("0001b_enum", "CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE VIEW v AS SELECT 1 AS one"), "0001b")
	sch := mustOK(t, call(t, c, "describe_schema", map[string]any{"database_id": id}), "describe_schema")
	sTables, views, enums := sch["tables"].([]any), sch["views"].([]any), sch["enums"].([]any)
	if len(sTables) != 1 || len(views) != 1 || len(enums) != 1 {
		t.Fatalf("describe_schema: %v", sch)
	}
	tt := sTables[0].(map[string]any)
	col := tt["columns"].([]any)[0].(map[string]any)
	if tt["name"] != "t" || col["name"] != "n" || col["type"] != "integer" || col["nullable"] != false ||
		!slices.Equal(anyStrings(tt["primary_key"]), []string{"n"}) || !strings.Contains(strings.Join(anyStrings(tt["indexes"]), " "), "t_n") {
		t.Fatalf("table t: %v", tt)
	}
	if e := enums[0].(map[string]any); e["name"] != "mood" || !slices.Equal(anyStrings(e["values"]), []string{"ok", "sad"}) {
		t.Fatalf("enum: %v", e)
	}
	if names := anyStrings([]any{views[0].(map[string]any)["name"]}); names[0] != "v" {
		t.Fatalf("view: %v", views)
	}
	insert(t, uri, 1, 3)
	// The same name and SQL: nothing runs. The same name, other SQL: refused.
	again := mustOK(t, apply("0001_init", "CREATE TABLE t (n int PRIMARY KEY); CREATE INDEX t_n ON t (n)"), "0001 again")
	if again["applied"] != false || again["version"] != float64(1) {
		t.Fatalf("0001 again: %v", again)
	}
	if r := apply("0001_init", "CREATE TABLE other (x int)"); r.Code != "INVALID_ARGUMENT" || !strings.Contains(r.Message, "other SQL") {
		t.Fatalf("0001 with other SQL: %s", r)
	}
	// A failing migration leaves nothing behind: no table, no ledger entry.
	if r := apply("0002_broken", "CREATE TABLE u (x int); ALTER TABLE nosuch ADD COLUMN y int"); r.Code != "INVALID_ARGUMENT" || !strings.Contains(r.Message, "42P01") {
		t.Fatalf("broken migration: %s", r)
	}
	if got := list(); !slices.Equal(got, []string{"0001_init", "0001b_enum"}) {
		t.Fatalf("ledger after a failed migration: %v", got)
	}
	// A destructive migration on main needs confirm; with it, it is recorded with its restore point.
	time.Sleep(1100 * time.Millisecond)
	if r := apply("0002_drop", "ALTER TABLE t DROP COLUMN n"); r.Code != "CONFIRMATION_REQUIRED" {
		t.Fatalf("destructive without confirm: %s", r)
	}
	drop := mustOK(t, apply("0002_drop", "ALTER TABLE t ADD COLUMN m int; ALTER TABLE t DROP COLUMN n", "confirm", true), "0002 with confirm")
	if drop["version"] != float64(3) || len(anyStrings(drop["destructive"])) != 1 {
		t.Fatalf("0002: %v", drop)
	}
	if got := list(); !slices.Equal(got, []string{"0001_init", "0001b_enum", "0002_drop"}) {
		t.Fatalf("ledger: %v", got)
	}
	// Its restore point takes the database back: the column and its rows, and the ledger too.
	at := drop["restore_point"].(map[string]any)["time"].(string)
	mustOK(t, call(t, c, "undo_to_time", map[string]any{"database_id": id, "timestamp": at}), "undo to 0002's restore point")
	if got := rows(t, uri); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("rows after undoing 0002: %v", got)
	}
	if got := list(); !slices.Equal(got, []string{"0001_init", "0001b_enum"}) {
		t.Fatalf("ledger after undoing 0002: %v", got)
	}

	// undo_migration: undoing one that later ones build on needs confirm, then undoes them all.
	time.Sleep(1100 * time.Millisecond)
	v2 := mustOK(t, apply("0002_u", "CREATE TABLE u (x int)"), "0002_u")["version"]
	mustOK(t, apply("0003_w", "CREATE TABLE w (y int)"), "0003_w")
	if r := call(t, c, "undo_migration", map[string]any{"database_id": id, "version": v2}); r.Code != "CONFIRMATION_REQUIRED" || !strings.Contains(r.Message, "0003_w") {
		t.Fatalf("undo with a later migration: %s", r)
	}
	u := mustOK(t, call(t, c, "undo_migration", map[string]any{"database_id": id, "version": v2, "confirm": true}), "undo_migration")
	if got := anyStrings(u["undone"]); !slices.Equal(got, []string{"0002_u", "0003_w"}) {
		t.Fatalf("undone %v", got)
	}
	if got := list(); !slices.Equal(got, []string{"0001_init", "0001b_enum"}) {
		t.Fatalf("ledger after undo_migration: %v", got)
	}
	tables := mustOK(t, call(t, c, "run_sql", map[string]any{"database_id": id,
		"sql": "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('u', 'w')"}), "tables")
	if n := tables["rows"].([]any)[0].([]any)[0]; n != float64(0) {
		t.Fatalf("tables u and w after undo_migration: %v", n)
	}
	if got := rows(t, uri); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("rows after undo_migration: %v", got)
	}
	if r := call(t, c, "undo_migration", map[string]any{"database_id": id, "version": 99}); r.Code != "NOT_FOUND" {
		t.Fatalf("unknown version: %s", r)
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
