package guard_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neon/neontest"
	"github.com/neonguard/neonguard/internal/store"
)

// undoEnv is an env with alice's database "shop" made an hour ago.
func undoEnv(t *testing.T) (*env, *guard.CreateDatabaseResult) {
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	e.clock.Advance(time.Hour)
	return e, db
}

func TestUndoToTime(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	now := e.clock.Now()
	res, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	wantMutations(t, e.free, "RestoreBranch", "UpdateBranch")
	restore := e.free.Mutations()[0]
	backupName := "main-undo-" + now.UTC().Format("20060102-150405")
	if restore.BranchID != db.MainBranchID || restore.Name != backupName {
		t.Errorf("restore request = %s, want main preserved as %s", restore, backupName)
	}
	backup, ok := e.free.BranchNamed(db.DatabaseID, backupName)
	main, _ := e.free.Branch(db.DatabaseID, db.MainBranchID)
	expiry := now.Add(24 * time.Hour)
	if !ok || backup.ParentID != "" || backup.ExpiresAt == nil || !backup.ExpiresAt.Equal(expiry) {
		t.Errorf("backup on Neon = %+v, want a root branch expiring at %s", backup, expiry)
	}
	if main.ParentID != "" || main.LastResetAt == nil {
		t.Errorf("main = %+v, want it restored and still a root", main)
	}
	if res.Branch.BranchID != db.MainBranchID || res.Branch.Name != "main" || !res.RestoredTo.Equal(now.Add(-15*time.Minute)) ||
		res.BackupBranch.BranchID != backup.ID || res.BackupBranch.Name != backupName || !res.BackupBranch.ExpiresAt.Equal(expiry) {
		t.Errorf("result = %+v", res)
	}
	if rec, ok := e.recorded(db.DatabaseID, backup.ID); !ok || rec.Kind != store.BranchBackup || !rec.ExpiresAt.Equal(expiry) {
		t.Errorf("backup record = %+v (%v)", rec, ok)
	}
	// A second undo in the same second gets a backup name of its own.
	res2, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Timestamp: ptr(now.Add(-20 * time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	if res2.BackupBranch.Name != backupName+"-2" || !res2.RestoredTo.Equal(now.Add(-20*time.Minute)) {
		t.Errorf("second undo = %+v", res2)
	}
	if _, err := e.g.Checkpoint(as(alice), guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "after-undo"}); err != nil {
		t.Errorf("main is still a root after an undo, so it can be checkpointed: %v", err)
	}
}

// TestUndoDevBranch: a dev branch is not a root; Neon makes its backup its parent, and the
// guard records that backup.
func TestUndoDevBranch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	dev := e.devBranch(alice, db.DatabaseID, "feature")
	e.clock.Advance(time.Hour)
	res, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Branch: "feature", Ago: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := e.free.Branch(db.DatabaseID, dev.BranchID)
	if res.Branch.BranchID != dev.BranchID || res.BackupBranch.BranchID == "" || after.ParentID != res.BackupBranch.BranchID {
		t.Errorf("result = %+v, dev's parent = %s; want the backup as its parent", res, after.ParentID)
	}
	if rec, ok := e.recorded(db.DatabaseID, res.BackupBranch.BranchID); !ok || rec.Kind != store.BranchBackup {
		t.Errorf("backup record = %+v (%v)", rec, ok)
	}
}

