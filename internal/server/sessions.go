package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/identity"
)

// Streamable HTTP session ids are bound to the tenant that created them without shared state,
// so any replica can check them: an id is random || hash(tenant, random), and a request may use
// it only if its own tenant produces the same hash. No secret is needed: the tenant comes from
// the credential, which the requester cannot choose.
//
// On top of that binding, each replica keeps a registry of the sessions it serves (sessions):
// it caps a tenant's live sessions, ends idle ones, closes a session's streams when it is
// deleted, and remembers deleted ids so they answer 404 afterwards. An id this replica has not
// seen (issued by another replica, or forgotten after being idle) is adopted when its hash is
// right, so clients need no sticky routing. A tenant could compute such ids for itself, which
// gets it nothing an initialize would not: adopted ids count toward its cap like new ones.

const sessionPrefix = "ngs-"

// sessionMAC is the tenant binding of a session id's random part.
func sessionMAC(tenant, random string) string {
	sum := sha256.Sum256([]byte(tenant + "\x00" + random))
	return hex.EncodeToString(sum[:12])
}

func newSessionID(tenant string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	random := hex.EncodeToString(b)
	return sessionPrefix + random + "-" + sessionMAC(tenant, random)
}

var errInvalidSession = errors.New("invalid session id")

// checkSessionID reports whether id is well formed and, unless tenant is empty, bound to tenant.
func checkSessionID(tenant, id string) error {
	rest, ok := strings.CutPrefix(id, sessionPrefix)
	random, mac, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 || len(random) != 32 {
		return errInvalidSession
	}
	if tenant == "" {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(mac), []byte(sessionMAC(tenant, random))) != 1 {
		return errInvalidSession
	}
	return nil
}

// endedMemory is how long a deleted session id is remembered (answered 404); maxEnded bounds
// how many are, oldest forgotten first. A forgotten id is only ever usable again by its own
// tenant, so forgetting bounds memory without weakening isolation.
const (
	endedMemory = 24 * time.Hour
	maxEnded    = 100_000
)

// sessions is this replica's registry of Streamable HTTP sessions.
type sessions struct {
	idleTTL   time.Duration
	perTenant int
	now       func() time.Time

	mu        sync.Mutex
	live      map[string]*liveSession            // by id
	byTenant  map[string]map[string]*liveSession // tenant → id → session
	ended     map[string]time.Time               // deleted ids → when
	endedQ    []string                           // deleted ids, oldest first, from endedHead on
	endedHead int
	swept     time.Time
}

type liveSession struct {
	tenant   string
	lastSeen time.Time
	streams  map[*streamHandle]struct{}
}

// streamHandle is one open GET stream of a session, closed when the session is deleted.
type streamHandle struct{ cancel context.CancelCauseFunc }

// errSessionDeleted ends a session's streams when it is deleted.
var errSessionDeleted = errors.New("session deleted")

func newSessions(idleTTL time.Duration, perTenant int, now func() time.Time) *sessions {
	if now == nil {
		now = time.Now
	}
	return &sessions{idleTTL: idleTTL, perTenant: perTenant, now: now,
		live: map[string]*liveSession{}, byTenant: map[string]map[string]*liveSession{}, ended: map[string]time.Time{}}
}

// admission is the registry's answer to a request naming a session.
type admission int

const (
	admitted admission = iota
	unknownSession
	tooManySessions
)

// admit checks that tenant may use session id and marks it used. An unknown id that is bound to
// tenant and was not deleted is adopted (it counts toward the cap like a new one).
func (s *sessions) admit(tenant, id string) (admission, time.Duration) {
	if tenant == "" || checkSessionID(tenant, id) != nil {
		return unknownSession, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	if _, gone := s.ended[id]; gone {
		return unknownSession, 0
	}
	if ls := s.live[id]; ls != nil {
		ls.lastSeen = now
		return admitted, 0
	}
	if wait, full := s.fullLocked(tenant, now); full {
		return tooManySessions, wait
	}
	s.addLocked(tenant, id, now)
	return admitted, 0
}

// create registers a new session for tenant, or says how long until one of its sessions may
// end when it has too many.
func (s *sessions) create(tenant string) (id string, retryAfter time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	if wait, full := s.fullLocked(tenant, now); full {
		return "", wait, false
	}
	id = newSessionID(tenant)
	s.addLocked(tenant, id, now)
	return id, 0, true
}

// register records a session created without create (the cap was checked elsewhere, or the
// server made it itself).
func (s *sessions) register(tenant, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[id] == nil {
		s.addLocked(tenant, id, s.now())
	}
}

// forget drops a session that never came to be (its initialize failed), without remembering it
// as deleted.
func (s *sessions) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(id)
}

// isEnded reports whether id was deleted.
func (s *sessions) isEnded(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, gone := s.ended[id]
	return gone
}

// end deletes a session: its streams close, and its id answers 404 from now on.
func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if ls := s.live[id]; ls != nil {
		for st := range ls.streams {
			st.cancel(errSessionDeleted)
		}
		s.removeLocked(id)
	}
	if _, gone := s.ended[id]; !gone {
		s.ended[id] = now
		s.endedQ = append(s.endedQ, id)
	}
	s.sweepEndedLocked(now)
}

