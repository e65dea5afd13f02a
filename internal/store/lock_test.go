package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemLockerMutualExclusion(t *testing.T) {
	m := NewMemLocker()
	ctx := t.Context()
	var inside atomic.Int32
	keys := []string{"db-a", "db-b"}
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			key := keys[g%len(keys)]
			for range 100 {
				unlock, err := m.Lock(ctx, key)
				if err != nil {
					t.Error(err)
					return
				}
				if key == "db-a" {
					if n := inside.Add(1); n != 1 {
						t.Errorf("%d holders of db-a", n)
					}
					inside.Add(-1)
				}
				unlock()
			}
		})
	}
	wg.Wait()
	if n := m.size(); n != 0 {
		t.Errorf("%d keys left in the map", n)
	}
}

func TestMemLockerSharedCounter(t *testing.T) {
	m := NewMemLocker()
	ctx := t.Context()
	n := 0 // plain int: only the lock protects it, so -race catches any overlap
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 200 {
				unlock, err := m.Lock(ctx, "k")
				if err != nil {
					t.Error(err)
					return
				}
				n++
				unlock()
			}
		})
	}
	wg.Wait()
	if n != 16*200 {
		t.Errorf("n = %d, want %d", n, 16*200)
	}
	if m.size() != 0 {
		t.Errorf("%d keys left", m.size())
	}
}

func TestMemLockerKeysIndependent(t *testing.T) {
	m := NewMemLocker()
	unlockA, err := m.Lock(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	defer unlockA()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	unlockB, err := m.Lock(ctx, "b") // must not wait for "a"
	if err != nil {
		t.Fatalf("locking b while a is held: %v", err)
	}
	unlockB()
}

func TestMemLockerCancelWhileWaiting(t *testing.T) {
	m := NewMemLocker()
	unlock, err := m.Lock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		u, err := m.Lock(ctx, "k")
		if u != nil {
			u()
		}
		errc <- err
	}()
	// Wait until the second caller is registered as a waiter, then cancel it.
	for {
		m.mu.Lock()
		refs := m.keys["k"].refs
		m.mu.Unlock()
		if refs == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock after cancel = %v, want context.Canceled", err)
	}
	if n := m.size(); n != 1 { // still held by the first caller
		t.Errorf("size = %d, want 1", n)
	}
	unlock()
	unlock() // a second unlock is harmless
	if n := m.size(); n != 0 {
		t.Errorf("size after unlock = %d, want 0", n)
	}

	// The key is usable again, and a deadline is reported as such.
	u, err := m.Lock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer dcancel()
	if _, err := m.Lock(dctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock with deadline = %v, want DeadlineExceeded", err)
	}
	u()
	if n := m.size(); n != 0 {
		t.Errorf("size = %d, want 0", n)
	}
}

func TestMemLockerCanceledBeforeCall(t *testing.T) {
	m := NewMemLocker()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := m.Lock(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock(canceled) = %v", err)
	}
	if m.size() != 0 {
		t.Errorf("canceled Lock left %d keys", m.size())
	}
}

// TestMemLockerNoLeak: many keys, waiters and cancellations; the map ends empty.
func TestMemLockerNoLeak(t *testing.T) {
	m := NewMemLocker()
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 50 {
				ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i%3)*time.Microsecond+time.Millisecond)
				unlock, err := m.Lock(ctx, string(rune('a'+(g+i)%8)))
				if err == nil {
					unlock()
				} else if !errors.Is(err, context.DeadlineExceeded) {
					t.Error(err)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	if n := m.size(); n != 0 {
		t.Errorf("%d keys left in the map", n)
	}
}
