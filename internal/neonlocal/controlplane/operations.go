package controlplane

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// opStep is an operation plus the data-plane work it stands for.
type opStep struct {
	op  *operation
	run func(ctx context.Context) error // nil = nothing to do in the data plane
}

// newOpLocked records a new operation in "scheduling" state.
func (s *Server) newOpLocked(projectID, branchID, endpointID, action string, run func(context.Context) error) opStep {
	now := s.now()
	op := &operation{
		ID: newOperationID(), ProjectID: projectID, BranchID: branchID, EndpointID: endpointID,
		Action: action, Status: "scheduling", CreatedAt: now, UpdatedAt: now,
	}
	s.st.Operations[projectID] = append(s.st.Operations[projectID], op)
	return opStep{op: op, run: run}
}

// lockedLocked returns the 423 Neon answers while any operation of the
// project is not terminal. Neon locks only on conflicting operations; a
// project-wide lock is the safe approximation.
func (s *Server) lockedLocked(projectID string) error {
	for _, op := range s.st.Operations[projectID] {
		if !op.terminal() {
			return &apiError{status: http.StatusLocked,
				msg:        "project already has running conflicting operations, scheduling of new ones is prohibited",
				retryAfter: 1}
		}
	}
	return nil
}

// runStepsLocked executes a request's operations one after the other in
// the background: scheduling → running → (OperationDelay, data plane) →
// finished/failed. done runs under s.mu after the last step, with the
// outcome, to settle branch/endpoint states. Callers hold s.mu (so Close
// cannot race the WaitGroup) and persist the state afterwards.
func (s *Server) runStepsLocked(steps []opStep, done func(failed bool)) {
	if len(steps) == 0 {
		if done != nil {
			done(false)
		}
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		failed := false
		for i, st := range steps {
			start := s.now()
			s.mu.Lock()
			st.op.Status, st.op.UpdatedAt = "running", start
			s.commitLocked()
			s.mu.Unlock()

			t := time.NewTimer(s.opts.OperationDelay)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return // left non-terminal; New finishes it on restart
			case <-t.C:
			}
			var err error
			if st.run != nil {
				err = st.run(s.ctx)
			}
			s.mu.Lock()
			end := s.now()
			st.op.UpdatedAt = end
			st.op.TotalDurationMs = end.Sub(start).Milliseconds()
			if err != nil {
				failed = true
				st.op.Status, st.op.Error, st.op.FailuresCount = "failed", err.Error(), st.op.FailuresCount+1
				s.log.Error("neonlocal: operation failed", "operation", st.op.ID, "action", st.op.Action, "err", err)
				for _, rest := range steps[i+1:] {
					rest.op.Status, rest.op.UpdatedAt = "cancelled", end
				}
			} else {
				st.op.Status = "finished"
			}
			last := failed || i == len(steps)-1
			if last && done != nil {
				done(failed)
			}
			s.commitLocked()
			s.mu.Unlock()
			if failed {
				return
			}
		}
	}()
}

// commitLocked persists the state from background work, logging failures
// (there is no client to answer).
func (s *Server) commitLocked() {
	if err := s.saveLocked(); err != nil {
		s.log.Error("neonlocal: persist state", "err", err)
	}
}

func opsOf(steps []opStep) []apiOperation {
	out := make([]apiOperation, 0, len(steps))
	for _, st := range steps {
		out = append(out, renderOp(st.op))
	}
	return out
}

func (s *Server) getOperation(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prj, err := s.projectLocked(p, r.PathValue("project_id"))
	if err != nil {
		return 0, nil, err
	}
	id := r.PathValue("operation_id")
	for _, op := range s.st.Operations[prj.ID] {
		if op.ID == id {
			return http.StatusOK, map[string]any{"operation": renderOp(op)}, nil
		}
	}
	return 0, nil, errf(http.StatusNotFound, "operation not found")
}

// listOperations lists newest first; pagination.cursor is the last id.
func (s *Server) listOperations(r *http.Request, p principal) (int, any, error) {
	limit, err := intParam(r, "limit", 10, 1, 1000)
	if err != nil {
		return 0, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prj, err := s.projectLocked(p, r.PathValue("project_id"))
	if err != nil {
		return 0, nil, err
	}
	ops := s.st.Operations[prj.ID]
	cursor := r.URL.Query().Get("cursor")
	i := len(ops) - 1
	if cursor != "" {
		i = -2
		for j, op := range ops {
			if op.ID == cursor {
				i = j - 1
			}
		}
		if i == -2 {
			return 0, nil, errf(http.StatusBadRequest, "invalid cursor")
		}
	}
	out := []apiOperation{}
	for ; i >= 0 && len(out) < limit; i-- {
		out = append(out, renderOp(ops[i]))
	}
	next := cursor
	if len(out) > 0 {
		next = out[len(out)-1].ID
	}
	return http.StatusOK, withCursor(map[string]any{"operations": out}, next), nil
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, errf(http.StatusBadRequest, "%s must be an integer between %d and %d", name, lo, hi)
	}
	return n, nil
}
