package controlplane

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCreateProjectAsyncOperationsAndLock(t *testing.T) {
	e := newEnv(t, Options{OperationDelay: 150 * time.Millisecond})
	key := e.creds.FreeOrgAPIKey
	r := e.expect(e.do("POST", "/projects", key, map[string]any{"project": map[string]any{"name": "app"}}), 201)
	pid := str(r.body, "project", "id")
	if got := str(r.body, "project", "org_id"); got != e.creds.FreeOrgID {
		t.Fatalf("org_id %q, want %q", got, e.creds.FreeOrgID)
	}
	if str(r.body, "branch", "name") != "main" || r.body["branch"].(map[string]any)["default"] != true {
		t.Fatalf("branch: %v", r.body["branch"])
	}
	var actions []string
	for _, o := range r.body["operations"].([]any) {
		op := o.(map[string]any)
		actions = append(actions, op["action"].(string))
		if s := op["status"]; s != "scheduling" && s != "running" {
			t.Fatalf("new operation status %v", s)
		}
	}
	if !slices.Equal(actions, []string{"create_timeline", "start_compute"}) {
		t.Fatalf("actions %v", actions)
	}
	// Mutations are locked while operations run; reads are not.
	locked := e.expect(e.do("POST", "/projects/"+pid+"/branches", key, nil), 423)
	if locked.header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", locked.header.Get("Retry-After"))
	}
	mustContain(t, locked, "running conflicting operations")
	e.expect(e.do("GET", "/projects/"+pid, key, nil), 200)
	opID := r.body["operations"].([]any)[0].(map[string]any)["id"].(string)
	e.waitOps(key, pid)
	op := e.expect(e.do("GET", "/projects/"+pid+"/operations/"+opID, key, nil), 200)
	if str(op.body, "operation", "status") != "finished" {
		t.Fatalf("operation %v", op.body)
	}
	ep := e.expect(e.do("GET", "/projects/"+pid+"/endpoints", key, nil), 200)
	if st := ep.body["endpoints"].([]any)[0].(map[string]any)["current_state"]; st != "active" {
		t.Fatalf("endpoint state %v", st)
	}
	e.expect(e.do("POST", "/projects/"+pid+"/branches", key, map[string]any{"branch": map[string]any{"name": "dev"}}), 201)

	// connection_uri.
	e.expect(e.do("GET", "/projects/"+pid+"/connection_uri?database_name=neondb", key, nil), 400)
	cu := e.expect(e.do("GET", "/projects/"+pid+"/connection_uri?database_name=neondb&role_name=neondb_owner", key, nil), 200)
	u, err := url.Parse(str(cu.body, "uri"))
	if err != nil || u.Hostname() != "127.0.0.1" || u.Port() == "" || u.User.Username() != "neondb_owner" || u.Query().Get("sslmode") != "require" {
		t.Fatalf("uri %q", str(cu.body, "uri"))
	}
	if e.srv.Requests()["POST /projects/{project_id}/branches"] != 2 {
		t.Fatalf("requests %v", e.srv.Requests())
	}
}

func TestKeysAndOrgs(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.creds
	prj := e.createProject(c.FreeOrgAPIKey, nil)
	pid := str(prj, "project", "id")

	mustContain(t, e.expect(e.do("GET", "/projects", "", nil), 401), "")
	bad := e.expect(e.do("GET", "/projects", "napi_wrong", nil), 401)
	if _, ok := bad.body["code"]; !ok {
		t.Fatalf("401 body %s", bad.raw)
	}
	mustContain(t, e.expect(e.do("GET", "/projects", c.PersonalAPIKey, nil), 400), "org_id is required")
	mustContain(t, e.expect(e.do("POST", "/projects", c.PersonalAPIKey, map[string]any{"project": map[string]any{}}), 400), "org_id is required")
	e.expect(e.do("GET", "/projects/"+pid, c.PaidOrgAPIKey, nil), 404)
	e.expect(e.do("GET", "/projects/"+pid, c.PersonalAPIKey, nil), 200)
	l := e.expect(e.do("GET", "/projects?org_id="+c.FreeOrgID, c.PersonalAPIKey, nil), 200)
	if len(l.body["projects"].([]any)) != 1 {
		t.Fatalf("projects %s", l.raw)
	}
	if l := e.expect(e.do("GET", "/projects", c.PaidOrgAPIKey, nil), 200); len(l.body["projects"].([]any)) != 0 {
		t.Fatalf("paid org sees %s", l.raw)
	}
	e.expect(e.do("POST", "/organizations/"+c.FreeOrgID+"/projects/transfer", c.FreeOrgAPIKey,
		map[string]any{"destination_org_id": c.PaidOrgID, "project_ids": []string{pid}}), 403)
	// Plan limits on create.
	e.expect(e.do("POST", "/projects", c.FreeOrgAPIKey, map[string]any{"project": map[string]any{"history_retention_seconds": 172800}}), 400)
	e.expect(e.do("POST", "/projects", c.FreeOrgAPIKey, map[string]any{"project": map[string]any{
		"default_endpoint_settings": map[string]any{"autoscaling_limit_min_cu": 0.25, "autoscaling_limit_max_cu": 4}}}), 400)
	e.expect(e.do("POST", "/projects", c.PaidOrgAPIKey, map[string]any{"project": map[string]any{
		"history_retention_seconds": 604800,
		"default_endpoint_settings": map[string]any{"autoscaling_limit_min_cu": 0.25, "autoscaling_limit_max_cu": 4}}}), 201)
}

