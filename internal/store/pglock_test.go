package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// twoReplicas opens two stores on one fresh database, as two neonguard replicas would.
func twoReplicas(t *testing.T) (*Postgres, *Postgres) {
	t.Helper()
	dsn := pg.Server(t).NewDatabase(t)
	return openPostgresDSN(t, dsn), openPostgresDSN(t, dsn)
}

// advisoryLocks counts this database's advisory locks that are granted or waited for.
func advisoryLocks(t *testing.T, db *sql.DB, granted bool) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted = $1
AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, granted).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitForWaiter polls until some session waits for an advisory lock of this database.
func waitForWaiter(t *testing.T, db *sql.DB) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for advisoryLocks(t, db, false) == 0 {
		select {
		case <-t.Context().Done():
			t.Fatal("nobody waits for the lock")
		case <-tick.C:
		}
	}
}

type lockResult struct {
	unlock func()
	err    error
}

// lockAsync locks key on l in a goroutine.
func lockAsync(ctx context.Context, l Locker, key string) <-chan lockResult {
	ch := make(chan lockResult, 1)
	go func() {
		unlock, err := l.Lock(ctx, key)
		ch <- lockResult{unlock, err}
	}()
	return ch
}

func mustLock(t *testing.T, l Locker, key string) func() {
	t.Helper()
	unlock, err := l.Lock(t.Context(), key)
	if err != nil {
		t.Fatalf("Lock(%q): %v", key, err)
	}
	return unlock
}

