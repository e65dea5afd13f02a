package dataplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/pgtest"
)

func rootSpec(project, role, password string) neonlocal.BranchSpec {
	return neonlocal.BranchSpec{ProjectID: project, BranchID: "br-" + project,
		RoleName: role, RolePassword: password, DatabaseName: "db_" + project}
}

// adminQuery runs a one-value query as the superuser on a branch's cluster.
func adminQuery[T any](t *testing.T, dp *DataPlane, c *cluster, db, sql string) T {
	t.Helper()
	var v T
	withAdminConn(t, dp, c, db, func(conn *pgx.Conn) {
		if err := conn.QueryRow(context.Background(), sql).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	})
	return v
}

// withAdminConn runs f on a superuser connection to db on a branch's cluster, woken for it.
func withAdminConn(t *testing.T, dp *DataPlane, c *cluster, db string, f func(conn *pgx.Conn)) {
	t.Helper()
	ctx := context.Background()
	p, err := c.hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.release()
	conn, err := dp.tk.Admin(ctx, c.socketDir(), p.Port, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	f(conn)
}

// A new project is the template (a pooled copy of it) with its role and database renamed and
// its own password:
// the template's role and database are gone, the password is the project's (a SCRAM
// verifier of its own), and another project's password does not open it.
func TestNewDatabaseGetsItsOwnRoleFromTheTemplate(t *testing.T) {
	dp := newTestDataPlane(t)
	ctx := context.Background()
	for _, p := range []string{"p1", "p2"} {
		if p == "p2" { // p2 is a copy the pool made after p1 took the template
			for deadline := time.Now().Add(30 * time.Second); dp.poolReady(dp.poolDir(dp.tk)) < poolSize; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the pool never refilled")
				}
			}
		}
		if err := dp.CreateBranch(ctx, rootSpec(p, "owner_"+p, "npg_pw_"+p)); err != nil {
			t.Fatal(err)
		}
	}
	dp.pool.mu.Lock()
	hits := dp.pool.hits
	dp.pool.mu.Unlock()
	if hits != 1 {
		t.Fatalf("%d projects made from the pool, want 1 (p2)", hits)
	}
	c1, c2 := dp.cluster("p1", "br-p1"), dp.cluster("p2", "br-p2")
	if got := adminQuery[string](t, dp, c1, "", "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%'"); got != "neonguard_admin,owner_p1" {
		t.Fatalf("roles of p1: %s", got)
	}
	if got := adminQuery[string](t, dp, c1, "", "SELECT string_agg(datname || ':' || pg_get_userbyid(datdba), ',' ORDER BY datname) FROM pg_database WHERE NOT datistemplate"); got != "db_p1:owner_p1,postgres:neonguard_admin" {
		t.Fatalf("databases of p1: %s", got)
	}
	v1 := adminQuery[string](t, dp, c1, "", "SELECT rolpassword FROM pg_authid WHERE rolname = 'owner_p1'")
	v2 := adminQuery[string](t, dp, c2, "", "SELECT rolpassword FROM pg_authid WHERE rolname = 'owner_p2'")
	if len(v1) < 10 || v1[:13] != "SCRAM-SHA-256" || v1 == v2 {
		t.Fatalf("verifiers: %q %q", v1, v2)
	}
	p, err := c1.hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.release()
	login := func(password string) error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, fmt.Sprintf("host=127.0.0.1 port=%d user=owner_p1 password=%s dbname=db_p1 sslmode=require", p.Port, password))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(cctx, "CREATE TABLE mine (n int)")
		return err
	}
	if err := login("npg_pw_p1"); err != nil {
		t.Fatalf("the project's password: %v", err)
	}
	if err := login("npg_pw_p2"); err == nil {
		t.Fatal("another project's password logged in")
	}
}

