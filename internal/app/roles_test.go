package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// emu calls the emulator's Neon API with a key, retrying 423 (operations running).
type emu struct {
	t   *testing.T
	a   *app.App
	key string
}

func (e emu) do(method, path string, body any, want int) map[string]any {
	e.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, err := http.NewRequest(method, e.a.EmulatorURL+path, rd)
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode == http.StatusLocked && time.Now().Before(deadline) {
			continue
		}
		if resp.StatusCode != want {
			e.t.Fatalf("%s %s: HTTP %d, want %d: %v", method, path, resp.StatusCode, want, out)
		}
		return out
	}
}

// wait polls the project's operations until none runs.
func (e emu) wait(projectID string) {
	e.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ops := e.do("GET", "/projects/"+projectID+"/operations?limit=1000", nil, 200)["operations"].([]any)
		busy := false
		for _, o := range ops {
			switch st := o.(map[string]any)["status"]; st {
			case "finished", "skipped":
			case "failed", "cancelled", "error":
				e.t.Fatalf("operation failed: %v", o)
			default:
				busy = true
			}
		}
		if !busy {
			return
		}
	}
	e.t.Fatalf("operations of %s never finished", projectID)
}

func (e emu) uri(projectID, branchID, db, role string) string {
	e.t.Helper()
	r := e.do("GET", "/projects/"+projectID+"/connection_uri?branch_id="+branchID+"&database_name="+db+"&role_name="+role, nil, 200)
	return r["uri"].(string)
}

func canLogIn(uri string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// Roles and databases made through Neon's API are real: the new role logs in to the new
// database with the URI the API gives, a branch of it has both (and the rows), and deleting
// them takes them out of PostgreSQL.
func TestRolesAndDatabasesAreRealInPostgres(t *testing.T) {
	a := newPGApp(t, pgtest.ReachableDir(t))
	e := emu{t: t, a: a, key: a.Emulator.Credentials().FreeOrgAPIKey}
	prj := e.do("POST", "/projects", map[string]any{"project": map[string]any{"name": "roles"}}, 201)
	pid := prj["project"].(map[string]any)["id"].(string)
	main := prj["branch"].(map[string]any)["id"].(string)
	e.wait(pid)
	base := "/projects/" + pid + "/branches/" + main

	e.do("POST", base+"/roles", map[string]any{"role": map[string]any{"name": "alice"}}, 201)
	e.wait(pid)
	e.do("POST", base+"/databases", map[string]any{"database": map[string]any{"name": "shop", "owner_name": "alice"}}, 201)
	e.wait(pid)

	uri := e.uri(pid, main, "shop", "alice")
	conn := connectDB(t, uri)
	exec(t, conn, "CREATE TABLE t (n int)")
	exec(t, conn, "INSERT INTO t VALUES (1), (2)")
	var owner string
	if err := conn.QueryRow(context.Background(), "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()").Scan(&owner); err != nil || owner != "alice" {
		t.Fatalf("owner of shop: %q %v", owner, err)
	}
	_ = conn.Close(context.Background())
	if got := rows(t, uri); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("rows %v", got)
	}

	// A branch of it has the role, the database and the rows.
	br := e.do("POST", "/projects/"+pid+"/branches", map[string]any{"branch": map[string]any{"name": "child"},
		"endpoints": []any{map[string]any{"type": "read_write"}}}, 201)
	child := br["branch"].(map[string]any)["id"].(string)
	e.wait(pid)
	childURI := e.uri(pid, child, "shop", "alice")
	if got := rows(t, childURI); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("child rows %v", got)
	}

	// reset_password: the new password logs in, the old one no longer does.
	e.do("POST", base+"/roles/alice/reset_password", nil, 200)
	e.wait(pid)
	if err := canLogIn(uri); err == nil {
		t.Fatal("the old password still logs in after reset_password")
	}
	uri = e.uri(pid, main, "shop", "alice")
	if got := rows(t, uri); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("rows after reset %v", got)
	}
	// The child's role is its own: its password did not change.
	if err := canLogIn(childURI); err != nil {
		t.Fatalf("child login after the parent's reset: %v", err)
	}

	// Delete the child's database: gone there, still on main.
	e.do("DELETE", "/projects/"+pid+"/branches/"+child+"/databases/shop", nil, 200)
	e.wait(pid)
	if err := canLogIn(childURI); err == nil {
		t.Fatal("the deleted database still accepts logins")
	}
	if got := rows(t, uri); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("main rows after the child's delete %v", got)
	}
	// Rename main's database and give it to the project's role; then the role can go.
	e.do("PATCH", base+"/databases/shop", map[string]any{"database": map[string]any{"name": "store", "owner_name": "neondb_owner"}}, 200)
	e.wait(pid)
	if got := rows(t, e.uri(pid, main, "store", "alice")); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("rows of the renamed database %v", got)
	}
	aliceToNeondb := e.uri(pid, main, "neondb", "alice")
	if err := canLogIn(aliceToNeondb); err != nil {
		t.Fatalf("alice to neondb: %v", err)
	}
	e.do("DELETE", base+"/roles/alice", nil, 200)
	e.wait(pid)
	if err := canLogIn(aliceToNeondb); err == nil {
		t.Fatal("the deleted role still logs in")
	}
	// Its table went to the database's owner with the role's deletion.
	if got := rows(t, e.uri(pid, main, "store", "neondb_owner")); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("rows after the role's deletion %v", got)
	}
}
