package server

import (
	"context"
	"sync"
	"time"

	"github.com/neonguard/neonguard/internal/store"
)

// auditLog writes audit rows with group commit: concurrent calls that finish while a write is
// under way are written together in the next transaction. Every caller still waits until its
// own row is committed, so a call's answer never precedes its audit row; what changes under
// load is one commit per group instead of one per call (the single SQLite writer was the
// largest cost of a read-only call).
type auditLog struct {
	st AuditStore

	mu      sync.Mutex
	pending []auditReq
	writing bool // a writer is draining pending
}

type auditReq struct {
	e    store.AuditEntry
	done chan error
}

// auditWriteTimeout bounds one group's write; a caller waits as long for its row, so it never
// reports a failure for a row committed later.
const auditWriteTimeout = 10 * time.Second

// maxAuditGroup bounds one transaction, so a long queue is committed in steps.
const maxAuditGroup = 256

// append queues e and returns once it is committed (or failed). The first caller with no
// writer running becomes the writer: it commits the group holding its own row, and if more
// rows arrived meanwhile, hands the rest to a goroutine that drains them and then ends.
func (a *auditLog) append(ctx context.Context, e store.AuditEntry) error {
	req := auditReq{e: e, done: make(chan error, 1)}
	a.mu.Lock()
	a.pending = append(a.pending, req)
	lead := !a.writing
	a.writing = true
	a.mu.Unlock()
	if lead {
		if a.writeGroup(ctx) {
			go a.drain(ctx)
		}
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// writeGroup commits up to maxAuditGroup pending rows and reports whether rows remain (the
// writer role then stays taken); with none left it releases the role.
func (a *auditLog) writeGroup(ctx context.Context) (more bool) {
	a.mu.Lock()
	n := min(len(a.pending), maxAuditGroup)
	group := a.pending[:n:n]
	a.pending = a.pending[n:]
	a.mu.Unlock()

	entries := make([]store.AuditEntry, len(group))
	for i, r := range group {
		entries[i] = r.e
	}
	// Each group gets its own deadline: the rows belong to several calls, and a stuck store
	// must not keep the writer role forever.
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
	err := a.st.AppendAudits(gctx, entries)
	cancel()
	for _, r := range group {
		r.done <- err
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) == 0 {
		a.pending = nil
		a.writing = false
		return false
	}
	return true
}

func (a *auditLog) drain(ctx context.Context) {
	for a.writeGroup(ctx) {
	}
}
