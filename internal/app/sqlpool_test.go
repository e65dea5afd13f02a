package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// The guard keeps SQL connections for a short idle time (internal/guard/sqlpool.go). These
// tests run on real PostgreSQL through the whole server: a kept connection is reused, carries
// nothing from one call to the next, never serves another database or branch, survives its
// compute restarting, and is closed once idle for the idle time.

// newPoolApp is newAppWith on PostgreSQL with the guard's SQL idle time set.
func newPoolApp(t *testing.T, idle time.Duration) (*app.App, *client.Client) {
	t.Helper()
	pgtest.Require(t)
	cfg := config.Default()
	pgConfig(pgtest.ReachableDir(t))(&cfg)
	cfg.Local.OperationDelay = 5 * time.Millisecond
	a, err := app.New(context.Background(), cfg, app.Options{
		Logger:       slog.New(slog.DiscardHandler),
		WrapEmulator: spectestWrap(t),
		NeonClient: func(c *neon.Config) {
			c.BaseBackoff, c.MaxBackoff = time.Millisecond, 20*time.Millisecond
			c.OperationPoll = 2 * time.Millisecond
			c.EffectPause = 10 * time.Millisecond
			c.RequestsPerSecond = 10000
		},
		SQLIdleTimeout: idle,
	})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, connect(t, a)
}

// sqlRow runs run_sql and returns its only row.
func sqlRow(t *testing.T, c *client.Client, args map[string]any) []any {
	t.Helper()
	r := mustOK(t, call(t, c, "run_sql", args), fmt.Sprint("run_sql ", args["sql"]))
	rows, _ := r["rows"].([]any)
	if len(rows) != 1 {
		t.Fatalf("run_sql %v: %d rows: %v", args["sql"], len(rows), r)
	}
	return rows[0].([]any)
}