func TestUndoToTimeRefusals(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	now := e.clock.Now()
	for _, tc := range []struct {
		name  string
		in    guard.UndoInput
		code  errcode.Code
		facts []string
		hint  string
	}{
		{"both", guard.UndoInput{Timestamp: ptr(now.Add(-time.Minute)), Ago: time.Minute}, errcode.InvalidArgument, []string{"either timestamp or ago"}, ""},
		{"neither", guard.UndoInput{}, errcode.InvalidArgument, []string{"timestamp or ago is required"}, ""},
		{"too short", guard.UndoInput{Ago: 500 * time.Millisecond}, errcode.InvalidArgument, []string{"ago 500ms is too short"}, ""},
		{"future", guard.UndoInput{Timestamp: ptr(now.Add(time.Hour))}, errcode.InvalidArgument, []string{"is in the future"}, ""},
		{"outside the window", guard.UndoInput{Ago: 25 * time.Hour}, errcode.RestoreWindow, []string{"outside the free tier's 1 day restore window"},
			"the earliest allowed time is " + now.Add(-24*time.Hour).UTC().Format(time.RFC3339)},
		{"before the branch", guard.UndoInput{Ago: 2 * time.Hour}, errcode.InvalidArgument, []string{`branch "main" did not exist at`}, ""},
		{"unknown branch", guard.UndoInput{Ago: time.Minute, Branch: "nope"}, errcode.NotFound, []string{`branch "nope" not found`}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.DatabaseID = db.DatabaseID
			_, err := e.g.UndoToTime(as(alice), tc.in)
			ge := wantCode(t, err, tc.code, tc.facts...)
			wantHint(t, ge, tc.hint)
		})
	}
	_, err := e.g.UndoToTime(as(bob), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute})
	wantCode(t, err, errcode.NotFound, "no database with this database_id")
	for i := range 9 {
		e.devBranch(alice, db.DatabaseID, fmt.Sprintf("dev%d", i))
	}
	_, err = e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute})
	wantCode(t, err, errcode.BranchLimit, "10 exist")
	wantMutations(t, e.free)
}

// TestUndoRefusedByNeon: Neon's own restore window can be shorter than the tier's (here the
// project's history retention was cut to 10 minutes). Its refusal is RESTORE_WINDOW, and
// nothing changed.
func TestUndoRefusedByNeon(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	if err := e.free.EditProject(db.DatabaseID, func(p *neon.Project) { p.HistoryRetentionSeconds = 600 }); err != nil {
		t.Fatal(err)
	}
	_, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: 15 * time.Minute})
	ge := wantCode(t, err, errcode.RestoreWindow, "undo_to_time: the time is outside the restore window", "the branch was not changed")
	wantHint(t, ge, "describe_limits")
	if len(e.free.Branches(db.DatabaseID)) != 1 {
		t.Errorf("branches = %v, want only main", names(e.free.Branches(db.DatabaseID)))
	}
	if open, rec := e.openIntents(db.DatabaseID), e.recoveredIntents(db.DatabaseID); open+rec != 0 {
		t.Errorf("open %d, recovered %d: want the intent rolled back", open, rec)
	}
}

// TestUndoLostAnswer: whether an undo happened is told by its backup branch. The next call
// finishes the undo (the backup gets its expiry and record) or rolls it back; a retry with the
// same arguments gets the recovered result instead of undoing twice.
func TestUndoLostAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		fault    neontest.Fault
		restores int
	}{
		{"applied", neontest.LostAnswer(), 1},
		{"not applied", neontest.LostRequest(), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, db := undoEnv(t)
			in := guard.UndoInput{DatabaseID: db.DatabaseID, Ago: 15 * time.Minute}
			backupName := "main-undo-" + e.clock.Now().UTC().Format("20060102-150405")
			e.free.Fail("RestoreBranch", tc.fault)
			_, err := e.g.UndoToTime(as(alice), in)
			ge := wantCode(t, err, errcode.Upstream, "outcome is unknown", fmt.Sprintf("a branch named %q exists if it did", backupName))
			wantHint(t, ge, "list_branches")
			if n := e.openIntents(db.DatabaseID); n != 1 {
				t.Fatalf("open intents = %d", n)
			}

			res, err := e.g.UndoToTime(as(alice), in)
			if err != nil {
				t.Fatal(err)
			}
			if n := e.free.Count("RestoreBranch"); n != tc.restores {
				t.Errorf("RestoreBranch calls = %d, want %d", n, tc.restores)
			}
			backup, ok := e.free.BranchNamed(db.DatabaseID, res.BackupBranch.Name)
			if !ok || backup.ExpiresAt == nil || res.BackupBranch.BranchID != backup.ID {
				t.Errorf("result = %+v, backup on Neon = %+v", res, backup)
			}
			if rec, ok := e.recorded(db.DatabaseID, backup.ID); !ok || rec.Kind != store.BranchBackup {
				t.Errorf("backup not recorded: %+v", rec)
			}
			if got := len(e.free.Branches(db.DatabaseID)); got != 2 {
				t.Errorf("branches = %v, want main and one backup", names(e.free.Branches(db.DatabaseID)))
			}
			if open, rec := e.openIntents(db.DatabaseID), e.recoveredIntents(db.DatabaseID); open+rec != 0 {
				t.Errorf("open %d, unclaimed %d: want every intent closed", open, rec)
			}
		})
	}
}

