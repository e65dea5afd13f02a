package neontest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neon/neontest"
)

var ctx = context.Background()

// project seeds a project and returns its id and its main branch's id.
func project(t *testing.T, f *neontest.Fake) (string, string) {
	t.Helper()
	p, main, _ := f.AddProject("app", "org-a")
	return p.ID, main.ID
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestSnapshotsOnlyOfRootBranches(t *testing.T) {
	f := neontest.New()
	pid, main := project(t, f)
	dev := must[*neon.CreatedBranch](t)(f.CreateBranch(ctx, pid, neon.BranchCreate{Name: "dev"}, nil))
	if dev.Branch.ParentID != main {
		t.Fatalf("a branch without parent_id is made from the default branch; parent = %q", dev.Branch.ParentID)
	}
	_, err := f.CreateSnapshot(ctx, pid, dev.Branch.ID, neon.SnapshotCreate{Name: "cp"})
	if !errors.Is(err, neon.ErrBadRequest) || !strings.Contains(err.Error(), "root branches") {
		t.Fatalf("snapshot of a child branch: err = %v, want 400 about root branches", err)
	}
	s := must[*neon.Snapshot](t)(f.CreateSnapshot(ctx, pid, main, neon.SnapshotCreate{Name: "cp"}))
	if s.SourceBranchID != main || s.Name != "cp" || len(f.Snapshots(pid)) != 1 {
		t.Errorf("snapshot = %+v", s)
	}
}

// TestInPlaceRestoreBackups: the backup preserve_under_name keeps takes the restored branch's
// children; a root stays a root with a separate root backup, a child gets the backup as parent.
func TestInPlaceRestoreBackups(t *testing.T) {
	f := neontest.New()
	pid, main := project(t, f)
	dev := must[*neon.CreatedBranch](t)(f.CreateBranch(ctx, pid, neon.BranchCreate{Name: "dev"}, nil)).Branch
	at := time.Now().Add(-time.Minute)

	restored := must[*neon.Branch](t)(f.RestoreBranch(ctx, pid, main, neon.BranchRestore{SourceBranchID: main, SourceTimestamp: &at, PreserveUnderName: "main-backup"}))
	backup, _ := f.BranchNamed(pid, "main-backup")
	devNow, _ := f.Branch(pid, dev.ID)
	if restored.ID != main || restored.ParentID != "" || restored.LastResetAt == nil {
		t.Errorf("restored root = %+v, want the same branch, still a root, reset", restored)
	}
	if backup.ParentID != "" || devNow.ParentID != backup.ID {
		t.Errorf("backup parent = %q, dev's parent = %q; want a root backup that took main's child", backup.ParentID, devNow.ParentID)
	}
	if _, err := f.CreateSnapshot(ctx, pid, main, neon.SnapshotCreate{Name: "after"}); err != nil {
		t.Errorf("a restored root can still be snapshotted: %v", err)
	}

	child := must[*neon.Branch](t)(f.RestoreBranch(ctx, pid, dev.ID, neon.BranchRestore{SourceBranchID: dev.ID, SourceTimestamp: &at, PreserveUnderName: "dev-backup"}))
	devBackup, _ := f.BranchNamed(pid, "dev-backup")
	if child.ParentID != devBackup.ID || devBackup.ParentID != backup.ID {
		t.Errorf("dev's parent = %q, its backup's parent = %q; want the backup between dev and its old parent", child.ParentID, devBackup.ParentID)
	}
}

func TestRestoreRefusals(t *testing.T) {
	f := neontest.New(neontest.WithLimits(neontest.Limits{BranchesPerProject: 3}))
	pid, main := project(t, f)
	old := time.Now().Add(-48 * time.Hour) // before the default 1-day retention
	recent := time.Now().Add(-time.Minute)
	must[neon.Branch](t)(f.AddBranch(pid, "taken", ""))
	for _, tc := range []struct {
		name string
		req  neon.BranchRestore
		want error
		text string
	}{
		{"no time", neon.BranchRestore{SourceBranchID: main, PreserveUnderName: "b"}, neon.ErrBadRequest, "source_timestamp"},
		{"no backup name", neon.BranchRestore{SourceBranchID: main, SourceTimestamp: &recent}, neon.ErrBadRequest, "preserve_under_name"},
		{"outside retention", neon.BranchRestore{SourceBranchID: main, SourceTimestamp: &old, PreserveUnderName: "b"}, neon.ErrBadRequest, "retention window"},
		{"backup name taken", neon.BranchRestore{SourceBranchID: main, SourceTimestamp: &recent, PreserveUnderName: "taken"}, neon.ErrConflict, "already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.RestoreBranch(ctx, pid, main, tc.req)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
	must[neon.Branch](t)(f.AddBranch(pid, "third", ""))
	_, err := f.RestoreBranch(ctx, pid, main, neon.BranchRestore{SourceBranchID: main, SourceTimestamp: &recent, PreserveUnderName: "b"})
	if !errors.Is(err, neon.ErrBranchLimit) {
		t.Errorf("a backup over the branch limit: err = %v, want ErrBranchLimit", err)
	}
	if n := len(f.Branches(pid)); n != 3 {
		t.Errorf("branches = %d after refused restores, want 3", n)
	}
}

func TestDeleteRules(t *testing.T) {
	f := neontest.New()
	pid, main := project(t, f)
	parent := must[*neon.CreatedBranch](t)(f.CreateBranch(ctx, pid, neon.BranchCreate{Name: "parent"}, []neon.EndpointCreate{{Type: neon.EndpointReadWrite}})).Branch
	child := must[*neon.CreatedBranch](t)(f.CreateBranch(ctx, pid, neon.BranchCreate{Name: "child", ParentID: parent.ID}, nil)).Branch

	if err := f.DeleteBranch(ctx, pid, main); !errors.Is(err, neon.ErrBadRequest) {
		t.Errorf("delete the default branch: err = %v, want 400", err)
	}
	err := f.DeleteBranch(ctx, pid, parent.ID)
	var ae *neon.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(ae.Message, "children") ||
		ae.Route != "/projects/{project_id}/branches/{branch_id}" {
		t.Errorf("delete a branch with children: err = %#v, want a 422 about children on the branch route", err)
	}
	for _, id := range []string{child.ID, parent.ID, parent.ID} { // the last: already gone
		if err := f.DeleteBranch(ctx, pid, id); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	if n := len(f.Branches(pid)); n != 1 || len(f.Endpoints(pid)) != 1 {
		t.Errorf("branches = %d, endpoints = %d; want main and its compute", n, len(f.Endpoints(pid)))
	}
	if err := f.DeleteSnapshot(ctx, pid, "snap-none"); err != nil {
		t.Errorf("a missing snapshot is already deleted: %v", err)
	}
	if err := f.DeleteProject(ctx, pid); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteProject(ctx, pid); err != nil {
		t.Errorf("a missing project is already deleted: %v", err)
	}
	if _, err := f.GetProject(ctx, pid); !errors.Is(err, neon.ErrNotFound) {
		t.Errorf("deleted project: err = %v, want ErrNotFound", err)
	}
}

// TestFinalizedSnapshotRestore: the restored branch is a new root that replaces main (name,
// default flag, computes); the old main is kept as "main (old)", then "main (old 2)".
func TestFinalizedSnapshotRestore(t *testing.T) {
	f := neontest.New()
	pid, main := project(t, f)
	s := must[*neon.Snapshot](t)(f.CreateSnapshot(ctx, pid, main, neon.SnapshotCreate{Name: "cp"}))
	rs := must[*neon.RestoredSnapshot](t)(f.RestoreSnapshot(ctx, pid, s.ID, neon.SnapshotRestore{TargetBranchID: main, FinalizeRestore: true}))
	nb := rs.Branch
	old, _ := f.Branch(pid, main)
	if nb.Name != "main" || !nb.Default || nb.ParentID != "" || nb.RestoredFrom != s.ID || nb.RestoreStatus != "finalized" {
		t.Errorf("new main = %+v", nb)
	}
	if old.Name != "main (old)" || old.Default || old.RestoredAs != nb.ID {
		t.Errorf("old main = %+v", old)
	}
	if len(rs.Endpoints) != 1 || rs.Endpoints[0].BranchID != nb.ID || len(f.Endpoints(pid)) != 1 {
		t.Errorf("endpoints = %+v, want main's compute moved to the new branch", rs.Endpoints)
	}
	rs2 := must[*neon.RestoredSnapshot](t)(f.RestoreSnapshot(ctx, pid, s.ID, neon.SnapshotRestore{TargetBranchID: nb.ID, FinalizeRestore: true}))
	if older, _ := f.Branch(pid, nb.ID); older.Name != "main (old 2)" || rs2.Branch.Name != "main" {
		t.Errorf("second restore: replaced branch = %q, new = %q", older.Name, rs2.Branch.Name)
	}
}

func TestSnapshotRestoreThenFinalize(t *testing.T) {
	f := neontest.New()
	pid, main := project(t, f)
	s := must[*neon.Snapshot](t)(f.CreateSnapshot(ctx, pid, main, neon.SnapshotCreate{Name: "cp"}))
	rs := must[*neon.RestoredSnapshot](t)(f.RestoreSnapshot(ctx, pid, s.ID, neon.SnapshotRestore{Name: "look", TargetBranchID: main}))
	if rs.Branch.Name != "look" || rs.Branch.Default || rs.Branch.RestoreStatus != "restored" || len(rs.Endpoints) != 0 {
		t.Errorf("unfinalized restore = %+v", rs)
	}
	if err := f.FinalizeRestore(ctx, pid, main, ""); !errors.Is(err, neon.ErrBadRequest) {
		t.Errorf("finalize a branch that is not a restore: err = %v, want 400", err)
	}
	if err := f.FinalizeRestore(ctx, pid, rs.Branch.ID, "before"); err != nil {
		t.Fatal(err)
	}
	b, _ := f.Branch(pid, rs.Branch.ID)
	old, _ := f.Branch(pid, main)
	if b.Name != "main" || !b.Default || old.Name != "before" {
		t.Errorf("after finalize: restored = %+v, old = %+v", b, old)
	}
	if _, err := f.RestoreSnapshot(ctx, pid, "snap-none", neon.SnapshotRestore{}); !errors.Is(err, neon.ErrNotFound) {
		t.Errorf("unknown snapshot: err = %v", err)
	}
}

func TestLimits(t *testing.T) {
	f := neontest.New(neontest.WithLimits(neontest.Limits{BranchesPerProject: 2, SnapshotsPerProject: 1}))
	pid, main := project(t, f)
	must[*neon.CreatedBranch](t)(f.CreateBranch(ctx, pid, neon.BranchCreate{Name: "dev"}, nil))
	if _, err := f.CreateBranch(ctx, pid, neon.BranchCreate{Name: "dev2"}, nil); !errors.Is(err, neon.ErrBranchLimit) {
		t.Errorf("third branch: err = %v, want ErrBranchLimit", err)
	}
	must[*neon.Snapshot](t)(f.CreateSnapshot(ctx, pid, main, neon.SnapshotCreate{Name: "a"}))
	if _, err := f.CreateSnapshot(ctx, pid, main, neon.SnapshotCreate{Name: "b"}); !errors.Is(err, neon.ErrSnapshotLimit) {
		t.Errorf("second snapshot: err = %v, want ErrSnapshotLimit", err)
	}
}

func TestBranchUpdates(t *testing.T) {
	f := neontest.New()
	pid, main := project(t, f)
	dev := must[*neon.CreatedBranch](t)(f.CreateBranch(ctx, pid, neon.BranchCreate{Name: "dev"}, nil)).Branch
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	if _, err := f.UpdateBranch(ctx, pid, main, neon.BranchUpdate{ExpiresAt: &exp}); !errors.Is(err, neon.ErrBadRequest) {
		t.Errorf("expiry on the default branch: err = %v, want 400", err)
	}
	if _, err := f.UpdateBranch(ctx, pid, dev.ID, neon.BranchUpdate{Name: "main"}); !errors.Is(err, neon.ErrConflict) {
		t.Errorf("rename onto a taken name: err = %v, want 409", err)
	}
	b := must[*neon.Branch](t)(f.UpdateBranch(ctx, pid, dev.ID, neon.BranchUpdate{Name: "dev2", ExpiresAt: &exp}))
	if b.Name != "dev2" || b.ExpiresAt == nil || !b.ExpiresAt.Equal(exp) {
		t.Errorf("updated = %+v", b)
	}
	b = must[*neon.Branch](t)(f.UpdateBranch(ctx, pid, dev.ID, neon.BranchUpdate{ClearExpiry: true}))
	if b.ExpiresAt != nil {
		t.Errorf("expiry not cleared: %v", b.ExpiresAt)
	}
	if _, err := f.CreateEndpoint(ctx, pid, main, neon.EndpointCreate{Type: neon.EndpointReadWrite}); !errors.Is(err, neon.ErrConflict) {
		t.Errorf("second read-write compute: err = %v, want 409", err)
	}
}

func TestConnectionURI(t *testing.T) {
	f := neontest.New(neontest.WithPassword("npg_secret"))
	pid, main := project(t, f)
	ep := f.Endpoints(pid)[0]
	uri := must[string](t)(f.ConnectionURI(ctx, pid, neon.ConnectionURIOptions{BranchID: main, DatabaseName: "neondb", RoleName: "neondb_owner", Pooled: true}))
	want := "postgresql://neondb_owner:npg_secret@" + strings.Replace(ep.Host, ".", "-pooler.", 1) + "/neondb?sslmode=require"
	if uri != want {
		t.Errorf("uri = %q\nwant  %q", uri, want)
	}
	if _, err := f.ConnectionURI(ctx, pid, neon.ConnectionURIOptions{BranchID: main}); !errors.Is(err, neon.ErrInvalidArgument) {
		t.Errorf("no role and database: err = %v, want ErrInvalidArgument (refused before sending)", err)
	}
	bare := must[neon.Branch](t)(f.AddBranch(pid, "bare", ""))
	if _, err := f.ConnectionURI(ctx, pid, neon.ConnectionURIOptions{BranchID: bare.ID, DatabaseName: "d", RoleName: "r"}); !errors.Is(err, neon.ErrNotFound) {
		t.Errorf("branch without compute: err = %v, want 404", err)
	}
}

func TestFaults(t *testing.T) {
	f := neontest.New()
	pid, main := project(t, f)
	f.Fail("CreateBranch", neontest.Fault{}, neontest.LostAnswer(), neontest.LostRequest(),
		neontest.Refuse(http.StatusUnprocessableEntity, neon.CodeBranchesLimitExceeded, "full"))
	create := func(name string) error {
		_, err := f.CreateBranch(ctx, pid, neon.BranchCreate{Name: name}, nil)
		return err
	}
	if err := create("through"); err != nil {
		t.Fatalf("Fault{} lets the call through: %v", err)
	}
	if err := create("applied"); !errors.Is(err, neon.ErrOutcomeUnknown) {
		t.Fatalf("LostAnswer: err = %v", err)
	}
	if err := create("not-applied"); !errors.Is(err, neon.ErrOutcomeUnknown) {
		t.Fatalf("LostRequest: err = %v", err)
	}
	err := create("refused")
	var ae *neon.APIError
	if !errors.Is(err, neon.ErrBranchLimit) || !errors.As(err, &ae) || ae.Method != "POST" || ae.Route != "/projects/{project_id}/branches" {
		t.Fatalf("Refuse: err = %#v, want a 422 on the branches route", err)
	}
	if err := create("after"); err != nil {
		t.Fatalf("the queue is used up: %v", err)
	}
	if got, want := names(f.Branches(pid)), []string{"main", "through", "applied", "after"}; !slices.Equal(got, want) {
		t.Errorf("branches = %v, want %v (a lost answer applies, a lost request and a refusal do not)", got, want)
	}

	f.FailAlways("ListSnapshots", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	for range 2 {
		if _, err := f.ListSnapshots(ctx, pid); !errors.Is(err, neon.ErrUnavailable) {
			t.Fatalf("FailAlways: err = %v", err)
		}
	}
	f.Heal()
	if _, err := f.ListSnapshots(ctx, pid); err != nil {
		t.Fatalf("after Heal: %v", err)
	}
	f.Fail("CreateSnapshot", neontest.FailedOperation("timeline_archive"))
	var oe *neon.OperationError
	if _, err := f.CreateSnapshot(ctx, pid, main, neon.SnapshotCreate{Name: "cp"}); !errors.As(err, &oe) || len(f.Snapshots(pid)) != 0 {
		t.Errorf("FailedOperation: err = %v, snapshots = %d", err, len(f.Snapshots(pid)))
	}
	defer func() {
		if recover() == nil {
			t.Error("a fault for a method neon.API does not have was accepted")
		}
	}()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.ListBranches(cancelled, pid); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled context: err = %v", err)
	}
	f.Fail("CreateSnapshots", neontest.LostAnswer()) // misspelt: panics
}

// TestBeforeRunsInFlight: Before acts while the request is in flight; a call whose context is
// done by then is not applied, one whose context lives on is.
func TestBeforeRunsInFlight(t *testing.T) {
	f := neontest.New()
	pid, _ := project(t, f)
	callCtx, cancel := context.WithCancel(ctx)
	var seen context.Context
	f.Fail("CreateBranch", neontest.Fault{Before: func(c context.Context) { seen = c; cancel() }}, neontest.Fault{Before: func(context.Context) {}})
	if _, err := f.CreateBranch(callCtx, pid, neon.BranchCreate{Name: "cancelled"}, nil); !errors.Is(err, context.Canceled) || seen != callCtx {
		t.Fatalf("err = %v; Before saw the call's context: %v", err, seen == callCtx)
	}
	if _, err := f.CreateBranch(ctx, pid, neon.BranchCreate{Name: "through"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := names(f.Branches(pid)); !slices.Equal(got, []string{"main", "through"}) {
		t.Errorf("branches = %v", got)
	}
}

func names(bs []neon.Branch) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name
	}
	return out
}

func TestCallLog(t *testing.T) {
	f := neontest.New()
	pid, main := project(t, f)
	f.ResetCalls()
	_, _ = f.ListBranches(ctx, pid)
	_, _ = f.CreateSnapshot(ctx, pid, main, neon.SnapshotCreate{Name: "cp"})
	_, _ = f.GetBranch(ctx, pid, "br-none")
	_ = f.DeleteSnapshot(ctx, pid, "")

	calls := f.Calls()
	if got, want := neontest.Methods(calls), []string{"ListBranches", "CreateSnapshot", "GetBranch", "DeleteSnapshot"}; !slices.Equal(got, want) {
		t.Fatalf("methods = %v, want %v", got, want)
	}
	if c := calls[1]; c.ProjectID != pid || c.BranchID != main || c.Name != "cp" || c.Err != nil || !c.Mutating() || c.String() != "CreateSnapshot "+main+" name=cp" {
		t.Errorf("snapshot call = %+v (%s)", c, c)
	}
	if !errors.Is(calls[2].Err, neon.ErrNotFound) || !errors.Is(calls[3].Err, neon.ErrInvalidArgument) {
		t.Errorf("failed calls carry their errors: %v, %v", calls[2].Err, calls[3].Err)
	}
	if got := neontest.Methods(f.Mutations()); !slices.Equal(got, []string{"CreateSnapshot", "DeleteSnapshot"}) {
		t.Errorf("mutations = %v", got)
	}
	if f.Count("GetBranch") != 1 {
		t.Errorf("count = %d", f.Count("GetBranch"))
	}
}

// TestConcurrentUse is for the race detector: the model, the call log and the faults are
// shared by goroutines.
func TestConcurrentUse(t *testing.T) {
	f := neontest.New()
	pid, main := project(t, f)
	f.FailAlways("GetProject", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 10 {
				_, _ = f.CreateBranch(ctx, pid, neon.BranchCreate{Name: fmt.Sprintf("b-%d-%d", i, j)}, []neon.EndpointCreate{{Type: neon.EndpointReadWrite}})
				_, _ = f.ListBranches(ctx, pid)
				_, _ = f.GetProject(ctx, pid)
				_, _ = f.CreateSnapshot(ctx, pid, main, neon.SnapshotCreate{Name: fmt.Sprintf("s-%d-%d", i, j)})
				_ = f.Calls()
				_ = f.Endpoints(pid)
			}
		})
	}
	wg.Wait()
	if n := len(f.Branches(pid)); n != 81 {
		t.Errorf("branches = %d, want 81", n)
	}
	if n := f.Count("GetProject"); n != 80 {
		t.Errorf("GetProject calls = %d, want 80", n)
	}
}

func TestProjects(t *testing.T) {
	f := neontest.New()
	retention := int64(3600)
	cp := must[*neon.CreatedProject](t)(f.CreateProject(ctx, neon.ProjectCreate{Name: "t1/db", OrgID: "org-a", HistoryRetentionSeconds: &retention,
		Branch: &neon.ProjectCreateBranch{Name: "main", RoleName: "app", DatabaseName: "appdb"}}))
	if cp.Project.HistoryRetentionSeconds != 3600 || len(cp.Roles) != 1 || cp.Roles[0].Name != "app" || cp.Databases[0].Name != "appdb" ||
		!cp.Branch.Default || len(cp.Endpoints) != 1 || !strings.Contains(cp.ConnectionURIs[0].ConnectionURI, "/appdb?") {
		t.Errorf("created = %+v", cp)
	}
	if !strings.HasPrefix(cp.Project.ID, "proj-") {
		t.Errorf("id = %q", cp.Project.ID)
	}
	tagged, _, _ := neontest.New(neontest.WithIDTag("x")).AddProject("p", "o")
	if tagged.ID != "proj-x1" {
		t.Errorf("tagged id = %q, want proj-x1", tagged.ID)
	}
	f.AddProject("t1/other", "org-b")
	f.AddProject("t2/db", "org-a")
	list, next, err := f.ListProjects(ctx, neon.ListProjectsOptions{Search: "t1/", OrgID: "org-a"})
	if err != nil || len(list) != 1 || list[0].ID != cp.Project.ID || next != "" {
		t.Errorf("search = %+v, next %q, err %v", list, next, err)
	}
	page, next, err := f.ListProjects(ctx, neon.ListProjectsOptions{Limit: 2})
	if err != nil || len(page) != 2 || next != page[1].ID {
		t.Errorf("page = %d projects, next %q, err %v", len(page), next, err)
	}
	if err := f.TransferProjects(ctx, "org-a", "org-b", []string{cp.Project.ID, "proj-none"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.Project(cp.Project.ID); p.OrgID != "org-b" {
		t.Errorf("org = %q after transfer", p.OrgID)
	}
	cu := must[*neon.ConsumptionPage](t)(f.Consumption(ctx, neon.ConsumptionOptions{ProjectIDs: []string{cp.Project.ID}}))
	if len(cu.Projects) != 1 || cu.Projects[0].ProjectID != cp.Project.ID {
		t.Errorf("consumption = %+v", cu)
	}
}
