package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
)

// A cluster runs the programs of the major its data dir was made by, and a major that is not
// installed is an error naming the installed ones, never another major in its place.
func TestToolkitIsTheClustersMajor(t *testing.T) {
	t.Parallel()
	tk := func(m int) *pgctl.Toolkit {
		return &pgctl.Toolkit{Bin: pgctl.Binaries{Dir: fmt.Sprintf("/pg/%d/bin", m), Major: m}}
	}
	dp := &DataPlane{tks: map[int]*pgctl.Toolkit{16: tk(16), 15: tk(15)}, majors: []int{16, 15}}
	dp.tk = dp.tks[16]

	for major, want := range map[int]int{0: 16, 16: 16, 15: 15} {
		got, err := dp.toolkit(major)
		if err != nil || got.Bin.Major != want {
			t.Errorf("toolkit(%d) = %v, %v; want major %d", major, got, err, want)
		}
	}
	_, err := dp.toolkit(17)
	if !errors.Is(err, ErrMajorNotInstalled) || !strings.Contains(err.Error(), "PostgreSQL 17 is not installed (installed: 16, 15)") {
		t.Errorf("toolkit(17): %v", err)
	}

	dir := t.TempDir()
	for version, want := range map[string]int{"15\n": 15, "16": 16} {
		if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte(version), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := dp.toolkitOf(dir)
		if err != nil || got.Bin.Major != want {
			t.Errorf("PG_VERSION %q: %v, %v; want major %d", version, got, err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("9.6\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dp.toolkitOf(dir); !errors.Is(err, ErrMajorNotInstalled) {
		t.Errorf("PG_VERSION 9.6: %v, want ErrMajorNotInstalled", err)
	}
}

// The data plane serves every installed major; a project of another one gets no cluster.
func TestNewRootOfAnUninstalledMajorIsRefused(t *testing.T) {
	dp := newTestDataPlane(t)
	ctx := context.Background()
	installs, err := pgctl.FindInstallations(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dp.PGVersions(), pgctl.Majors(installs); !slices.Equal(got, want) {
		t.Fatalf("PGVersions = %v, want %v", got, want)
	}
	missing := 0
	for v := 18; v >= 14; v-- {
		if !slices.Contains(dp.PGVersions(), v) {
			missing = v
			break
		}
	}
	if missing == 0 {
		t.Skip("every PostgreSQL major Neon offers is installed")
	}
	spec := neonlocal.BranchSpec{ProjectID: "p1", BranchID: "br-main", PgVersion: missing,
		RoleName: "neondb_owner", RolePassword: "npg_secret", DatabaseName: "neondb"}
	if err := dp.CreateBranch(ctx, spec); !errors.Is(err, ErrMajorNotInstalled) {
		t.Fatalf("CreateBranch of PostgreSQL %d: %v, want ErrMajorNotInstalled", missing, err)
	}
	if _, err := os.Stat(filepath.Join(dp.cluster("p1", "br-main").dataDir(), "PG_VERSION")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a cluster was made: %v", err)
	}

	// The installed major's root runs that major.
	spec.BranchID, spec.PgVersion = "br-other", dp.PGVersions()[len(dp.PGVersions())-1]
	spec.ProjectID = "p2"
	if err := dp.CreateBranch(ctx, spec); err != nil {
		t.Fatal(err)
	}
	tk, err := dp.toolkitOf(dp.cluster("p2", "br-other").dataDir())
	if err != nil || tk.Bin.Major != spec.PgVersion {
		t.Fatalf("cluster of PostgreSQL %d: %v, %v", spec.PgVersion, tk, err)
	}
}
