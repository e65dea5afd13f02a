package guard_test

import (
	"context"
	"errors"
	"net/http"
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

func TestNewChecksDeps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	api := neontest.New()
	base := func() guard.Deps {
		return guard.Deps{Store: e.st, Locker: e.lock, Policy: policy.Default(),
			Orgs: []guard.Org{{Plan: "free", ID: "org-free", API: api}, {Plan: "paid", ID: "org-paid", API: api}}}
	}
	for _, tc := range []struct {
		name string
		mod  func(*guard.Deps)
		want string
	}{
		{"no store", func(d *guard.Deps) { d.Store = nil }, "store and locker are required"},
		{"no orgs", func(d *guard.Deps) { d.Orgs = nil }, "at least one org"},
		{"org without client", func(d *guard.Deps) { d.Orgs[0].API = nil }, `org "free" needs an id and a client`},
		{"unknown plan", func(d *guard.Deps) { d.Orgs[0].Plan = "gold" }, "unknown org plan"},
		{"tier in a missing org", func(d *guard.Deps) { d.Orgs = d.Orgs[:1] }, `tier "pro" is placed in org "paid"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := base()
			tc.mod(&d)
			if _, err := guard.New(d); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestCallerComesFromTheContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.g.ListDatabases(context.Background()); err == nil || !strings.Contains(err.Error(), "no principal") {
		t.Errorf("no principal: err = %v", err)
	}
	if _, err := e.g.DescribeLimits(as("mallory")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown tenant: err = %v, want store.ErrNotFound", err)
	}
}

func TestCreateDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res, err := e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := e.free.Project(res.DatabaseID)
	if !ok {
		t.Fatalf("no project %s in the free org", res.DatabaseID)
	}
	main, _ := e.free.BranchNamed(p.ID, "main")
	ep := e.free.Endpoints(p.ID)[0]
	if !res.Created || res.Tier != "free" || res.Name != "shop" || res.MainBranchID != main.ID || res.Region != "aws-us-east-2" || res.PGVersion != 17 {
		t.Errorf("result = %+v", res)
	}
	if !strings.Contains(res.ConnectionString, strings.Replace(ep.Host, ".", "-pooler.", 1)) || !strings.Contains(res.ConnectionString, "neondb_owner") {
		t.Errorf("connection string %q is not main's pooled one", res.ConnectionString)
	}
	// The tier's settings are the project's: the restore window as history retention, the
	// compute range and the quotas.
	free, _ := policy.Default().Tier("free")
	if p.Name != "alice/shop" || p.OrgID != "org-free" || p.HistoryRetentionSeconds != 86400 ||
		p.DefaultEndpointSettings.AutoscalingLimitMaxCU != free.MaxComputeCU || p.Settings.Quota.LogicalSizeBytes != free.Quota.LogicalSizeBytes {
		t.Errorf("project = %+v", p)
	}
	db, err := e.st.GetDatabase(context.Background(), alice, res.DatabaseID)
	if err != nil || db.RootBranchID != main.ID || db.OrgID != "org-free" || db.RoleName != "neondb_owner" || db.DatabaseName != "neondb" {
		t.Errorf("store row = %+v, %v", db, err)
	}

	// Idempotent per (tenant, name): the same database, no second project.
	again, err := e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "shop"})
	if err != nil || again.Created || again.DatabaseID != res.DatabaseID || again.ConnectionString != res.ConnectionString {
		t.Errorf("repeat = %+v, %v", again, err)
	}
	if n := e.free.Count("CreateProject"); n != 1 {
		t.Errorf("CreateProject calls = %d, want 1", n)
	}

	// The pro tier's databases go to the paid org, with its settings.
	pro, err := e.g.CreateDatabase(as(bob), guard.CreateDatabaseInput{Name: "shop", Region: "aws-eu-central-1", PGVersion: 16})
	if err != nil {
		t.Fatal(err)
	}
	if pp, ok := e.paid.Project(pro.DatabaseID); !ok || pp.Name != "bob/shop" || pp.HistoryRetentionSeconds != 7*86400 || pp.RegionID != "aws-eu-central-1" || pp.PGVersion != 16 {
		t.Errorf("pro project = %+v (found %v)", pp, ok)
	}
	if len(e.free.Projects()) != 1 {
		t.Errorf("bob's database went to the free org")
	}
}

func TestCreateDatabaseRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		in    guard.CreateDatabaseInput
		fault *neontest.Fault
		code  errcode.Code
		facts []string
	}{
		{name: "bad name", in: guard.CreateDatabaseInput{Name: "-shop"}, code: errcode.InvalidArgument, facts: []string{`name "-shop" is not valid`}},
		{name: "old postgres", in: guard.CreateDatabaseInput{Name: "shop", PGVersion: 13}, code: errcode.InvalidArgument, facts: []string{"pg_version 13"}},
		{name: "Neon refuses", in: guard.CreateDatabaseInput{Name: "shop"}, fault: ptr(neontest.Refuse(http.StatusBadRequest, "", "region is not available")),
			code: errcode.InvalidArgument, facts: []string{"create_database", "Neon refused the request: region is not available"}},
		{name: "Neon is down", in: guard.CreateDatabaseInput{Name: "shop"}, fault: ptr(neontest.Refuse(http.StatusServiceUnavailable, "", "down")),
			code: errcode.Upstream, facts: []string{"did not complete the request", "HTTP 503"}},
		{name: "no disk", in: guard.CreateDatabaseInput{Name: "shop"}, fault: ptr(neontest.Refuse(http.StatusUnprocessableEntity, "DISK_BUDGET_EXCEEDED", "needs 150 MB, 20 MB free")),
			code: errcode.QuotaExceeded, facts: []string{"needs 150 MB, 20 MB free"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.fault != nil {
				e.free.Fail("CreateProject", *tc.fault)
			}
			_, err := e.g.CreateDatabase(as(alice), tc.in)
			wantCode(t, err, tc.code, tc.facts...)
			if n := len(e.free.Projects()); n != 0 {
				t.Errorf("projects = %d after a refusal", n)
			}
			// Nothing exists, so nothing is held: the name and the slot are free again.
			if n, err := e.st.CountDatabases(context.Background(), alice); err != nil || n != 0 {
				t.Errorf("databases counted = %d, %v; want 0", n, err)
			}
		})
	}
}

func TestCreateDatabaseLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, name := range []string{"a", "b", "c"} {
		e.createDB(alice, name)
	}
	_, err := e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "d"})
	ge := wantCode(t, err, errcode.DatabaseLimit, "free tier allows 3 databases", "3 exist")
	wantHint(t, ge, "list_databases")
	if n := e.free.Count("CreateProject"); n != 0 {
		t.Errorf("CreateProject called %d times after the denial", n)
	}
	// An existing name is not a new database: it is returned, limit or not.
	if res, err := e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "b"}); err != nil || res.Created {
		t.Errorf("existing name at the limit = %+v, %v", res, err)
	}
}

// TestCreateDatabaseLostAnswer: Neon made the project but its answer was lost. The reservation
// stays (it holds the slot), and the retry records the project Neon made instead of making a
// second one.
func TestCreateDatabaseLostAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		fault    neontest.Fault
		projects int // CreateProject calls in all
	}{
		{"applied", neontest.LostAnswer(), 1},
		{"not applied", neontest.LostRequest(), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.free.Fail("CreateProject", tc.fault)
			_, err := e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "shop"})
			ge := wantCode(t, err, errcode.Upstream, "outcome is unknown")
			wantHint(t, ge, "call create_database again with the same name")
			list, err := e.g.ListDatabases(as(alice))
			if err != nil || len(list.Databases) != 0 {
				t.Errorf("an unfinished create is listed: %+v, %v", list, err)
			}
			if n, _ := e.st.CountDatabases(context.Background(), alice); n != 1 {
				t.Errorf("the reservation holds no slot: count = %d", n)
			}

			res, err := e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "shop"})
			if err != nil || !res.Created {
				t.Fatalf("retry = %+v, %v", res, err)
			}
			if n := e.free.Count("CreateProject"); n != tc.projects {
				t.Errorf("CreateProject calls = %d, want %d", n, tc.projects)
			}
			if ps := e.free.Projects(); len(ps) != 1 || ps[0].ID != res.DatabaseID {
				t.Errorf("projects = %+v, want exactly the recorded one", ps)
			}
		})
	}
}

// TestResumeReservations: what an interrupted create_database left is settled without a
// retry: a project Neon made is recorded, a reservation without one is dropped.
func TestResumeReservations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.free.Fail("CreateProject", neontest.LostAnswer(), neontest.LostRequest())
	for _, name := range []string{"made", "never-made"} {
		if _, err := e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: name}); err == nil {
			t.Fatalf("create %s: want the scripted failure", name)
		}
	}
	// While Neon cannot be asked, nothing is decided: each reservation is reported and kept.
	e.free.FailAlways("ListProjects", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	completed, dropped, err := e.g.ResumeReservations(context.Background())
	if completed+dropped != 0 || err == nil || !strings.Contains(err.Error(), `database "made"`) || !strings.Contains(err.Error(), `database "never-made"`) {
		t.Errorf("Neon down: completed %d, dropped %d, err %v; want both reported and kept", completed, dropped, err)
	}
	e.free.Heal()
	completed, dropped, err = e.g.ResumeReservations(context.Background())
	if err != nil || completed != 1 || dropped != 1 {
		t.Fatalf("completed %d, dropped %d, err %v; want 1 and 1", completed, dropped, err)
	}
	list, err := e.g.ListDatabases(as(alice))
	if err != nil || len(list.Databases) != 1 || list.Databases[0].Name != "made" || list.Databases[0].MainBranchID == "" {
		t.Errorf("databases = %+v, %v", list, err)
	}
	if n, _ := e.st.CountDatabases(context.Background(), alice); n != 1 {
		t.Errorf("count = %d: the dropped reservation still holds a slot", n)
	}
	if completed, dropped, err := e.g.ResumeReservations(context.Background()); completed+dropped != 0 || err != nil {
		t.Errorf("second pass: completed %d, dropped %d, err %v; want nothing left", completed, dropped, err)
	}
}

func TestListDatabases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.createDB(alice, "a")
	b := e.createDB(alice, "b")
	e.createDB(bob, "theirs")
	list, err := e.g.ListDatabases(as(alice))
	if err != nil {
		t.Fatal(err)
	}
	if list.Tier != "free" || list.Limit != 3 || len(list.Databases) != 2 ||
		list.Databases[0].DatabaseID != a.DatabaseID || list.Databases[1].DatabaseID != b.DatabaseID {
		t.Errorf("list = %+v", list)
	}
	empty := newEnv(t)
	if list, err := empty.g.ListDatabases(as(bob)); err != nil || list.Databases == nil || list.Limit != 100 {
		t.Errorf("no databases: %+v, %v (an empty list, never null)", list, err)
	}
}

func TestDescribeLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	l, err := e.g.DescribeLimits(as(alice))
	if err != nil {
		t.Fatal(err)
	}
	if l.Tier != "free" || l.Org != "free" || l.MaxDatabases != 3 || l.BranchesPerDatabase != 10 || l.CheckpointsPerDatabase != 1 ||
		l.RestoreWindowSeconds != 86400 || l.Compute.MaxCU != 2 || l.Compute.SuspendTimeoutSeconds != 300 ||
		l.DevBranchTTL.DefaultSeconds != 86400 || l.DevBranchTTL.MaxSeconds != 7*86400 || l.UndoBackupTTLSeconds != 86400 {
		t.Errorf("limits = %+v", l)
	}
	for _, m := range l.Quota {
		if m.Used != 0 || m.Level != policy.LevelOK {
			t.Errorf("quota metric %+v: describe_limits has no usage", m)
		}
	}
	if len(l.Quota) == 0 {
		t.Error("no quota metrics")
	}
}

func TestGetConnectionString(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	dev := e.devBranch(alice, db.DatabaseID, "feature")
	e.clock.Advance(time.Hour)
	undo, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.free.ResetCalls()
	host := func(branchID string) string {
		for _, ep := range e.free.Endpoints(db.DatabaseID) {
			if ep.BranchID == branchID {
				return ep.Host
			}
		}
		return "(no compute)"
	}

	for _, tc := range []struct {
		name   string
		in     guard.ConnectionInput
		branch string
		pooled bool
	}{
		{"main by default", guard.ConnectionInput{DatabaseID: db.DatabaseID, Pooled: true}, db.MainBranchID, true},
		{"main by name", guard.ConnectionInput{DatabaseID: db.DatabaseID, Branch: "main"}, db.MainBranchID, false},
		{"dev by name", guard.ConnectionInput{DatabaseID: db.DatabaseID, Branch: "feature"}, dev.BranchID, false},
		{"dev by id", guard.ConnectionInput{DatabaseID: db.DatabaseID, Branch: dev.BranchID, Pooled: true}, dev.BranchID, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.g.GetConnectionString(as(alice), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			want := host(tc.branch)
			if tc.pooled {
				want = strings.Replace(want, ".", "-pooler.", 1)
			}
			if res.BranchID != tc.branch || res.Pooled != tc.pooled || !strings.Contains(res.ConnectionString, "@"+want+"/") {
				t.Errorf("result = %+v, want branch %s on %s", res, tc.branch, want)
			}
		})
	}
	wantMutations(t, e.free) // reads only

	// An undo backup has no compute: one in the tier's range is started for it.
	res, err := e.g.GetConnectionString(as(alice), guard.ConnectionInput{DatabaseID: db.DatabaseID, Branch: undo.BackupBranch.Name})
	if err != nil {
		t.Fatal(err)
	}
	wantMutations(t, e.free, "CreateEndpoint")
	var ep neon.Endpoint
	for _, x := range e.free.Endpoints(db.DatabaseID) {
		if x.BranchID == undo.BackupBranch.BranchID {
			ep = x
		}
	}
	if ep.Type != neon.EndpointReadWrite || ep.AutoscalingLimitMinCU != 0.25 || ep.AutoscalingLimitMaxCU != 2 || ep.SuspendTimeoutSeconds != 300 ||
		!strings.Contains(res.ConnectionString, ep.Host) {
		t.Errorf("compute = %+v, connection string %q", ep, res.ConnectionString)
	}
}

func TestGetConnectionStringRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	theirs := e.createDB(bob, "theirs")

	_, err := e.g.GetConnectionString(as(alice), guard.ConnectionInput{})
	wantCode(t, err, errcode.InvalidArgument, "database_id is required")
	_, err = e.g.GetConnectionString(as(alice), guard.ConnectionInput{DatabaseID: db.DatabaseID, Branch: "nope"})
	wantCode(t, err, errcode.NotFound, `branch "nope" not found`)

	// Another tenant's database gets exactly the answer of one that does not exist.
	_, errTheirs := e.g.GetConnectionString(as(alice), guard.ConnectionInput{DatabaseID: theirs.DatabaseID})
	_, errNone := e.g.GetConnectionString(as(alice), guard.ConnectionInput{DatabaseID: "proj-none"})
	a, b := wantCode(t, errTheirs, errcode.NotFound), wantCode(t, errNone, errcode.NotFound)
	if a.Message != b.Message || a.Hint != b.Hint || strings.Contains(a.Message, theirs.DatabaseID) {
		t.Errorf("another tenant's database is told apart: %q vs %q", a.Message, b.Message)
	}
	if n := len(e.paid.Calls()); n != 0 {
		t.Errorf("Neon was asked about another tenant's database: %v", e.paid.Calls())
	}

	e.free.Fail("ListBranchEndpoints", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err = e.g.GetConnectionString(as(alice), guard.ConnectionInput{DatabaseID: db.DatabaseID})
	wantCode(t, err, errcode.Upstream, "get connection string", "HTTP 503")

	bare, err := e.free.AddBranch(db.DatabaseID, "bare", "")
	if err != nil {
		t.Fatal(err)
	}
	e.free.Fail("CreateEndpoint", neontest.Refuse(http.StatusUnprocessableEntity, "", "compute size not allowed"))
	_, err = e.g.GetConnectionString(as(alice), guard.ConnectionInput{DatabaseID: db.DatabaseID, Branch: bare.ID})
	wantCode(t, err, errcode.InvalidArgument, "start a compute for the branch", "compute size not allowed")
}

// Issue 9.3: an interrupted create_database one below the tenant's limit. Its reservation holds
// the last slot, so its retry must not count it again: the retry records the project Neon made
// instead of answering DATABASE_LIMIT.
func TestCreateDatabaseRetryAtTheLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createDB(alice, "a")
	e.createDB(alice, "b") // free allows 3: one left
	e.free.Fail("CreateProject", neontest.LostAnswer())
	if _, err := e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "c"}); err == nil {
		t.Fatal("want the lost answer")
	}
	res, err := e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "c"})
	if err != nil || !res.Created {
		t.Fatalf("retry of the interrupted create at the limit: %+v, %v", res, err)
	}
	if n := e.free.Count("CreateProject"); n != 1 || len(e.free.Projects()) != 3 {
		t.Fatalf("CreateProject %d times, %d projects: the retry must find the one Neon made", n, len(e.free.Projects()))
	}
	// The limit still holds for a new name.
	_, err = e.g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "d"})
	wantCode(t, err, errcode.DatabaseLimit)
}