func TestProjectPagination(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.creds.FreeOrgAPIKey
	want := map[string]bool{}
	for range 5 {
		want[str(e.createProject(key, nil), "project", "id")] = true
	}
	got := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not stop")
		}
		r := e.expect(e.do("GET", "/projects?limit=2&cursor="+cursor, key, nil), 200)
		items := r.body["projects"].([]any)
		for _, it := range items {
			got[it.(map[string]any)["id"].(string)] = true
		}
		if len(items) < 2 {
			break
		}
		cursor = str(r.body, "pagination", "cursor")
	}
	if len(got) != len(want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestBranchLimitAndNames(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.creds.FreeOrgAPIKey
	pid := str(e.createProject(key, nil), "project", "id")
	for i := 2; i <= 10; i++ {
		e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "b" + string(rune('a'+i))}}), 201)
	}
	r := e.expect(e.createBranch(key, pid, nil), 422)
	if r.body["code"] != "BRANCHES_LIMIT_EXCEEDED" {
		t.Fatalf("code %v", r.body["code"])
	}
	mustContain(t, e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "bc"}}), 409), `branch already exists; branch_name:"bc"`)
	l := e.expect(e.do("GET", "/projects/"+pid+"/branches?sort_by=name&sort_order=asc&limit=4", key, nil), 200)
	if n := len(l.body["branches"].([]any)); n != 4 || str(l.body, "pagination", "next") == "" {
		t.Fatalf("list %s", l.raw)
	}
}

func TestRestoreWindowAndSnapshotLimit(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.creds.FreeOrgAPIKey
	prj := e.createProject(key, nil)
	pid, main := str(prj, "project", "id"), str(prj, "branch", "id")
	old := time.Now().Add(-25 * time.Hour).UTC().Format(time.RFC3339)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r := e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"parent_timestamp": old}}), 400)
	mustContain(t, r, `timestamp is before retention window`)
	mustContain(t, r, `retention_window:"24h0m0s"`)
	mustContain(t, e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"parent_timestamp": future}}), 400), "in the future")
	mustContain(t, e.expect(e.do("POST", "/projects/"+pid+"/branches/"+main+"/restore", key, map[string]any{
		"source_branch_id": main, "source_timestamp": old, "preserve_under_name": "bk"}), 400), "retention window")
	e.expect(e.do("POST", "/projects/"+pid+"/branches/"+main+"/snapshot?timestamp="+url.QueryEscape(old), key, nil), 400)

	child := str(e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "dev"}}), 201).body, "branch", "id")
	e.expect(e.do("POST", "/projects/"+pid+"/branches/"+child+"/snapshot", key, nil), 400)

	s := e.expect(e.do("POST", "/projects/"+pid+"/branches/"+main+"/snapshot?name=cp1", key, nil), 200)
	if str(s.body, "snapshot", "source_branch_id") != main || str(s.body, "snapshot", "name") != "cp1" {
		t.Fatalf("snapshot %s", s.raw)
	}
	e.waitOps(key, pid)
	r = e.expect(e.do("POST", "/projects/"+pid+"/branches/"+main+"/snapshot", key, map[string]any{"name": "cp2"}), 422)
	if r.body["code"] != "SNAPSHOTS_LIMIT_EXCEEDED" {
		t.Fatalf("code %v", r.body["code"])
	}
	// Deleting frees the slot.
	e.expect(e.do("DELETE", "/projects/"+pid+"/snapshots/"+str(s.body, "snapshot", "id"), key, nil), 202)
	e.waitOps(key, pid)
	e.expect(e.do("POST", "/projects/"+pid+"/branches/"+main+"/snapshot", key, map[string]any{"name": "cp2"}), 200)
}

