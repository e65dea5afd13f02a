package app_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/neon"
)

const branchCreateRoute = "POST /projects/{project_id}/branches"

func createDB(t *testing.T, c *client.Client, name string) string {
	t.Helper()
	db := mustOK(t, call(t, c, "create_database", map[string]any{"name": name}), "create_database")
	id := str(db, "database_id")
	if id == "" {
		t.Fatalf("create_database returned no database_id: %v", db)
	}
	return id
}

func TestCreateDatabaseIsIdempotentPerName(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)

	first := mustOK(t, call(t, c, "create_database", map[string]any{"name": "shop"}), "first create")
	second := mustOK(t, call(t, c, "create_database", map[string]any{"name": "shop"}), "second create")
	if first["created"] != true || second["created"] != false {
		t.Fatalf("created flags: first %v, second %v; want true then false", first["created"], second["created"])
	}
	if str(first, "database_id") != str(second, "database_id") {
		t.Fatalf("two database ids for one name: %s and %s", str(first, "database_id"), str(second, "database_id"))
	}
	if !strings.HasPrefix(str(first, "connection_string"), "postgresql://") {
		t.Errorf("connection_string = %q", str(first, "connection_string"))
	}
	other := mustOK(t, call(t, c, "create_database", map[string]any{"name": "blog"}), "other create")
	if str(other, "database_id") == str(first, "database_id") {
		t.Fatal("two names share a database")
	}
	list := mustOK(t, call(t, c, "list_databases", nil), "list_databases")
	if n := len(list["databases"].([]any)); n != 2 {
		t.Fatalf("list_databases has %d databases, want 2", n)
	}
}

func TestCreateDatabaseLostResponseMakesOneProject(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	a.Emulator.Faults().DropResponses("POST", "/projects", 1)

	r := call(t, c, "create_database", map[string]any{"name": "lost"})
	// The client must find the project the lost answer created instead of making another; if
	// it cannot tell, it says so, and the next call recovers the same project.
	if r.Code != "" && r.Code != "UPSTREAM" {
		t.Fatalf("create with a lost answer: %s", r)
	}
	again := mustOK(t, call(t, c, "create_database", map[string]any{"name": "lost"}), "create again")
	if r.Code == "" && str(r.Structured, "database_id") != str(again, "database_id") {
		t.Fatalf("ids differ: %s vs %s", str(r.Structured, "database_id"), str(again, "database_id"))
	}
	if r.Code == "" && again["created"] != false {
		t.Errorf("second create after a recovered first: created = %v, want false", again["created"])
	}
	if n := a.Emulator.Requests()["POST /projects"]; n != 1 {
		t.Fatalf("emulator received %d project creates, want exactly 1 (never blindly repeated)", n)
	}
	projects := countProjects(t, a, "local/lost")
	if projects != 1 {
		t.Fatalf("%d projects named local/lost, want 1", projects)
	}
}

func countProjects(t *testing.T, a *app.App, name string) int {
	t.Helper()
	creds := a.Emulator.Credentials()
	cl, err := neon.New(neon.Config{BaseURL: a.EmulatorURL, APIKey: creds.FreeOrgAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	ps, _, err := cl.ListProjects(context.Background(), neon.ListProjectsOptions{Search: name, Limit: 400})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range ps {
		if p.Name == name {
			n++
		}
	}
	return n
}

func TestFreeTierBranchLimitDeniesBeforeNeon(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	id := createDB(t, c, "app")

	// main is the first branch; nine dev branches make ten.
	for i := 1; i <= 9; i++ {
		mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": fmt.Sprintf("dev-%d", i)}), "dev branch")
	}
	before := a.Emulator.Requests()[branchCreateRoute]
	r := call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "dev-10"})
	if r.Code != "BRANCH_LIMIT" {
		t.Fatalf("11th branch: got %s, want BRANCH_LIMIT", r)
	}
	if !strings.Contains(r.Hint, "delete_dev_branch") {
		t.Errorf("hint does not say how to free a slot: %q", r.Hint)
	}
	if after := a.Emulator.Requests()[branchCreateRoute]; after != before {
		t.Fatalf("the emulator received %d branch creates for a denied call", after-before)
	}
	branches := mustOK(t, call(t, c, "list_branches", map[string]any{"database_id": id}), "list_branches")
	if n := len(branches["branches"].([]any)); n != 10 {
		t.Fatalf("%d branches, want 10", n)
	}
	// Deleting one frees the slot.
	mustOK(t, call(t, c, "delete_dev_branch", map[string]any{"database_id": id, "branch": "dev-3"}), "delete")
	mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "dev-10"}), "dev branch after delete")
}

func TestFreeTierCheckpointLimitAndReplace(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	id := createDB(t, c, "app")

	mustOK(t, call(t, c, "checkpoint", map[string]any{"database_id": id, "name": "before-auth"}), "first checkpoint")
	r := call(t, c, "checkpoint", map[string]any{"database_id": id, "name": "before-billing"})
	if r.Code != "SNAPSHOT_LIMIT" {
		t.Fatalf("second checkpoint: got %s, want SNAPSHOT_LIMIT", r)
	}
	if !strings.Contains(r.Hint, "before-auth") || !strings.Contains(r.Hint, "replace") {
		t.Errorf("hint should name the existing checkpoint and replace=true: %q", r.Hint)
	}
	rep := mustOK(t, call(t, c, "checkpoint", map[string]any{"database_id": id, "name": "before-billing", "replace": true}), "replace")
	if got := fmt.Sprint(rep["replaced"]); got != "[before-auth]" {
		t.Errorf("replaced = %s, want [before-auth]", got)
	}
	list := mustOK(t, call(t, c, "list_checkpoints", map[string]any{"database_id": id}), "list")
	cps := list["checkpoints"].([]any)
	if len(cps) != 1 || str(cps[0].(map[string]any), "name") != "before-billing" {
		t.Fatalf("checkpoints after replace = %v, want only before-billing", cps)
	}
}

