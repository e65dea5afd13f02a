package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/pgtest"
)

// Benchmarks of the SQL tools on real PostgreSQL, through the real server wiring and mcp-go's
// in-process client (JSON encoding, MCP server and middleware, audit row, guard, the Neon
// client's loopback calls to the embedded emulator, and the connection to the endpoint through
// the local proxy with TLS). Like the data-plane benchmarks, each reports the median of its
// timed iterations as p50-ms. See docs/benchmarks.md.
//
//	go test -run '^$' -bench 'RunSQLSelect1|DirectPgxSelect1|DescribeSchema50' -benchtime 200x ./internal/app

// sqlbEnv is a server with one database whose main endpoint is running, the connection string
// get_connection_string gives for it, and the time spent in the emulator's API handlers.
type sqlbEnv struct {
	*dpbEnv
	db         dpbDB
	uri        string
	inEmulator atomic.Int64 // ns, summed over every request to the emulator's API
}

func sqlbNew(b *testing.B, name string) *sqlbEnv {
	b.Helper()
	pgtest.Require(b)
	e := &sqlbEnv{}
	timed := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			h.ServeHTTP(w, r)
			e.inEmulator.Add(int64(time.Since(start)))
		})
	}
	dir := pgtest.ReachableDir(b)
	a := newAppWith(b, timed, pgConfig(dir))
	e.dpbEnv = &dpbEnv{a: a, c: connect(b, a), dir: dir}
	e.db = e.create(b, name)
	e.uri = str(mustOK(b, call(b, e.c, "get_connection_string", map[string]any{"database_id": e.db.id}), "get_connection_string"), "connection_string")
	dpbExec(b, e.uri, "SELECT 1") // the endpoint is running from here on
	return e
}

// select1 calls run_sql `select 1` and checks it answered one row holding 1.
func (e *sqlbEnv) select1(b *testing.B) {
	r := mustOK(b, call(b, e.c, "run_sql", map[string]any{"database_id": e.db.id, "sql": "select 1"}), "run_sql")
	rows, _ := r["rows"].([]any)
	if len(rows) != 1 || fmt.Sprint(rows[0]) != "[1]" {
		b.Fatalf("run_sql select 1: %v", r)
	}
}

// directSelect1 is what run_sql does on the data plane, by hand: connect with the same
// connection string (TLS, SCRAM through the proxy), SELECT 1, close.
func directSelect1(b *testing.B, uri string) {
	conn := dpbConnect(b, uri)
	heldSelect1(b, conn)
	_ = conn.Close(context.Background())
}

func heldSelect1(b *testing.B, conn *pgx.Conn) {
	var one int
	if err := conn.QueryRow(context.Background(), "select 1").Scan(&one); err != nil || one != 1 {
		b.Fatalf("select 1: %d %v", one, err)
	}
}

// BenchmarkRunSQLSelect1: run_sql `select 1` on main's running endpoint. ns/op and p50-ms are
// run_sql's. Each iteration also runs, outside the timer, the same query directly with pgx on
// the same connection string, on a new connection (direct-connect-p50-ms: what a call that
// finds no kept connection pays) and on a connection held open (direct-held-p50-ms: what run_sql
// uses once the guard keeps the branch's connection), so that the comparison sees the same load. overhead-p50-ms is run_sql's
// p50 minus the new-connection p50; overhead-held-p50-ms minus the held-connection p50;
// emulator-p50-ms is the part of a run_sql call spent in the emulator's API handlers (the Neon
// calls the guard makes: project, branches, endpoints, connection string).
func BenchmarkRunSQLSelect1(b *testing.B) {
	e := sqlbNew(b, "select1")
	held := dpbConnect(b, e.uri)
	defer held.Close(context.Background())
	for range 5 { // warm up: the parser, pgx's caches, the page cache
		e.select1(b)
		directSelect1(b, e.uri)
		heldSelect1(b, held)
	}
	var ts, inEmu, direct, warm dpbTimes
	for b.Loop() {
		before := e.inEmulator.Load()
		start := time.Now()
		e.select1(b)
		ts = append(ts, time.Since(start))
		inEmu = append(inEmu, time.Duration(e.inEmulator.Load()-before))
		b.StopTimer()
		start = time.Now()
		directSelect1(b, e.uri)
		direct = append(direct, time.Since(start))
		start = time.Now()
		heldSelect1(b, held)
		warm = append(warm, time.Since(start))
		b.StartTimer()
	}
	if len(ts) == 0 {
		return
	}
	b.ReportMetric(dpbMS(ts.p50()), "p50-ms")
	b.ReportMetric(dpbMS(sqlbP99(ts)), "p99-ms")
	b.ReportMetric(dpbMS(inEmu.p50()), "emulator-p50-ms")
	b.ReportMetric(dpbMS(direct.p50()), "direct-connect-p50-ms")
	b.ReportMetric(dpbMS(warm.p50()), "direct-held-p50-ms")
	b.ReportMetric(dpbMS(ts.p50()-direct.p50()), "overhead-p50-ms")
	b.ReportMetric(dpbMS(ts.p50()-warm.p50()), "overhead-held-p50-ms")
}