// Neon's documented parentage of an in-place restore with preserve_under_name ("Instant
// restore"): a root branch keeps its id and stays a root, its backup is a separate root, and
// its children move to the backup; the backup of a non-root branch becomes that branch's
// parent, taking its place in the tree. Snapshots are taken of root branches only, so the
// default branch can be checkpointed after any number of undos.
func TestPITRRestoreFollowsNeonParentage(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.creds.PaidOrgAPIKey
	prj := e.createProject(key, nil)
	pid, main := str(prj, "project", "id"), str(prj, "branch", "id")
	epID := str(prj["endpoints"].([]any)[0].(map[string]any), "id")
	child := str(e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "dev"}}), 201).body, "branch", "id")
	e.waitOps(key, pid)
	path := "/projects/" + pid + "/branches/" + main + "/restore"
	at := time.Now().UTC().Format(time.RFC3339)
	get := func(id string) resp { return e.expect(e.do("GET", "/projects/"+pid+"/branches/"+id, key, nil), 200) }
	byName := func(name string) string {
		r := e.expect(e.do("GET", "/projects/"+pid+"/branches", key, nil), 200)
		for _, b := range r.body["branches"].([]any) {
			if m := b.(map[string]any); m["name"] == name {
				return m["id"].(string)
			}
		}
		t.Fatalf("no branch named %s: %s", name, r.raw)
		return ""
	}

	e.expect(e.do("POST", path, key, map[string]any{"source_branch_id": main, "source_timestamp": at}), 400)
	e.expect(e.do("POST", path, key, map[string]any{"source_branch_id": main, "preserve_under_name": "x"}), 400)
	var backups []string
	for i, name := range []string{"main_old_1", "main_old_2", "main_old_3"} {
		r := e.expect(e.do("POST", path, key, map[string]any{"source_branch_id": main, "source_timestamp": at, "preserve_under_name": name}), 200)
		if str(r.body, "branch", "id") != main || str(r.body, "branch", "last_reset_at") == "" || str(r.body, "branch", "parent_id") != "" {
			t.Fatalf("restore %d: the restored root must keep its id and stay a root: %s", i+1, r.raw)
		}
		e.waitOps(key, pid)
		backup := byName(name)
		if b := get(backup); str(b.body, "branch", "parent_id") != "" {
			t.Fatalf("restore %d: the backup of a root must be a root: %s", i+1, b.raw)
		}
		backups = append(backups, backup)
		// A checkpoint works after every undo: main is still a root.
		e.expect(e.do("POST", "/projects/"+pid+"/branches/"+main+"/snapshot?name=cp", key, nil), 200)
		e.waitOps(key, pid)
		sn := e.expect(e.do("GET", "/projects/"+pid+"/snapshots", key, nil), 200).body["snapshots"].([]any)
		e.expect(e.do("DELETE", "/projects/"+pid+"/snapshots/"+sn[0].(map[string]any)["id"].(string), key, nil), 202)
		e.waitOps(key, pid)
	}
	// The child moved to the first backup (it branched from the state that backup keeps).
	if got := str(get(child).body, "branch", "parent_id"); got != backups[0] {
		t.Fatalf("child parent %q, want the first backup %q", got, backups[0])
	}
	eps := e.expect(e.do("GET", "/projects/"+pid+"/branches/"+main+"/endpoints", key, nil), 200)
	if str(eps.body["endpoints"].([]any)[0].(map[string]any), "id") != epID {
		t.Fatalf("endpoint moved: %s", eps.raw)
	}
	// Backups without children can go at once; the one with the child stays until it is gone.
	e.expect(e.do("DELETE", "/projects/"+pid+"/branches/"+backups[2], key, nil), 200)
	e.waitOps(key, pid)
	e.expect(e.do("DELETE", "/projects/"+pid+"/branches/"+backups[0], key, nil), 422)

	// A non-root branch: its backup becomes its parent and takes its former parent.
	dpath := "/projects/" + pid + "/branches/" + child + "/restore"
	r := e.expect(e.do("POST", dpath, key, map[string]any{"source_branch_id": child, "source_timestamp": time.Now().UTC().Format(time.RFC3339), "preserve_under_name": "dev_old"}), 200)
	e.waitOps(key, pid)
	devBackup := byName("dev_old")
	if str(r.body, "branch", "id") != child || str(r.body, "branch", "parent_id") != devBackup {
		t.Fatalf("restored non-root branch: %s (backup %s)", r.raw, devBackup)
	}
	if got := str(get(devBackup).body, "branch", "parent_id"); got != backups[0] {
		t.Fatalf("dev backup parent %q, want %q", got, backups[0])
	}
	mustContain(t, e.expect(e.do("POST", "/projects/"+pid+"/branches/"+child+"/snapshot", key, nil), 400), "root branches")
	e.expect(e.do("DELETE", "/projects/"+pid+"/branches/"+devBackup, key, nil), 422)
	e.expect(e.do("DELETE", "/projects/"+pid+"/branches/"+child, key, nil), 200)
	e.waitOps(key, pid)
	e.expect(e.do("DELETE", "/projects/"+pid+"/branches/"+devBackup, key, nil), 200)
	e.waitOps(key, pid)
	e.expect(e.do("DELETE", "/projects/"+pid+"/branches/"+backups[0], key, nil), 200)
	e.waitOps(key, pid)
	e.expect(e.do("DELETE", "/projects/"+pid+"/branches/"+main, key, nil), 400)
}

