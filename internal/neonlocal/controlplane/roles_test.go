package controlplane

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
)

// configRecorder records the data plane's role and database changes.
type configRecorder struct {
	neonlocal.NopDataPlane
	mu      sync.Mutex
	changes []neonlocal.ConfigChange
}

func (c *configRecorder) ApplyConfig(_ context.Context, ch neonlocal.ConfigChange) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, ch)
	return nil
}

func (c *configRecorder) kinds() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ch := range c.changes {
		out = append(out, string(ch.Kind)+":"+ch.Role+ch.Database)
	}
	return out
}

func names(t *testing.T, r resp, list string) []string {
	t.Helper()
	var out []string
	for _, x := range r.body[list].([]any) {
		m := x.(map[string]any)
		if _, ok := m["password"]; ok && list == "roles" {
			t.Fatalf("a list of roles carries a password: %v", m)
		}
		out = append(out, m["name"].(string))
	}
	return out
}

func actions(r resp) []string {
	var out []string
	for _, o := range r.body["operations"].([]any) {
		out = append(out, o.(map[string]any)["action"].(string))
	}
	return out
}

func TestRolesAndDatabasesPerBranch(t *testing.T) {
	dp := &configRecorder{}
	e := newEnv(t, Options{DataPlane: dp})
	key := e.creds.FreeOrgAPIKey
	prj := e.createProject(key, nil)
	pid, bid := str(prj, "project", "id"), str(prj, "branch", "id")
	base := "/projects/" + pid + "/branches/" + bid

	if got := names(t, e.expect(e.do("GET", base+"/roles", key, nil), 200), "roles"); strings.Join(got, ",") != "neondb_owner" {
		t.Fatalf("roles %v", got)
	}
	// Create a role: its password in the answer, one apply_config on the branch's compute.
	r := e.expect(e.do("POST", base+"/roles", key, map[string]any{"role": map[string]any{"name": "alice"}}), 201)
	pw := str(r.body, "role", "password")
	if pw == "" || strings.Join(actions(r), ",") != "apply_config" {
		t.Fatalf("create role: %s", r.raw)
	}
	if op := r.body["operations"].([]any)[0].(map[string]any); op["endpoint_id"] == nil || op["branch_id"] != bid {
		t.Fatalf("apply_config not on the branch's endpoint: %v", op)
	}
	// Like every change, it locks the project while its operation runs.
	mustContain(t, e.expect(e.do("POST", base+"/databases", key,
		map[string]any{"database": map[string]any{"name": "app", "owner_name": "alice"}}), 423), "conflicting operations")
	e.waitOps(key, pid)

	e.expect(e.do("POST", base+"/roles", key, map[string]any{"role": map[string]any{"name": "alice"}}), 409)
	e.expect(e.do("POST", base+"/roles", key, map[string]any{"role": map[string]any{"name": "pg_x"}}), 400)
	e.expect(e.do("POST", base+"/roles", key, map[string]any{"role": map[string]any{"name": strings.Repeat("a", 64)}}), 400)
	e.expect(e.do("POST", base+"/databases", key, map[string]any{"database": map[string]any{"name": "app", "owner_name": "nobody"}}), 400)
	e.expect(e.do("POST", base+"/databases", key, map[string]any{"database": map[string]any{"name": "postgres", "owner_name": "alice"}}), 400)
	r = e.expect(e.do("POST", base+"/databases", key, map[string]any{"database": map[string]any{"name": "app", "owner_name": "alice"}}), 201)
	if str(r.body, "database", "owner_name") != "alice" || strings.Join(actions(r), ",") != "apply_config" {
		t.Fatalf("create database: %s", r.raw)
	}
	e.waitOps(key, pid)
	e.expect(e.do("POST", base+"/databases", key, map[string]any{"database": map[string]any{"name": "app", "owner_name": "alice"}}), 409)
	if got := names(t, e.expect(e.do("GET", base+"/databases", key, nil), 200), "databases"); strings.Join(got, ",") != "neondb,app" {
		t.Fatalf("databases %v", got)
	}
	if got := str(e.expect(e.do("GET", base+"/roles/alice/reveal_password", key, nil), 200).body, "password"); got != pw {
		t.Fatalf("reveal_password %q, want %q", got, pw)
	}
	uri := str(e.expect(e.do("GET", "/projects/"+pid+"/connection_uri?branch_id="+bid+"&database_name=app&role_name=alice", key, nil), 200).body, "uri")
	if !strings.Contains(uri, "alice:"+pw+"@") || !strings.Contains(uri, "/app?") {
		t.Fatalf("uri %q", uri)
	}
	e.expect(e.do("GET", "/projects/"+pid+"/connection_uri?database_name=nope&role_name=alice", key, nil), 404)

	// A role that owns a database stays ([DOC] manage/roles).
	mustContain(t, e.expect(e.do("DELETE", base+"/roles/alice", key, nil), 422), "owns database")
	r = e.expect(e.do("PATCH", base+"/databases/app", key,
		map[string]any{"database": map[string]any{"name": "app2", "owner_name": "neondb_owner"}}), 200)
	if str(r.body, "database", "name") != "app2" || str(r.body, "database", "owner_name") != "neondb_owner" {
		t.Fatalf("update database: %s", r.raw)
	}
	e.waitOps(key, pid)
	e.expect(e.do("GET", base+"/databases/app", key, nil), 404)
	e.expect(e.do("GET", base+"/databases/app2", key, nil), 200)
	e.expect(e.do("DELETE", base+"/roles/alice", key, nil), 200)
	e.waitOps(key, pid)
	e.expect(e.do("DELETE", base+"/roles/alice", key, nil), 204)
	e.expect(e.do("GET", base+"/roles/alice", key, nil), 404)

	// reset_password: a new password, which the connection URI then carries.
	r = e.expect(e.do("POST", base+"/roles/neondb_owner/reset_password", key, nil), 200)
	npw := str(r.body, "role", "password")
	if npw == "" || npw == str(prj, "roles", "0", "password") {
		t.Fatalf("reset_password: %s", r.raw)
	}
	e.waitOps(key, pid)
	uri = str(e.expect(e.do("GET", "/projects/"+pid+"/connection_uri?database_name=neondb&role_name=neondb_owner", key, nil), 200).body, "uri")
	if !strings.Contains(uri, ":"+npw+"@") {
		t.Fatalf("uri %q lacks the new password", uri)
	}
	e.expect(e.do("DELETE", base+"/databases/app2", key, nil), 200)
	e.waitOps(key, pid)
	e.expect(e.do("DELETE", base+"/databases/app2", key, nil), 204)

	want := "create_role:alice,create_database:app,alter_database:app,drop_role:alice,set_password:neondb_owner,drop_database:app2"
	if got := strings.Join(dp.kinds(), ","); got != want {
		t.Fatalf("data plane changes\n got %s\nwant %s", got, want)
	}
}