// backendAlive says whether PostgreSQL still has the backend pid (seen through uri).
func backendAlive(t *testing.T, uri string, pid float64) bool {
	t.Helper()
	conn := connectDB(t, uri)
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", int(pid)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestSQLConnectionsAreReusedWithoutState(t *testing.T) {
	_, c := newPoolApp(t, time.Minute)
	id, uri := createDBWithURI(t, c, "reuse")
	insert(t, uri, 1, 3)
	pid := "SELECT pg_backend_pid()"
	read := map[string]any{"database_id": id, "sql": pid}

	// Reuse: two quick calls are served by one backend.
	p1 := sqlRow(t, c, read)[0]
	if p2 := sqlRow(t, c, read)[0]; p2 != p1 {
		t.Fatalf("two quick reads ran on backends %v and %v: the connection was not kept", p1, p2)
	}

	// No state outlives a call on a kept connection: a write (committed) that changes settings,
	// makes a temporary table, takes a session advisory lock, prepares a statement and listens.
	write := func(sql string) []any {
		return sqlRow(t, c, map[string]any{"database_id": id, "sql": sql, "read_only": false})
	}
	state := `SELECT pg_backend_pid(), current_setting('search_path'), current_setting('statement_timeout'),
  to_regclass('pg_temp.leak') IS NOT NULL,
  (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
  (SELECT count(*) FROM pg_prepared_statements),
  (SELECT count(*) FROM pg_listening_channels()),
  current_user = session_user`
	before := write(state)
	if before[3] != false || before[4] != float64(0) || before[5] != float64(0) || before[6] != float64(0) || before[7] != true {
		t.Fatalf("a new connection's state: %v", before)
	}
	leaker := write(`SET search_path = pg_catalog; SET statement_timeout = 0; CREATE TEMP TABLE leak (x int);
SELECT pg_advisory_lock(42); PREPARE leak_stmt AS SELECT 1; LISTEN leak_channel; SELECT pg_backend_pid()`)
	if leaker[0] != before[0] {
		t.Fatalf("the write ran on backend %v, not on the kept %v: the test proves nothing", leaker[0], before[0])
	}
	after := write(state)
	if after[0] != before[0] {
		t.Fatalf("the check ran on backend %v, not on the kept %v: the test proves nothing", after[0], before[0])
	}
	if !slices.Equal(after[1:], before[1:]) {
		t.Fatalf("state leaked from one call to the next on a kept connection:\nbefore %v\nafter  %v", before, after)
	}

	// Notices belong to the call that raised them, on a kept connection too.
	for _, word := range []string{"first", "second"} {
		n := mustOK(t, call(t, c, "run_sql", map[string]any{"database_id": id, "read_only": false, "confirm": true,
			"sql": "DO $$ BEGIN RAISE NOTICE '" + word + "'; END $$"}), "notice")
		if got := fmt.Sprint(n["notices"]); got != "[NOTICE: "+word+"]" {
			t.Fatalf("notices of the call that raised %q: %s", word, got)
		}
	}
	if n := mustOK(t, call(t, c, "run_sql", map[string]any{"database_id": id, "read_only": false, "sql": "SELECT pg_backend_pid()"}), "after notices"); n["notices"] != nil || n["rows"].([]any)[0].([]any)[0] != before[0] {
		t.Fatalf("the next call on the kept connection %v: %v", before[0], n)
	}

	// A read that takes a session advisory lock (a ROLLBACK does not release it).
	lockPID := sqlRow(t, c, map[string]any{"database_id": id, "sql": "SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock(7)) l"})[0]
	got := sqlRow(t, c, map[string]any{"database_id": id,
		"sql": "SELECT pg_backend_pid(), (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())"})
	if got[0] != lockPID || got[1] != float64(0) {
		t.Fatalf("after a read that took an advisory lock on backend %v: backend %v holds %v advisory locks", lockPID, got[0], got[1])
	}

	// A failed call's connection is not kept: the next call does not see its aborted
	// transaction, and runs on another backend.
	if r := call(t, c, "run_sql", map[string]any{"database_id": id, "sql": "SELECT 1/0"}); r.Code != "INVALID_ARGUMENT" {
		t.Fatalf("division by zero: %s", r)
	}
	if p := sqlRow(t, c, read)[0]; p == got[0] {
		t.Fatalf("the connection of a failed call was reused (backend %v)", p)
	}

	// The other SQL tools use kept connections too, and still read what they should.
	mustOK(t, call(t, c, "apply_migration", map[string]any{"database_id": id, "name": "m1", "sql": "CREATE TABLE m1 (id int)"}), "apply_migration")
	mustOK(t, call(t, c, "apply_migration", map[string]any{"database_id": id, "name": "m1", "sql": "CREATE TABLE m1 (id int)"}), "apply_migration again")
	for range 2 {
		list := mustOK(t, call(t, c, "list_migrations", map[string]any{"database_id": id}), "list_migrations")
		if ms := list["migrations"].([]any); len(ms) != 1 {
			t.Fatalf("list_migrations: %v", list)
		}
		s := mustOK(t, call(t, c, "describe_schema", map[string]any{"database_id": id}), "describe_schema")
		if ts := s["tables"].([]any); len(ts) != 2 {
			t.Fatalf("describe_schema: %v", s)
		}
	}
}

// Connections are kept per connection string: calls alternating between two databases and a
// dev branch each see their own data.
func TestSQLConnectionsAreNeverSharedAcrossBranches(t *testing.T) {
	_, c := newPoolApp(t, time.Minute)
	a, uriA := createDBWithURI(t, c, "tenant-a")
	b, uriB := createDBWithURI(t, c, "tenant-b")
	insert(t, uriA, 1, 1)
	insert(t, uriB, 2, 3)
	mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": a, "name": "dev"}), "create_dev_branch")
	mustOK(t, call(t, c, "run_sql", map[string]any{"database_id": a, "branch": "dev", "sql": "INSERT INTO t VALUES (5)", "read_only": false}), "insert on dev")
	sum := func(db, branch string) any {
		args := map[string]any{"database_id": db, "sql": "SELECT sum(n) FROM t"}
		if branch != "" {
			args["branch"] = branch
		}
		return sqlRow(t, c, args)[0]
	}
	for range 3 {
		for _, tc := range []struct {
			db, branch string
			want       string
		}{{a, "", "1"}, {b, "", "5"}, {a, "dev", "6"}} {
			if got := fmt.Sprint(sum(tc.db, tc.branch)); got != tc.want {
				t.Fatalf("sum on %s %q: %s, want %s", tc.db, tc.branch, got, tc.want)
			}
		}
	}
}