// TestPGLockerMutualExclusion: callers on two replicas take turns on one key. A counter kept
// in PostgreSQL is incremented by read-then-write, which loses updates as soon as two holders
// overlap; an in-process count of holders catches overlap directly.
func TestPGLockerMutualExclusion(t *testing.T) {
	ctx := t.Context()
	a, b := twoReplicas(t)
	if _, err := a.w.ExecContext(ctx, "CREATE TABLE counter (v BIGINT NOT NULL); INSERT INTO counter VALUES (0)"); err != nil {
		t.Fatal(err)
	}
	const perReplica, rounds = 4, 10
	var inside atomic.Int32
	var wg sync.WaitGroup
	for _, p := range []*Postgres{a, b} {
		for range perReplica {
			wg.Go(func() {
				for range rounds {
					unlock, err := p.Locker().Lock(ctx, "db-a")
					if err != nil {
						t.Error(err)
						return
					}
					if n := inside.Add(1); n != 1 {
						t.Errorf("%d holders of db-a", n)
					}
					var v int64
					err = p.r.QueryRowContext(ctx, "SELECT v FROM counter").Scan(&v)
					if err == nil {
						_, err = p.w.ExecContext(ctx, "UPDATE counter SET v = $1", v+1)
					}
					inside.Add(-1)
					unlock()
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	var v int64
	if err := a.r.QueryRowContext(ctx, "SELECT v FROM counter").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if want := int64(2 * perReplica * rounds); v != want {
		t.Errorf("counter = %d, want %d: holders overlapped", v, want)
	}
	for _, p := range []*Postgres{a, b} {
		if n := p.locker.mem.size(); n != 0 {
			t.Errorf("%d keys left in the in-process locker", n)
		}
		if st := p.locker.db.Stats(); st.InUse != 0 {
			t.Errorf("%d lock connections still in use", st.InUse)
		}
	}
	if n := advisoryLocks(t, a.r, true); n != 0 {
		t.Errorf("%d advisory locks still held", n)
	}
}

func TestPGLockerDifferentKeys(t *testing.T) {
	a, b := twoReplicas(t)
	unlockA := mustLock(t, a.Locker(), "db-1")
	defer unlockA()
	// Would block until the test times out if keys were not independent.
	unlockB := mustLock(t, b.Locker(), "db-2")
	defer unlockB()
	unlockA2 := mustLock(t, a.Locker(), "db-3")
	defer unlockA2()
	if n := advisoryLocks(t, a.r, true); n != 3 {
		t.Errorf("%d advisory locks held, want 3", n)
	}
}

// TestPGLockerCancelWhileWaiting: a Lock waiting in PostgreSQL returns the ctx error when ctx
// ends, and leaves neither a waiting session nor a connection behind.
func TestPGLockerCancelWhileWaiting(t *testing.T) {
	a, b := twoReplicas(t)
	unlockA := mustLock(t, a.Locker(), "k")

	ctx, cancel := context.WithCancel(t.Context())
	res := lockAsync(ctx, b.Locker(), "k")
	waitForWaiter(t, a.r)
	cancel()
	r := <-res
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Lock after cancel = %v, want context.Canceled", r.err)
	}
	// The backend stopped waiting (cancel request) and the connection was dropped.
	if n := advisoryLocks(t, a.r, false); n != 0 {
		t.Errorf("%d sessions still wait for the lock", n)
	}
	if st := b.locker.db.Stats(); st.OpenConnections != 0 {
		t.Errorf("%d lock connections left open (%d in use)", st.OpenConnections, st.InUse)
	}
	if n := b.locker.mem.size(); n != 0 {
		t.Errorf("%d keys left in the in-process locker", n)
	}

	// A deadline works the same way.
	dctx, dcancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer dcancel()
	if _, err := b.Locker().Lock(dctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock past deadline = %v, want context.DeadlineExceeded", err)
	}

	// Once released, the other replica gets it: no abandoned waiter was granted it instead.
	unlockA()
	unlockB := mustLock(t, b.Locker(), "k")
	unlockB()
}

func TestPGLockerUnlockTwice(t *testing.T) {
	a, b := twoReplicas(t)
	unlock := mustLock(t, a.Locker(), "k")
	unlock()
	unlock() // harmless
	if n := advisoryLocks(t, a.r, true); n != 0 {
		t.Errorf("%d advisory locks held after unlock", n)
	}
	// The connection went back to the pool holding nothing, and is reused.
	if st := a.locker.db.Stats(); st.InUse != 0 || st.Idle != 1 {
		t.Errorf("lock pool: %d in use, %d idle; want 0 and 1", st.InUse, st.Idle)
	}
	unlockB := mustLock(t, b.Locker(), "k")
	unlockB()
	unlockB()
	unlockA := mustLock(t, a.Locker(), "k")
	unlockA()
}

// TestPGLockerReleasedOnClose: a replica shutting down frees its locks for the others and
// ends its own waiting Locks.
func TestPGLockerReleasedOnClose(t *testing.T) {
	dsn := pg.Server(t).NewDatabase(t)
	a, err := OpenPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	b := openPostgresDSN(t, dsn)

	unlockA := mustLock(t, a.Locker(), "k")
	unlockB := mustLock(t, b.Locker(), "other")
	waitingB := lockAsync(t.Context(), b.Locker(), "k")
	waitForWaiter(t, b.r)
	waitingA := lockAsync(t.Context(), a.Locker(), "other")
	for advisoryLocks(t, b.r, false) < 2 {
		waitForWaiter(t, b.r) // polls; both Locks must be waiting in PostgreSQL
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-waitingA; !errors.Is(r.err, errLockerClosed) {
		t.Errorf("waiting Lock on the closed replica = %v, want errLockerClosed", r.err)
	}
	r := <-waitingB
	if r.err != nil {
		t.Fatalf("Lock after the holder closed: %v", r.err)
	}
	unlockA() // after Close: must not panic or fail
	r.unlock()
	unlockB()
	if _, err := a.Locker().Lock(t.Context(), "k"); !errors.Is(err, errLockerClosed) {
		t.Errorf("Lock on a closed store = %v, want errLockerClosed", err)
	}
}

// TestPGLockerConnectionDies: when the holder's session ends (here terminated by the
// server), the lock is free for others, and the holder's unlock copes.
func TestPGLockerConnectionDies(t *testing.T) {
	ctx := t.Context()
	a, b := twoReplicas(t)
	unlockA := mustLock(t, a.Locker(), "k")

	k := uint64(advisoryKey("k"))
	var killed bool
	if err := b.r.QueryRowContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1`,
		int64(k>>32), int64(k&0xffffffff)).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the holder's session: %v, %v", killed, err)
	}

	unlockB := mustLock(t, b.Locker(), "k")
	unlockA() // the dead connection is dropped, not reused
	if st := a.locker.db.Stats(); st.OpenConnections != 0 {
		t.Errorf("%d lock connections left open after the session died", st.OpenConnections)
	}
	unlockB()
	unlockA2 := mustLock(t, a.Locker(), "k") // the replica's in-process lock was released too
	unlockA2()
}

func TestAdvisoryKey(t *testing.T) {
	if first, again := advisoryKey("proj-1"), advisoryKey("proj-1"); first != again {
		t.Error("advisoryKey is not deterministic")
	}
	if advisoryKey("proj-1") == advisoryKey("proj-2") {
		t.Error("neighbouring keys collide")
	}
}

// TestPGLockerTellsTheHolderItLostTheLock: with LockContext, when the holder's session ends
// (terminated by the server), PostgreSQL frees the lock for another replica, and the holder's
// context ends with ErrLockLost, so it stops instead of acting on a lock it no longer has.
func TestPGLockerTellsTheHolderItLostTheLock(t *testing.T) {
	ctx := t.Context()
	a, b := twoReplicas(t)
	held, unlockA, err := a.Locker().(ContextLocker).LockContext(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	k := uint64(advisoryKey("k"))
	var killed bool
	if err := b.r.QueryRowContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1`,
		int64(k>>32), int64(k&0xffffffff)).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the holder's session: %v, %v", killed, err)
	}
	select {
	case <-held.Done():
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("the holder was never told its lock was lost")
	}
	if !errors.Is(context.Cause(held), ErrLockLost) {
		t.Fatalf("cause = %v, want ErrLockLost", context.Cause(held))
	}
	unlockA()

	// A lock that is not lost keeps its context until unlock, which ends it.
	held2, unlock2, err := b.Locker().(ContextLocker).LockContext(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if held2.Err() != nil {
		t.Fatal("a held lock's context ended early")
	}
	unlock2()
	if held2.Err() == nil || errors.Is(context.Cause(held2), ErrLockLost) {
		t.Fatalf("after unlock: %v (cause %v), want canceled, not lost", held2.Err(), context.Cause(held2))
	}
}
