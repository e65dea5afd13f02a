package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // reads the store of the server under test
)

// The crash-point explorer (issue 9): for each mutating tool, it kills the real binary right
// after its 1st Neon response, then after its 2nd, and so on until the call completes without
// reaching the count, so every request index of the tool is a crash point. After each crash it
// starts the binary again on the same data dir, retries the same call, and checks:
//   - the retry succeeds, with the same result where the call is idempotent;
//   - nothing on Neon is unknown to the store: every project is a recorded database, every
//     branch is main or a recorded dev/backup branch of the right kind with an expiry, every
//     snapshot a recorded checkpoint, and no intent or reservation is left open;
//   - checkpoints are never fewer than before;
//   - main's rows in real PostgreSQL are the state after the call.
//
// Operation polls (GET …/operations/…) are not crash points by default: a crash after one
// leaves Neon in the state of the request before it, and there are many per call. With
// NEONGUARD_EXPLORE_POLLS=1 they are (the long mode).
func TestCrashPointExplorer(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the binary at every crash point")
	}
	e := newCrashEnv(t)
	polls := os.Getenv("NEONGUARD_EXPLORE_POLLS") == "1"
	x := &explorer{t: t, e: e, polls: polls, points: map[string]int{}}

	// Tenant on pro: room for the backups and dev branches every point leaves; checkpoint
	// replace makes the new checkpoint before deleting the old one (the plan has room).
	x.tenant, x.tier = "explore-pro", "pro"
	s := x.start(0)
	db := s.mustCall("create_database", map[string]any{"name": "app"})
	id, uri := db["database_id"].(string), db["connection_string"].(string)
	insertRows(t, uri, 1, 3)
	s.mustCall("checkpoint", map[string]any{"database_id": id, "name": "cp"})
	cpRows := mustRows(t, uri)
	s.stop()
	x.checkAll("setup")

	n := 0
	x.explore("create_database", func(int) (map[string]any, func(map[string]any)) {
		n++
		return map[string]any{"name": fmt.Sprintf("db-%d", n)}, nil
	})
	x.explore("checkpoint (make, then delete the replaced one)", func(int) (map[string]any, func(map[string]any)) {
		return map[string]any{"database_id": id, "name": "cp", "replace": true}, func(map[string]any) {
			x.wantCheckpoints(id, "cp")
			cpRows = mustRows(t, uri)
		}
	})
	x.explore("undo_to_time", func(int) (map[string]any, func(map[string]any)) {
		before := mustRows(t, uri)
		time.Sleep(1100 * time.Millisecond)
		at := pgNow(t, uri)
		time.Sleep(1100 * time.Millisecond)
		marker := 1000 + len(before)
		insertRows(t, uri, marker, marker)
		return map[string]any{"database_id": id, "timestamp": at.Format(time.RFC3339Nano)}, func(map[string]any) {
			if got := mustRows(t, uri); !slices.Equal(got, before) {
				t.Fatalf("undo_to_time: main holds %v after the retry, want %v", got, before)
			}
		}
	})
	dev := 0
	x.explore("create_dev_branch", func(int) (map[string]any, func(map[string]any)) {
		dev++
		name := fmt.Sprintf("dev-%d", dev)
		return map[string]any{"database_id": id, "name": name}, func(res map[string]any) {
			for _, b := range x.branches(id) {
				if b.Name == name && (b.Kind != "dev" || b.ID != res["branch_id"]) {
					t.Fatalf("create_dev_branch: %s is %s %s, the retry answered %v", name, b.Kind, b.ID, res["branch_id"])
				}
			}
		}
	})
	// A dry run makes a temporary branch and deletes it: at every crash point, what it made is
	// deleted by the retry's settling (checkAll fails on a "dry-run-" branch left on Neon), and
	// main is never changed.
	x.explore("apply_migration (dry_run)", func(int) (map[string]any, func(map[string]any)) {
		before := mustRows(t, uri)
		return map[string]any{"database_id": id, "name": "0001_dry", "sql": "CREATE TABLE dry (n int); DROP TABLE t", "dry_run": true},
			func(res map[string]any) {
				if res["dry_run"] != true || res["applied"] != true {
					t.Fatalf("apply_migration dry_run: %v", res)
				}
				if got := mustRows(t, uri); !slices.Equal(got, before) {
					t.Fatalf("apply_migration dry_run: main holds %v, want %v", got, before)
				}
			}
	})
	x.explore("restore_checkpoint", func(int) (map[string]any, func(map[string]any)) {
		insertRows(t, uri, 5000, 5000)
		return map[string]any{"database_id": id, "checkpoint": "cp"}, func(map[string]any) {
			if got := mustRows(t, uri); !slices.Equal(got, cpRows) {
				t.Fatalf("restore_checkpoint: main holds %v, want the checkpoint's %v", got, cpRows)
			}
		}
	})
	del := 0
	x.explore("delete_dev_branch", func(int) (map[string]any, func(map[string]any)) {
		del++
		name := fmt.Sprintf("dev-%d", del)
		return map[string]any{"database_id": id, "branch": name}, func(map[string]any) {
			for _, b := range x.branches(id) {
				if b.Name == name {
					t.Fatalf("delete_dev_branch: %s is still there", name)
				}
			}
		}
	})

	// Tenant on free: one checkpoint, so replace must delete the old one first; the intent
	// then makes the new one whatever happens.
	x.tenant, x.tier = "explore-free", "free"
	s = x.start(0)
	db = s.mustCall("create_database", map[string]any{"name": "app"})
	fid := db["database_id"].(string)
	s.mustCall("checkpoint", map[string]any{"database_id": fid, "name": "cp"})
	s.stop()
	x.explore("checkpoint (delete the replaced one, then make)", func(int) (map[string]any, func(map[string]any)) {
		return map[string]any{"database_id": fid, "name": "cp", "replace": true}, func(map[string]any) {
			x.wantCheckpoints(fid, "cp")
		}
	})

	total := 0
	for tool, k := range x.points {
		t.Logf("%s: %d crash points", tool, k)
		total += k
	}
	t.Logf("crash points covered: %d (operation polls included: %v)", total, polls)
}

