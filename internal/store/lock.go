package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Locker serializes work on one key (the guard locks a database id around read → policy → act →
// record). It is separate from Store because the implementation depends on the deployment, not
// on the store: in-process for one replica, a PostgreSQL advisory lock for several.
type Locker interface {
	// Lock blocks until key is free or ctx is done. unlock releases it; calling it more than
	// once is harmless.
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// ContextLocker is a Locker that can tell its holder the lock was lost: held is done (its cause
// wraps ErrLockLost) when the lock ends without unlock, e.g. the PostgreSQL session holding an
// advisory lock died and PostgreSQL released it, so another replica may now hold the key. Work
// done under the lock should use held, so it stops instead of acting on a check made under a
// lock it no longer has.
type ContextLocker interface {
	Locker
	LockContext(ctx context.Context, key string) (held context.Context, unlock func(), err error)
}

// ErrLockLost is the cause of a ContextLocker's held context when the lock was lost.
var ErrLockLost = errors.New("lock lost")

var _ Locker = (*MemLocker)(nil)

// MemLocker is an in-process Locker. Each key has a one-slot channel (a semaphore that, unlike
// sync.Mutex, can be waited on in a select with ctx.Done()) and a count of holders and waiters,
// so a key's entry is dropped when nobody uses it and the map does not grow with every key seen.
type MemLocker struct {
	mu   sync.Mutex
	keys map[string]*memLock
}

type memLock struct {
	sem  chan struct{}
	refs int // holders + waiters; guarded by MemLocker.mu
}

// NewMemLocker returns an empty MemLocker.
func NewMemLocker() *MemLocker {
	return &MemLocker{keys: make(map[string]*memLock)}
}

// Lock implements Locker.
func (m *MemLocker) Lock(ctx context.Context, key string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lock %q: %w", key, context.Cause(ctx))
	}
	m.mu.Lock()
	l, ok := m.keys[key]
	if !ok {
		l = &memLock{sem: make(chan struct{}, 1)}
		m.keys[key] = l
	}
	l.refs++
	m.mu.Unlock()

	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		m.release(key, l)
		return nil, fmt.Errorf("lock %q: %w", key, context.Cause(ctx))
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.sem
			m.release(key, l)
		})
	}, nil
}

func (m *MemLocker) release(key string, l *memLock) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(m.keys, key)
	}
}

// size is the number of keys held or waited for (tests check nothing leaks).
func (m *MemLocker) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}
