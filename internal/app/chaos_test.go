package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/config"
)

// With the emulator failing 30 % of requests (423, 429, 503) and adding latency, a scripted
// workflow of 100 tool calls completes: every call succeeds or says UPSTREAM after bounded
// retries, no database is created twice, and no acknowledged checkpoint is lost.
func TestWorkflowUnderUpstreamFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("long workflow")
	}
	names := []string{"alpha", "beta", "gamma", "delta"}
	a := newApp(t, func(c *config.Config) { // one database more than the free tier's default
		free := c.Policy.Tiers["free"]
		free.MaxDatabases = len(names)
		c.Policy.Tiers["free"] = free
	})
	c := connect(t, a)
	f := a.Emulator.Faults()
	f.Seed(42)
	f.SetFailureRate(0.3, 423, 429, 503)
	f.SetLatency(0, 3*time.Millisecond)
	f.SetRetryAfter(0) // the client's own full-jitter backoff, not whole-second waits

	ids := map[string]string{}
	lastCheckpoint := map[string]string{} // database → name of the last acknowledged checkpoint
	calls, upstream := 0, 0
	check := func(tool string, r result) bool {
		calls++
		switch r.Code {
		case "":
			return true
		case "UPSTREAM":
			upstream++
			if r.Message == "" || r.Hint == "" {
				t.Errorf("%s: UPSTREAM without message or hint: %s", tool, r)
			}
			return false
		default:
			t.Errorf("%s: unexpected %s", tool, r)
			return false
		}
	}

	for round := 0; calls < 100; round++ {
		name := names[round%len(names)]
		r := call(t, c, "create_database", map[string]any{"name": name})
		if check("create_database", r) {
			if prev, ok := ids[name]; ok && prev != str(r.Structured, "database_id") {
				t.Fatalf("create_database %s returned a second id: %s then %s", name, prev, str(r.Structured, "database_id"))
			}
			ids[name] = str(r.Structured, "database_id")
		}
		id, ok := ids[name]
		if !ok {
			continue
		}
		cp := fmt.Sprintf("cp-%d", round)
		if check("checkpoint", call(t, c, "checkpoint", map[string]any{"database_id": id, "name": cp, "replace": true})) {
			lastCheckpoint[id] = cp
		} else {
			// replace=true asked for the old one to go; after a failure either may be there.
			delete(lastCheckpoint, id)
		}
		check("list_checkpoints", call(t, c, "list_checkpoints", map[string]any{"database_id": id}))
		branch := fmt.Sprintf("dev-%d", round)
		if check("create_dev_branch", call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": branch, "ttl": "1h"})) {
			check("delete_dev_branch", call(t, c, "delete_dev_branch", map[string]any{"database_id": id, "branch": branch}))
		}
		check("list_branches", call(t, c, "list_branches", map[string]any{"database_id": id}))
		check("get_connection_string", call(t, c, "get_connection_string", map[string]any{"database_id": id}))
		check("get_usage", call(t, c, "get_usage", map[string]any{"database_id": id}))
	}
	t.Logf("%d calls, %d UPSTREAM after retries", calls, upstream)

	f.Reset()
	for _, name := range names {
		if n := countProjects(t, a, "local/"+name); n > 1 {
			t.Errorf("%d projects for %s: a create was repeated", n, name)
		}
	}
	for id, cp := range lastCheckpoint {
		list := mustOK(t, call(t, c, "list_checkpoints", map[string]any{"database_id": id}), "list_checkpoints")
		found := false
		for _, x := range list["checkpoints"].([]any) {
			if str(x.(map[string]any), "name") == cp {
				found = true
			}
		}
		if !found {
			t.Errorf("database %s lost its acknowledged checkpoint %s: %v", id, cp, list["checkpoints"])
		}
	}
}