func TestRolesAndDatabasesFollowBranchesAndRestores(t *testing.T) {
	clk := &testClock{t: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
	dp := &configRecorder{}
	e := newEnv(t, Options{Now: clk.Now, DataPlane: dp})
	key := e.creds.PaidOrgAPIKey
	prj := e.createProject(key, nil)
	pid, main := str(prj, "project", "id"), str(prj, "branch", "id")
	base := "/projects/" + pid + "/branches/" + main
	before := clk.Now().Add(5 * time.Second)
	clk.Advance(10 * time.Second)
	e.expect(e.do("POST", base+"/roles", key, map[string]any{"role": map[string]any{"name": "bob"}}), 201)
	e.waitOps(key, pid)
	e.expect(e.do("POST", base+"/databases", key, map[string]any{"database": map[string]any{"name": "bobdb", "owner_name": "bob"}}), 201)
	e.waitOps(key, pid)
	clk.Advance(10 * time.Second)

	// From the head: the parent's roles and databases; with two of each, no connection_uris.
	r := e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "head"},
		"endpoints": []any{map[string]any{"type": "read_write"}}}), 201)
	if _, ok := r.body["connection_uris"]; ok {
		t.Fatalf("connection_uris with two roles: %s", r.raw)
	}
	head := str(r.body, "branch", "id")
	if got := names(t, e.expect(e.do("GET", "/projects/"+pid+"/branches/"+head+"/roles", key, nil), 200), "roles"); strings.Join(got, ",") != "neondb_owner,bob" {
		t.Fatalf("head branch roles %v", got)
	}
	e.expect(e.do("GET", "/projects/"+pid+"/branches/"+head+"/databases/bobdb", key, nil), 200)
	e.expect(e.do("GET", "/projects/"+pid+"/connection_uri?branch_id="+head+"&database_name=bobdb&role_name=bob", key, nil), 200)

	// At a point before they were made: neither ([DOC] manage/roles).
	r = e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "past", "parent_timestamp": before.Format(time.RFC3339)},
		"endpoints": []any{map[string]any{"type": "read_write"}}}), 201)
	if r.body["connection_uris"] == nil {
		t.Fatalf("connection_uris missing with one role and database: %s", r.raw)
	}
	past := str(r.body, "branch", "id")
	if got := names(t, e.expect(e.do("GET", "/projects/"+pid+"/branches/"+past+"/databases", key, nil), 200), "databases"); strings.Join(got, ",") != "neondb" {
		t.Fatalf("past branch databases %v", got)
	}
	// A change on a child is the child's own.
	e.expect(e.do("DELETE", "/projects/"+pid+"/branches/"+head+"/databases/bobdb", key, nil), 200)
	e.waitOps(key, pid)
	e.expect(e.do("GET", base+"/databases/bobdb", key, nil), 200)

	// Restore main to its own past: the lists go back with the data, the backup keeps them.
	r = e.expect(e.do("POST", base+"/restore", key, map[string]any{"source_branch_id": main,
		"source_timestamp": before.Format(time.RFC3339), "preserve_under_name": "main-backup"}), 200)
	e.waitOps(key, pid)
	if got := names(t, e.expect(e.do("GET", base+"/roles", key, nil), 200), "roles"); strings.Join(got, ",") != "neondb_owner" {
		t.Fatalf("restored roles %v", got)
	}
	var backup string
	for _, b := range e.expect(e.do("GET", "/projects/"+pid+"/branches", key, nil), 200).body["branches"].([]any) {
		if b.(map[string]any)["name"] == "main-backup" {
			backup = b.(map[string]any)["id"].(string)
		}
	}
	if got := names(t, e.expect(e.do("GET", "/projects/"+pid+"/branches/"+backup+"/roles", key, nil), 200), "roles"); strings.Join(got, ",") != "neondb_owner,bob" {
		t.Fatalf("backup roles %v", got)
	}
}