// A kept connection found dead on its first use (its backend was killed behind the guard's
// back: no eviction, and within a second, so no ping) is replaced once: not a failed call.
func TestSQLConnectionsSurviveTheirBackendDying(t *testing.T) {
	_, c := newPoolApp(t, time.Minute)
	id, uri := createDBWithURI(t, c, "restart")
	insert(t, uri, 1, 3)
	read := map[string]any{"database_id": id, "sql": "SELECT pg_backend_pid(), count(*) FROM t"}
	write := map[string]any{"database_id": id, "sql": "SELECT pg_backend_pid()", "read_only": false}
	pr, pw := sqlRow(t, c, read)[0], sqlRow(t, c, write)[0]
	conn := connectDB(t, uri)
	exec(t, conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ($1, $2)", int(pr.(float64)), int(pw.(float64)))
	for deadline := time.Now().Add(5 * time.Second); backendAlive(t, uri, pr.(float64)) || backendAlive(t, uri, pw.(float64)); {
		if time.Now().After(deadline) {
			t.Fatal("pg_terminate_backend did not end the backends")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := sqlRow(t, c, read); got[0] == pr || got[1] != float64(3) {
		t.Fatalf("after its backend was killed, a read ran on %v: %v", pr, got)
	}
	if got := sqlRow(t, c, write); got[0] == pw {
		t.Fatalf("after its backend was killed, a write ran on it: %v", got)
	}
	mustOK(t, call(t, c, "describe_schema", map[string]any{"database_id": id}), "describe_schema")
}

// undo_to_time and restore_checkpoint restart main's compute; they evict its kept connections,
// and every SQL tool works at once after them.
func TestSQLConnectionsSurviveRestores(t *testing.T) {
	_, c := newPoolApp(t, time.Minute)
	id, uri := createDBWithURI(t, c, "restore")
	insert(t, uri, 1, 3)
	read := map[string]any{"database_id": id, "sql": "SELECT pg_backend_pid(), count(*) FROM t"}
	write := map[string]any{"database_id": id, "sql": "SELECT pg_backend_pid()", "read_only": false}
	time.Sleep(1100 * time.Millisecond)
	at := serverNow(t, uri)
	time.Sleep(1100 * time.Millisecond)
	mustOK(t, call(t, c, "checkpoint", map[string]any{"database_id": id, "name": "three"}), "checkpoint")
	mustOK(t, call(t, c, "run_sql", map[string]any{"database_id": id, "sql": "INSERT INTO t VALUES (4)", "read_only": false}), "insert")
	sqlRow(t, c, read)
	mustOK(t, call(t, c, "describe_schema", map[string]any{"database_id": id}), "describe_schema")
	mustOK(t, call(t, c, "undo_to_time", map[string]any{"database_id": id, "timestamp": at.Format(time.RFC3339Nano)}), "undo_to_time")
	if got := sqlRow(t, c, read); got[1] != float64(3) {
		t.Fatalf("after undo_to_time: %v", got)
	}
	sqlRow(t, c, write)
	mustOK(t, call(t, c, "list_migrations", map[string]any{"database_id": id}), "list_migrations after undo_to_time")
	mustOK(t, call(t, c, "run_sql", map[string]any{"database_id": id, "sql": "INSERT INTO t VALUES (5)", "read_only": false}), "insert")
	mustOK(t, call(t, c, "restore_checkpoint", map[string]any{"database_id": id, "checkpoint": "three"}), "restore_checkpoint")
	if got := sqlRow(t, c, read); got[1] != float64(3) {
		t.Fatalf("after restore_checkpoint: %v", got)
	}
	sqlRow(t, c, write)
	mustOK(t, call(t, c, "describe_schema", map[string]any{"database_id": id}), "describe_schema after restore_checkpoint")
}

// A kept connection is closed once idle for the idle time (200 ms here), and the next call
// connects anew.
func TestSQLConnectionsCloseWhenIdle(t *testing.T) {
	a, c := newPoolApp(t, 200*time.Millisecond)
	id, uri := createDBWithURI(t, c, "idle")
	read := map[string]any{"database_id": id, "sql": "SELECT pg_backend_pid()"}
	pid := sqlRow(t, c, read)[0].(float64)
	if !backendAlive(t, uri, pid) {
		t.Fatalf("backend %v closed right after its call: the connection was not kept", pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for backendAlive(t, uri, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("backend %v still open 10 s after its call, with an idle time of 200 ms", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p := sqlRow(t, c, read)[0].(float64); p == pid {
		t.Fatalf("a closed connection was used again")
	}
	// Closing the app closes the kept connections.
	p := sqlRow(t, c, read)[0].(float64)
	if err := a.Guard.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); backendAlive(t, uri, p); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("backend %v still open 5 s after the guard closed", p)
		}
	}
}