// BenchmarkDirectPgxSelect1: the baseline alone, with pgx on the connection string
// get_connection_string gives: a new connection per query (connect), and one held open (held).
func BenchmarkDirectPgxSelect1(b *testing.B) {
	e := sqlbNew(b, "direct")
	b.Run("connect", func(b *testing.B) {
		var ts dpbTimes
		for b.Loop() {
			start := time.Now()
			directSelect1(b, e.uri)
			ts = append(ts, time.Since(start))
		}
		sqlbReport(b, ts)
	})
	b.Run("held", func(b *testing.B) {
		conn := dpbConnect(b, e.uri)
		defer conn.Close(context.Background())
		var ts dpbTimes
		for b.Loop() {
			start := time.Now()
			heldSelect1(b, conn)
			ts = append(ts, time.Since(start))
		}
		sqlbReport(b, ts)
	})
}

// BenchmarkDescribeSchema50Tables: describe_schema on a public schema of 50 tables, each with
// four columns (one with a default), a primary key, a foreign key to the previous table (the
// first to itself), a unique constraint and an index. result-bytes is the structured answer's
// size as JSON (what an agent pays tokens for).
func BenchmarkDescribeSchema50Tables(b *testing.B) {
	e := sqlbNew(b, "schema50")
	var ddl []string
	for i := range 50 {
		ref := fmt.Sprintf("t%02d", max(i-1, 0))
		ddl = append(ddl, fmt.Sprintf(`CREATE TABLE t%02d (
  id bigint PRIMARY KEY,
  name text NOT NULL UNIQUE,
  parent_id bigint REFERENCES %s (id),
  created_at timestamptz NOT NULL DEFAULT now()
)`, i, ref), fmt.Sprintf("CREATE INDEX t%02d_created_at ON t%02d (created_at)", i, i))
	}
	dpbExec(b, e.uri, strings.Join(ddl, ";\n"))
	args := map[string]any{"database_id": e.db.id}
	check := func() int {
		r := mustOK(b, call(b, e.c, "describe_schema", args), "describe_schema")
		tables, _ := r["tables"].([]any)
		if len(tables) != 50 {
			b.Fatalf("describe_schema: %d tables, want 50", len(tables))
		}
		t0 := tables[len(tables)-1].(map[string]any)
		for _, k := range []string{"columns", "primary_key", "foreign_keys", "unique", "indexes"} {
			if v, _ := t0[k].([]any); len(v) == 0 {
				b.Fatalf("describe_schema: table %v has no %s", t0["name"], k)
			}
		}
		out, _ := json.Marshal(r)
		return len(out)
	}
	size := check()
	var ts, inEmu dpbTimes
	for b.Loop() {
		before := e.inEmulator.Load()
		start := time.Now()
		mustOK(b, call(b, e.c, "describe_schema", args), "describe_schema")
		ts = append(ts, time.Since(start))
		inEmu = append(inEmu, time.Duration(e.inEmulator.Load()-before))
	}
	if len(ts) == 0 {
		return
	}
	b.ReportMetric(dpbMS(ts.p50()), "p50-ms")
	b.ReportMetric(dpbMS(sqlbP99(ts)), "p99-ms")
	b.ReportMetric(dpbMS(inEmu.p50()), "emulator-p50-ms")
	b.ReportMetric(float64(size), "result-bytes")
}

// sqlbP99 is the 99th percentile (nearest rank) of the timed iterations.
func sqlbP99(ts dpbTimes) time.Duration {
	s := slices.Clone(ts)
	slices.Sort(s)
	return s[(len(s)*99+99)/100-1]
}

// sqlbReport reports p50-ms and p99-ms of the timed iterations.
func sqlbReport(b *testing.B, ts dpbTimes) {
	if len(ts) == 0 {
		return
	}
	b.ReportMetric(dpbMS(ts.p50()), "p50-ms")
	b.ReportMetric(dpbMS(sqlbP99(ts)), "p99-ms")
}
