package app_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/client"

	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// branchNames lists a database's branches by name (list_branches settles open intents first).
func branchNames(t *testing.T, c *client.Client, id string) []string {
	t.Helper()
	var out []string
	for _, b := range mustOK(t, call(t, c, "list_branches", map[string]any{"database_id": id}), "list_branches")["branches"].([]any) {
		out = append(out, str(b.(map[string]any), "name"))
	}
	slices.Sort(out)
	return out
}

var branchDelete = regexp.MustCompile(`^/api/v2/projects/[^/]+/branches/[^/]+$`)

// apply_migration dry_run on real PostgreSQL: the migration runs on a temporary branch that is
// deleted afterwards (also when it fails, and, after a failed deletion, by recovery), main's
// schema and ledger stay as they were, and the temporary branch counts against the limit.
func TestApplyMigrationDryRun(t *testing.T) {
	pgtest.Require(t)
	var failDeletes atomic.Bool
	var deleted atomic.Int32
	wrap := func(h http.Handler) http.Handler {
		inner := spectestWrap(t)(h)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodDelete && branchDelete.MatchString(r.URL.Path) {
				if failDeletes.Load() {
					http.Error(w, `{"code":"","message":"injected"}`, http.StatusUnprocessableEntity)
					return
				}
				deleted.Add(1)
			}
			inner.ServeHTTP(w, r)
		})
	}
	a := newAppWith(t, wrap, pgConfig(pgtest.ReachableDir(t)), func(c *config.Config) {
		tier := c.Policy.Tiers["free"]
		tier.Branches = 3
		c.Policy.Tiers["free"] = tier
	})
	c := connect(t, a)
	id, uri := createDBWithURI(t, c, "rehearsed")
	mustOK(t, call(t, c, "apply_migration", map[string]any{"database_id": id, "name": "0001_init", "sql": "CREATE TABLE t (n int PRIMARY KEY)"}), "0001")
	insert(t, uri, 1, 3)
	snapshot := func() string {
		return call(t, c, "describe_schema", map[string]any{"database_id": id}).Text + "\n" +
			call(t, c, "list_migrations", map[string]any{"database_id": id}).Text
	}
	before := snapshot()
	dry := func(name, sql string, extra ...any) result {
		args := map[string]any{"database_id": id, "name": name, "sql": sql, "dry_run": true}
		for i := 0; i+1 < len(extra); i += 2 {
			args[extra[i].(string)] = extra[i+1]
		}
		return call(t, c, "apply_migration", args)
	}
	// cleaned: the dry run itself deleted its branch (list_branches would settle it otherwise).
	cleaned := func(what string, deletes int32) {
		t.Helper()
		if open, err := a.Store.OpenIntents(context.Background(), id); err != nil || len(open) != 0 || deleted.Load() != deletes {
			t.Fatalf("%s: open intents %+v (%v), branch deletions %d, want none open and %d", what, open, err, deleted.Load(), deletes)
		}
	}

	// A destructive migration needs no confirm in a dry run; it is reported, and nothing changes.
	r := mustOK(t, dry("0002_change", "ALTER TABLE t ADD COLUMN note text; CREATE INDEX t_note ON t (note); DROP TABLE t"), "dry run")
	changes := strings.Join(anyStrings(r["schema_changes"]), "\n")
	if r["dry_run"] != true || r["applied"] != true || r["branch"] != "main" || r["statements"] != float64(3) ||
		len(anyStrings(r["destructive"])) != 1 || !strings.Contains(changes, "table public.t removed") {
		t.Fatalf("dry run: %v", r)
	}
	cleaned("dry run", 1)
	if after := snapshot(); after != before {
		t.Fatalf("main changed:\nbefore %s\nafter  %s", before, after)
	}
	if got := rows(t, uri); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("rows after the dry run: %v", got)
	}
	if got := branchNames(t, c, id); !slices.Equal(got, []string{"main"}) {
		t.Fatalf("branches after the dry run: %v", got)
	}
	// An applied migration is reported as such (nothing would run).
	if r := mustOK(t, dry("0001_init", "CREATE TABLE t (n int PRIMARY KEY)"), "dry run of an applied one"); r["applied"] != false {
		t.Fatalf("dry run of 0001 again: %v", r)
	}

	// A failing migration: PostgreSQL's error and position, main unchanged, the branch gone.
	fail := dry("0003_broken", "ALTER TABLE t ADD COLUMN x int; SELECT nosuch FROM t")
	if fail.Code != "INVALID_ARGUMENT" || !strings.Contains(fail.Message, "dry run on a temporary copy of branch main") ||
		!strings.Contains(fail.Message, "42703") || !strings.Contains(fail.Message, "at character") || !strings.Contains(fail.Hint, "not changed") {
		t.Fatalf("failing dry run: %s", fail)
	}
	cleaned("failing dry run", 3)
	if got := branchNames(t, c, id); !slices.Equal(got, []string{"main"}) || snapshot() != before {
		t.Fatalf("after a failing dry run: branches %v", got)
	}

	// On a dev branch; and the temporary branch counts: at the limit (3) it is refused.
	mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "dev1"}), "dev1")
	if r := mustOK(t, dry("0002_note", "ALTER TABLE t ADD COLUMN note text", "branch", "dev1"), "dry run on dev1"); r["branch"] != "dev1" {
		t.Fatalf("dry run on dev1: %v", r)
	}
	mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "dev2"}), "dev2")
	if r := dry("0002_note", "ALTER TABLE t ADD COLUMN note text"); r.Code != "BRANCH_LIMIT" || !strings.Contains(r.Hint, "delete_dev_branch") {
		t.Fatalf("dry run at the branch limit: %s", r)
	}
	mustOK(t, call(t, c, "delete_dev_branch", map[string]any{"database_id": id, "branch": "dev2"}), "delete dev2")

	// Neon fails the deletion (as when the server dies before it): the intent stays open, and
	// recovery deletes the temporary branch.
	failDeletes.Store(true)
	mustOK(t, dry("0002_note", "ALTER TABLE t ADD COLUMN note text"), "dry run whose deletion fails")
	open, err := a.Store.OpenIntents(context.Background(), id)
	if err != nil || len(open) != 1 || open[0].Kind != "dry_run" {
		t.Fatalf("open intents: %+v, %v", open, err)
	}
	failDeletes.Store(false)
	n := deleted.Load()
	if err := a.Guard.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if deleted.Load() != n+1 {
		t.Errorf("recovery deleted %d branches, want 1", deleted.Load()-n)
	}
	if open, _ := a.Store.OpenIntents(context.Background(), id); len(open) != 0 {
		t.Fatalf("open intents after recovery: %+v", open)
	}
	if got := branchNames(t, c, id); !slices.Equal(got, []string{"dev1", "main"}) || snapshot() != before {
		t.Fatalf("after recovery: branches %v", got)
	}
}

