package guard_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neon/neontest"
)

func snapshotNames(f *neontest.Fake, databaseID string) []string {
	var out []string
	for _, s := range f.Snapshots(databaseID) {
		out = append(out, s.Name)
	}
	return out
}

// storedCheckpoints are the names of the checkpoints the store has for the database.
func (e *env) storedCheckpoints(databaseID string) []string {
	e.t.Helper()
	cps, err := e.st.ListCheckpoints(context.Background(), databaseID)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, c := range cps {
		out = append(out, c.Name)
	}
	return out
}

// TestCheckpoint: the changes a checkpoint asks Neon for. Replacing deletes first when Neon's
// plan has no room for one more snapshot (the free plan keeps 1), and creates first when it
// has, so a database never has fewer checkpoints than before.
func TestCheckpoint(t *testing.T) {
	t.Parallel()
	tenCheckpoints := make([]string, 10)
	for i := range tenCheckpoints {
		tenCheckpoints[i] = fmt.Sprintf("cp%d", i)
	}
	for _, tc := range []struct {
		name      string
		tenant    string
		existing  []string
		in        guard.CheckpointInput
		mutations []string
		replaced  []string
		after     []string // Neon's snapshots, oldest first
	}{
		{name: "first", tenant: alice, in: guard.CheckpointInput{Name: "a"},
			mutations: []string{"CreateSnapshot"}, replaced: []string{}, after: []string{"a"}},
		{name: "free plan replaces by deleting first", tenant: alice, existing: []string{"a"}, in: guard.CheckpointInput{Name: "b", Replace: true},
			mutations: []string{"DeleteSnapshot", "CreateSnapshot"}, replaced: []string{"a"}, after: []string{"b"}},
		{name: "free plan replaces the same name", tenant: alice, existing: []string{"a"}, in: guard.CheckpointInput{Name: "a", Replace: true},
			mutations: []string{"DeleteSnapshot", "CreateSnapshot"}, replaced: []string{"a"}, after: []string{"a"}},
		{name: "room for one creates first", tenant: bob, existing: []string{"cp"}, in: guard.CheckpointInput{Name: "cp", Replace: true},
			mutations: []string{"CreateSnapshot", "DeleteSnapshot"}, replaced: []string{"cp"}, after: []string{"cp"}},
		{name: "below the tier's limit", tenant: bob, existing: []string{"a"}, in: guard.CheckpointInput{Name: "b"},
			mutations: []string{"CreateSnapshot"}, replaced: []string{}, after: []string{"a", "b"}},
		{name: "replace is a no-op below the limit", tenant: bob, existing: []string{"a"}, in: guard.CheckpointInput{Name: "b", Replace: true},
			mutations: []string{"CreateSnapshot"}, replaced: []string{}, after: []string{"a", "b"}},
		{name: "paid plan full replaces the oldest first", tenant: bob, existing: tenCheckpoints, in: guard.CheckpointInput{Name: "new", Replace: true},
			mutations: []string{"DeleteSnapshot", "CreateSnapshot"}, replaced: []string{"cp0"}, after: append(slices.Clone(tenCheckpoints[1:]), "new")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			f := e.neonOf(tc.tenant)
			db := e.createDB(tc.tenant, "shop")
			for _, name := range tc.existing {
				e.checkpoint(tc.tenant, db.DatabaseID, name)
				e.clock.Advance(time.Second) // distinct created_at: "oldest" is well defined
			}
			before := f.Snapshots(db.DatabaseID)
			tc.in.DatabaseID = db.DatabaseID
			res, err := e.g.Checkpoint(as(tc.tenant), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			wantMutations(t, f, tc.mutations...)
			if got := snapshotNames(f, db.DatabaseID); !slices.Equal(got, tc.after) {
				t.Errorf("Neon's snapshots = %v, want %v", got, tc.after)
			}
			if got := e.storedCheckpoints(db.DatabaseID); !slices.Equal(got, tc.after) {
				t.Errorf("recorded checkpoints = %v, want %v", got, tc.after)
			}
			made := f.Snapshots(db.DatabaseID)[len(tc.after)-1]
			if res.DatabaseID != db.DatabaseID || res.Name != tc.in.Name || res.CheckpointID != made.ID || !res.CreatedAt.Equal(made.CreatedAt) ||
				!slices.Equal(res.Replaced, tc.replaced) || res.Replaced == nil {
				t.Errorf("result = %+v, want %s replacing %v", res, made.ID, tc.replaced)
			}
			if made.SourceBranchID != db.MainBranchID || slices.ContainsFunc(before, func(s neon.Snapshot) bool { return s.ID == made.ID }) {
				t.Errorf("snapshot %+v is not a new one of main", made)
			}
			if n := e.openIntents(db.DatabaseID); n != 0 {
				t.Errorf("%d intents left open", n)
			}
		})
	}
}

func TestCheckpointRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	theirs := e.createDB(bob, "theirs")
	e.checkpoint(alice, db.DatabaseID, "a")

	_, err := e.g.Checkpoint(as(alice), guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "b"})
	ge := wantCode(t, err, errcode.SnapshotLimit, "free tier keeps 1 checkpoint", "1 exists")
	wantHint(t, ge, `"a"`, "replace=true")

	_, err = e.g.Checkpoint(as(alice), guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "a"})
	ge = wantCode(t, err, errcode.InvalidArgument, `checkpoint "a" already exists`)
	wantHint(t, ge, "replace=true")

	_, err = e.g.Checkpoint(as(alice), guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "no spaces"})
	wantCode(t, err, errcode.InvalidArgument, `name "no spaces" is not valid`)

	_, err = e.g.Checkpoint(as(alice), guard.CheckpointInput{DatabaseID: theirs.DatabaseID, Name: "x"})
	wantCode(t, err, errcode.NotFound, "no database with this database_id")

	e.free.Fail("ListSnapshots", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err = e.g.Checkpoint(as(alice), guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "a", Replace: true})
	wantCode(t, err, errcode.Upstream, "list checkpoints", "HTTP 503")

	wantMutations(t, e.free)
	wantMutations(t, e.paid)
	if n := e.openIntents(db.DatabaseID); n != 0 {
		t.Errorf("a refused checkpoint left %d intents open", n)
	}
}

// TestCheckpointRefusedByNeon: when Neon refuses the first change, nothing happened: the
// intent is rolled back and the agent is told so.
func TestCheckpointRefusedByNeon(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tenant string
		method string
		fault  neontest.Fault
		code   errcode.Code
		facts  []string
	}{
		{"snapshot refused", bob, "CreateSnapshot", neontest.Refuse(http.StatusUnprocessableEntity, neon.CodeSnapshotsLimitExceeded, "limit"),
			errcode.SnapshotLimit, []string{"Neon's snapshot limit", "no checkpoint was made or deleted"}},
		{"delete of the replaced one refused", alice, "DeleteSnapshot", neontest.Refuse(http.StatusConflict, "", "project is busy"),
			errcode.InvalidArgument, []string{"replace checkpoint a", "project is busy", `checkpoint "b" was not made`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			f := e.neonOf(tc.tenant)
			db := e.createDB(tc.tenant, "shop")
			if tc.tenant == alice {
				e.checkpoint(alice, db.DatabaseID, "a")
			}
			before := snapshotNames(f, db.DatabaseID)
			f.Fail(tc.method, tc.fault)
			_, err := e.g.Checkpoint(as(tc.tenant), guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "b", Replace: true})
			wantCode(t, err, tc.code, tc.facts...)
			if got := snapshotNames(f, db.DatabaseID); !slices.Equal(got, before) {
				t.Errorf("snapshots = %v, want them unchanged: %v", got, before)
			}
			if open, rec := e.openIntents(db.DatabaseID), e.recoveredIntents(db.DatabaseID); open+rec != 0 {
				t.Errorf("open %d, recovered %d: want the intent rolled back", open, rec)
			}
		})
	}
}

