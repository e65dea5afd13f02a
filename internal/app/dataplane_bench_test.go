package app_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// Benchmarks of the local data plane: the tools that move real PostgreSQL data, through the
// real server wiring (newAppWith + the in-process MCP client), on real PostgreSQL, with the
// default config except local.postgres=on and a data dir PostgreSQL's user can reach. The
// emulator's operation delay is put back to its default (newAppWith shortens it for tests),
// so the figures are what an agent waits for.
//
// Every benchmark reports the median of its timed iterations as p50-ms (and the slowest as
// max-ms). Run them with a fixed count, e.g.
//
//	go test -run '^$' -bench DataPlane -benchtime 5x ./internal/app
//
// and NEONGUARD_TEST_LOG=1 for the server's debug log (initdb, copies, base backups,
// postgres starts with their elapsed times). See docs/benchmarks.md.

// dpbEnv is one benchmark's server.
type dpbEnv struct {
	a     *app.App
	c     *client.Client
	dir   string        // the app's data dir
	newIn time.Duration // app.New, including the template's initdb
}

func dpbNew(b *testing.B, mods ...func(*config.Config)) *dpbEnv {
	b.Helper()
	pgtest.Require(b)
	dir := pgtest.ReachableDir(b)
	start := time.Now()
	a := newAppWith(b, nil, append([]func(*config.Config){pgConfig(dir), func(c *config.Config) {
		c.Local.OperationDelay = config.Default().Local.OperationDelay
	}}, mods...)...)
	return &dpbEnv{a: a, c: connect(b, a), dir: dir, newIn: time.Since(start)}
}

// dpbDB is a database made by create_database.
type dpbDB struct {
	id, mainBranch, uri string
}

func (e *dpbEnv) create(b *testing.B, name string) dpbDB {
	b.Helper()
	r := mustOK(b, call(b, e.c, "create_database", map[string]any{"name": name}), "create_database")
	return dpbDB{id: str(r, "database_id"), mainBranch: str(r, "main_branch_id"), uri: str(r, "connection_string")}
}

// dataDir is where the data plane keeps a branch's cluster (dataplane.branchDir + "data").
func (e *dpbEnv) dataDir(projectID, branchID string) string {
	return filepath.Join(e.dir, "pg", "projects", projectID, "branches", branchID, "data")
}

func (e *dpbEnv) api(b *testing.B) *neon.Client {
	b.Helper()
	api, err := neon.New(neon.Config{BaseURL: e.a.EmulatorURL, APIKey: e.a.Emulator.Credentials().FreeOrgAPIKey})
	if err != nil {
		b.Fatal(err)
	}
	return api
}

// suspend suspends the database's endpoint through the emulator's API and waits until GET
// says it is idle with nothing pending (the suspend runs as an operation). current_state
// alone is not enough: after a wake on connect the stored state is still the previous
// suspend's "idle", and while an operation is pending GET reports the stored state, so a
// second suspend would look done before the data plane has stopped anything.
func (e *dpbEnv) suspend(b *testing.B, api *neon.Client, db dpbDB) {
	b.Helper()
	eps, err := api.ListEndpoints(context.Background(), db.id)
	if err != nil || len(eps) != 1 {
		b.Fatalf("endpoints: %v %v", eps, err)
	}
	if err := suspendEndpoint(e.a, e.a.Emulator.Credentials().FreeOrgAPIKey, db.id, eps[0].ID); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		eps, err := api.ListEndpoints(context.Background(), db.id)
		if err == nil && eps[0].CurrentState == neon.EndpointStateIdle && eps[0].PendingState == "" {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("endpoint never became idle: %v %v", eps, err)
		}
	}
}

func dpbConnect(tb testing.TB, uri string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		tb.Fatalf("connect %s: %v", neon.Redact(uri), err)
	}
	return conn
}

// dpbExec runs statements on a connection of its own.
func dpbExec(tb testing.TB, uri string, stmts ...string) {
	tb.Helper()
	conn := dpbConnect(tb, uri)
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
}

// dpbQuery returns the first column of a one-row query, scanned into T.
func dpbQuery[T any](tb testing.TB, uri, sql string) T {
	tb.Helper()
	conn := dpbConnect(tb, uri)
	defer conn.Close(context.Background())
	var v T
	if err := conn.QueryRow(context.Background(), sql).Scan(&v); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	return v
}

// dpbTimes collects the timed part of each iteration.
type dpbTimes []time.Duration

func dpbMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (ts dpbTimes) p50() time.Duration {
	s := slices.Clone(ts)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (ts dpbTimes) report(b *testing.B) {
	if len(ts) == 0 {
		return
	}
	b.ReportMetric(dpbMS(ts.p50()), "p50-ms")
	b.ReportMetric(dpbMS(slices.Max(ts)), "max-ms")
	b.Logf("iterations (ms): %v", ts.msList())
}

func (ts dpbTimes) msList() []string {
	out := make([]string, len(ts))
	for i, d := range ts {
		out[i] = strconv.FormatFloat(dpbMS(d), 'f', 0, 64)
	}
	return out
}

// BenchmarkDataPlaneCreateDatabase: create_database, each iteration a new name. A new root
// branch is a copy of the template cluster plus a private start to create the role and
// database, a base backup (the branch's first restore point), and the endpoint.
// first-ms is the app's first create (cold page cache for the template); app-new-ms is
// app.New, which runs the template's initdb (once per data dir and PostgreSQL major).
func BenchmarkDataPlaneCreateDatabase(b *testing.B) {
	// The pro tier: the free tier's 3 databases per tenant end the loop after two.
	e := dpbNew(b, func(c *config.Config) { c.Tier = "pro" })
	start := time.Now()
	first := e.create(b, "bench-0")
	firstIn := time.Since(start)
	dpbExec(b, first.uri, "SELECT 1")
	var ts dpbTimes
	for i := 1; b.Loop(); i++ {
		start := time.Now()
		e.create(b, fmt.Sprintf("bench-%d", i))
		ts = append(ts, time.Since(start))
	}
	ts.report(b)
	b.ReportMetric(dpbMS(firstIn), "first-ms")
	b.ReportMetric(dpbMS(e.newIn), "app-new-ms")
}

// BenchmarkDataPlaneCheckpoint: checkpoint with replace=true (the free tier keeps one), so
// each iteration deletes the previous snapshot and makes a new one of the running main branch.
func BenchmarkDataPlaneCheckpoint(b *testing.B) {
	e := dpbNew(b)
	db := e.create(b, "cp")
	dpbExec(b, db.uri, "CREATE TABLE t (n int)", "INSERT INTO t SELECT generate_series(1, 1000)")
	args := map[string]any{"database_id": db.id, "name": "cp", "replace": true}
	start := time.Now()
	mustOK(b, call(b, e.c, "checkpoint", args), "checkpoint")
	firstIn := time.Since(start)
	var ts dpbTimes
	for b.Loop() {
		start := time.Now()
		mustOK(b, call(b, e.c, "checkpoint", args), "checkpoint")
		ts = append(ts, time.Since(start))
	}
	ts.report(b)
	b.ReportMetric(dpbMS(firstIn), "first-ms")
}

// BenchmarkDataPlaneDevBranch: create_dev_branch from main (running, as while an agent works
// on it). Each new branch is deleted outside the timer so the free tier's 10 branches last.
func BenchmarkDataPlaneDevBranch(b *testing.B) {
	e := dpbNew(b)
	db := e.create(b, "dev")
	dpbExec(b, db.uri, "CREATE TABLE t (n int)", "INSERT INTO t SELECT generate_series(1, 1000)")
	var ts dpbTimes
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("dev-%d", i)
		start := time.Now()
		r := mustOK(b, call(b, e.c, "create_dev_branch", map[string]any{"database_id": db.id, "name": name, "from": "main"}), "create_dev_branch")
		ts = append(ts, time.Since(start))
		b.StopTimer()
		if i == 0 { // the branch really holds main's data
			if n := dpbQuery[int64](b, str(r, "connection_string"), "SELECT count(*) FROM t"); n != 1000 {
				b.Fatalf("dev branch sees %d rows, want 1000", n)
			}
		}
		mustOK(b, call(b, e.c, "delete_dev_branch", map[string]any{"database_id": db.id, "branch": name}), "delete_dev_branch")
		b.StartTimer()
	}
	ts.report(b)
}