// An empty database (its root branch: data, first base backup, WAL archive) and an empty
// child branch stay small on disk: 1 MB WAL segments, a compacted template, setup runs that
// leave one segment, and base backups linked to the template's or the parent's unchanged
// files and to archived WAL.
func TestEmptyDatabaseDiskBound(t *testing.T) {
	dp := newTestDataPlane(t)
	ctx := context.Background()
	if err := dp.CreateBranch(ctx, rootSpec("p", "owner", "npg_pw")); err != nil {
		t.Fatal(err)
	}
	if err := dp.CreateBranch(ctx, neonlocal.BranchSpec{ProjectID: "p", BranchID: "br-child", ParentID: "br-p"}); err != nil {
		t.Fatal(err)
	}
	// Issue 13's target, in MB of 10^6 bytes as the benchmark's figures are read. Four
	// compacted databases of ~6.5 MB each (template0, template1, postgres and the project's)
	// are ~26 MB of data alone; the rest is one WAL segment (1 MB) in the data dir, one in
	// the first base backup, and the catalog files the hand-out changed.
	const bound = 30_000_000
	db, br := diskBytes(t, dp.projectDir("p"))-diskBytes(t, dp.branchDir("p", "br-child")), diskBytes(t, dp.branchDir("p", "br-child"))
	t.Logf("empty database %.2f MB, empty branch %.2f MB", float64(db)/1e6, float64(br)/1e6)
	if db > bound || br > bound {
		t.Fatalf("empty database %d bytes, empty branch %d bytes: over %d", db, br, bound)
	}
}

// A branch is durable when CreateBranch returns: neonguard and every postgres killed right
// after it (no clean stop, no Close), a new data plane on the same dir finds the branch with
// its parent's rows, and the parent's too.
func TestBranchSurvivesKillAfterCreate(t *testing.T) {
	pgtest.Require(t)
	d := pgtest.ReachableDir(t)
	ctx := context.Background()
	dir := filepath.Join(d, "pg")
	dp, err := New(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := dp.CreateBranch(ctx, rootSpec("p", "owner", "npg_pw")); err != nil {
		t.Fatal(err)
	}
	main := dp.cluster("p", "br-p")
	p, err := main.hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dp.tk.Admin(ctx, main.socketDir(), p.Port, "db_p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t AS SELECT g FROM generate_series(1, 5000) g"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	main.release()
	if _, err := main.want(ctx); err != nil { // the parent runs, as with an agent on it
		t.Fatal(err)
	}
	if err := dp.CreateBranch(ctx, neonlocal.BranchSpec{ProjectID: "p", BranchID: "br-dev", ParentID: "br-p"}); err != nil {
		t.Fatal(err)
	}
	// The kill: every postmaster of the first data plane, at once, then the data plane is
	// abandoned (its Close would stop them cleanly).
	dp.mu.Lock()
	for _, c := range dp.clusters {
		if p := c.proc; p != nil {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
	}
	dp.mu.Unlock()
	t.Cleanup(func() { _ = dp.Close() })

	dp2, err := New(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dp2.Close() })
	for _, b := range []string{"br-dev", "br-p"} {
		if n := adminQuery[int64](t, dp2, dp2.cluster("p", b), "db_p", "SELECT count(*) FROM t"); n != 5000 {
			t.Fatalf("%s after the kill: %d rows, want 5000", b, n)
		}
	}
}

// A start after a crash drops the pool's half-made copies and the pools of templates no
// longer in use, and keeps its finished copies.
func TestPoolCleanedAtStart(t *testing.T) {
	pgtest.Require(t)
	d := pgtest.ReachableDir(t)
	ctx := context.Background()
	dir := filepath.Join(d, "pg")
	dp := openTestDataPlane(t, dir)
	if err := dp.ensureTemplate(ctx, dp.tk); err != nil { // New makes it in the background
		t.Fatal(err)
	}
	pd := dp.poolDir(dp.tk)
	if err := dp.tk.CopyCluster(ctx, dp.templateDir(dp.tk.Bin.Major), filepath.Join(pd, "1")); err != nil {
		t.Fatal(err)
	}
	stale := []string{filepath.Join(pd, "2.tmp"), filepath.Join(dir, "pool", "15-old", "1")}
	for _, s := range stale {
		if err := os.MkdirAll(s, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	_ = dp.Close()
	dp = openTestDataPlane(t, dir)
	defer dp.Close()
	for _, s := range stale {
		if exists(s) {
			t.Errorf("%s survived the start", s)
		}
	}
	if n := dp.poolReady(pd); n != 1 {
		t.Fatalf("%d ready copies after the start, want 1", n)
	}
	if err := dp.CreateBranch(ctx, rootSpec("p", "owner", "npg_pw")); err != nil {
		t.Fatal(err)
	}
	dp.pool.mu.Lock()
	defer dp.pool.mu.Unlock()
	if dp.pool.hits != 1 {
		t.Fatal("the finished copy was not handed out")
	}
}