// compare_schema on real PostgreSQL: what a dev branch's migration added and changed, and the
// SQL that, applied to main, leaves no difference.
func TestCompareSchema(t *testing.T) {
	a := newPGApp(t, pgtest.ReachableDir(t))
	c := connect(t, a)
	id, _ := createDBWithURI(t, c, "compared")
	mustOK(t, call(t, c, "apply_migration", map[string]any{"database_id": id, "name": "0001_init",
		"sql": "CREATE TABLE users (id int PRIMARY KEY, email text); CREATE TABLE t (qty integer)"}), "0001")
	mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "feature"}), "feature")
	compare := func(args map[string]any) map[string]any {
		args["database_id"] = id
		return mustOK(t, call(t, c, "compare_schema", args), "compare_schema")
	}
	if r := compare(map[string]any{"branch": "feature"}); r["identical"] != true || len(r["differences"].([]any)) != 0 {
		t.Fatalf("a fresh branch: %v", r)
	}
	mustOK(t, call(t, c, "apply_migration", map[string]any{"database_id": id, "name": "0002_feature", "branch": "feature", "confirm": true,
		"sql": `CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users (id), total numeric(10,2) NOT NULL DEFAULT 0, mood mood, UNIQUE (user_id, total));
ALTER TABLE users ADD COLUMN "Name" text NOT NULL DEFAULT 'x';
CREATE INDEX users_email ON users (email);
ALTER TABLE t ALTER COLUMN qty TYPE bigint;
ALTER TABLE t ADD COLUMN user_id int REFERENCES users (id);
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100`}), "0002 on feature")

	r := compare(map[string]any{"branch": "feature"})
	var got []string
	for _, d := range r["differences"].([]any) {
		m := d.(map[string]any)
		got = append(got, str(m, "kind")+" "+str(m, "name")+" "+str(m, "change"))
	}
	want := []string{"enum mood added", "table orders added", "column t.qty changed", "column t.user_id added",
		"constraint t.t_user_id_fkey added", "column users.Name added", "index users.users_email added", "view big_orders added"}
	if !slices.Equal(got, want) || r["identical"] != false || r["base"] != "main" || r["branch"] != "feature" {
		t.Fatalf("differences:\n got %q\nwant %q\n%v", got, want, r)
	}
	sql, unsafe := anyStrings(r["sql"]), anyStrings(r["unsafe"])
	if !slices.Equal(unsafe, []string{"ALTER TABLE t ALTER COLUMN qty TYPE bigint USING qty::bigint"}) {
		t.Fatalf("unsafe: %q", unsafe)
	}
	// The reverse direction only drops: everything is unsafe.
	back := compare(map[string]any{"branch": "main", "base": "feature"})
	if len(anyStrings(back["sql"])) != 0 || !slices.Contains(anyStrings(back["unsafe"]), "DROP TABLE orders") {
		t.Fatalf("feature → main: %v", back)
	}

	// The SQL brings main to feature's schema: no difference is left.
	mustOK(t, call(t, c, "apply_migration", map[string]any{"database_id": id, "name": "0002_from_compare", "confirm": true,
		"sql": strings.Join(slices.Concat(sql, unsafe), ";\n")}), "the derived SQL on main")
	if r := compare(map[string]any{"branch": "feature"}); r["identical"] != true {
		t.Fatalf("after applying the derived SQL: %v", r)
	}
	if r := call(t, c, "compare_schema", map[string]any{"database_id": id, "branch": "nosuch"}); r.Code != "NOT_FOUND" {
		t.Fatalf("unknown branch: %s", r)
	}
}
