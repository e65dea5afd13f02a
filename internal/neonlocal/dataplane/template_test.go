package dataplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// A database made from the compacted template (compactTemplate) works as a fresh one does:
// its catalogs pass amcheck (indexes and heaps), template0 is still a closed, frozen template,
// a table is created, written and vacuumed (and gets its maps), CREATE DATABASE from template0
// and template1 works, and point-in-time restore of the branch (a child at a time, an undo in
// place) finds the rows of that time.
func TestCompactedTemplateWorksNormally(t *testing.T) {
	dp := newTestDataPlane(t)
	ctx := context.Background()
	if err := dp.ensureTemplate(ctx, dp.tk); err != nil { // New makes it in the background
		t.Fatal(err)
	}
	tmpl := dp.templateDir(dp.tk.Bin.Major)
	// initdb's VACUUM gives every catalog a visibility map; the rewrite drops them all.
	if m, _ := filepath.Glob(filepath.Join(tmpl, "base", "*", "*_vm")); len(m) > 0 {
		t.Fatalf("the template's databases keep %d visibility maps: not compacted", len(m))
	}
	if err := dp.CreateBranch(ctx, rootSpec("p", "owner", "npg_pw")); err != nil {
		t.Fatal(err)
	}
	main := dp.cluster("p", "br-p")
	exec := func(conn *pgx.Conn, stmts ...string) {
		t.Helper()
		for _, s := range stmts {
			if _, err := conn.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	one := func(conn *pgx.Conn, sql string, dst any) {
		t.Helper()
		if err := conn.QueryRow(ctx, sql).Scan(dst); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// amcheck (contrib, in PostgreSQL's packages) on every catalog index and heap.
	checkCatalogs := func(conn *pgx.Conn) {
		t.Helper()
		var has bool
		one(conn, "SELECT count(*) > 0 FROM pg_available_extensions WHERE name = 'amcheck'", &has)
		if !has {
			t.Log("amcheck is not installed: catalogs not verified")
			return
		}
		exec(conn, "CREATE EXTENSION IF NOT EXISTS amcheck",
			`SELECT bt_index_check(c.oid::regclass, true) FROM pg_class c JOIN pg_am a ON a.oid = c.relam
			 WHERE a.amname = 'btree' AND c.relkind = 'i' AND c.relnamespace IN ('pg_catalog'::regnamespace, 'pg_toast'::regnamespace)`)
		var bad int64
		one(conn, `SELECT count(*) FROM pg_class c, verify_heapam(c.oid) WHERE c.relkind IN ('r', 't')
			AND c.relnamespace IN ('pg_catalog'::regnamespace, 'pg_toast'::regnamespace)`, &bad)
		if bad != 0 {
			t.Fatalf("verify_heapam found %d corruptions in the catalogs", bad)
		}
	}

	var at time.Time
	withAdminConn(t, dp, main, "db_p", func(conn *pgx.Conn) {
		var allowConn, isTemplate bool
		var age int64
		if err := conn.QueryRow(ctx, "SELECT datallowconn, datistemplate, age(datfrozenxid) FROM pg_database WHERE datname = 'template0'").
			Scan(&allowConn, &isTemplate, &age); err != nil {
			t.Fatal(err)
		}
		if allowConn || !isTemplate || age > 1000 {
			t.Fatalf("template0: datallowconn %v, datistemplate %v, age(datfrozenxid) %d", allowConn, isTemplate, age)
		}
		checkCatalogs(conn)
		exec(conn,
			"CREATE TABLE t (n int PRIMARY KEY, s text)",
			"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g",
			"DELETE FROM t WHERE n % 2 = 0",
			"VACUUM (ANALYZE) t",
			"VACUUM", // the whole database, catalogs too: their maps come back
			"CREATE DATABASE from0 TEMPLATE template0",
			"CREATE DATABASE from1",
		)
		var fsm, vm int64
		one(conn, "SELECT pg_relation_size('t', 'fsm')", &fsm)
		one(conn, "SELECT pg_relation_size('t', 'vm')", &vm)
		if fsm == 0 || vm == 0 {
			t.Fatalf("after VACUUM t has a %d-byte free space map and a %d-byte visibility map", fsm, vm)
		}
		var n int64
		one(conn, "SELECT count(*) FROM t", &n)
		if n != 1000 {
			t.Fatalf("%d rows, want 1000", n)
		}
	})
	for _, db := range []string{"from0", "from1"} {
		withAdminConn(t, dp, main, db, func(conn *pgx.Conn) {
			exec(conn, "CREATE TABLE x AS SELECT g FROM generate_series(1, 100) g", "VACUUM x")
			var n int64
			one(conn, "SELECT count(*) FROM x", &n)
			if n != 100 {
				t.Fatalf("%s: %d rows, want 100", db, n)
			}
			checkCatalogs(conn)
		})
	}
	withAdminConn(t, dp, main, "db_p", func(conn *pgx.Conn) {
		time.Sleep(20 * time.Millisecond)
		at = time.Now()
		time.Sleep(20 * time.Millisecond)
		exec(conn, "INSERT INTO t SELECT g, 'late' FROM generate_series(5001, 5010) g")
	})
	count := func(c *cluster) int64 {
		var n int64
		withAdminConn(t, dp, c, "db_p", func(conn *pgx.Conn) { one(conn, "SELECT count(*) FROM t", &n) })
		return n
	}
	// A child at the time: replayed from main's first base backup (taken at its creation)
	// through main's archive.
	if err := dp.CreateBranch(ctx, neonlocal.BranchSpec{ProjectID: "p", BranchID: "br-then", ParentID: "br-p", ParentTime: at}); err != nil {
		t.Fatal(err)
	}
	if n := count(dp.cluster("p", "br-then")); n != 1000 {
		t.Fatalf("the child at the time sees %d rows, want 1000", n)
	}
	// An undo in place to the same time; the state before it is kept as a backup branch.
	if err := dp.RestoreBranch(ctx, neonlocal.RestoreSpec{ProjectID: "p", BranchID: "br-p", SourceBranchID: "br-p",
		Target: at, BackupBranchID: "br-p-old"}); err != nil {
		t.Fatal(err)
	}
	if n := count(main); n != 1000 {
		t.Fatalf("after the undo main sees %d rows, want 1000", n)
	}
	if n := count(dp.cluster("p", "br-p-old")); n != 1010 {
		t.Fatalf("the undo's backup branch sees %d rows, want 1010", n)
	}
	withAdminConn(t, dp, main, "from0", func(conn *pgx.Conn) {
		var n int64
		one(conn, "SELECT count(*) FROM x", &n)
		if n != 100 {
			t.Fatalf("after the undo from0 has %d rows, want 100", n)
		}
	})
}

// A new template replaces its major's older ones (an older neonguard's template/MAJOR, other
// settings or layouts), whose pools go at the same start; other majors' are left alone.
func TestNewTemplateReplacesItsMajorsOldOnes(t *testing.T) {
	pgtest.Require(t)
	ctx := context.Background()
	dir := filepath.Join(pgtest.ReachableDir(t), "pg")
	opts := Options{Dir: dir, Settings: map[string]string{"fsync": "off"}}
	dp, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	major := dp.tk.Bin.Major
	current := dp.templateDir(major)
	_ = dp.Close()
	if err := os.RemoveAll(current); err != nil {
		t.Fatal(err)
	}
	old := []string{strconv.Itoa(major), fmt.Sprintf("%d-wal1mb-owner", major)}
	other := fmt.Sprintf("%d-wal1mb-owner", major+100)
	for _, n := range append(old, other) {
		for _, d := range []string{filepath.Join(dir, "template", n, "base"), filepath.Join(dir, "pool", n, "1")} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	dp, err = New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	// New makes it in the background; this waits for it.
	if err := dp.ensureTemplate(ctx, dp.tk); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(current, "PG_VERSION")) {
		t.Fatal("no template after the start")
	}
	for _, n := range old {
		for _, d := range []string{filepath.Join(dir, "template", n), filepath.Join(dir, "pool", n)} {
			if exists(d) {
				t.Errorf("%s survived the new template", d)
			}
		}
	}
	if !exists(filepath.Join(dir, "template", other)) {
		t.Errorf("another major's template %s was removed", other)
	}
}