// BenchmarkDataPlaneUndo100MB: undo_to_time on a ~100 MB database. Each iteration inserts a
// row, notes the server's time, inserts another and undoes to that time; the backup branch
// the undo leaves is deleted outside the timer (free tier: 10 branches).
//
// first-ms is the first undo after the bulk load: its newest base backup is the one taken
// when the database was made, so recovery replays the whole load's WAL. Later undos start
// from the base backup the previous undo took.
func BenchmarkDataPlaneUndo100MB(b *testing.B) {
	e := dpbNew(b)
	db := e.create(b, "undo")
	start := time.Now()
	dpbExec(b, db.uri,
		"CREATE TABLE big AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 100000) g",
		"CREATE TABLE marks (n int)")
	fillIn := time.Since(start)
	size := dpbQuery[int64](b, db.uri, "SELECT pg_database_size(current_database())")
	if size < 90<<20 {
		b.Fatalf("database is %d bytes, want ~100 MB", size)
	}

	n := 0
	// undo runs one iteration; timed switches the benchmark's timer around the undo alone.
	undo := func(timed bool) time.Duration {
		if timed {
			b.StopTimer()
		}
		n += 2
		dpbExec(b, db.uri, fmt.Sprintf("INSERT INTO marks VALUES (%d)", n-1))
		at := dpbQuery[time.Time](b, db.uri, "SELECT now()").UTC()
		dpbExec(b, db.uri, fmt.Sprintf("INSERT INTO marks VALUES (%d)", n))
		if timed {
			b.StartTimer()
		}
		start := time.Now()
		r := mustOK(b, call(b, e.c, "undo_to_time", map[string]any{"database_id": db.id, "timestamp": at.Format(time.RFC3339Nano)}), "undo_to_time")
		took := time.Since(start)
		if timed {
			b.StopTimer()
		}
		if got := dpbQuery[int64](b, db.uri, "SELECT max(n) FROM marks"); got != int64(n-1) {
			b.Fatalf("after the undo to %s the last mark is %d, want %d", at.Format(time.RFC3339Nano), got, n-1)
		}
		backup := str(r["backup_branch"].(map[string]any), "name")
		mustOK(b, call(b, e.c, "delete_dev_branch", map[string]any{"database_id": db.id, "branch": backup}), "delete backup "+backup)
		if timed {
			b.StartTimer()
		}
		return took
	}
	first := undo(false)
	var ts dpbTimes
	for b.Loop() {
		ts = append(ts, undo(true))
	}
	ts.report(b)
	b.ReportMetric(dpbMS(first), "first-ms")
	b.ReportMetric(float64(size), "db-bytes")
	b.ReportMetric(dpbMS(fillIn), "fill-ms")
}

// BenchmarkDataPlaneColdStart: the first query on a suspended endpoint. Outside the timer the
// endpoint is suspended through the emulator's API until it is idle; timed: connect with the
// connection string (the proxy starts postgres) and SELECT 1.
func BenchmarkDataPlaneColdStart(b *testing.B) {
	e := dpbNew(b)
	db := e.create(b, "cold")
	dpbExec(b, db.uri, "CREATE TABLE t (n int)")
	api := e.api(b)
	var ts, warm dpbTimes
	for b.Loop() {
		b.StopTimer()
		e.suspend(b, api, db)
		b.StartTimer()
		start := time.Now()
		conn := dpbConnect(b, db.uri)
		var one int
		if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
			b.Fatalf("SELECT 1: %v %v", one, err)
		}
		ts = append(ts, time.Since(start))
		b.StopTimer()
		_ = conn.Close(context.Background())
		// The same on a running endpoint, for comparison (TLS, auth, proxy).
		start = time.Now()
		_ = dpbQuery[int](b, db.uri, "SELECT 1")
		warm = append(warm, time.Since(start))
		b.StartTimer()
	}
	ts.report(b)
	b.ReportMetric(dpbMS(warm.p50()), "warm-p50-ms")
}