func TestCreateDevBranch(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	cp := e.checkpoint(alice, db.DatabaseID, "cp")
	now := e.clock.Now()
	at := now.Add(-10 * time.Minute).UTC().Truncate(time.Second)
	for _, tc := range []struct {
		name      string
		in        guard.DevBranchInput
		from      string
		ttl       time.Duration
		mutations []string
		check     func(t *testing.T, b neon.Branch)
	}{
		{name: "from main", in: guard.DevBranchInput{Name: "a"}, from: "main", ttl: 24 * time.Hour,
			mutations: []string{"CreateBranch"},
			check: func(t *testing.T, b neon.Branch) {
				if b.ParentID != db.MainBranchID || b.ParentTimestamp == nil || !b.ParentTimestamp.Equal(now) {
					t.Errorf("branch = %+v, want main's head as parent", b)
				}
			}},
		{name: "from a time", in: guard.DevBranchInput{Name: "b", From: at.Format(time.RFC3339), TTL: 2 * time.Hour}, from: at.Format(time.RFC3339), ttl: 2 * time.Hour,
			mutations: []string{"CreateBranch"},
			check: func(t *testing.T, b neon.Branch) {
				if b.ParentID != db.MainBranchID || b.ParentTimestamp == nil || !b.ParentTimestamp.Equal(at) {
					t.Errorf("branch = %+v, want main at %s as parent", b, at)
				}
			}},
		{name: "from a checkpoint", in: guard.DevBranchInput{Name: "c", From: "cp"}, from: "cp", ttl: 24 * time.Hour,
			mutations: []string{"RestoreSnapshot", "UpdateBranch", "CreateEndpoint"},
			check: func(t *testing.T, b neon.Branch) {
				if b.ParentID != "" || b.RestoredFrom != cp.CheckpointID || b.Default {
					t.Errorf("branch = %+v, want a root restored from %s beside main", b, cp.CheckpointID)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.free.ResetCalls()
			tc.in.DatabaseID = db.DatabaseID
			res, err := e.g.CreateDevBranch(as(alice), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			wantMutations(t, e.free, tc.mutations...)
			b, ok := e.free.BranchNamed(db.DatabaseID, tc.in.Name)
			if !ok {
				t.Fatalf("no branch %s on Neon", tc.in.Name)
			}
			tc.check(t, b)
			expiry := now.Add(tc.ttl)
			var eps []neon.Endpoint
			for _, ep := range e.free.Endpoints(db.DatabaseID) {
				if ep.BranchID == b.ID {
					eps = append(eps, ep)
				}
			}
			if len(eps) != 1 || eps[0].AutoscalingLimitMaxCU != 2 || eps[0].AutoscalingLimitMinCU != 0.25 {
				t.Errorf("computes = %+v, want one in the tier's range", eps)
			}
			if res.BranchID != b.ID || res.Name != tc.in.Name || res.From != tc.from || !res.ExpiresAt.Equal(expiry) ||
				len(eps) == 0 || !strings.Contains(res.ConnectionString, strings.Replace(eps[0].Host, ".", "-pooler.", 1)) {
				t.Errorf("result = %+v", res)
			}
			if b.ExpiresAt == nil || !b.ExpiresAt.Equal(expiry) {
				t.Errorf("expiry on Neon = %v, want %s", b.ExpiresAt, expiry)
			}
			if rec, ok := e.recorded(db.DatabaseID, b.ID); !ok || rec.Kind != store.BranchDev || !rec.ExpiresAt.Equal(expiry) {
				t.Errorf("record = %+v (%v)", rec, ok)
			}

			// Idempotent per name: the same branch, nothing new on Neon.
			e.free.ResetCalls()
			again, err := e.g.CreateDevBranch(as(alice), tc.in)
			if err != nil || again.BranchID != res.BranchID || !again.ExpiresAt.Equal(res.ExpiresAt) || again.ConnectionString != res.ConnectionString {
				t.Errorf("repeat = %+v, %v", again, err)
			}
			wantMutations(t, e.free)
		})
	}
}

func TestCreateDevBranchRefusals(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	undo, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.free.ResetCalls()
	for _, tc := range []struct {
		name  string
		in    guard.DevBranchInput
		code  errcode.Code
		facts []string
	}{
		{"bad name", guard.DevBranchInput{Name: "a b"}, errcode.InvalidArgument, []string{`name "a b" is not valid`}},
		{"main", guard.DevBranchInput{Name: "main"}, errcode.InvalidArgument, []string{"cannot be named main"}},
		{"ttl too long", guard.DevBranchInput{Name: "a", TTL: 8 * 24 * time.Hour}, errcode.InvalidArgument, []string{"ttl 192h is outside the free tier's range 1m to 168h"}},
		{"outside the window", guard.DevBranchInput{Name: "a", From: e.clock.Now().Add(-48 * time.Hour).Format(time.RFC3339)}, errcode.RestoreWindow, []string{"restore window"}},
		{"unknown from", guard.DevBranchInput{Name: "a", From: "yesterday"}, errcode.InvalidArgument, []string{`from "yesterday" is neither main, a checkpoint, nor an RFC 3339 time`}},
		{"name of a backup", guard.DevBranchInput{Name: undo.BackupBranch.Name}, errcode.InvalidArgument, []string{"already exists and is not a dev branch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.DatabaseID = db.DatabaseID
			_, err := e.g.CreateDevBranch(as(alice), tc.in)
			wantCode(t, err, tc.code, tc.facts...)
		})
	}
	wantMutations(t, e.free)

	// Over the tier's quota a new compute would be suspended at once: refused.
	if err := e.free.EditProject(db.DatabaseID, func(p *neon.Project) { p.ActiveTimeSeconds = 360000 }); err != nil {
		t.Fatal(err)
	}
	_, err = e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "a"})
	wantCode(t, err, errcode.QuotaExceeded, "active_time_seconds")
	if err := e.free.EditProject(db.DatabaseID, func(p *neon.Project) { p.ActiveTimeSeconds = 0 }); err != nil {
		t.Fatal(err)
	}

	// Every branch counts (main, the undo backup, dev branches): the 11th is refused, and the
	// hint offers what delete_dev_branch can remove.
	for i := range 8 {
		e.devBranch(alice, db.DatabaseID, fmt.Sprintf("dev%d", i))
	}
	_, err = e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "one-more"})
	ge := wantCode(t, err, errcode.BranchLimit, "free tier allows 10 branches", "10 exist")
	wantHint(t, ge, fmt.Sprintf("%q (backup)", undo.BackupBranch.Name), `"dev0" (dev)`, "and 6 more")
	wantMutations(t, e.free)
}

