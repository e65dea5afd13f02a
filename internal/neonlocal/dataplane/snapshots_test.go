package dataplane

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// TestDeleteSnapshotRemovesItsCopy: a deleted snapshot's copy leaves its name at once and its
// files are gone once the data plane is closed; a renamed copy a crash left is removed at the
// next start.
func TestDeleteSnapshotRemovesItsCopy(t *testing.T) {
	pgtest.Require(t)
	ctx := context.Background()
	dir := filepath.Join(pgtest.ReachableDir(t), "pg")
	dp := openTestDataPlane(t, dir)
	if err := dp.CreateBranch(ctx, rootSpec("p", "owner", "npg_pw")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"snap-a", "snap-b"} {
		if err := dp.CreateSnapshot(ctx, neonlocal.SnapshotSpec{ProjectID: "p", SnapshotID: id, BranchID: "br-p"}); err != nil {
			t.Fatal(err)
		}
	}
	a := dp.snapshotDir("p", "snap-a")
	if err := dp.DeleteSnapshot(ctx, "p", "snap-a"); err != nil {
		t.Fatal(err)
	}
	if exists(a) {
		t.Fatal("the deleted snapshot's copy is still under its name")
	}
	if err := dp.DeleteSnapshot(ctx, "p", "snap-a"); err != nil { // already gone
		t.Fatalf("second delete: %v", err)
	}
	// A crash between the rename and the removal leaves the renamed copy.
	b := dp.snapshotDir("p", "snap-b")
	if err := os.Rename(b, b+deletedSuffix); err != nil {
		t.Fatal(err)
	}
	if err := dp.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(a + deletedSuffix) {
		t.Fatal("the deleted snapshot's files outlived Close")
	}
	dp = openTestDataPlane(t, dir)
	defer dp.Close()
	if exists(b + deletedSuffix) {
		t.Fatal("a deleted snapshot's files a crash left survived the start")
	}
}

// TestDeleteBranchRemovesItsFiles: a deleted branch's directory leaves its name at once and its
// files are gone once the data plane is closed; a renamed directory a crash left is removed at
// the next start, not taken for a branch.
func TestDeleteBranchRemovesItsFiles(t *testing.T) {
	pgtest.Require(t)
	ctx := context.Background()
	dir := filepath.Join(pgtest.ReachableDir(t), "pg")
	dp := openTestDataPlane(t, dir)
	for _, p := range []string{"p", "q"} {
		if err := dp.CreateBranch(ctx, rootSpec(p, "owner", "npg_pw")); err != nil {
			t.Fatal(err)
		}
	}
	p := dp.branchDir("p", "br-p")
	if err := dp.DeleteBranch(ctx, "p", "br-p"); err != nil {
		t.Fatal(err)
	}
	if exists(p) {
		t.Fatal("the deleted branch's directory is still under its name")
	}
	if err := dp.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(p + deletedSuffix) {
		t.Fatal("the deleted branch's files outlived Close")
	}
	// A crash between the rename and the removal leaves the renamed directory.
	q := dp.branchDir("q", "br-q")
	if err := os.Rename(q, q+deletedSuffix); err != nil {
		t.Fatal(err)
	}
	dp = openTestDataPlane(t, dir)
	defer dp.Close()
	if exists(q + deletedSuffix) {
		t.Fatal("a deleted branch's files a crash left survived the start")
	}
}
