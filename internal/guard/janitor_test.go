package guard_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon/neontest"
	"github.com/neonguard/neonguard/internal/store"
)

func swept(bs []guard.SweptBranch) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Name)
	}
	slices.Sort(out)
	return out
}

func TestSweepExpired(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	// The undo first: it moves main's children to its backup, and a backup with children
	// cannot be deleted.
	undo, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	short, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "short", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	long, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "long", TTL: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := e.devBranch(alice, db.DatabaseID, "deleted-elsewhere")
	if err := e.free.DeleteBranch(context.Background(), db.DatabaseID, elsewhere.BranchID); err != nil {
		t.Fatal(err)
	}
	// A record that names main (whatever its kind and expiry) never deletes it.
	past := e.clock.Now().Add(-time.Hour)
	if err := e.st.AddBranch(context.Background(), store.Branch{ID: db.MainBranchID, DatabaseID: db.DatabaseID, Name: "main",
		Kind: store.BranchBackup, ExpiresAt: &past}); err != nil {
		t.Fatal(err)
	}
	bobs := e.createDB(bob, "untouched") // nothing recorded: Neon is not asked
	e.free.ResetCalls()
	e.paid.ResetCalls()

	rep, err := e.g.SweepExpired(context.Background(), e.clock.Now().Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := swept(rep.Deleted); !slices.Equal(got, []string{undo.BackupBranch.Name, "short"}) { // sorted
		t.Errorf("deleted = %v, want the short dev branch and the undo backup", got)
	}
	if got := swept(rep.Pruned); !slices.Equal(got, []string{"deleted-elsewhere"}) {
		t.Errorf("pruned = %v", got)
	}
	if rep.Failed != 0 {
		t.Errorf("failed = %d", rep.Failed)
	}
	wantMutations(t, e.free, "DeleteBranch", "DeleteBranch")
	if got := names(e.free.Branches(db.DatabaseID)); !slices.Equal(got, []string{"main", "long"}) {
		t.Errorf("branches on Neon = %v, want main and long", got)
	}
	for id, want := range map[string]bool{short.BranchID: false, undo.BackupBranch.BranchID: false, elsewhere.BranchID: false, long.BranchID: true, db.MainBranchID: true} {
		if _, ok := e.recorded(db.DatabaseID, id); ok != want {
			t.Errorf("record of %s kept = %v, want %v", id, ok, want)
		}
	}
	if n := len(e.paid.Calls()); n != 0 {
		t.Errorf("Neon was asked about %s, which has no recorded branches: %v", bobs.DatabaseID, e.paid.Calls())
	}
}

func TestSweepExpiredFailures(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	other := e.createDB(alice, "other")
	for _, id := range []string{db.DatabaseID, other.DatabaseID} {
		if _, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: id, Name: "dev", TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	later := e.clock.Now().Add(2 * time.Hour)

	// One database that cannot be read is skipped and counted; the others are swept.
	e.free.Fail("ListBranches", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	rep, err := e.g.SweepExpired(context.Background(), later)
	if err != nil || rep.Failed != 1 || len(rep.Deleted) != 1 {
		t.Fatalf("report = %+v, %v; want one database failed, the other swept", rep, err)
	}
	failed := db.DatabaseID
	if rep.Deleted[0].DatabaseID == db.DatabaseID {
		failed = other.DatabaseID
	}

	// A delete Neon refuses keeps the record for the next pass.
	e.free.Fail("DeleteBranch", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	if rep, err = e.g.SweepExpired(context.Background(), later); err != nil || rep.Failed != 1 || len(rep.Deleted) != 0 {
		t.Fatalf("report = %+v, %v; want the refused delete counted", rep, err)
	}
	if bs, _ := e.st.ListBranches(context.Background(), failed); len(bs) != 1 {
		t.Errorf("records = %+v, want the dev branch kept", bs)
	}

	// An interrupted call that cannot be settled yet is counted too, and the sweep goes on.
	e.free.Fail("RestoreBranch", neontest.LostAnswer())
	if _, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: failed, Ago: time.Minute}); err == nil {
		t.Fatal("want the scripted failure")
	}
	e.free.Fail("ListBranches", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	if rep, err = e.g.SweepExpired(context.Background(), later); err != nil || rep.Failed != 1 || len(rep.Deleted) != 1 {
		t.Fatalf("report = %+v, %v; want recovery counted as failed and the dev branch swept", rep, err)
	}
	if e.openIntents(failed) != 1 {
		t.Errorf("open intents = %d", e.openIntents(failed))
	}
	if _, err := e.g.SweepExpired(context.Background(), later); err != nil || e.openIntents(failed) != 0 {
		t.Errorf("next pass: err %v, open intents %d", err, e.openIntents(failed))
	}

	// A project gone from Neon is not the janitor's to judge: skipped, records kept.
	if err := e.free.DeleteProject(context.Background(), failed); err != nil {
		t.Fatal(err)
	}
	if rep, err = e.g.SweepExpired(context.Background(), later); err != nil || rep.Failed != 0 || len(rep.Deleted)+len(rep.Pruned) != 0 {
		t.Errorf("report = %+v, %v", rep, err)
	}
	if bs, _ := e.st.ListBranches(context.Background(), failed); len(bs) != 1 {
		t.Errorf("records of a project missing on Neon = %+v, want kept (the undo backup)", bs)
	}
}

// TestResumeIntents: what interrupted calls left open is settled database by database, under
// each database's lock: finished when the first change happened, rolled back when not, kept
// (and reported) while Neon cannot be asked.
func TestResumeIntents(t *testing.T) {
	t.Parallel()
	e, undone := undoEnv(t)
	devDB := e.createDB(alice, "dev")
	never := e.createDB(alice, "never")
	e.free.Fail("RestoreBranch", neontest.LostAnswer())
	if _, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: undone.DatabaseID, Ago: time.Minute}); err == nil {
		t.Fatal("want the scripted failure")
	}
	e.free.Fail("CreateBranch", neontest.LostAnswer(), neontest.LostRequest())
	for _, id := range []string{devDB.DatabaseID, never.DatabaseID} {
		if _, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: id, Name: "feature"}); err == nil {
			t.Fatal("want the scripted failure")
		}
	}

	e.free.FailAlways("ListBranches", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	settled, failed, err := e.g.ResumeIntents(context.Background())
	if err != nil || failed != 3 || settled != 3 {
		t.Errorf("Neon down: settled %d, failed %d, err %v; want 3 tried and 3 failed", settled, failed, err)
	}
	if err := e.g.Recover(context.Background()); err == nil || !strings.Contains(err.Error(), "3 databases with interrupted operations could not be settled yet") {
		t.Errorf("Recover: err = %v", err)
	}
	e.free.Heal()

	settled, failed, err = e.g.ResumeIntents(context.Background())
	if err != nil || settled != 3 || failed != 0 {
		t.Fatalf("settled %d, failed %d, err %v; want 3 and 0", settled, failed, err)
	}
	for id, recovered := range map[string]int{undone.DatabaseID: 1, devDB.DatabaseID: 1, never.DatabaseID: 0} {
		if open, rec := e.openIntents(id), e.recoveredIntents(id); open != 0 || rec != recovered {
			t.Errorf("%s: open %d, recovered %d; want 0 and %d", id, open, rec, recovered)
		}
	}
	if b, ok := e.free.BranchNamed(devDB.DatabaseID, "feature"); !ok {
		t.Error("the dev branch Neon made is gone")
	} else if rec, ok := e.recorded(devDB.DatabaseID, b.ID); !ok || rec.Kind != store.BranchDev {
		t.Errorf("the dev branch Neon made is not recorded: %+v", rec)
	}
	if _, ok := e.free.BranchNamed(never.DatabaseID, "feature"); ok {
		t.Error("a rolled-back dev branch exists")
	}
	if settled, failed, err := e.g.ResumeIntents(context.Background()); settled+failed != 0 || err != nil {
		t.Errorf("second pass: settled %d, failed %d, err %v", settled, failed, err)
	}
}