// TestCreateDevBranchNeonFailures: a refusal closes the intent (nothing was created); a lost
// answer leaves it for the next call, which finishes the branch it finds or rolls back; a
// retry with the same name returns the branch.
func TestCreateDevBranchNeonFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		fault   neontest.Fault
		code    errcode.Code
		facts   []string
		creates int // CreateBranch calls in all, with the retry
	}{
		{"refused", neontest.Refuse(http.StatusUnprocessableEntity, neon.CodeBranchesLimitExceeded, "limit"), errcode.BranchLimit,
			[]string{"Neon's branch limit", "no branch was created"}, 2},
		{"lost answer", neontest.LostAnswer(), errcode.Upstream, []string{`whether "feature" was created is found out on the next call`}, 1},
		{"lost request", neontest.LostRequest(), errcode.Upstream, []string{`whether "feature" was created`}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, db := undoEnv(t)
			e.free.Fail("CreateBranch", tc.fault)
			in := guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "feature"}
			_, err := e.g.CreateDevBranch(as(alice), in)
			wantCode(t, err, tc.code, tc.facts...)

			res, err := e.g.CreateDevBranch(as(alice), in)
			if err != nil {
				t.Fatal(err)
			}
			b, ok := e.free.BranchNamed(db.DatabaseID, "feature")
			if !ok || res.BranchID != b.ID || b.ExpiresAt == nil {
				t.Errorf("result = %+v, branch = %+v", res, b)
			}
			if n := e.free.Count("CreateBranch"); n != tc.creates {
				t.Errorf("CreateBranch calls = %d, want %d", n, tc.creates)
			}
			if rec, ok := e.recorded(db.DatabaseID, b.ID); !ok || rec.Kind != store.BranchDev {
				t.Errorf("record = %+v (%v)", rec, ok)
			}
			if n := e.openIntents(db.DatabaseID); n != 0 {
				t.Errorf("open intents = %d", n)
			}
		})
	}
}