func TestSnapshotRestoreFinalize(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.creds.PaidOrgAPIKey
	prj := e.createProject(key, nil)
	pid, main := str(prj, "project", "id"), str(prj, "branch", "id")
	uriPath := "/projects/" + pid + "/connection_uri?database_name=neondb&role_name=neondb_owner"
	uri := str(e.expect(e.do("GET", uriPath, key, nil), 200).body, "uri")
	snap := e.expect(e.do("POST", "/projects/"+pid+"/branches/"+main+"/snapshot", key, nil), 200)
	sid := str(snap.body, "snapshot", "id")
	e.waitOps(key, pid)

	r := e.expect(e.do("POST", "/projects/"+pid+"/snapshots/"+sid+"/restore", key, map[string]any{"finalize_restore": true}), 200)
	nb := r.body["branch"].(map[string]any)
	if nb["id"] == main || nb["name"] != "main" || nb["default"] != true || nb["restore_status"] != "finalized" || nb["restored_from"] != sid {
		t.Fatalf("new branch %v", nb)
	}
	e.waitOps(key, pid)
	old := e.expect(e.do("GET", "/projects/"+pid+"/branches/"+main, key, nil), 200)
	if str(old.body, "branch", "name") != "main (old)" || old.body["branch"].(map[string]any)["default"] != false {
		t.Fatalf("old branch %s", old.raw)
	}
	if eps := e.expect(e.do("GET", "/projects/"+pid+"/branches/"+main+"/endpoints", key, nil), 200); len(eps.body["endpoints"].([]any)) != 0 {
		t.Fatalf("old branch kept endpoints %s", eps.raw)
	}
	if got := str(e.expect(e.do("GET", uriPath, key, nil), 200).body, "uri"); got != uri {
		t.Fatalf("connection string changed: %q → %q", uri, got)
	}
	// The restored branch is a root: checkpoint again.
	newID := nb["id"].(string)
	e.expect(e.do("POST", "/projects/"+pid+"/branches/"+newID+"/snapshot", key, nil), 200)
	e.waitOps(key, pid)

	// Preview restore, then finalize with an explicit name. The target must
	// be named: it defaults to the snapshot's source, now "main (old)".
	r = e.expect(e.do("POST", "/projects/"+pid+"/snapshots/"+sid+"/restore", key, map[string]any{"name": "preview", "target_branch_id": newID}), 200)
	pv := str(r.body, "branch", "id")
	if str(r.body, "branch", "restore_status") != "restored" {
		t.Fatalf("preview %s", r.raw)
	}
	e.waitOps(key, pid)
	e.expect(e.do("POST", "/projects/"+pid+"/branches/"+pv+"/finalize_restore", key, map[string]any{"name": "before-undo"}), 200)
	e.waitOps(key, pid)
	if n := str(e.expect(e.do("GET", "/projects/"+pid+"/branches/"+newID, key, nil), 200).body, "branch", "name"); n != "before-undo" {
		t.Fatalf("replaced branch name %q", n)
	}
	if got := str(e.expect(e.do("GET", uriPath, key, nil), 200).body, "uri"); got != uri {
		t.Fatalf("connection string changed after finalize: %q", got)
	}
}

