package server

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestSessionRegistry(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	const ttl = 10 * time.Minute
	s := newSessions(ttl, 2, clk.now)

	a1, _, ok := s.create("a")
	if !ok {
		t.Fatal("first session refused")
	}
	clk.advance(time.Minute)
	a2, _, _ := s.create("a")
	if _, wait, ok := s.create("a"); ok || wait != ttl-time.Minute {
		// a1 has been idle for 1 min: it ends in 9.
		t.Fatalf("third session: ok %v, retry after %s; want refused, %s", ok, wait, ttl-time.Minute)
	}
	if _, _, ok := s.create("b"); !ok {
		t.Fatal("another tenant's session refused")
	}

	// The binding: another tenant's id, a made-up one, a forged one.
	for _, c := range []struct{ tenant, id string }{{"b", a1}, {"a", "nope"}, {"a", newSessionID("b")}} {
		if adm, _ := s.admit(c.tenant, c.id); adm != unknownSession {
			t.Errorf("admit(%q, %q) = %v, want unknown", c.tenant, c.id, adm)
		}
	}
	if adm, _ := s.admit("a", a1); adm != admitted {
		t.Fatal("the owner refused")
	}

	// A stream keeps its session alive; idle ones end after the TTL and free their place.
	cancelled := make(chan error, 1)
	detach := s.attach(a2, func(err error) { cancelled <- err })
	clk.advance(ttl + time.Minute)
	if got := s.count("a"); got != 1 {
		t.Fatalf("after the TTL: %d sessions of a, want 1 (the one with a stream)", got)
	}
	detach()
	clk.advance(ttl + time.Minute)
	if got := s.count("a"); got != 0 {
		t.Fatalf("after the stream closed and the TTL: %d sessions, want 0", got)
	}

	// An expired (or another replica's) id bound to its tenant is adopted again; a deleted
	// one is not, and deleting closes the session's streams.
	if adm, _ := s.admit("a", a1); adm != admitted {
		t.Fatal("an idle-expired session id was not adopted")
	}
	s.attach(a1, func(err error) { cancelled <- err })
	s.end(a1)
	if err := <-cancelled; !errors.Is(err, errSessionDeleted) {
		t.Fatalf("stream ended with %v", err)
	}
	if adm, _ := s.admit("a", a1); adm != unknownSession {
		t.Fatal("a deleted session was admitted")
	}
	// Attaching to a deleted session closes the stream at once.
	ctx, cancel := context.WithCancelCause(context.Background())
	s.attach(a1, cancel)
	if !errors.Is(context.Cause(ctx), errSessionDeleted) {
		t.Fatal("a stream on a deleted session was kept")
	}

	// Deleted ids are remembered for endedMemory, then forgotten (only their own tenant
	// could use them again).
	clk.advance(endedMemory + time.Minute)
	s.admit("a", newSessionID("a")) // runs the sweep
	if s.isEnded(a1) {
		t.Fatal("a deleted id is remembered forever")
	}
}

func TestSessionRegistryBoundsDeletedIDs(t *testing.T) {
	s := newSessions(time.Minute, 0, nil)
	for range maxEnded + 10 {
		s.end(newSessionID("a"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ended) != maxEnded || len(s.endedQ)-s.endedHead != maxEnded {
		t.Fatalf("%d deleted ids kept (queue %d), want %d", len(s.ended), len(s.endedQ)-s.endedHead, maxEnded)
	}
}