// TestDevBranchFromCheckpointRetried: a branch restored from a checkpoint gets its expiry and
// compute in later requests. Whichever of them fails, the branch exists, the call says Neon
// failed, and a retry with the same name finishes the branch and returns it.
func TestDevBranchFromCheckpointRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method string
		fact   string
	}{
		{"GetBranch", "read the new branch"},
		{"UpdateBranch", "set its expiry"},
		{"ListBranchEndpoints", "list computes"},
		{"CreateEndpoint", "start its compute"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			e, db := undoEnv(t)
			e.checkpoint(alice, db.DatabaseID, "cp")
			in := guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "look", From: "cp"}
			e.free.Fail(tc.method, neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
			_, err := e.g.CreateDevBranch(as(alice), in)
			wantCode(t, err, errcode.Upstream, tc.fact)
			if _, ok := e.free.BranchNamed(db.DatabaseID, "look"); !ok || e.openIntents(db.DatabaseID) != 1 {
				t.Fatalf("branch made = %v, open intents = %d", ok, e.openIntents(db.DatabaseID))
			}
			res, err := e.g.CreateDevBranch(as(alice), in)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := e.free.BranchNamed(db.DatabaseID, "look")
			eps, _ := e.free.ListBranchEndpoints(context.Background(), db.DatabaseID, b.ID)
			if res.BranchID != b.ID || res.From != "cp" || b.ExpiresAt == nil || !b.ExpiresAt.Equal(res.ExpiresAt) || len(eps) != 1 {
				t.Errorf("result = %+v, branch = %+v, computes = %d", res, b, len(eps))
			}
			if n := e.free.Count("RestoreSnapshot"); n != 1 {
				t.Errorf("RestoreSnapshot calls = %d, want 1", n)
			}
		})
	}
}

// TestDevBranchFromCheckpointFinishedLater: the branch was made but its expiry could not be
// set. The call says so, and the next call for the database gives the branch its expiry and
// its compute.
func TestDevBranchFromCheckpointFinishedLater(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	e.checkpoint(alice, db.DatabaseID, "cp")
	e.free.Fail("UpdateBranch", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "look", From: "cp"})
	ge := wantCode(t, err, errcode.Upstream, "set its expiry", `branch "look" was created and is finished (expiry, compute) on the next call`)
	wantHint(t, ge, "call create_dev_branch again with the same name")
	b, _ := e.free.BranchNamed(db.DatabaseID, "look")
	if b.ExpiresAt != nil || e.openIntents(db.DatabaseID) != 1 {
		t.Fatalf("branch = %+v, open intents = %d", b, e.openIntents(db.DatabaseID))
	}

	list, err := e.g.ListBranches(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list.Branches, func(x guard.Branch) bool { return x.Name == "look" })
	if i < 0 || list.Branches[i].Kind != "dev" || list.Branches[i].ExpiresAt == nil || list.Branches[i].EndpointState != "active" {
		t.Errorf("after settling: %+v, want a dev branch with an expiry and a compute", list.Branches)
	}
	if n := e.openIntents(db.DatabaseID); n != 0 {
		t.Errorf("open intents = %d", n)
	}
}

