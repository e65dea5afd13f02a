package app_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/operator"
)

// admin_delete_database over the hosted endpoint: the name must be given again; then the
// project is gone from Neon, the database from list_databases, its name is free, a second
// delete is a no-op, and another tenant's id is NOT_FOUND.
func TestAdminDeleteDatabase(t *testing.T) {
	a := newApp(t)
	url := serveHTTP(t, a)
	admin := dialHTTP(t, url, "streamable", newTenantToken(t, a, "ops", "free", "admin"))
	agent := dialHTTP(t, url, "streamable", newTenantToken(t, a, "acme", "free"))
	id := createDB(t, agent, "shop")
	other := createDB(t, dialHTTP(t, url, "sse", newTenantToken(t, a, "rival", "free")), "shop")

	del := func(tenant, db, confirm string) result {
		return call(t, admin, "admin_delete_database", map[string]any{"tenant": tenant, "database_id": db, "confirm_name": confirm})
	}
	if r := del("acme", id, "shop2"); r.Code != "INVALID_ARGUMENT" || !strings.Contains(r.Message, "confirm_name") {
		t.Fatalf("wrong confirm_name: %s, want INVALID_ARGUMENT about confirm_name", r)
	}
	if r := del("acme", other, "shop"); r.Code != "NOT_FOUND" {
		t.Fatalf("another tenant's database: %s, want NOT_FOUND", r)
	}
	api := emulatorAPI(t, a)
	if _, err := api.GetProject(context.Background(), id); err != nil {
		t.Fatalf("a refused delete touched the project: %v", err)
	}

	res := mustOK(t, del("acme", id, "shop"), "delete")
	if res["deleted"] != true || str(res, "database_id") != id || str(res, "name") != "shop" || str(res, "note") == "" {
		t.Fatalf("delete result: %v", res)
	}
	if _, err := api.GetProject(context.Background(), id); !errors.Is(err, neon.ErrNotFound) {
		t.Fatalf("the project is still on Neon: %v", err)
	}
	if n := len(mustOK(t, call(t, agent, "list_databases", nil), "list")["databases"].([]any)); n != 0 {
		t.Fatalf("list_databases shows %d databases after the delete", n)
	}
	if r := call(t, agent, "list_branches", map[string]any{"database_id": id}); r.Code != "NOT_FOUND" {
		t.Fatalf("list_branches of the deleted database: %s", r)
	}
	// Deleting again is a no-op that says so; the confirmation is still required.
	if r := del("acme", id, "nope"); r.Code != "INVALID_ARGUMENT" {
		t.Fatalf("second delete with a wrong name: %s", r)
	}
	again := mustOK(t, del("acme", id, "shop"), "second delete")
	if again["deleted"] != false || str(again, "deleted_at") != str(res, "deleted_at") {
		t.Fatalf("second delete: %v, want deleted=false and the first deletion time %s", again, str(res, "deleted_at"))
	}
	// The name is free again: a new database, a new project.
	if fresh := createDB(t, agent, "shop"); fresh == id {
		t.Fatal("create_database returned the deleted database")
	}
	// The other tenant's database is untouched.
	if _, err := api.GetProject(context.Background(), other); err != nil {
		t.Fatalf("the other tenant's project: %v", err)
	}
}

// The inactive listing uses Neon's compute_last_active_at, and created_at when nothing ran.
func TestInactiveDatabases(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	id := createDB(t, c, "quiet")
	svc := &operator.Service{Store: a.Store, Policy: a.Config.Policy, Databases: a.Guard}
	ctx := context.Background()
	p, err := emulatorAPI(t, a).GetProject(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if p.ComputeLastActiveAt == nil {
		t.Fatal("the emulator reports no compute_last_active_at after the project's compute started")
	}
	none, err := svc.InactiveDatabases(ctx, "", 1, time.Now())
	if err != nil || len(none) != 0 {
		t.Fatalf("inactive for a day: %+v, %v; want none", none, err)
	}
	// As seen three days from now.
	list, err := svc.InactiveDatabases(ctx, a.Config.Tenant, 2, time.Now().Add(72*time.Hour))
	if err != nil || len(list) != 1 || list[0].DatabaseID != id || list[0].Name != "quiet" || list[0].NeverUsed ||
		!list[0].LastActive.Equal(p.ComputeLastActiveAt.UTC()) {
		t.Fatalf("inactive for two days, three days on: %+v, %v", list, err)
	}
	if _, err := svc.InactiveDatabases(ctx, "ghost", 1, time.Now()); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("unknown tenant: %v", err)
	}
}

// TestDeleteDatabaseFindsAProjectMovedToAnotherOrg: when the record lags behind Neon (a tier
// change moved the project but died before recording it), deleting still deletes the project,
// through the org that has it, instead of taking the recorded org's 404 as "already gone".
func TestDeleteDatabaseFindsAProjectMovedToAnotherOrg(t *testing.T) {
	a := newApp(t)
	ctx := context.Background()
	if _, err := a.Store.EnsureTenant(ctx, "acme", "free"); err != nil {
		t.Fatal(err)
	}
	res, err := a.Guard.CreateDatabase(asTenant(ctx, "acme"), guard.CreateDatabaseInput{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	personal := personalClient(t, a)
	creds := a.Emulator.Credentials()
	if err := personal.TransferProjects(ctx, creds.FreeOrgID, creds.PaidOrgID, []string{res.DatabaseID}); err != nil {
		t.Fatal(err)
	}
	out, err := a.Guard.DeleteDatabase(ctx, guard.DeleteDatabaseInput{TenantID: "acme", DatabaseID: res.DatabaseID, ConfirmName: "app"})
	if err != nil || !out.Deleted {
		t.Fatalf("DeleteDatabase: %+v, %v", out, err)
	}
	if p, err := personal.GetProject(ctx, res.DatabaseID); !errors.Is(err, neon.ErrNotFound) {
		t.Fatalf("the project is still on Neon (org %v) after deleted:true: %v", p, err)
	}
}