// attach records an open stream of session id, so deleting the session closes it and the
// session does not expire while it is open. The returned function detaches it. When the session
// is already gone, the stream is closed at once.
func (s *sessions) attach(id string, cancel context.CancelCauseFunc) (detach func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.live[id]
	if ls == nil {
		cancel(errSessionDeleted)
		return func() {}
	}
	h := &streamHandle{cancel: cancel}
	if ls.streams == nil {
		ls.streams = map[*streamHandle]struct{}{}
	}
	ls.streams[h] = struct{}{}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(ls.streams, h)
		ls.lastSeen = s.now() // idle from now, not from when the stream opened
	}
}

// count is the number of live sessions of tenant (tests).
func (s *sessions) count(tenant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(s.now())
	return len(s.byTenant[tenant])
}

// fullLocked reports whether tenant is at its cap and, if so, how long until its longest-idle
// session without a stream expires (the idle TTL when every one has a stream open).
func (s *sessions) fullLocked(tenant string, now time.Time) (time.Duration, bool) {
	mine := s.byTenant[tenant]
	if s.perTenant <= 0 || len(mine) < s.perTenant {
		return 0, false
	}
	wait := s.idleTTL
	for _, ls := range mine {
		if len(ls.streams) == 0 {
			wait = min(wait, ls.lastSeen.Add(s.idleTTL).Sub(now))
		}
	}
	return max(wait, time.Second), true
}

func (s *sessions) addLocked(tenant, id string, now time.Time) {
	ls := &liveSession{tenant: tenant, lastSeen: now}
	s.live[id] = ls
	if s.byTenant[tenant] == nil {
		s.byTenant[tenant] = map[string]*liveSession{}
	}
	s.byTenant[tenant][id] = ls
}

func (s *sessions) removeLocked(id string) {
	ls := s.live[id]
	if ls == nil {
		return
	}
	delete(s.live, id)
	delete(s.byTenant[ls.tenant], id)
	if len(s.byTenant[ls.tenant]) == 0 {
		delete(s.byTenant, ls.tenant)
	}
}

// sweep forgets sessions idle for longer than the TTL (without a stream open) and old deleted
// ids, at most every few seconds (the TTL is minutes; one more request than needed does not
// matter). Called with mu held.
func (s *sessions) sweep(now time.Time) {
	if now.Sub(s.swept) < min(s.idleTTL/4, 10*time.Second) {
		return
	}
	s.swept = now
	for id, ls := range s.live {
		if len(ls.streams) == 0 && now.Sub(ls.lastSeen) > s.idleTTL {
			s.removeLocked(id)
		}
	}
	s.sweepEndedLocked(now)
}

func (s *sessions) sweepEndedLocked(now time.Time) {
	keep := max(endedMemory, s.idleTTL)
	for s.endedHead < len(s.endedQ) {
		id := s.endedQ[s.endedHead]
		if len(s.endedQ)-s.endedHead <= maxEnded && now.Sub(s.ended[id]) <= keep {
			break
		}
		delete(s.ended, id)
		s.endedQ[s.endedHead] = ""
		s.endedHead++
	}
	// Compact once half the queue is forgotten, so each id is copied O(1) times on average.
	if s.endedHead > len(s.endedQ)/2 {
		s.endedQ = append(s.endedQ[:0:0], s.endedQ[s.endedHead:]...)
		s.endedHead = 0
	}
}

// newSessionKey carries, in an initialize request's context, the session id the front handler
// registered for it, so mcp-go's Generate returns that one.
type newSessionKey struct{}

// tenantSessions resolves mcp-go's session id manager per request, bound to the request's
// tenant and backed by the registry.
type tenantSessions struct{ reg *sessions }

func (ts tenantSessions) ResolveSessionIdManager(r *http.Request) mcpserver.SessionIdManager {
	if r == nil { // the server itself, closing sessions at shutdown
		return tenantSessionIDs{reg: ts.reg, server: true}
	}
	p, _ := identity.FromContext(r.Context())
	pre, _ := r.Context().Value(newSessionKey{}).(string)
	return tenantSessionIDs{reg: ts.reg, tenant: p.TenantID, pre: pre}
}

type tenantSessionIDs struct {
	reg    *sessions
	tenant string
	pre    string // the id registered for this initialize, if any
	server bool   // no request: accept any well-formed id
}

func (m tenantSessionIDs) Generate() string {
	if m.pre != "" {
		return m.pre
	}
	// Not reached through the front handler, which registers initialize's id itself; kept
	// consistent anyway.
	id := newSessionID(m.tenant)
	m.reg.register(m.tenant, id)
	return id
}

func (m tenantSessionIDs) Validate(id string) (isTerminated bool, err error) {
	tenant := m.tenant
	if m.server {
		tenant = ""
	} else if tenant == "" {
		return false, errInvalidSession
	}
	if err := checkSessionID(tenant, id); err != nil {
		return false, err
	}
	return m.reg.isEnded(id), nil
}

// Terminate ends the session in the registry (its streams close, its id answers 404).
func (m tenantSessionIDs) Terminate(id string) (isNotAllowed bool, err error) {
	if _, err := m.Validate(id); err != nil {
		return false, err
	}
	m.reg.end(id)
	return false, nil
}
