package app_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// The free tier's default database limit: the fourth database is refused, the three that
// exist are still returned by name.
func TestFreeTierRefusesTheFourthDatabase(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	limits := mustOK(t, call(t, c, "describe_limits", nil), "describe_limits")
	if limits["tier"] != "free" || limits["max_databases"] != float64(3) {
		t.Fatalf("describe_limits: tier %v, max_databases %v; want free, 3", limits["tier"], limits["max_databases"])
	}
	for _, name := range []string{"one", "two", "three"} {
		createDB(t, c, name)
	}
	r := call(t, c, "create_database", map[string]any{"name": "four"})
	if r.Code != "DATABASE_LIMIT" || !strings.Contains(r.Message, "free tier allows 3 databases per tenant; 3 exist") ||
		!strings.Contains(r.Hint, "list_databases") {
		t.Fatalf("fourth database: %s; want DATABASE_LIMIT naming the limit", r)
	}
	if again := mustOK(t, call(t, c, "create_database", map[string]any{"name": "two"}), "existing name"); again["created"] != false {
		t.Errorf("an existing name at the limit: created = %v, want false", again["created"])
	}
	if n := len(mustOK(t, call(t, c, "list_databases", nil), "list_databases")["databases"].([]any)); n != 3 {
		t.Errorf("%d databases, want 3", n)
	}
}

// An unknown region is Neon's 400, which agents see as INVALID_ARGUMENT with Neon's words; the
// name stays free for a create that names a real region.
func TestCreateDatabaseInAnUnknownRegion(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	r := call(t, c, "create_database", map[string]any{"name": "red", "region": "mars-1"})
	if r.Code != "INVALID_ARGUMENT" || !strings.Contains(r.Message, `region_id "mars-1" is not a supported region`) ||
		!strings.Contains(r.Message, "aws-eu-central-1") {
		t.Fatalf("region mars-1: %s; want INVALID_ARGUMENT with Neon's message", r)
	}
	db := mustOK(t, call(t, c, "create_database", map[string]any{"name": "red", "region": "aws-eu-central-1"}), "create in a real region")
	if db["created"] != true || db["region"] != "aws-eu-central-1" {
		t.Fatalf("create in aws-eu-central-1: %v", db)
	}
}

// Over local.disk_budget, new databases and dev branches are QUOTA_EXCEEDED with a hint the
// agent and the operator can act on, nothing is left half made, and raising the budget lets the
// same call through.
func TestDiskBudgetRefusesDatabasesAndDevBranches(t *testing.T) {
	pgtest.Require(t)
	dir := pgtest.ReachableDir(t)
	a := newAppWith(t, spectestWrap(t), pgConfig(dir))
	id := createDB(t, connect(t, a), "first")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// Room for less than the emulator's estimate of one more local cluster (64 MiB), whatever
	// the first one takes here. An empty database is ~30 MB: a file of other data under the data
	// dir brings the budget to at least the smallest the config accepts (256 MiB).
	if need := 224<<20 - apparentBytes(t, dir); need > 0 {
		if err := os.WriteFile(filepath.Join(dir, "other-data"), make([]byte, need), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	budget := apparentBytes(t, dir) + 32<<20
	a = newAppWith(t, spectestWrap(t), pgConfig(dir), func(c *config.Config) { c.Local.DiskBudget = config.ByteSize(budget) })
	c := connect(t, a)
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"create_dev_branch", map[string]any{"database_id": id, "name": "feature"}},
		{"create_database", map[string]any{"name": "second"}},
	} {
		r := call(t, c, tc.tool, tc.args)
		if r.Code != "QUOTA_EXCEEDED" {
			t.Fatalf("%s over the disk budget: %s; want QUOTA_EXCEEDED", tc.tool, r)
		}
		t.Logf("%s: %s", tc.tool, r)
		for _, want := range []string{"disk budget exceeded", "a new project or branch needs about 64 MiB"} {
			if !strings.Contains(r.Message, want) {
				t.Errorf("%s: message %q lacks %q", tc.tool, r.Message, want)
			}
		}
		for _, want := range []string{"delete_dev_branch", "local.disk_budget"} {
			if !strings.Contains(r.Hint, want) {
				t.Errorf("%s: hint %q lacks %q", tc.tool, r.Hint, want)
			}
		}
	}
	if n := len(mustOK(t, call(t, c, "list_databases", nil), "list_databases")["databases"].([]any)); n != 1 {
		t.Errorf("%d databases after the refusal, want 1", n)
	}
	if n := len(mustOK(t, call(t, c, "list_branches", map[string]any{"database_id": id}), "list_branches")["branches"].([]any)); n != 1 {
		t.Errorf("%d branches after the refusal, want 1 (main)", n)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// The operator raises the budget: the same calls go through.
	a = newAppWith(t, spectestWrap(t), pgConfig(dir), func(c *config.Config) { c.Local.DiskBudget = 0 })
	c = connect(t, a)
	mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "feature"}), "create_dev_branch without a budget")
}

// apparentBytes is the size of the files under dir.
func apparentBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished or unreadable: not ours to count
		}
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
