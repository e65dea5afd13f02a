package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
)

var _ Locker = (*pgLocker)(nil)

// errLockerClosed ends the Locks waiting when the store closes.
var errLockerClosed = errors.New("store: postgres locker closed")

const (
	// lockIdleConns lock connections stay open for reuse: a TLS + SCRAM handshake per lock
	// would cost more than the lock itself.
	lockIdleConns = 4
	// lockCancelDeadline: after a cancel request, how long a waiting lock query may take to
	// return before its socket is cut (the server is unreachable, say).
	lockCancelDeadline = 5 * time.Second
	// unlockTimeout bounds pg_advisory_unlock; past it the connection is dropped instead, which
	// releases the lock just the same.
	unlockTimeout = 10 * time.Second
)

// Locker returns the store's Locker: a PostgreSQL session advisory lock per key, so a key is
// held by one caller across all replicas sharing the database. Closing the store releases the
// locks still held. Every call returns the same Locker.
func (p *Postgres) Locker() Locker { return p.locker }

// pgLocker holds each lock on its own pinned connection: the session owns the advisory lock,
// so the lock ends with the session if the replica dies or its connection breaks.
//
// A key is first locked in-process (mem), so per replica at most one connection waits for or
// holds a key; goroutines of the same replica queue in memory, not on connections.
type pgLocker struct {
	// db is a pool of its own, not the store's: a holder keeps its connection for all its work,
	// which uses the store's pool, so sharing one bounded pool could deadlock. It is not capped
	// either (the in-process lock bounds it to one connection per key in use), as a cap would
	// let a caller holding one key and locking another deadlock on the pool.
	db  *sql.DB
	mem *MemLocker

	// life ends when the store closes; it aborts the Locks still waiting. (A context in a
	// struct: it is the locker's lifetime, not a request's.)
	life     context.Context
	shutdown context.CancelCauseFunc

	mu   sync.Mutex
	held map[*sql.Conn]struct{} // connections of held locks; nil once closed
}

func newPGLocker(cfg *pgx.ConnConfig) *pgLocker {
	lc := cfg.Copy()
	// Cancelling a waiting Lock must stop the backend's wait. pgx's default cuts the socket,
	// which a backend blocked on a lock does not notice until it is granted the lock; a cancel
	// request ends the wait at once. The connection is then dropped anyway (see acquire).
	lc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: lockCancelDeadline}
	}
	db := stdlib.OpenDB(*lc)
	db.SetMaxIdleConns(lockIdleConns)
	db.SetConnMaxIdleTime(pgConnMaxIdleTime)
	db.SetConnMaxLifetime(pgConnMaxLifetime) // applies when a connection is back in the pool
	life, shutdown := context.WithCancelCause(context.Background())
	return &pgLocker{
		db: db, mem: NewMemLocker(), life: life, shutdown: shutdown,
		held: make(map[*sql.Conn]struct{}),
	}
}

var _ ContextLocker = (*pgLocker)(nil)

// lockWatchInterval is how often a held lock's session is checked: the window in which a
// holder may act on a lock PostgreSQL already released is about this long.
const lockWatchInterval = 2 * time.Second

// LockContext implements ContextLocker: while the lock is held, its session is pinged every
// lockWatchInterval; if a ping fails, the session (and with it the lock) is gone, and held is
// cancelled with ErrLockLost.
func (l *pgLocker) LockContext(ctx context.Context, key string) (context.Context, func(), error) {
	return l.lock(ctx, key, true)
}

// Lock implements Locker.
func (l *pgLocker) Lock(ctx context.Context, key string) (func(), error) {
	_, unlock, err := l.lock(ctx, key, false)
	return unlock, err
}

func (l *pgLocker) lock(parent context.Context, key string, watch bool) (context.Context, func(), error) {
	ctx := parent
	if l.life.Err() != nil {
		return nil, nil, fmt.Errorf("lock %q: %w", key, errLockerClosed)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(l.life, func() { cancel(context.Cause(l.life)) })
	defer stop()

	memUnlock, err := l.mem.Lock(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	k := advisoryKey(key)
	conn, err := l.acquire(ctx, k)
	if err != nil {
		memUnlock()
		return nil, nil, fmt.Errorf("lock %q: %w", key, err)
	}
	held, lost := context.WithCancelCause(parent)
	stopWatch := func() {}
	if watch {
		stopWatch = l.watch(conn, key, lost)
	}
	var once sync.Once
	return held, func() {
		once.Do(func() {
			stopWatch() // the watcher uses conn: stop it before release does
			lost(nil)
			l.release(conn, k)
			memUnlock()
		})
	}, nil
}

// watch pings conn until stopped; a failed ping cancels the holder's context. The returned
// func stops the watcher and waits for it, so conn is free for release afterwards.
func (l *pgLocker) watch(conn *sql.Conn, key string, lost context.CancelCauseFunc) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lockWatchInterval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), lockWatchInterval)
			err := conn.PingContext(ctx)
			cancel()
			if err != nil {
				lost(fmt.Errorf("lock %q: %w: its PostgreSQL session ended: %w", key, ErrLockLost, err))
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}

// acquire takes the advisory lock k on a connection of its own and returns that connection.
func (l *pgLocker) acquire(ctx context.Context, k int64) (*sql.Conn, error) {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", k); err != nil {
		// The session may hold the lock all the same (granted as ctx ended): drop the
		// connection, which ends the session and with it anything it holds.
		discard(conn)
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	l.mu.Lock()
	closed := l.held == nil
	if !closed {
		l.held[conn] = struct{}{}
	}
	l.mu.Unlock()
	if closed { // the store closed while we waited
		discard(conn)
		return nil, errLockerClosed
	}
	return conn, nil
}

// release unlocks k and returns conn to the pool; when that fails (the connection died, and
// the server released the lock with its session) or close got there first, the connection is
// dropped, never reused.
func (l *pgLocker) release(conn *sql.Conn, k int64) {
	l.mu.Lock()
	_, mine := l.held[conn]
	delete(l.held, conn)
	l.mu.Unlock()
	if !mine { // close dropped it already
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	var unlocked bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", k).Scan(&unlocked); err != nil || !unlocked {
		discard(conn)
		return
	}
	_ = conn.Close() // back to the pool, holding no lock
}

// close aborts the waiting Locks and ends the sessions of the held ones (so PostgreSQL
// releases their locks at once); their unlock funcs then do nothing but the in-process part.
func (l *pgLocker) close() error {
	l.shutdown(errLockerClosed)
	l.mu.Lock()
	held := l.held
	l.held = nil
	l.mu.Unlock()
	for conn := range held {
		discard(conn)
	}
	return l.db.Close()
}

// discard closes conn's session instead of returning it to the pool: database/sql drops a
// connection whose Raw func reports driver.ErrBadConn. Safe on a dead or closed connection.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close() // a no-op (ErrConnDone) unless Raw could not run
}

// advisoryKey maps key into PostgreSQL's int64 advisory lock space: FNV-64a of a prefix (which
// keeps our keys apart from other advisory locks in the database, goose's migration lock among
// them) and the key. Two keys that collide merely serialize each other, which costs some
// waiting and is otherwise harmless: at 64 bits it does not happen in practice.
func advisoryKey(key string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("neonguard/lock/"))
	_, _ = h.Write([]byte(key))
	return int64(h.Sum64())
}