type explorer struct {
	t            *testing.T
	e            *crashEnv
	polls        bool
	tenant, tier string
	points       map[string]int
}

func (x *explorer) start(crashAfter int) *crashServer {
	x.e.env = []string{"NEONGUARD_CONFIG=", "NEONGUARD_TENANT=" + x.tenant, "NEONGUARD_TIER=" + x.tier,
		"NEONGUARD_JANITOR_INTERVAL=0", "NEONGUARD_MONITOR_INTERVAL=0",
		"NEONGUARD_LOCAL_DISK_BUDGET=0"} // every point leaves databases and branches behind
	if crashAfter > 0 {
		x.e.env = append(x.e.env, fmt.Sprintf("%s=%d", crashAfterRequestsEnv, crashAfter))
		if x.polls {
			x.e.env = append(x.e.env, crashCountPollsEnv+"=1")
		}
	}
	defer func() { x.e.env = nil }()
	return x.e.start(x.t)
}

// explore runs one tool at every crash point. next prepares an attempt and returns its
// arguments and a check of the state after it succeeded.
func (x *explorer) explore(tool string, next func(k int) (map[string]any, func(map[string]any))) {
	t := x.t
	name := strings.Fields(tool)[0]
	for k := 1; ; k++ {
		if k > 60 {
			t.Fatalf("%s: still crashing after %d requests", tool, k)
		}
		s := x.start(k)
		args, check := next(k) // through the database's connection string: no Neon request
		res, code, err := s.call(name, args)
		if err == nil || code != "" {
			if err != nil {
				t.Fatalf("%s: with no crash: %v\n%s", tool, err, s.logTail())
			}
			if check != nil {
				check(res)
			}
			s.stop()
			x.checkAll(tool + " (no crash)")
			return
		}
		// The server must have died after its k-th Neon response (Close reaps it; a live
		// server would exit normally on its closed stdin).
		s.waitExit()
		if ps := s.cmd.ProcessState; ps == nil || !ps.Sys().(syscall.WaitStatus).Signaled() {
			t.Fatalf("%s: the call failed without a crash: %v (%v)\n%s", tool, err, ps, s.logTail())
		}
		x.points[tool]++

		r := x.start(0)
		res, _, err = r.call(name, args)
		if err != nil {
			t.Fatalf("%s, crash after response %d: the retry failed: %v\n%s", tool, k, err, r.logTail())
		}
		if check != nil {
			check(res)
		}
		r.stop()
		x.checkAll(fmt.Sprintf("%s, crash after response %d", tool, k))
	}
}

// neonView is the emulator's persisted state, read from its data dir.
type neonView struct {
	Projects map[string]struct {
		ID, Name, OrgID string
	} `json:"projects"`
	Branches map[string]struct {
		ID        string     `json:"id"`
		ProjectID string     `json:"project_id"`
		Name      string     `json:"name"`
		Default   bool       `json:"default"`
		ExpiresAt *time.Time `json:"expires_at"`
	} `json:"branches"`
	Snapshots map[string]struct {
		ID        string `json:"id"`
		ProjectID string `json:"project_id"`
		Name      string `json:"name"`
	} `json:"snapshots"`
}