func TestTransfer(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.creds
	pid := str(e.createProject(c.FreeOrgAPIKey, nil), "project", "id")
	path := "/organizations/" + c.FreeOrgID + "/projects/transfer"
	e.expect(e.do("POST", path, c.PersonalAPIKey, map[string]any{"destination_org_id": c.PaidOrgID, "project_ids": []string{}}), 400)
	e.expect(e.do("POST", path, c.PersonalAPIKey, map[string]any{"destination_org_id": c.PaidOrgID, "project_ids": []string{pid}}), 200)
	e.expect(e.do("GET", "/projects/"+pid, c.FreeOrgAPIKey, nil), 404)
	if got := str(e.expect(e.do("GET", "/projects/"+pid, c.PaidOrgAPIKey, nil), 200).body, "project", "org_id"); got != c.PaidOrgID {
		t.Fatalf("org_id %q", got)
	}
	// A project using more than the free plan allows cannot go back.
	e.expect(e.do("PATCH", "/projects/"+pid, c.PaidOrgAPIKey, map[string]any{"project": map[string]any{"history_retention_seconds": 604800}}), 200)
	e.waitOps(c.PaidOrgAPIKey, pid)
	r := e.expect(e.do("POST", "/organizations/"+c.PaidOrgID+"/projects/transfer", c.PersonalAPIKey,
		map[string]any{"destination_org_id": c.FreeOrgID, "project_ids": []string{pid}}), 406)
	limits := r.body["limits"].([]any)
	if len(limits) != 1 || str(limits[0].(map[string]any), "name") != "history_retention_seconds" {
		t.Fatalf("limits %s", r.raw)
	}
	e.expect(e.do("GET", "/projects/"+pid, c.PaidOrgAPIKey, nil), 200)
}

