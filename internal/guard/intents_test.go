package guard_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon/neontest"
	"github.com/neonguard/neonguard/internal/store"
)

// lossyLocker is a store.ContextLocker, like the PostgreSQL advisory lock, whose locks a test
// can lose (as when the session holding one dies).
type lossyLocker struct {
	*store.MemLocker
	mu   sync.Mutex
	held map[string]context.CancelCauseFunc
}

var _ store.ContextLocker = (*lossyLocker)(nil)

func newLossyLocker() *lossyLocker {
	return &lossyLocker{MemLocker: store.NewMemLocker(), held: map[string]context.CancelCauseFunc{}}
}

func (l *lossyLocker) LockContext(ctx context.Context, key string) (context.Context, func(), error) {
	unlock, err := l.Lock(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	held, cancel := context.WithCancelCause(ctx)
	l.mu.Lock()
	l.held[key] = cancel
	l.mu.Unlock()
	return held, func() { cancel(context.Canceled); unlock() }, nil
}

// lose ends key's held context as a lost lock does.
func (l *lossyLocker) lose(key string) {
	l.mu.Lock()
	cancel := l.held[key]
	l.mu.Unlock()
	cancel(store.ErrLockLost)
}

// TestCallerGoneMidChange: once its first change may have happened, a use case finishes even
// if its caller gives up (a timeout, a closed connection), instead of leaving the database
// half-way.
func TestCallerGoneMidChange(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	ctx, cancel := context.WithCancel(as(alice))
	defer cancel()
	e.free.Fail("RestoreBranch", neontest.Fault{Before: func(context.Context) { cancel() }})
	res, err := e.g.UndoToTime(ctx, guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute})
	if err != nil {
		t.Fatalf("the undo stopped with its caller: %v", err)
	}
	wantMutations(t, e.free, "RestoreBranch", "UpdateBranch")
	if _, ok := e.recorded(db.DatabaseID, res.BackupBranch.BranchID); !ok || e.openIntents(db.DatabaseID) != 0 {
		t.Errorf("backup recorded = %v, open intents = %d; want the undo finished", ok, e.openIntents(db.DatabaseID))
	}
}

// TestLostLockStopsTheChange: losing the database's lock (another replica may now hold it)
// stops the steps at once; the next call, holding the lock, settles what was left.
func TestLostLockStopsTheChange(t *testing.T) {
	t.Parallel()
	locker := newLossyLocker()
	e := newEnv(t, func(d *guard.Deps) { d.Locker = locker })
	db := e.createDB(alice, "shop")
	e.clock.Advance(time.Hour)
	e.free.Fail("RestoreBranch", neontest.Fault{Before: func(ctx context.Context) {
		locker.lose("db:" + db.DatabaseID)
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second): // a deadlock guard, not a timing assertion
			t.Error("losing the lock did not stop the undo's steps")
		}
	}})
	_, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute})
	wantCode(t, err, errcode.Upstream, "whether the undo happened is found out on the next call")
	if calls := e.free.Mutations(); len(calls) != 1 || !errors.Is(calls[0].Err, context.Canceled) {
		t.Fatalf("Neon changes = %v, want only the restore, cancelled", calls)
	}
	if n := len(e.free.Branches(db.DatabaseID)); n != 1 || e.openIntents(db.DatabaseID) != 1 {
		t.Fatalf("branches = %d, open intents = %d; want nothing done and the intent open", n, e.openIntents(db.DatabaseID))
	}
	if _, err := e.g.ListBranches(as(alice), guard.DatabaseInput{DatabaseID: db.DatabaseID}); err != nil {
		t.Fatal(err)
	}
	if open, rec := e.openIntents(db.DatabaseID), e.recoveredIntents(db.DatabaseID); open+rec != 0 {
		t.Errorf("open %d, recovered %d; want the undo rolled back", open, rec)
	}
}