func (x *explorer) neon() neonView {
	b, err := os.ReadFile(filepath.Join(x.e.dir, "neonlocal", "state.json"))
	if err != nil {
		x.t.Fatal(err)
	}
	var v neonView
	if err := json.Unmarshal(b, &v); err != nil {
		x.t.Fatal(err)
	}
	return v
}

func (x *explorer) store() *sql.DB {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(x.e.dir, "neonguard.db")+"?mode=ro")
	if err != nil {
		x.t.Fatal(err)
	}
	return db
}

// checkAll checks every project of every tenant against the store.
func (x *explorer) checkAll(when string) {
	t := x.t
	t.Helper()
	st := x.store()
	defer st.Close()
	v := x.neon()
	var open int
	if err := st.QueryRow(`SELECT count(*) FROM intents WHERE done_at IS NULL`).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if open != 0 {
		t.Errorf("%s: %d intents left open", when, open)
	}
	var reservations int
	if err := st.QueryRow(`SELECT count(*) FROM databases WHERE id IS NULL AND deleted_at IS NULL`).Scan(&reservations); err != nil {
		t.Fatal(err)
	}
	if reservations != 0 {
		t.Errorf("%s: %d reservations left", when, reservations)
	}
	for _, p := range v.Projects {
		var root string
		err := st.QueryRow(`SELECT root_branch_id FROM databases WHERE id = $1 AND deleted_at IS NULL`, p.ID).Scan(&root)
		if err != nil {
			t.Errorf("%s: project %s (%s) is not a recorded database: %v", when, p.ID, p.Name, err)
			continue
		}
		kinds := map[string]string{}
		expiry := map[string]bool{}
		rows, err := st.Query(`SELECT id, kind, expires_at IS NOT NULL FROM branches WHERE database_id = $1`, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, kind string
			var exp bool
			if err := rows.Scan(&id, &kind, &exp); err != nil {
				t.Fatal(err)
			}
			kinds[id], expiry[id] = kind, exp
		}
		rows.Close()
		for _, b := range v.Branches {
			if b.ProjectID != p.ID {
				continue
			}
			switch {
			case b.Default:
				if b.ID != root {
					t.Errorf("%s: project %s: the default branch %s is not the recorded main %s", when, p.ID, b.ID, root)
				}
			case strings.HasPrefix(b.Name, "dry-run-"):
				t.Errorf("%s: project %s: a dry run's temporary branch %s (%s) is left", when, p.ID, b.ID, b.Name)
			case kinds[b.ID] == "":
				t.Errorf("%s: project %s: branch %s (%s) is unknown to the store", when, p.ID, b.ID, b.Name)
			case strings.HasPrefix(b.Name, "dev-") != (kinds[b.ID] == "dev"):
				t.Errorf("%s: project %s: branch %s is recorded as %s", when, p.ID, b.Name, kinds[b.ID])
			case b.ExpiresAt == nil && !expiry[b.ID]:
				t.Errorf("%s: project %s: branch %s has no expiry on Neon nor in the store", when, p.ID, b.Name)
			}
		}
		recorded := map[string]bool{}
		rows, err = st.Query(`SELECT id FROM checkpoints WHERE database_id = $1`, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			recorded[id] = true
		}
		rows.Close()
		for _, sn := range v.Snapshots {
			if sn.ProjectID != p.ID {
				continue
			}
			if !recorded[sn.ID] {
				t.Errorf("%s: project %s: snapshot %s (%s) is not a recorded checkpoint", when, p.ID, sn.ID, sn.Name)
			}
			delete(recorded, sn.ID)
		}
		for id := range recorded {
			t.Errorf("%s: project %s: checkpoint %s is recorded but Neon does not have it", when, p.ID, id)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// wantCheckpoints checks Neon's snapshots of a database by name.
func (x *explorer) wantCheckpoints(id string, names ...string) {
	x.t.Helper()
	var got []string
	for _, sn := range x.neon().Snapshots {
		if sn.ProjectID == id {
			got = append(got, sn.Name)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, names) {
		x.t.Fatalf("checkpoints of %s: %v, want %v", id, got, names)
	}
}

func (x *explorer) branches(id string) []branchInfo {
	var out []branchInfo
	st := x.store()
	defer st.Close()
	kinds := map[string]string{}
	rows, err := st.Query(`SELECT id, kind FROM branches WHERE database_id = $1`, id)
	if err != nil {
		x.t.Fatal(err)
	}
	for rows.Next() {
		var bid, kind string
		_ = rows.Scan(&bid, &kind)
		kinds[bid] = kind
	}
	rows.Close()
	for _, b := range x.neon().Branches {
		if b.ProjectID == id {
			out = append(out, branchInfo{ID: b.ID, Name: b.Name, Kind: kinds[b.ID]})
		}
	}
	return out
}

func mustRows(t *testing.T, uri string) []int {
	t.Helper()
	got, err := tableRows(uri)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