func TestListBranches(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	dev := e.devBranch(alice, db.DatabaseID, "feature")
	undo, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// A branch made outside neonguard counts, and is offered for deletion as a backup.
	outside, err := e.free.AddBranch(db.DatabaseID, "console-made", db.MainBranchID)
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.g.ListBranches(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID})
	if err != nil {
		t.Fatal(err)
	}
	if list.DatabaseID != db.DatabaseID || list.Limit != 10 || len(list.Branches) != 4 {
		t.Fatalf("list = %+v", list)
	}
	want := map[string]struct{ kind, endpoint, parent string }{
		db.MainBranchID:            {"main", "active", ""},
		dev.BranchID:               {"dev", "active", undo.BackupBranch.BranchID}, // main's children move to the backup
		undo.BackupBranch.BranchID: {"backup", "none", ""},
		outside.ID:                 {"backup", "none", db.MainBranchID},
	}
	for _, b := range list.Branches {
		w, ok := want[b.BranchID]
		if !ok || b.Kind != w.kind || b.EndpointState != w.endpoint || b.ParentID != w.parent {
			t.Errorf("branch %+v, want %+v", b, w)
		}
		if (b.Kind == "dev" || b.BranchID == undo.BackupBranch.BranchID) != (b.ExpiresAt != nil) {
			t.Errorf("branch %s expiry = %v", b.Name, b.ExpiresAt)
		}
	}

	e.free.Fail("ListEndpoints", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err = e.g.ListBranches(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID})
	wantCode(t, err, errcode.Upstream, "list_branches")
	_, err = e.g.ListBranches(as(bob), guard.DatabaseInput{DatabaseID: db.DatabaseID})
	wantCode(t, err, errcode.NotFound)
}

// TestMainFollowsNeon: when Neon's default branch moves (a restore finalized outside
// neonguard), the guard follows it and records the new main.
func TestMainFollowsNeon(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	snap, err := e.free.CreateSnapshot(as(alice), db.DatabaseID, db.MainBranchID, neon.SnapshotCreate{Name: "console"})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := e.free.RestoreSnapshot(as(alice), db.DatabaseID, snap.ID, neon.SnapshotRestore{TargetBranchID: db.MainBranchID, FinalizeRestore: true})
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.g.ListBranches(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range list.Branches {
		if (b.Kind == "main") != (b.BranchID == rs.Branch.ID) {
			t.Errorf("branch %s (%s) has kind %s; the new default is %s", b.Name, b.BranchID, b.Kind, rs.Branch.ID)
		}
	}
	dbs, _ := e.g.ListDatabases(as(alice))
	if dbs.Databases[0].MainBranchID != rs.Branch.ID {
		t.Errorf("recorded main = %s, want %s", dbs.Databases[0].MainBranchID, rs.Branch.ID)
	}

	// Without a default branch, the recorded main is main.
	if err := e.free.EditBranch(db.DatabaseID, rs.Branch.ID, func(b *neon.Branch) { b.Default = false }); err != nil {
		t.Fatal(err)
	}
	if res, err := e.g.GetConnectionString(as(alice), guard.ConnectionInput{DatabaseID: db.DatabaseID}); err != nil || res.BranchID != rs.Branch.ID {
		t.Errorf("main without a default branch = %+v, %v", res, err)
	}

	// A project without a default branch, and without the recorded one, has no main: Neon's
	// state is not one the guard can act on.
	if err := e.free.DeleteBranch(as(alice), db.DatabaseID, rs.Branch.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.g.ListBranches(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID})
	wantCode(t, err, errcode.Upstream, "has no main branch")
}

func TestDeleteDevBranch(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	a := e.devBranch(alice, db.DatabaseID, "a")
	b := e.devBranch(alice, db.DatabaseID, "b")
	for _, tc := range []struct {
		name    string
		ref     string
		id      string
		deleted bool
	}{
		{"by name", "a", a.BranchID, true},
		{"by id", b.BranchID, b.BranchID, true},
		{"already gone", "a", "a", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.free.ResetCalls()
			res, err := e.g.DeleteDevBranch(as(alice), guard.DeleteBranchInput{DatabaseID: db.DatabaseID, Branch: tc.ref})
			if err != nil {
				t.Fatal(err)
			}
			if res.Deleted != tc.deleted || res.BranchID != tc.id || res.DatabaseID != db.DatabaseID {
				t.Errorf("result = %+v", res)
			}
			if tc.deleted {
				wantMutations(t, e.free, "DeleteBranch")
				if _, ok := e.free.Branch(db.DatabaseID, tc.id); ok {
					t.Error("still on Neon")
				}
				if _, ok := e.recorded(db.DatabaseID, tc.id); ok {
					t.Error("still recorded")
				}
			} else {
				wantMutations(t, e.free)
			}
		})
	}
}

