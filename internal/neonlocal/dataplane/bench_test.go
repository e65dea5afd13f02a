package dataplane

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// BenchmarkDataPlane times the data plane's operations behind the MCP tools on real
// PostgreSQL with production durability (fsync on, synced copies), without the control
// plane's operation bookkeeping:
//
//   - create_database: a new project's root branch (CreateBranch without parent);
//   - checkpoint: a snapshot of the running main branch's head (CreateSnapshot);
//   - create_dev_branch: a child of the running 100 MB main branch (CreateBranch);
//   - undo_to_time: an in-place restore of the 100 MB branch to a time between two inserts
//     (RestoreBranch with a backup branch);
//   - restore_checkpoint: a new branch from a snapshot of the 100 MB branch (RestoreSnapshot).
//
// Each reports the median of its timed iterations as p50-ms. empty-db-bytes and
// empty-branch-bytes are what an empty database (project) and an empty child branch hold on
// disk (blocks allocated, a hard-linked file counted once). Run with a fixed count:
//
//	go test -run '^$' -bench DataPlane -benchtime 5x ./internal/neonlocal/dataplane
func BenchmarkDataPlane(b *testing.B) {
	pgtest.Require(b)
	d := pgtest.ReachableDir(b)
	ctx := context.Background()
	dp, err := New(ctx, Options{Dir: filepath.Join(d, "pg")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dp.Close() })
	root := func(project string) neonlocal.BranchSpec {
		return neonlocal.BranchSpec{ProjectID: project, BranchID: "br-" + project, PgVersion: 0,
			RoleName: "neondb_owner", RolePassword: "npg_" + project, DatabaseName: "neondb"}
	}

	b.Run("create_database", func(b *testing.B) {
		var ts benchTimes
		for i := 0; b.Loop(); i++ {
			p := fmt.Sprintf("cd%d", i)
			start := time.Now()
			if err := dp.CreateBranch(ctx, root(p)); err != nil {
				b.Fatal(err)
			}
			ts = append(ts, time.Since(start))
		}
		ts.report(b)
		b.ReportMetric(float64(diskBytes(b, dp.projectDir("cd0"))), "empty-db-bytes")
		// An empty child of the (stopped) empty root.
		if err := dp.CreateBranch(ctx, neonlocal.BranchSpec{ProjectID: "cd0", BranchID: "br-child", ParentID: "br-cd0"}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(diskBytes(b, dp.branchDir("cd0", "br-child"))), "empty-branch-bytes")
	})

	// The 100 MB database the other operations work on; main runs, as while an agent works.
	if err := dp.CreateBranch(ctx, root("big")); err != nil {
		b.Fatal(err)
	}
	main := dp.cluster("big", "br-big")
	execOn := func(c *cluster, stmts ...string) {
		b.Helper()
		p, err := c.hold(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer c.release()
		conn, err := dp.tk.Admin(ctx, c.socketDir(), p.Port, "neondb")
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		for _, s := range stmts {
			if _, err := conn.Exec(ctx, s); err != nil {
				b.Fatalf("%s: %v", s, err)
			}
		}
	}
	queryInt := func(c *cluster, sql string) int64 {
		b.Helper()
		p, err := c.hold(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer c.release()
		conn, err := dp.tk.Admin(ctx, c.socketDir(), p.Port, "neondb")
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int64
		if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	execOn(main,
		"CREATE TABLE big AS SELECT g, md5(g::text) || repeat('x', 960) AS pad FROM generate_series(1, 100000) g",
		"CREATE TABLE marks (n int)")
	size := queryInt(main, "SELECT pg_database_size(current_database())")
	if size < 90<<20 {
		b.Fatalf("database is %d bytes, want ~100 MB", size)
	}
	// Keep main running for the rest, as its endpoint would.
	if _, err := main.want(ctx); err != nil {
		b.Fatal(err)
	}
	// The history the undo starts from: a base backup after the load (as the periodic
	// backups or an earlier undo leave).
	if err := main.takeBackup(ctx); err != nil {
		b.Fatal(err)
	}

	b.Run("checkpoint", func(b *testing.B) {
		var ts benchTimes
		for i := 0; b.Loop(); i++ {
			id := fmt.Sprintf("snap-cp%d", i)
			start := time.Now()
			if err := dp.CreateSnapshot(ctx, neonlocal.SnapshotSpec{ProjectID: "big", SnapshotID: id, BranchID: "br-big"}); err != nil {
				b.Fatal(err)
			}
			ts = append(ts, time.Since(start))
			b.StopTimer()
			if err := dp.DeleteSnapshot(ctx, "big", id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		ts.report(b)
	})

	b.Run("create_dev_branch", func(b *testing.B) {
		var ts benchTimes
		for i := 0; b.Loop(); i++ {
			id := fmt.Sprintf("br-dev%d", i)
			start := time.Now()
			if err := dp.CreateBranch(ctx, neonlocal.BranchSpec{ProjectID: "big", BranchID: id, ParentID: "br-big"}); err != nil {
				b.Fatal(err)
			}
			ts = append(ts, time.Since(start))
			b.StopTimer()
			if i == 0 {
				if n := queryInt(dp.cluster("big", id), "SELECT count(*) FROM big"); n != 100000 {
					b.Fatalf("the branch sees %d rows, want 100000", n)
				}
			}
			if err := dp.DeleteBranch(ctx, "big", id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		ts.report(b)
		b.ReportMetric(float64(size), "db-bytes")
	})

	b.Run("undo_to_time", func(b *testing.B) {
		var ts benchTimes
		n := int64(0)
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			n += 2
			execOn(main, fmt.Sprintf("INSERT INTO marks VALUES (%d)", n-1))
			time.Sleep(10 * time.Millisecond)
			at := time.Now()
			time.Sleep(10 * time.Millisecond)
			execOn(main, fmt.Sprintf("INSERT INTO marks VALUES (%d)", n))
			backupID := fmt.Sprintf("br-undo%d", i)
			b.StartTimer()
			start := time.Now()
			if err := dp.RestoreBranch(ctx, neonlocal.RestoreSpec{ProjectID: "big", BranchID: "br-big",
				SourceBranchID: "br-big", Target: at, BackupBranchID: backupID}); err != nil {
				b.Fatal(err)
			}
			ts = append(ts, time.Since(start))
			b.StopTimer()
			if got := queryInt(main, "SELECT max(n) FROM marks"); got != n-1 {
				b.Fatalf("after the undo the last mark is %d, want %d", got, n-1)
			}
			if err := dp.DeleteBranch(ctx, "big", backupID); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		ts.report(b)
	})

	if err := dp.CreateSnapshot(ctx, neonlocal.SnapshotSpec{ProjectID: "big", SnapshotID: "snap-big", BranchID: "br-big"}); err != nil {
		b.Fatal(err)
	}
	b.Run("restore_checkpoint", func(b *testing.B) {
		var ts benchTimes
		for i := 0; b.Loop(); i++ {
			id := fmt.Sprintf("br-rs%d", i)
			start := time.Now()
			if err := dp.RestoreSnapshot(ctx, neonlocal.SnapshotSpec{ProjectID: "big", SnapshotID: "snap-big", BranchID: "br-big"}, id); err != nil {
				b.Fatal(err)
			}
			ts = append(ts, time.Since(start))
			b.StopTimer()
			if i == 0 {
				if n := queryInt(dp.cluster("big", id), "SELECT count(*) FROM big"); n != 100000 {
					b.Fatalf("the restored branch sees %d rows, want 100000", n)
				}
			}
			if err := dp.DeleteBranch(ctx, "big", id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		ts.report(b)
	})
}

type benchTimes []time.Duration

func (ts benchTimes) report(b *testing.B) {
	if len(ts) == 0 {
		return
	}
	s := slices.Clone(ts)
	slices.Sort(s)
	p50 := s[len(s)/2]
	if len(s)%2 == 0 {
		p50 = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	b.ReportMetric(float64(p50)/float64(time.Millisecond), "p50-ms")
	b.ReportMetric(float64(s[len(s)-1])/float64(time.Millisecond), "max-ms")
	b.Logf("iterations: %v", ts)
}

// diskBytes is what the files under dir take on disk and share with nothing outside it:
// allocated blocks, each inode once, and not an inode with links elsewhere (a base backup's
// files linked to the template are the template's, stored once per data dir).
func diskBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	type file struct {
		blocks      int64
		nlink, seen uint64
	}
	files := map[uint64]*file{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		f := files[st.Ino]
		if f == nil {
			f = &file{blocks: st.Blocks, nlink: uint64(st.Nlink)}
			files[st.Ino] = f
		}
		f.seen++
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, f := range files {
		if f.seen >= f.nlink {
			n += f.blocks * 512
		}
	}
	return n
}
