package controlplane

import (
	"testing"
	"time"
)

// waitGone polls until GET path answers 404 (the sweep runs every few milliseconds here).
func (e *env) waitGone(key, path string) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.do("GET", path, key, nil).status != 404 {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s was not deleted", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An expired branch goes like a DELETE would: with its compute, recorded as operations, and
// its slot under the plan's branch limit is free again. The default branch never expires.
func TestExpiredBranchGoesWithItsComputeAndFreesItsSlot(t *testing.T) {
	clk := &testClock{t: time.Now().UTC()}
	e := newEnv(t, Options{Now: clk.Now, SweepInterval: 5 * time.Millisecond})
	key := e.creds.FreeOrgAPIKey
	created := e.createProject(key, nil)
	pid := str(created, "project", "id")
	mainID := str(created, "branch", "id")

	soon := clk.Now().Add(time.Minute).Format(time.RFC3339)
	later := clk.Now().Add(time.Hour).Format(time.RFC3339)
	r := e.expect(e.createBranch(key, pid, map[string]any{
		"branch":    map[string]any{"name": "short", "expires_at": soon},
		"endpoints": []map[string]any{{"type": "read_write"}},
	}), 201)
	short := str(r.body, "branch", "id")
	ep := r.body["endpoints"].([]any)[0].(map[string]any)["id"].(string)
	if ttl, _ := r.body["branch"].(map[string]any)["ttl_interval_seconds"].(float64); ttl < 59 || ttl > 60 {
		t.Fatalf("ttl_interval_seconds = %v, want about 60", r.body["branch"].(map[string]any)["ttl_interval_seconds"])
	}
	// Fill the free plan's 10 branches (main + 9).
	for i := range 8 {
		e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "b" + string(rune('0'+i)), "expires_at": later}}), 201)
	}
	full := e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "one-too-many"}})
	e.expect(full, 422)

	// Neon refuses a TTL on the default branch; the sweep would never delete it anyway.
	mustContain(t, e.expect(e.do("PATCH", "/projects/"+pid+"/branches/"+mainID, key,
		map[string]any{"branch": map[string]any{"expires_at": soon}}), 400), "default branch")

	clk.Advance(2 * time.Minute)
	e.waitGone(key, "/projects/"+pid+"/branches/"+short)
	e.expect(e.do("GET", "/projects/"+pid+"/endpoints/"+ep, key, nil), 404)
	e.expect(e.do("GET", "/projects/"+pid+"/branches/"+mainID, key, nil), 200)
	e.waitOps(key, pid)
	ops := e.expect(e.do("GET", "/projects/"+pid+"/operations?limit=1000", key, nil), 200).body["operations"].([]any)
	actions := map[string]bool{}
	for _, o := range ops {
		op := o.(map[string]any)
		if op["branch_id"] == short {
			actions[op["action"].(string)] = true
		}
	}
	if !actions["suspend_compute"] || !actions["delete_timeline"] {
		t.Fatalf("operations of the expired branch: %v, want suspend_compute and delete_timeline", actions)
	}
	// The slot is free again.
	e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "fits-now"}}), 201)
}

// compute_last_active_at is when a compute of the project was last seen active: set when one
// starts or stops, carried by GET and list, and omitted while nothing ever ran.
func TestComputeLastActiveAt(t *testing.T) {
	clk := &testClock{t: time.Now().UTC().Truncate(time.Second)}
	e := newEnv(t, Options{Now: clk.Now})
	key := e.creds.FreeOrgAPIKey
	created := e.createProject(key, nil)
	pid := str(created, "project", "id")
	start := clk.Now()
	got := str(e.expect(e.do("GET", "/projects/"+pid, key, nil), 200).body, "project", "compute_last_active_at")
	if got != start.Format(time.RFC3339) {
		t.Fatalf("compute_last_active_at after create = %q, want %s", got, start.Format(time.RFC3339))
	}
	clk.Advance(48 * time.Hour)
	// Unchanged while nothing happens.
	list := e.expect(e.do("GET", "/projects", key, nil), 200).body["projects"].([]any)
	if v := list[0].(map[string]any)["compute_last_active_at"]; v != start.Format(time.RFC3339) {
		t.Fatalf("list: compute_last_active_at = %v, want %s", v, start.Format(time.RFC3339))
	}
	// Suspending the compute: it was active until now.
	ep := created["endpoints"].([]any)[0].(map[string]any)["id"].(string)
	e.expect(e.do("POST", "/projects/"+pid+"/endpoints/"+ep+"/suspend", key, nil), 200)
	e.waitOps(key, pid)
	got = str(e.expect(e.do("GET", "/projects/"+pid, key, nil), 200).body, "project", "compute_last_active_at")
	if got != clk.Now().Format(time.RFC3339) {
		t.Fatalf("after suspend: compute_last_active_at = %q, want %s", got, clk.Now().Format(time.RFC3339))
	}
}