func TestUndoToTimeWindow(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	id := createDB(t, c, "app")

	r := call(t, c, "undo_to_time", map[string]any{"database_id": id, "ago": "25h"})
	if r.Code != "RESTORE_WINDOW" {
		t.Fatalf("25h back: got %s, want RESTORE_WINDOW", r)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r = call(t, c, "undo_to_time", map[string]any{"database_id": id, "timestamp": future})
	if r.Code != "INVALID_ARGUMENT" {
		t.Fatalf("future time: got %s, want INVALID_ARGUMENT", r)
	}
	time.Sleep(1100 * time.Millisecond)
	ok := mustOK(t, call(t, c, "undo_to_time", map[string]any{"database_id": id, "ago": "1s"}), "undo 1s")
	branch := ok["branch"].(map[string]any)
	db := mustOK(t, call(t, c, "list_databases", nil), "list")["databases"].([]any)[0].(map[string]any)
	if str(branch, "branch_id") != str(db, "main_branch_id") {
		t.Errorf("undo changed main's branch id: %s → %s", str(db, "main_branch_id"), str(branch, "branch_id"))
	}
	backup := ok["backup_branch"].(map[string]any)
	if str(backup, "branch_id") == "" || str(backup, "expires_at") == "" {
		t.Errorf("backup branch missing or without expiry: %v", backup)
	}
}

// Every tool that takes a database_id answers NOT_FOUND for another tenant's database, with
// nothing in the error that names it.
func TestOtherTenantsDatabaseIsNotFound(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	id := createDB(t, c, "secret-app")
	if _, err := a.Store.EnsureTenant(context.Background(), "intruder", "free"); err != nil {
		t.Fatal(err)
	}
	ctx := asTenant(context.Background(), "intruder")
	cases := map[string]map[string]any{
		"checkpoint":            {"database_id": id, "name": "x"},
		"undo_to_time":          {"database_id": id, "ago": "1m"},
		"create_dev_branch":     {"database_id": id, "name": "x"},
		"get_usage":             {"database_id": id},
		"list_checkpoints":      {"database_id": id},
		"restore_checkpoint":    {"database_id": id, "checkpoint": "x"},
		"list_branches":         {"database_id": id},
		"delete_dev_branch":     {"database_id": id, "branch": "x"},
		"get_connection_string": {"database_id": id},
	}
	for tool, args := range cases {
		r := callAs(ctx, t, c, tool, args)
		if r.Code != "NOT_FOUND" {
			t.Errorf("%s with another tenant's database: got %s, want NOT_FOUND", tool, r)
		}
		if strings.Contains(r.Text, "secret-app") || strings.Contains(r.Text, "local") {
			t.Errorf("%s: error reveals the other tenant's data: %s", tool, r.Text)
		}
	}
	list := callAs(ctx, t, c, "list_databases", nil)
	if n := len(mustOK(t, list, "list")["databases"].([]any)); n != 0 {
		t.Errorf("intruder sees %d databases", n)
	}
}

func TestConcurrentDevBranchesRespectTheLimit(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	id := createDB(t, c, "app")

	var wg sync.WaitGroup
	results := make([]result, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": fmt.Sprintf("race-%d", i)})
		}()
	}
	wg.Wait()
	ok, denied := 0, 0
	for _, r := range results {
		switch r.Code {
		case "":
			ok++
		case "BRANCH_LIMIT":
			denied++
		default:
			t.Errorf("unexpected result: %s", r)
		}
	}
	if ok != 9 || denied != 11 {
		t.Fatalf("%d succeeded and %d were denied; want 9 and 11", ok, denied)
	}
	// The limit held in the guard, under the lock: Neon never saw the 11 denied creates.
	if n := a.Emulator.Requests()[branchCreateRoute]; n != 9 {
		t.Fatalf("the emulator received %d branch creates, want 9", n)
	}
}

// A crash between Neon's create and the store's write leaves a reservation without a project
// id: the next create_database adopts the project Neon made instead of making another.
func TestCreateDatabaseAdoptsAProjectACrashLeftBehind(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	ctx := context.Background()
	if _, _, err := a.Store.ReserveDatabase(ctx, "local", "ghost"); err != nil {
		t.Fatal(err)
	}
	creds := a.Emulator.Credentials()
	api, err := neon.New(neon.Config{BaseURL: a.EmulatorURL, APIKey: creds.FreeOrgAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	made, err := api.CreateProject(ctx, neon.ProjectCreate{Name: "local/ghost"})
	if err != nil {
		t.Fatal(err)
	}
	db := mustOK(t, call(t, c, "create_database", map[string]any{"name": "ghost"}), "create_database")
	if str(db, "database_id") != made.Project.ID {
		t.Fatalf("database_id = %s, want the project the crash left: %s", str(db, "database_id"), made.Project.ID)
	}
	if n := countProjects(t, a, "local/ghost"); n != 1 {
		t.Fatalf("%d projects named local/ghost, want 1", n)
	}
	if n := a.Emulator.Requests()["POST /projects"]; n != 1 {
		t.Fatalf("%d project creates reached the emulator, want 1 (the test's own)", n)
	}
}
