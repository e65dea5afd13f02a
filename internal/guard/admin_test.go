package guard_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neon/neontest"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

func TestGetUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.createDB(alice, "a")
	b := e.createDB(alice, "b")
	e.checkpoint(alice, a.DatabaseID, "cp")
	dev := e.devBranch(alice, a.DatabaseID, "dev")
	e.free.Fail("CreateProject", neontest.LostAnswer()) // a reservation, which has no usage yet
	if _, err := e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "pending"}); err == nil {
		t.Fatal("want the scripted failure")
	}
	const mib = 1 << 20
	if err := e.free.EditProject(a.DatabaseID, func(p *neon.Project) { p.ActiveTimeSeconds = 288000; p.WrittenDataBytes = 42 }); err != nil {
		t.Fatal(err)
	}
	// Neon enforces logical size per branch: the largest branch is the database's storage.
	for id, size := range map[string]int64{a.MainBranchID: 100 * mib, dev.BranchID: 500 * mib} {
		if err := e.free.EditBranch(a.DatabaseID, id, func(b *neon.Branch) { b.LogicalSize = size }); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := e.free.Project(a.DatabaseID)
	raised := e.clock.Now().Add(-time.Minute)
	if _, err := e.st.RaiseAlert(context.Background(), store.Alert{ID: "al-1", DatabaseID: a.DatabaseID, TenantID: alice,
		Metric: policy.MetricActiveTime, Threshold: 80, Level: policy.LevelWarning, Used: 288000, Quota: 360000,
		PeriodStart: p.ConsumptionPeriodStart, PeriodEnd: p.ConsumptionPeriodEnd, RaisedAt: raised}, nil); err != nil {
		t.Fatal(err)
	}

	one, err := e.g.GetUsage(as(alice), guard.DatabaseInput{DatabaseID: a.DatabaseID})
	if err != nil {
		t.Fatal(err)
	}
	if one.Tier != "free" || len(one.Databases) != 1 {
		t.Fatalf("usage = %+v", one)
	}
	u := one.Databases[0]
	if u.DatabaseID != a.DatabaseID || u.Name != "a" || !u.PeriodStart.Equal(p.ConsumptionPeriodStart) || !u.PeriodEnd.Equal(p.ConsumptionPeriodEnd) ||
		u.Branches != (guard.Count{Used: 2, Limit: 10}) || u.Checkpoints != (guard.Count{Used: 1, Limit: 1}) || u.RestoreWindowSeconds != 86400 {
		t.Errorf("usage of a = %+v", u)
	}
	levels := map[string]string{}
	used := map[string]int64{}
	for _, m := range u.Metrics {
		levels[m.Name], used[m.Name] = m.Level, m.Used
	}
	if levels[policy.MetricActiveTime] != policy.LevelWarning || levels[policy.MetricLogicalSize] != policy.LevelCritical ||
		used[policy.MetricLogicalSize] != 500*mib || used[policy.MetricWrittenData] != 42 {
		t.Errorf("metrics = %+v", u.Metrics)
	}
	if len(u.Alerts) != 1 || u.Alerts[0].Metric != policy.MetricActiveTime || u.Alerts[0].Threshold != 80 || u.Alerts[0].Delivered || !u.Alerts[0].RaisedAt.Equal(raised) {
		t.Errorf("alerts = %+v", u.Alerts)
	}

	all, err := e.g.GetUsage(as(alice), guard.DatabaseInput{DatabaseID: ""})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Databases) != 2 || all.Databases[0].DatabaseID != a.DatabaseID || all.Databases[1].DatabaseID != b.DatabaseID {
		t.Errorf("all databases = %+v, want a and b (not the pending reservation)", all.Databases)
	}
	if all.Databases[1].Alerts == nil || all.Databases[1].Metrics == nil {
		t.Errorf("empty lists must be [], not null: %+v", all.Databases[1])
	}

	_, err = e.g.GetUsage(as(bob), guard.DatabaseInput{DatabaseID: a.DatabaseID})
	wantCode(t, err, errcode.NotFound)
	for _, method := range []string{"GetProject", "ListBranches", "ListSnapshots"} {
		e.free.Fail(method, neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
		_, err = e.g.GetUsage(as(alice), guard.DatabaseInput{DatabaseID: a.DatabaseID})
		wantCode(t, err, errcode.Upstream, "get_usage", "HTTP 503")
	}
}

func TestDeleteDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	for _, tc := range []struct {
		name string
		in   guard.DeleteDatabaseInput
		code errcode.Code
		fact string
	}{
		{"no tenant", guard.DeleteDatabaseInput{DatabaseID: db.DatabaseID}, errcode.InvalidArgument, "tenant and database_id are required"},
		{"unknown", guard.DeleteDatabaseInput{TenantID: alice, DatabaseID: "proj-none", ConfirmName: "shop"}, errcode.NotFound, "tenant alice has no database proj-none"},
		{"another tenant's", guard.DeleteDatabaseInput{TenantID: bob, DatabaseID: db.DatabaseID, ConfirmName: "shop"}, errcode.NotFound, "tenant bob has no database"},
		{"wrong name", guard.DeleteDatabaseInput{TenantID: alice, DatabaseID: db.DatabaseID, ConfirmName: "shop2"}, errcode.InvalidArgument, "confirm_name does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.g.DeleteDatabase(context.Background(), tc.in)
			wantCode(t, err, tc.code, tc.fact)
		})
	}
	wantMutations(t, e.free)

	in := guard.DeleteDatabaseInput{TenantID: alice, DatabaseID: db.DatabaseID, ConfirmName: "shop"}
	e.free.Fail("DeleteProject", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err := e.g.DeleteDatabase(context.Background(), in)
	ge := wantCode(t, err, errcode.Upstream, "delete database", "HTTP 503")
	wantHint(t, ge, "try again")
	if list, _ := e.g.ListDatabases(as(alice)); len(list.Databases) != 1 {
		t.Error("a database Neon did not delete is no longer listed")
	}
	// Deleted, but the answer was lost: the agent is told to repeat, and the repeat finds the
	// project gone and records it.
	e.free.Fail("DeleteProject", neontest.LostAnswer())
	_, err = e.g.DeleteDatabase(context.Background(), in)
	ge = wantCode(t, err, errcode.Upstream, "outcome is unknown")
	wantHint(t, ge, "call it again: deleting is idempotent")
	if list, _ := e.g.ListDatabases(as(alice)); len(list.Databases) != 1 {
		t.Error("a delete whose outcome is unknown was recorded")
	}

	now := e.clock.Now()
	res, err := e.g.DeleteDatabase(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Deleted || res.Tenant != alice || res.Name != "shop" || !res.DeletedAt.Equal(now) || !strings.Contains(res.Note, "recoverable for 7 days") {
		t.Errorf("result = %+v", res)
	}
	if _, ok := e.free.Project(db.DatabaseID); ok {
		t.Error("the project is still on Neon")
	}
	if list, _ := e.g.ListDatabases(as(alice)); len(list.Databases) != 0 {
		t.Errorf("still listed: %+v", list.Databases)
	}
	e.clock.Advance(time.Hour)
	again, err := e.g.DeleteDatabase(context.Background(), in)
	if err != nil || again.Deleted || !again.DeletedAt.Equal(now) {
		t.Errorf("second delete = %+v, %v; want Deleted=false and the first time", again, err)
	}
	// The name is free again.
	if fresh, err := e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "shop"}); err != nil || !fresh.Created || fresh.DatabaseID == db.DatabaseID {
		t.Errorf("recreate = %+v, %v", fresh, err)
	}
}

// record writes a database row directly: a project the store places in orgID.
func (e *env) record(tenant, name, orgID string, p neon.Project, main neon.Branch) store.Database {
	e.t.Helper()
	ctx := context.Background()
	if _, _, err := e.st.ReserveDatabase(ctx, tenant, name); err != nil {
		e.t.Fatal(err)
	}
	db := store.Database{ID: p.ID, TenantID: tenant, Name: name, OrgID: orgID, RootBranchID: main.ID, RegionID: p.RegionID,
		PGVersion: p.PGVersion, RoleName: "neondb_owner", DatabaseName: "neondb", CreatedAt: p.CreatedAt}
	if err := e.st.CompleteDatabase(ctx, db); err != nil {
		e.t.Fatal(err)
	}
	return db
}