// TestSweepRecoversFirst: a janitor pass settles interrupted calls before it looks at the
// records, so an interrupted undo's backup is recorded (with its expiry) and then swept.
func TestSweepRecoversFirst(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	e.free.Fail("RestoreBranch", neontest.LostAnswer())
	if _, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute}); err == nil {
		t.Fatal("want the scripted failure")
	}
	rep, err := e.g.SweepExpired(context.Background(), e.clock.Now().Add(48*time.Hour))
	if err != nil || rep.Failed != 0 || len(rep.Deleted) != 1 || rep.Deleted[0].Kind != store.BranchBackup {
		t.Errorf("report = %+v, %v; want the recovered backup deleted once expired", rep, err)
	}
	if e.openIntents(db.DatabaseID) != 0 || len(e.free.Branches(db.DatabaseID)) != 1 {
		t.Errorf("open intents = %d, branches = %v", e.openIntents(db.DatabaseID), names(e.free.Branches(db.DatabaseID)))
	}
}

// TestIntentOfADeletedDatabase: a database deleted with its project leaves nothing on Neon to
// finish: its open intents are rolled back.
func TestIntentOfADeletedDatabase(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	e.free.Fail("RestoreBranch", neontest.LostAnswer())
	if _, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute}); err == nil {
		t.Fatal("want the scripted failure")
	}
	if _, err := e.g.DeleteDatabase(context.Background(), guard.DeleteDatabaseInput{TenantID: alice, DatabaseID: db.DatabaseID, ConfirmName: "shop"}); err != nil {
		t.Fatal(err)
	}
	e.free.ResetCalls()
	settled, failed, err := e.g.ResumeIntents(context.Background())
	if err != nil || settled != 1 || failed != 0 {
		t.Fatalf("settled %d, failed %d, err %v", settled, failed, err)
	}
	if open, rec := e.openIntents(db.DatabaseID), e.recoveredIntents(db.DatabaseID); open+rec != 0 {
		t.Errorf("open %d, recovered %d; want rolled back", open, rec)
	}
	if calls := e.free.Calls(); len(calls) != 0 {
		t.Errorf("Neon was asked about a deleted database: %v", calls)
	}
}