func TestDeleteDevBranchRefusals(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	parent := e.devBranch(alice, db.DatabaseID, "parent")
	if _, err := e.free.AddBranch(db.DatabaseID, "child", parent.BranchID); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"main", db.MainBranchID} {
		_, err := e.g.DeleteDevBranch(as(alice), guard.DeleteBranchInput{DatabaseID: db.DatabaseID, Branch: ref})
		wantCode(t, err, errcode.InvalidArgument, "the main branch cannot be deleted")
	}
	_, err := e.g.DeleteDevBranch(as(alice), guard.DeleteBranchInput{DatabaseID: db.DatabaseID, Branch: ""})
	wantCode(t, err, errcode.InvalidArgument, "branch is required")
	_, err = e.g.DeleteDevBranch(as(bob), guard.DeleteBranchInput{DatabaseID: db.DatabaseID, Branch: "parent"})
	wantCode(t, err, errcode.NotFound)

	// Neon keeps a branch with children: its 422 is INVALID_ARGUMENT with Neon's reason.
	_, err = e.g.DeleteDevBranch(as(alice), guard.DeleteBranchInput{DatabaseID: db.DatabaseID, Branch: "parent"})
	ge := wantCode(t, err, errcode.InvalidArgument, "delete_dev_branch: Neon refused the request", "has children")
	wantHint(t, ge, "delete the branches whose parent_id is this branch first")
	if _, ok := e.recorded(db.DatabaseID, parent.BranchID); !ok {
		t.Error("a branch Neon kept is no longer recorded")
	}

	e.free.Fail("DeleteBranch", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err = e.g.DeleteDevBranch(as(alice), guard.DeleteBranchInput{DatabaseID: db.DatabaseID, Branch: "child"})
	wantCode(t, err, errcode.Upstream, "HTTP 503")
	if _, ok := e.free.BranchNamed(db.DatabaseID, "child"); !ok {
		t.Error("the branch is gone although Neon failed")
	}
}

// When the undo happened but its bookkeeping did not finish, the error says the undo happened
// (an agent must not undo again), and the next call records the backup.
func TestUndoErrorAfterTheRestoreSaysItHappened(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	// The first list is the state read before the restore; the second looks for the backup.
	e.free.Fail("ListBranches", neontest.Fault{}, neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute})
	ge := wantCode(t, err, errcode.Upstream, "the undo happened")
	wantHint(t, ge, "do not call undo_to_time again")
	if e.openIntents(db.DatabaseID) != 1 {
		t.Fatalf("open intents: %d, want the undo's", e.openIntents(db.DatabaseID))
	}
	e.free.Heal()
	res, err := e.g.ListBranches(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID})
	if err != nil {
		t.Fatal(err)
	}
	backups := 0
	for _, b := range res.Branches {
		if b.Kind == "backup" && b.ExpiresAt != nil {
			backups++
		}
	}
	if backups != 1 || e.openIntents(db.DatabaseID) != 0 {
		t.Fatalf("after the next call: %d backups with an expiry, %d open intents", backups, e.openIntents(db.DatabaseID))
	}
}

// A repeat of create_dev_branch returns the existing branch as it was made, whatever the
// repeat's from says.
func TestDevBranchRepeatReportsWhatItWasMadeFrom(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	e.checkpoint(alice, db.DatabaseID, "cp")
	first, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "feature", From: "cp"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "feature", From: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if again.BranchID != first.BranchID || again.From != "cp" {
		t.Fatalf("repeat answered %+v, want branch %s made from cp", again, first.BranchID)
	}
}