// A state file written before branches had roles and databases loads with the project's one
// of each on every branch.
func TestRolesOfOldStateFile(t *testing.T) {
	dir := t.TempDir()
	srv, err := New(context.Background(), Options{DataDir: dir, OperationDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvFrom(t, srv)
	key := srv.Credentials().FreeOrgAPIKey
	prj := e.createProject(key, map[string]any{"branch": map[string]any{"role_name": "ann", "database_name": "shop"}})
	pid, bid := str(prj, "project", "id"), str(prj, "branch", "id")
	e.hs.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	path := statePath(dir)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	for _, b := range st["branches"].(map[string]any) {
		delete(b.(map[string]any), "roles")
		delete(b.(map[string]any), "databases")
	}
	if raw, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, Options{DataDir: dir})
	base := "/projects/" + pid + "/branches/" + bid
	if got := names(t, e2.expect(e2.do("GET", base+"/roles", key, nil), 200), "roles"); strings.Join(got, ",") != "ann" {
		t.Fatalf("roles %v", got)
	}
	r := e2.expect(e2.do("GET", base+"/databases/shop", key, nil), 200)
	if str(r.body, "database", "owner_name") != "ann" {
		t.Fatalf("database %s", r.raw)
	}
	e2.expect(e2.do("GET", "/projects/"+pid+"/connection_uri?database_name=shop&role_name=ann", key, nil), 200)
}
