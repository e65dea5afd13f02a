package dataplane

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/pgtest"
)

func newTestDataPlane(t *testing.T) *DataPlane {
	t.Helper()
	pgtest.Require(t)
	dp := openTestDataPlane(t, filepath.Join(pgtest.ReachableDir(t), "pg"))
	t.Cleanup(func() { _ = dp.Close() })
	return dp
}

// openTestDataPlane opens (or, after a Close, reopens) a data plane on dir; the caller closes it.
func openTestDataPlane(t *testing.T, dir string) *DataPlane {
	t.Helper()
	dp, err := New(context.Background(), Options{Dir: dir, Settings: map[string]string{"fsync": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	return dp
}

func archived(t *testing.T, c *cluster) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(c.archiveDir(), "0000*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if filepath.Ext(f) == "" { // segments, not .history or .backup
			n++
		}
	}
	return n
}

// History older than the retention goes: older base backups and the WAL only they needed;
// the newest backup before the cutoff and everything after it stay.
func TestPruneDropsHistoryOlderThanTheRetention(t *testing.T) {
	dp := newTestDataPlane(t)
	ctx := context.Background()
	spec := neonlocal.BranchSpec{ProjectID: "p1", BranchID: "br-main", PgVersion: 15,
		RoleName: "neondb_owner", RolePassword: "npg_secret", DatabaseName: "neondb"}
	if err := dp.CreateBranch(ctx, spec); err != nil {
		t.Fatal(err)
	}
	c := dp.cluster("p1", "br-main")
	for range 3 {
		p, err := c.hold(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dp.tk.ForceSwitch(ctx, c.socketDir(), p.Port); err != nil {
			t.Fatal(err)
		}
		c.release()
		if err := c.takeBackup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := c.meta()
	if len(m.Backups) != 4 {
		t.Fatalf("%d backups, want 4", len(m.Backups))
	}
	segsBefore := archived(t, c)
	cutoff := m.Backups[2].Time.Add(time.Millisecond) // keeps backups 2 and 3
	if err := dp.Prune(ctx, "p1", cutoff); err != nil {
		t.Fatal(err)
	}
	m, _ = c.meta()
	if len(m.Backups) != 2 || !m.Backups[0].Time.Equal(cutoff.Add(-time.Millisecond)) {
		t.Fatalf("after prune: %+v", m.Backups)
	}
	entries, _ := os.ReadDir(c.backupsDir())
	if len(entries) != 2 {
		t.Fatalf("%d backup dirs on disk, want 2", len(entries))
	}
	if after := archived(t, c); after >= segsBefore {
		t.Fatalf("WAL segments: %d before, %d after: nothing pruned", segsBefore, after)
	}
	// What remains still makes a point-in-time copy after the cutoff.
	dst := filepath.Join(c.dir(), "pitr-check")
	if err := dp.pointInTime(ctx, c, time.Now().UTC(), dst, filepath.Join(c.dir(), "pitr-archive")); err != nil {
		t.Fatalf("point in time after prune: %v", err)
	}
}