// BenchmarkDataPlaneSuspend: what a suspended endpoint holds. Each iteration wakes the
// endpoint (outside the timer), measures the cluster's processes, then times the suspend
// (API call until GET says idle) and measures again. The processes of a branch are found by
// their working directory (postgres and its children run in the data dir) or the
// postmaster's -D argument. RSS counts shared memory once per process that touched it; PSS
// splits it between them, so pss-bytes-running is the cluster's real footprint.
// go-heap-delta-bytes is the Go heap (after GC) a second database holds once suspended, its
// control-plane state and proxy listener included; go-heap-drift-bytes is the change over
// the wake/suspend cycles.
func BenchmarkDataPlaneSuspend(b *testing.B) {
	e := dpbNew(b)
	api := e.api(b)
	// A first database warms every lazy allocation (clients, pools, caches) up.
	other := e.create(b, "other")
	dpbExec(b, other.uri, "SELECT 1")
	e.suspend(b, api, other)
	heap0 := dpbHeap()

	db := e.create(b, "sleepy")
	dpbExec(b, db.uri, "CREATE TABLE t (n int)", "INSERT INTO t SELECT generate_series(1, 1000)")
	e.suspend(b, api, db)
	heap1 := dpbHeap()
	dir := e.dataDir(db.id, db.mainBranch)
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		b.Fatalf("branch data dir: %v", err)
	}

	var ts dpbTimes
	var running, suspended []dpbProcs
	for b.Loop() {
		b.StopTimer()
		if n := dpbQuery[int64](b, db.uri, "SELECT count(*) FROM t"); n != 1000 {
			b.Fatalf("after wake: %d rows", n)
		}
		time.Sleep(200 * time.Millisecond) // let the background processes settle
		running = append(running, dpbScan(b, dir))
		b.StartTimer()
		start := time.Now()
		e.suspend(b, api, db)
		ts = append(ts, time.Since(start))
		b.StopTimer()
		suspended = append(suspended, dpbScan(b, dir))
		b.StartTimer()
	}
	heap2 := dpbHeap()
	ts.report(b)
	if len(running) == 0 {
		return
	}
	mid := func(ps []dpbProcs, f func(dpbProcs) int64) float64 {
		vs := make([]int64, len(ps))
		for i, p := range ps {
			vs[i] = f(p)
		}
		slices.Sort(vs)
		return float64(vs[len(vs)/2])
	}
	worst := func(ps []dpbProcs, f func(dpbProcs) int64) float64 {
		var m int64
		for _, p := range ps {
			m = max(m, f(p))
		}
		return float64(m)
	}
	b.ReportMetric(mid(running, func(p dpbProcs) int64 { return int64(p.n) }), "procs-running")
	b.ReportMetric(mid(running, func(p dpbProcs) int64 { return p.rss }), "rss-bytes-running")
	b.ReportMetric(mid(running, func(p dpbProcs) int64 { return p.pss }), "pss-bytes-running")
	b.ReportMetric(worst(suspended, func(p dpbProcs) int64 { return int64(p.n) }), "procs-suspended")
	b.ReportMetric(worst(suspended, func(p dpbProcs) int64 { return p.rss }), "rss-bytes-suspended")
	b.ReportMetric(float64(int64(heap1)-int64(heap0)), "go-heap-delta-bytes")
	b.ReportMetric(float64(int64(heap2)-int64(heap1)), "go-heap-drift-bytes")
	b.Logf("running: %+v", running[len(running)-1])
}

// dpbHeap is the live Go heap after a full collection.
func dpbHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// dpbProcs sums the processes of one cluster.
type dpbProcs struct {
	n        int
	rss, pss int64
	names    []string
}

// dpbScan finds the processes running in dataDir (cwd) or started with it (cmdline) and sums
// their VmRSS (/proc/PID/status) and Pss (/proc/PID/smaps_rollup).
func dpbScan(b *testing.B, dataDir string) dpbProcs {
	b.Helper()
	if d, err := filepath.EvalSymlinks(dataDir); err == nil {
		dataDir = d
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	var out dpbProcs
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		base := filepath.Join("/proc", ent.Name())
		cwd, _ := os.Readlink(filepath.Join(base, "cwd"))
		cmdline, _ := os.ReadFile(filepath.Join(base, "cmdline"))
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if cwd != dataDir && !slices.Contains(args, dataDir) {
			continue
		}
		rss := dpbKB(filepath.Join(base, "status"), "VmRSS:")
		if rss < 0 {
			continue // exited meanwhile, or a zombie
		}
		out.n++
		out.rss += rss
		out.pss += max(dpbKB(filepath.Join(base, "smaps_rollup"), "Pss:"), 0)
		out.names = append(out.names, strings.Join(args, " "))
	}
	return out
}

// dpbKB reads a "Key:   123 kB" line of a /proc file, in bytes; -1 when it is missing.
func dpbKB(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			fs := strings.Fields(rest)
			if len(fs) == 0 {
				return -1
			}
			kb, err := strconv.ParseInt(fs[0], 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// BenchmarkDataPlaneRestoreCheckpoint100MB: restore_checkpoint of a checkpoint of a ~100 MB
// database (a new branch from the snapshot takes main's place and endpoint). Pro tier: each
// restore leaves the replaced branch behind.
func BenchmarkDataPlaneRestoreCheckpoint100MB(b *testing.B) {
	e := dpbNew(b, func(c *config.Config) { c.Tier = "pro" })
	db := e.create(b, "restore")
	dpbExec(b, db.uri,
		"CREATE TABLE big AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 100000) g")
	mustOK(b, call(b, e.c, "checkpoint", map[string]any{"database_id": db.id, "name": "loaded"}), "checkpoint")
	dpbExec(b, db.uri, "INSERT INTO big SELECT g, 'later' FROM generate_series(100001, 100010) g")
	var ts dpbTimes
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		mustOK(b, call(b, e.c, "restore_checkpoint", map[string]any{"database_id": db.id, "checkpoint": "loaded"}), "restore_checkpoint")
		ts = append(ts, time.Since(start))
		if i == 0 {
			b.StopTimer()
			if n := dpbQuery[int64](b, db.uri, "SELECT count(*) FROM big"); n != 100000 {
				b.Fatalf("after the restore: %d rows, want 100000", n)
			}
			b.StartTimer()
		}
	}
	ts.report(b)
}