func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	srv, err := New(context.Background(), Options{DataDir: dir, OperationDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	creds := srv.Credentials()
	e := newEnvFrom(t, srv)
	prj := e.createProject(creds.FreeOrgAPIKey, nil)
	pid := str(prj, "project", "id")
	uriPath := "/projects/" + pid + "/connection_uri?database_name=neondb&role_name=neondb_owner"
	uri := str(e.expect(e.do("GET", uriPath, creds.FreeOrgAPIKey, nil), 200).body, "uri")
	e.hs.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	e2 := newEnv(t, Options{DataDir: dir})
	if e2.creds != creds {
		t.Fatalf("credentials changed: %+v vs %+v", e2.creds, creds)
	}
	e2.expect(e2.do("GET", "/projects/"+pid, creds.FreeOrgAPIKey, nil), 200)
	if got := str(e2.expect(e2.do("GET", uriPath, creds.FreeOrgAPIKey, nil), 200).body, "uri"); got != uri {
		t.Fatalf("uri %q, want %q", got, uri)
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.creds.FreeOrgAPIKey
	e.srv.Faults().SetFailureRate(1, 503)
	r := e.expect(e.do("POST", "/projects", key, map[string]any{"project": map[string]any{}}), 503)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After on injected failure")
	}
	e.expect(e.do("GET", "/projects", key, nil), 503)
	e.srv.Faults().SetFailureRate(0.3, 423, 429, 503)
	failed := 0
	for range 200 {
		if e.do("GET", "/projects", key, nil).status != 200 {
			failed++
		}
	}
	if failed < 30 || failed > 100 {
		t.Fatalf("%d/200 failed at rate 0.3", failed)
	}
	e.srv.Faults().Reset()
	if l := e.expect(e.do("GET", "/projects", key, nil), 200); len(l.body["projects"].([]any)) != 0 {
		t.Fatalf("injected failure changed state: %s", l.raw)
	}

	// Drop after commit: the client gets no answer, the project exists.
	e.srv.Faults().DropResponses("POST", "/projects", 1)
	if _, err := e.try("POST", "/projects", key, map[string]any{"project": map[string]any{"name": "dropped"}}); err == nil {
		t.Fatal("dropped response reached the client")
	}
	l := e.expect(e.do("GET", "/projects?search=dropped", key, nil), 200)
	if len(l.body["projects"].([]any)) != 1 {
		t.Fatalf("project not committed: %s", l.raw)
	}
	if n := e.srv.Requests()["POST /projects"]; n != 2 {
		t.Fatalf("POST /projects count %d", n)
	}

	// Over HTTP, as a test of the built binary would.
	res, err := e.hs.Client().Post(e.hs.URL+"/__neonlocal/faults", "application/json",
		stringsReader(`{"failure_rate":1,"failure_statuses":[429],"latency_ms":1}`))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("set faults: %v %v", err, res)
	}
	res.Body.Close()
	e.expect(e.do("GET", "/projects", key, nil), 429)
	res, err = e.hs.Client().Post(e.hs.URL+"/__neonlocal/faults", "application/json", stringsReader(`{"reset":true}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	e.expect(e.do("GET", "/projects", key, nil), 200)
}

func TestConsumption(t *testing.T) {
	e := newEnv(t, Options{ConsumptionRatePerMinute: 4})
	key := e.creds.PaidOrgAPIKey
	pid := str(e.createProject(key, nil), "project", "id")
	now := time.Now().UTC()
	q := "?granularity=daily&from=" + url.QueryEscape(now.Add(-48*time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(now.Format(time.RFC3339))
	r := e.expect(e.do("GET", "/consumption_history/projects"+q+"&project_ids="+pid, key, nil), 200)
	ps := r.body["projects"].([]any)
	if len(ps) != 1 || str(ps[0].(map[string]any), "project_id") != pid {
		t.Fatalf("consumption %s", r.raw)
	}
	e.expect(e.do("GET", "/consumption_history/projects?granularity=daily", key, nil), 400)
	old := url.QueryEscape(now.Add(-200 * time.Hour).Format(time.RFC3339))
	e.expect(e.do("GET", "/consumption_history/projects?granularity=hourly&from="+old+"&to="+url.QueryEscape(now.Format(time.RFC3339)), key, nil), 406)
	e.expect(e.do("GET", "/consumption_history/projects"+q, key, nil), 200)
	r = e.expect(e.do("GET", "/consumption_history/projects"+q, key, nil), 429)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// Buckets are per key.
	e.expect(e.do("GET", "/consumption_history/projects"+q, e.creds.FreeOrgAPIKey, nil), 200)
	if n := e.srv.Requests()["GET /consumption_history/projects"]; n != 6 {
		t.Fatalf("consumption requests %d", n)
	}
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestExpiredBranchSwept(t *testing.T) {
	clk := &testClock{t: time.Now().UTC()}
	e := newEnv(t, Options{Now: clk.Now, SweepInterval: 10 * time.Millisecond})
	key := e.creds.FreeOrgAPIKey
	pid := str(e.createProject(key, nil), "project", "id")
	exp := clk.Now().Add(time.Hour).Format(time.RFC3339)
	r := e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "tmp", "expires_at": exp}}), 201)
	bid := str(r.body, "branch", "id")
	keep := str(e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "keep", "expires_at": exp}}), 201).body, "branch", "id")
	e.expect(e.do("PATCH", "/projects/"+pid+"/branches/"+keep, key, map[string]any{"branch": map[string]any{"expires_at": nil}}), 200)
	time.Sleep(50 * time.Millisecond)
	e.expect(e.do("GET", "/projects/"+pid+"/branches/"+bid, key, nil), 200)
	clk.Advance(2 * time.Hour)
	deadline := time.Now().Add(3 * time.Second)
	for e.do("GET", "/projects/"+pid+"/branches/"+bid, key, nil).status != 404 {
		if time.Now().After(deadline) {
			t.Fatal("expired branch was not deleted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// While tmp's delete ran, the project was locked and no sweep could touch keep: wait for
	// it, sweep again, and only then check that a branch without an expiry stays.
	e.waitOps(key, pid)
	e.srv.sweep()
	e.expect(e.do("GET", "/projects/"+pid+"/branches/"+keep, key, nil), 200)
}

// Two emulators on one data dir would overwrite each other's state: the second is refused,
// and the dir is free again once the first closes.
func TestOneEmulatorPerDataDir(t *testing.T) {
	dir := t.TempDir()
	first, err := New(t.Context(), Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(t.Context(), Options{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "in use by another neonguard") {
		t.Fatalf("second emulator on the same dir: %v, want an in-use error", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := New(t.Context(), Options{DataDir: dir})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	_ = again.Close()
}

// A schema-only branch is refused: the emulator would otherwise hand back a full copy.
func TestSchemaOnlyBranchRefused(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.creds.FreeOrgAPIKey
	pid := str(e.createProject(key, nil), "project", "id")
	e.waitOps(key, pid)
	r := e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "s", "init_source": "schema-only"}}), 400)
	if !strings.Contains(string(r.raw), "schema-only is not supported") {
		t.Fatalf("refusal does not say why: %s", r.raw)
	}
}