// TestOpenIntentBlocksUntilSettled: a use case does not act on a database whose interrupted
// operation cannot be finished yet; it says so, and changes nothing.
func TestOpenIntentBlocksUntilSettled(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	e.free.Fail("RestoreBranch", neontest.LostAnswer())
	if _, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute}); err == nil {
		t.Fatal("want the scripted failure")
	}
	e.free.ResetCalls()
	e.free.Fail("ListBranches", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err := e.g.Checkpoint(as(alice), guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "cp"})
	ge := wantCode(t, err, errcode.Upstream, "an earlier undo_to_time on this database was interrupted", "this call's own operation did not start")
	wantHint(t, ge, "try again in a moment")
	wantMutations(t, e.free)
	if e.openIntents(db.DatabaseID) != 1 {
		t.Errorf("open intents = %d, want the interrupted undo kept", e.openIntents(db.DatabaseID))
	}
	if _, err := e.g.Checkpoint(as(alice), guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "cp"}); err != nil {
		t.Errorf("once Neon answers: %v", err)
	}
	wantMutations(t, e.free, "UpdateBranch", "CreateSnapshot") // the undo's backup expiry, then the checkpoint
}

// TestUnknownIntentIsClosed: an intent the guard cannot interpret (a newer version's kind)
// must not block its database for ever: it is closed as failed.
func TestUnknownIntentIsClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	if err := e.st.AddIntent(context.Background(), store.Intent{ID: "int-x", TenantID: alice, DatabaseID: db.DatabaseID,
		Kind: "from_the_future", Payload: "{}", CreatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.g.ListBranches(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID}); err != nil {
		t.Fatalf("an unknown intent blocks the database: %v", err)
	}
	if n := e.openIntents(db.DatabaseID); n != 0 {
		t.Errorf("open intents = %d", n)
	}
}

// waitingLocker calls onWait when a lock is asked for, before waiting for it.
type waitingLocker struct {
	*store.MemLocker
	onWait func(key string)
}

func (l waitingLocker) Lock(ctx context.Context, key string) (func(), error) {
	l.onWait(key)
	return l.MemLocker.Lock(ctx, key)
}

// TestBusyDatabase: a call that cannot get the database's lock before its caller gives up did
// not start, and says so.
func TestBusyDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(as(alice))
	defer cancel()
	var busyKey atomic.Value // the key whose waiter gives up
	busyKey.Store("")
	locker := waitingLocker{MemLocker: store.NewMemLocker(), onWait: func(key string) {
		if key == busyKey.Load() {
			cancel()
		}
	}}
	e := newEnv(t, func(d *guard.Deps) { d.Locker = locker })
	db := e.createDB(alice, "shop")
	unlock, err := locker.MemLocker.Lock(context.Background(), "db:"+db.DatabaseID) // another call holds it
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	busyKey.Store("db:" + db.DatabaseID)
	_, err = e.g.Checkpoint(ctx, guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "cp"})
	ge := wantCode(t, err, errcode.RateLimited, "is busy with other operations", "this call did not start and changed nothing")
	wantHint(t, ge, "retry in a few seconds")
	wantMutations(t, e.free)
}

// An expired backup that Neon keeps because it has children (a dev branch made before the undo
// moved under it) is left for a later pass, without counting the database as failed and
// without waiting: Neon's 422 is final until the children are gone.
func TestSweepKeepsAnExpiredBackupWithChildren(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	dev, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "before-undo", TTL: 7 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	undo, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	after := e.clock.Now().Add(2 * 24 * time.Hour) // the backup (1 day) has expired, the dev branch (7 days) not
	rep, err := e.g.SweepExpired(context.Background(), after)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 0 || len(rep.Deleted) != 0 {
		t.Fatalf("report %+v: the backup with a child must be kept, and the database not failed", rep)
	}
	// Its child is gone now: the next pass deletes it.
	if _, err := e.g.DeleteDevBranch(as(alice), guard.DeleteBranchInput{DatabaseID: db.DatabaseID, Branch: dev.BranchID}); err != nil {
		t.Fatal(err)
	}
	rep, err = e.g.SweepExpired(context.Background(), after)
	if err != nil || rep.Failed != 0 || !slices.Equal(swept(rep.Deleted), []string{undo.BackupBranch.Name}) {
		t.Fatalf("second pass: %+v, %v", rep, err)
	}
}