// TestUndoFailsAfterItsChange: Neon restored the branch, then failed the next read. The undo
// stays open as done-but-unrecorded; a retry finishes it (the backup's expiry and record) and
// answers with its result, without restoring again.
func TestUndoFailsAfterItsChange(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	in := guard.UndoInput{DatabaseID: db.DatabaseID, Ago: 15 * time.Minute}
	// The first read is the undo's count; the second, after the restore, finds the backup.
	e.free.Fail("ListBranches", neontest.Fault{}, neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err := e.g.UndoToTime(as(alice), in)
	wantCode(t, err, errcode.Upstream, "list branches", "HTTP 503")
	if n := e.openIntents(db.DatabaseID); n != 1 {
		t.Fatalf("open intents = %d", n)
	}
	res, err := e.g.UndoToTime(as(alice), in)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.free.Count("RestoreBranch"); n != 1 {
		t.Errorf("RestoreBranch calls = %d, want 1", n)
	}
	backup, _ := e.free.BranchNamed(db.DatabaseID, res.BackupBranch.Name)
	if res.BackupBranch.BranchID != backup.ID || backup.ExpiresAt == nil || !backup.ExpiresAt.Equal(*res.BackupBranch.ExpiresAt) {
		t.Errorf("result = %+v, backup = %+v", res, backup)
	}
}

// TestBackupExpiryRefused: Neon may refuse a backup's expiry; the undo still succeeds, the
// record keeps the expiry, and the janitor deletes the backup once it has passed.
func TestBackupExpiryRefused(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	e.free.Fail("UpdateBranch", neontest.Refuse(http.StatusBadRequest, "", "expiration is not allowed for this branch"))
	res, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: db.DatabaseID, Ago: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	backup, _ := e.free.Branch(db.DatabaseID, res.BackupBranch.BranchID)
	rec, ok := e.recorded(db.DatabaseID, backup.ID)
	if backup.ExpiresAt != nil || !ok || rec.ExpiresAt == nil || !rec.ExpiresAt.Equal(*res.BackupBranch.ExpiresAt) {
		t.Fatalf("backup on Neon = %+v, record = %+v; want no expiry on Neon, the expiry in the record", backup, rec)
	}
	rep, err := e.g.SweepExpired(context.Background(), rec.ExpiresAt.Add(time.Second))
	if err != nil || len(rep.Deleted) != 1 || rep.Deleted[0].BranchID != backup.ID {
		t.Errorf("sweep = %+v, %v", rep, err)
	}
}

// TestRestoreCheckpointReplacedBranchGone: the replaced main was deleted before an interrupted
// restore was settled: there is nothing to keep, and the restore is still finished.
func TestRestoreCheckpointReplacedBranchGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	e.checkpoint(alice, db.DatabaseID, "a")
	e.free.Fail("RestoreSnapshot", neontest.LostAnswer())
	if _, err := e.g.RestoreCheckpoint(as(alice), guard.RestoreCheckpointInput{DatabaseID: db.DatabaseID, Checkpoint: "a"}); err == nil {
		t.Fatal("want the scripted failure")
	}

	// Neon cannot be read: the restore stays open.
	e.free.Fail("GetBranch", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err := e.g.RestoreCheckpoint(as(alice), guard.RestoreCheckpointInput{DatabaseID: db.DatabaseID, Checkpoint: "a"})
	wantCode(t, err, errcode.Upstream, "an earlier restore_checkpoint on this database was interrupted")

	if err := e.free.DeleteBranch(context.Background(), db.DatabaseID, db.MainBranchID); err != nil { // "main (old)"
		t.Fatal(err)
	}
	res, err := e.g.RestoreCheckpoint(as(alice), guard.RestoreCheckpointInput{DatabaseID: db.DatabaseID, Checkpoint: "a"})
	if err != nil {
		t.Fatal(err)
	}
	newMain, _ := e.free.BranchNamed(db.DatabaseID, "main")
	if res.MainBranchID != newMain.ID || res.PreviousBranch != (guard.BranchRef{BranchID: db.MainBranchID}) {
		t.Errorf("result = %+v", res)
	}
	if _, ok := e.recorded(db.DatabaseID, db.MainBranchID); ok {
		t.Error("a deleted branch is recorded as a backup")
	}
	if n := e.free.Count("RestoreSnapshot"); n != 1 {
		t.Errorf("RestoreSnapshot calls = %d", n)
	}
}
