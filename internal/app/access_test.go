package app_test

import (
	"context"
	"slices"
	"testing"

	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// A token with the read scope on real PostgreSQL: run_sql reads, but neither run_sql with
// read_only=false nor a migration changes anything; the same calls by a write token do.
func TestReadScopeOnRealPostgres(t *testing.T) {
	a := newPGApp(t, pgtest.ReachableDir(t))
	c := connect(t, a)
	id, uri := createDBWithURI(t, c, "access") // the stdio tenant writes (no scope)
	insert(t, uri, 1, 3)
	reader := identity.NewContext(context.Background(), identity.Principal{TenantID: a.Config.Tenant, Scopes: []string{identity.ScopeRead}})

	r := mustOK(t, callAs(reader, t, c, "run_sql", map[string]any{"database_id": id, "sql": "SELECT n FROM t ORDER BY n"}), "a read token's SELECT")
	if r["row_count"] != float64(3) {
		t.Fatalf("a read token's SELECT: %v", r)
	}
	w := callAs(reader, t, c, "run_sql", map[string]any{"database_id": id, "sql": "INSERT INTO t VALUES (42)", "read_only": false})
	if w.Code != "FORBIDDEN" {
		t.Fatalf("a read token's run_sql write: %s", w)
	}
	m := callAs(reader, t, c, "apply_migration", map[string]any{"database_id": id, "name": "add_u", "sql": "CREATE TABLE u (n int)"})
	if m.Code != "FORBIDDEN" {
		t.Fatalf("a read token's apply_migration: %s", m)
	}
	if got := rows(t, uri); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("after a read token's writes: %v", got)
	}
	ledger := mustOK(t, callAs(reader, t, c, "list_migrations", map[string]any{"database_id": id}), "list_migrations")
	if ms, _ := ledger["migrations"].([]any); len(ms) != 0 {
		t.Fatalf("a read token applied a migration: %v", ledger)
	}

	// The same write by the write principal goes through.
	mustOK(t, call(t, c, "run_sql", map[string]any{"database_id": id, "sql": "INSERT INTO t VALUES (42)", "read_only": false}), "a write token's insert")
	if got := rows(t, uri); !slices.Equal(got, []int{1, 2, 3, 42}) {
		t.Fatalf("after the write token's insert: %v", got)
	}
}