// TestCheckpointOwedAfterDelete: on the free plan the old checkpoint goes first. When Neon then
// fails the new one, it is owed: every later call for the database tries to make it, without
// the database being held hostage while Neon refuses, and a retry of the call gets its result.
func TestCheckpointOwedAfterDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	e.checkpoint(alice, db.DatabaseID, "a")
	in := guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "b", Replace: true}

	e.free.Fail("CreateSnapshot", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err := e.g.Checkpoint(as(alice), in)
	ge := wantCode(t, err, errcode.Upstream, "replaced checkpoint(s) a were already deleted", `checkpoint "b" is not made yet`)
	wantHint(t, ge, "call checkpoint again with the same arguments")
	if names := snapshotNames(e.free, db.DatabaseID); len(names) != 0 || e.openIntents(db.DatabaseID) != 1 {
		t.Fatalf("snapshots = %v, open intents = %d; want none and the owed one", names, e.openIntents(db.DatabaseID))
	}

	// Neon refuses for good: the database stays usable, and the checkpoint stays owed.
	e.free.FailAlways("CreateSnapshot", neontest.Refuse(http.StatusUnprocessableEntity, neon.CodeSnapshotsLimitExceeded, "limit"))
	if _, err := e.g.ListBranches(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID}); err != nil {
		t.Fatalf("an owed checkpoint Neon refuses blocks the database: %v", err)
	}
	if n := e.openIntents(db.DatabaseID); n != 1 {
		t.Fatalf("open intents = %d, want the owed checkpoint kept", n)
	}
	e.free.Heal()
	e.free.ResetCalls()

	res, err := e.g.Checkpoint(as(alice), in)
	if err != nil {
		t.Fatal(err)
	}
	// The retry settled the owed checkpoint, then answered with its result: one snapshot made,
	// none deleted again.
	wantMutations(t, e.free, "CreateSnapshot")
	if names := snapshotNames(e.free, db.DatabaseID); !slices.Equal(names, []string{"b"}) {
		t.Errorf("snapshots = %v, want [b]", names)
	}
	if res.Name != "b" || !slices.Equal(res.Replaced, []string{"a"}) || res.CheckpointID != e.free.Snapshots(db.DatabaseID)[0].ID {
		t.Errorf("recovered result = %+v", res)
	}
	if open, rec := e.openIntents(db.DatabaseID), e.recoveredIntents(db.DatabaseID); open+rec != 0 {
		t.Errorf("open %d, unclaimed %d: want the intent finished and its result claimed", open, rec)
	}
}

// TestCheckpointLostCreate: the new snapshot's answer is lost (create first, pro tier). The
// intent stays open; the next call finishes it — finding the snapshot when Neon made it, making
// it when not — and the retry of the same call gets that result.
func TestCheckpointLostCreate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		fault   neontest.Fault
		creates int // CreateSnapshot calls in all
	}{
		{"applied", neontest.LostAnswer(), 1},
		{"not applied", neontest.LostRequest(), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			db := e.createDB(bob, "shop")
			old := e.checkpoint(bob, db.DatabaseID, "cp")
			in := guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "cp", Replace: true}
			e.paid.Fail("CreateSnapshot", tc.fault)
			_, err := e.g.Checkpoint(as(bob), in)
			ge := wantCode(t, err, errcode.Upstream, "no checkpoint was deleted", `whether "cp" was made is found out on the next call`)
			wantHint(t, ge, "call checkpoint again with the same arguments")
			if n := e.openIntents(db.DatabaseID); n != 1 {
				t.Fatalf("open intents = %d, want 1", n)
			}

			res, err := e.g.Checkpoint(as(bob), in)
			if err != nil {
				t.Fatal(err)
			}
			snaps := e.paid.Snapshots(db.DatabaseID)
			if len(snaps) != 1 || snaps[0].Name != "cp" || snaps[0].ID == old.CheckpointID {
				t.Fatalf("snapshots = %+v, want only the new cp", snaps)
			}
			if res.CheckpointID != snaps[0].ID || !slices.Equal(res.Replaced, []string{"cp"}) {
				t.Errorf("result = %+v, want %s replacing cp", res, snaps[0].ID)
			}
			if n := e.paid.Count("CreateSnapshot"); n != tc.creates {
				t.Errorf("CreateSnapshot calls = %d, want %d", n, tc.creates)
			}
			if got := e.storedCheckpoints(db.DatabaseID); !slices.Equal(got, []string{"cp"}) {
				t.Errorf("recorded checkpoints = %v", got)
			}
			// The result answers one retry; the next identical call is a new checkpoint.
			if _, err := e.g.Checkpoint(as(bob), in); err != nil {
				t.Fatal(err)
			}
			if n := e.paid.Count("CreateSnapshot"); n != tc.creates+1 {
				t.Errorf("a third identical call was answered from the recovered result (CreateSnapshot calls = %d)", n)
			}
		})
	}
}

// TestCheckpointReplacedDeleteFails: the new checkpoint exists; its predecessor could not be
// deleted yet. The call succeeds, and the next call for the database deletes it.
func TestCheckpointReplacedDeleteFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(bob, "shop")
	old := e.checkpoint(bob, db.DatabaseID, "cp")
	e.paid.Fail("DeleteSnapshot", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	res, err := e.g.Checkpoint(as(bob), guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "cp", Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Replaced) != 0 || res.CheckpointID == old.CheckpointID || len(e.paid.Snapshots(db.DatabaseID)) != 2 {
		t.Fatalf("result = %+v, snapshots = %d", res, len(e.paid.Snapshots(db.DatabaseID)))
	}
	list, err := e.g.ListCheckpoints(as(bob), guard.DatabaseInput{DatabaseID: db.DatabaseID})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Checkpoints) != 1 || list.Checkpoints[0].CheckpointID != res.CheckpointID {
		t.Errorf("checkpoints = %+v, want only the new one", list.Checkpoints)
	}
}

func TestListCheckpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(bob, "shop")
	a := e.checkpoint(bob, db.DatabaseID, "a")
	e.clock.Advance(time.Minute)
	b := e.checkpoint(bob, db.DatabaseID, "b")
	list, err := e.g.ListCheckpoints(as(bob), guard.DatabaseInput{DatabaseID: db.DatabaseID})
	if err != nil {
		t.Fatal(err)
	}
	want := []guard.Checkpoint{a.Checkpoint, b.Checkpoint}
	if list.DatabaseID != db.DatabaseID || list.Limit != 10 || !slices.Equal(list.Checkpoints, want) {
		t.Errorf("list = %+v, want %+v", list, want)
	}
	_, err = e.g.ListCheckpoints(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID})
	wantCode(t, err, errcode.NotFound)
	e.paid.Fail("ListSnapshots", neontest.Refuse(http.StatusNotFound, "", "project not found"))
	_, err = e.g.ListCheckpoints(as(bob), guard.DatabaseInput{DatabaseID: db.DatabaseID})
	wantCode(t, err, errcode.NotFound, "list checkpoints: not found on Neon")
}

func TestRestoreCheckpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	cp := e.checkpoint(alice, db.DatabaseID, "a")
	before, err := e.g.GetConnectionString(as(alice), guard.ConnectionInput{DatabaseID: db.DatabaseID})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	now := e.clock.Now()

	res, err := e.g.RestoreCheckpoint(as(alice), guard.RestoreCheckpointInput{DatabaseID: db.DatabaseID, Checkpoint: "a"})
	if err != nil {
		t.Fatal(err)
	}
	wantMutations(t, e.free, "RestoreSnapshot", "UpdateBranch")
	newMain, _ := e.free.BranchNamed(db.DatabaseID, "main")
	old, _ := e.free.Branch(db.DatabaseID, db.MainBranchID)
	expiry := now.Add(24 * time.Hour)
	if res.Checkpoint != "a" || res.CheckpointID != cp.CheckpointID || res.MainBranchID != newMain.ID || res.MainBranchID == db.MainBranchID ||
		res.PreviousBranch.BranchID != db.MainBranchID || res.PreviousBranch.Name != "main (old)" || !res.PreviousBranch.ExpiresAt.Equal(expiry) {
		t.Errorf("result = %+v", res)
	}
	if !newMain.Default || newMain.ParentID != "" || newMain.RestoredFrom != cp.CheckpointID {
		t.Errorf("new main = %+v, want the default root branch restored from %s", newMain, cp.CheckpointID)
	}
	if old.ExpiresAt == nil || !old.ExpiresAt.Equal(expiry) {
		t.Errorf("the replaced branch's expiry on Neon = %v, want %v", old.ExpiresAt, expiry)
	}
	if rec, ok := e.recorded(db.DatabaseID, old.ID); !ok || rec.Kind != "backup" || !rec.ExpiresAt.Equal(expiry) {
		t.Errorf("record of the replaced branch = %+v (%v)", rec, ok)
	}
	list, _ := e.g.ListDatabases(as(alice))
	if list.Databases[0].MainBranchID != newMain.ID {
		t.Errorf("recorded main = %s, want %s", list.Databases[0].MainBranchID, newMain.ID)
	}
	after, err := e.g.GetConnectionString(as(alice), guard.ConnectionInput{DatabaseID: db.DatabaseID})
	if err != nil || after.ConnectionString != before.ConnectionString || after.BranchID != newMain.ID {
		t.Errorf("connection after the restore = %+v, %v; want the same string on the new main", after, err)
	}
	// The new main is a root branch: it can be checkpointed again.
	if _, err := e.g.Checkpoint(as(alice), guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "b", Replace: true}); err != nil {
		t.Errorf("checkpoint after a restore: %v", err)
	}
}

func TestRestoreCheckpointRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	cp := e.checkpoint(alice, db.DatabaseID, "a")
	_, err := e.g.RestoreCheckpoint(as(alice), guard.RestoreCheckpointInput{DatabaseID: db.DatabaseID, Checkpoint: ""})
	wantCode(t, err, errcode.InvalidArgument, "checkpoint is required")
	_, err = e.g.RestoreCheckpoint(as(alice), guard.RestoreCheckpointInput{DatabaseID: db.DatabaseID, Checkpoint: "zzz"})
	wantCode(t, err, errcode.NotFound, `checkpoint "zzz" not found`)
	_, err = e.g.RestoreCheckpoint(as(bob), guard.RestoreCheckpointInput{DatabaseID: db.DatabaseID, Checkpoint: "a"})
	wantCode(t, err, errcode.NotFound, "no database with this database_id")

	// Neon refuses: nothing changed, and the intent is closed.
	e.free.Fail("RestoreSnapshot", neontest.Refuse(http.StatusConflict, "", "project is busy"))
	_, err = e.g.RestoreCheckpoint(as(alice), guard.RestoreCheckpointInput{DatabaseID: db.DatabaseID, Checkpoint: cp.CheckpointID})
	wantCode(t, err, errcode.InvalidArgument, "project is busy", "main was not changed")
	if open, rec := e.openIntents(db.DatabaseID), e.recoveredIntents(db.DatabaseID); open+rec != 0 {
		t.Errorf("open %d, recovered %d after a refusal", open, rec)
	}

	// Every branch counts: the replaced main stays as a backup, so a full database is refused.
	for i := range 9 {
		e.devBranch(alice, db.DatabaseID, fmt.Sprintf("dev%d", i))
	}
	_, err = e.g.RestoreCheckpoint(as(alice), guard.RestoreCheckpointInput{DatabaseID: db.DatabaseID, Checkpoint: "a"})
	ge := wantCode(t, err, errcode.BranchLimit, "free tier allows 10 branches", "10 exist")
	wantHint(t, ge, `"dev0" (dev)`, "delete_dev_branch")
	wantMutations(t, e.free)
}

// TestRestoreCheckpointLostAnswer: whether the restore happened is told by Neon's default
// branch. The next call finishes (the replaced branch recorded as a backup) or rolls back, and
// a retry of the restore gets the recovered result.
func TestRestoreCheckpointLostAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		fault    neontest.Fault
		restores int
		replaced bool // the main the next call sees is a new branch
	}{
		{"applied", neontest.LostAnswer(), 1, true},
		{"not applied", neontest.LostRequest(), 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			db := e.createDB(alice, "shop")
			e.checkpoint(alice, db.DatabaseID, "a")
			e.free.Fail("RestoreSnapshot", tc.fault)
			_, err := e.g.RestoreCheckpoint(as(alice), guard.RestoreCheckpointInput{DatabaseID: db.DatabaseID, Checkpoint: "a"})
			ge := wantCode(t, err, errcode.Upstream, "whether main was restored is found out on the next call")
			wantHint(t, ge, "list_branches")

			list, err := e.g.ListBranches(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID})
			if err != nil {
				t.Fatal(err)
			}
			main := list.Branches[slices.IndexFunc(list.Branches, func(b guard.Branch) bool { return b.Kind == "main" })]
			if (main.BranchID != db.MainBranchID) != tc.replaced {
				t.Errorf("main after settling = %s (was %s)", main.BranchID, db.MainBranchID)
			}
			if tc.replaced {
				old := list.Branches[slices.IndexFunc(list.Branches, func(b guard.Branch) bool { return b.BranchID == db.MainBranchID })]
				if old.Kind != "backup" || old.Name != "main (old)" || old.ExpiresAt == nil {
					t.Errorf("the replaced main = %+v, want a backup with an expiry", old)
				}
			}

			res, err := e.g.RestoreCheckpoint(as(alice), guard.RestoreCheckpointInput{DatabaseID: db.DatabaseID, Checkpoint: "a"})
			if err != nil {
				t.Fatal(err)
			}
			if n := e.free.Count("RestoreSnapshot"); n != tc.restores {
				t.Errorf("RestoreSnapshot calls = %d, want %d", n, tc.restores)
			}
			newMain, _ := e.free.BranchNamed(db.DatabaseID, "main")
			if res.MainBranchID != newMain.ID || res.PreviousBranch.BranchID != db.MainBranchID || res.PreviousBranch.Name != "main (old)" {
				t.Errorf("result = %+v, new main %s", res, newMain.ID)
			}
			if open, rec := e.openIntents(db.DatabaseID), e.recoveredIntents(db.DatabaseID); open+rec != 0 {
				t.Errorf("open %d, unclaimed %d", open, rec)
			}
		})
	}
}
