package controlplane

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const mib = 1 << 20

// fill writes n bytes of real (not sparse) data to path.
func fill(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Repeat([]byte{'x'}, n), 0o600); err != nil {
		t.Fatal(err)
	}
}

func expectDiskRefusal(t *testing.T, r resp, fragments ...string) {
	t.Helper()
	if r.status != 422 || str(r.body, "code") != CodeDiskBudgetExceeded {
		t.Fatalf("status %d code %q, want 422 %s: %s", r.status, str(r.body, "code"), CodeDiskBudgetExceeded, r.raw)
	}
	for _, f := range fragments {
		mustContain(t, r, f)
	}
}

func branchCount(e *env, key, pid string) int {
	e.t.Helper()
	return len(e.expect(e.do("GET", "/projects/"+pid+"/branches", key, nil), 200).body["branches"].([]any))
}

// Over the budget, projects, branches and snapshot restores are refused with a code of their
// own and the figures; the state is untouched; space freed is seen on the next try, however
// long measurements are cached.
func TestDiskBudgetRefusesNewClusters(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Options{DataDir: dir, DiskBudget: 4 * mib, BranchDiskBytes: mib, DiskCacheTTL: time.Hour})
	key := e.creds.FreeOrgAPIKey
	pid := str(e.createProject(key, nil), "project", "id")
	main := str(e.expect(e.do("GET", "/projects/"+pid+"/branches", key, nil), 200).body["branches"].([]any)[0].(map[string]any), "id")
	sid := str(e.expect(e.do("POST", "/projects/"+pid+"/branches/"+main+"/snapshot", key, nil), 200).body, "snapshot", "id")
	e.waitOps(key, pid)

	filler := filepath.Join(dir, "pg", "filler")
	fill(t, filler, 3*mib+mib/2) // the data dir now holds more than budget - one branch
	expectDiskRefusal(t, e.do("POST", "/projects/"+pid+"/branches", key, map[string]any{"branch": map[string]any{"name": "dev"}}),
		"disk budget exceeded", "of their 4 MiB disk budget", "a new project or branch needs about 1 MiB", "local.disk_budget")
	expectDiskRefusal(t, e.do("POST", "/projects", key, map[string]any{"project": map[string]any{"name": "two"}}), "4 MiB disk budget")
	expectDiskRefusal(t, e.do("POST", "/projects/"+pid+"/snapshots/"+sid+"/restore", key, map[string]any{"name": "back"}), "4 MiB disk budget")
	if n := branchCount(e, key, pid); n != 1 {
		t.Fatalf("%d branches after refusals, want 1", n)
	}
	if n := len(e.expect(e.do("GET", "/projects", key, nil), 200).body["projects"].([]any)); n != 1 {
		t.Fatalf("%d projects after a refusal, want 1", n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "dev"}}), 201)
	if n := branchCount(e, key, pid); n != 2 {
		t.Fatalf("%d branches, want 2", n)
	}
}

// Clusters still being created count at their expected size: two creates in flight fill a
// budget of two and a half, so the third is refused before any of them is on disk.
func TestDiskBudgetCountsCreationsInFlight(t *testing.T) {
	e := newEnv(t, Options{DiskBudget: 2*mib + mib/2, BranchDiskBytes: mib, OperationDelay: time.Hour})
	key := e.creds.PaidOrgAPIKey
	for _, name := range []string{"a", "b"} {
		e.expect(e.do("POST", "/projects", key, map[string]any{"project": map[string]any{"name": name}}), 201)
	}
	expectDiskRefusal(t, e.do("POST", "/projects", key, map[string]any{"project": map[string]any{"name": "c"}}),
		"with 2 more being created")
}

// Below the free-space margin creates are refused too, before the disk fills.
func TestDiskMinFreeRefusesNewClusters(t *testing.T) {
	dir := t.TempDir()
	if _, err := freeBytes(dir); err != nil {
		t.Skipf("free space unknown here: %v", err)
	}
	e := newEnv(t, Options{DataDir: dir, DiskMinFree: 1 << 60})
	expectDiskRefusal(t, e.do("POST", "/projects", e.creds.FreeOrgAPIKey, map[string]any{"project": map[string]any{}}),
		"disk almost full", "free on the data dir's filesystem", "1048576 TiB must stay free", "local.disk_min_free")
}

func TestDirBytes(t *testing.T) {
	dir := t.TempDir()
	fill(t, filepath.Join(dir, "a", "f"), 2*mib)
	if err := os.Link(filepath.Join(dir, "a", "f"), filepath.Join(dir, "g")); err != nil {
		t.Fatal(err)
	}
	n, err := dirBytes(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if n < 2*mib || n >= 3*mib { // a hard link counts once
		t.Errorf("dirBytes = %d, want about 2 MiB", n)
	}
	if n, err := dirBytes(context.Background(), filepath.Join(dir, "missing")); err != nil || n != 0 {
		t.Errorf("missing dir: %d, %v", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := dirBytes(ctx, dir); err == nil {
		t.Error("canceled walk: want an error")
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 3 * mib / 2: "1.5 MiB", 10 << 30: "10 GiB"} {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// An unknown region_id gets Neon's 400 and creates nothing; a listed one is kept.
func TestCreateProjectValidatesRegion(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.creds.FreeOrgAPIKey
	r := e.expect(e.do("POST", "/projects", key, map[string]any{"project": map[string]any{"region_id": "mars-1"}}), 400)
	mustContain(t, r, `region_id "mars-1" is not a supported region`)
	mustContain(t, r, "aws-us-east-2")
	if n := len(e.expect(e.do("GET", "/projects", key, nil), 200).body["projects"].([]any)); n != 0 {
		t.Fatalf("%d projects after a refused create", n)
	}
	for region, want := range map[string]string{"aws-eu-central-1": "aws-eu-central-1", "azure-gwc": "azure-gwc", "": "aws-us-east-2"} {
		body := map[string]any{}
		if region != "" {
			body["region_id"] = region
		}
		if got := str(e.createProject(key, body), "project", "region_id"); got != want {
			t.Errorf("region_id %q: project in %q, want %q", region, got, want)
		}
	}
}