// TestDeleteDatabaseFindsTheProjectsOrg: the record can lag behind Neon (a tier change moved the
// project); the project is looked for in every org, and deleted where it is.
func TestDeleteDatabaseFindsTheProjectsOrg(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p, main, _ := e.paid.AddProject("alice/moved", "org-paid")
	e.record(alice, "moved", "org-free", p, main)
	res, err := e.g.DeleteDatabase(context.Background(), guard.DeleteDatabaseInput{TenantID: alice, DatabaseID: p.ID, ConfirmName: "moved"})
	if err != nil || !res.Deleted {
		t.Fatalf("result = %+v, %v", res, err)
	}
	if _, ok := e.paid.Project(p.ID); ok {
		t.Error("not deleted in the org that has it")
	}
	if got := neontest.Methods(e.free.Calls()); !slices.Equal(got, []string{"GetProject"}) {
		t.Errorf("calls to the recorded org = %v, want one look", got)
	}

	// Gone from every org (an earlier attempt whose record was not written): done.
	gone, gmain, _ := e.free.AddProject("alice/gone", "org-free")
	e.record(alice, "gone", "org-free", gone, gmain)
	if err := e.free.DeleteProject(context.Background(), gone.ID); err != nil {
		t.Fatal(err)
	}
	e.free.ResetCalls()
	e.paid.ResetCalls()
	res, err = e.g.DeleteDatabase(context.Background(), guard.DeleteDatabaseInput{TenantID: alice, DatabaseID: gone.ID, ConfirmName: "gone"})
	if err != nil || !res.Deleted {
		t.Errorf("result = %+v, %v", res, err)
	}
	wantMutations(t, e.free)
	wantMutations(t, e.paid)

	// A read that fails is not "gone": nothing is recorded as deleted.
	e.free.Fail("GetProject", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	db := e.createDB(alice, "shop")
	_, err = e.g.DeleteDatabase(context.Background(), guard.DeleteDatabaseInput{TenantID: alice, DatabaseID: db.DatabaseID, ConfirmName: "shop"})
	wantCode(t, err, errcode.Upstream, "delete database", "HTTP 503")
	if _, ok := e.free.Project(db.DatabaseID); !ok {
		t.Error("deleted although the look failed")
	}

	// A record in an org that is not configured is an operator's problem, said as such.
	stray, smain, _ := e.free.AddProject("alice/stray", "org-old")
	e.record(alice, "stray", "org-old", stray, smain)
	if _, err := e.g.DeleteDatabase(context.Background(), guard.DeleteDatabaseInput{TenantID: alice, DatabaseID: stray.ID, ConfirmName: "stray"}); err == nil ||
		!strings.Contains(err.Error(), "org org-old, which is not configured") {
		t.Errorf("err = %v", err)
	}
}

func TestInactiveDatabases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := e.createDB(alice, "old")
	fresh := e.createDB(alice, "fresh")
	never := e.createDB(alice, "never")
	gone := e.createDB(bob, "gone")
	now := e.clock.Now()
	for id, at := range map[string]time.Time{old.DatabaseID: now.Add(-10 * 24 * time.Hour), fresh.DatabaseID: now.Add(-time.Hour)} {
		if err := e.free.EditProject(id, func(p *neon.Project) { p.ComputeLastActiveAt = ptr(at) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.paid.DeleteProject(context.Background(), gone.DatabaseID); err != nil { // deleted outside neonguard
		t.Fatal(err)
	}
	ids := func(ds []guard.InactiveDatabase) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Name)
		}
		return out
	}

	day, err := e.g.InactiveDatabases(context.Background(), "", now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(day); !slices.Equal(got, []string{"old", "gone"}) {
		t.Errorf("inactive for a day = %v, want old, then the missing one", got)
	}
	if d := day[0]; d.Tenant != alice || !d.LastActive.Equal(now.Add(-10*24*time.Hour)) || d.NeverUsed || d.Missing {
		t.Errorf("old = %+v", d)
	}
	if d := day[1]; d.Tenant != bob || !d.Missing || d.NeverUsed {
		t.Errorf("gone = %+v", d)
	}

	all, err := e.g.InactiveDatabases(context.Background(), alice, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(all); !slices.Equal(got, []string{"old", "fresh", "never"}) {
		t.Errorf("alice's, oldest activity first = %v", got)
	}
	if d := all[2]; !d.NeverUsed || !d.LastActive.Equal(never.CreatedAt) {
		t.Errorf("never = %+v, want never used, last active when created", d)
	}

	_, err = e.g.InactiveDatabases(context.Background(), "mallory", now)
	wantCode(t, err, errcode.NotFound, `tenant "mallory" does not exist`)
	e.free.Fail("GetProject", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err = e.g.InactiveDatabases(context.Background(), alice, now)
	wantCode(t, err, errcode.Upstream, "read project")
}
