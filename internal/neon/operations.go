package neon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/neonguard/neonguard/internal/progress"
)

// GetOperation reads one operation.
func (c *Client) GetOperation(ctx context.Context, projectID, operationID string) (*Operation, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	if err := needID("operation id", operationID); err != nil {
		return nil, err
	}
	var out struct {
		Operation Operation `json:"operation"`
	}
	if _, err := c.do(ctx, &call{
		method: http.MethodGet,
		route:  "/projects/{project_id}/operations/{operation_id}",
		path:   "/projects/" + p(projectID) + "/operations/" + p(operationID),
		out:    &out,
	}); err != nil {
		return nil, err
	}
	return &out.Operation, nil
}

// waitOperations returns when every op is terminal: nil if all finished or were skipped, an
// *OperationError for the first that failed. Each poll is a GET, so it retries 423/429/503.
func (c *Client) waitOperations(ctx context.Context, projectID string, ops []Operation) error {
	return c.waitOps(ctx, projectID, ops, true)
}

// waitOps waits for ops. fresh says they were started by the answer just received, so the time
// until each is seen terminal is how long its action takes (opTimes); ops found by listing
// after a lost answer started earlier and teach nothing.
func (c *Client) waitOps(ctx context.Context, projectID string, ops []Operation, fresh bool) error {
	pending := make([]Operation, 0, len(ops))
	for _, op := range ops {
		if op.ProjectID == "" {
			op.ProjectID = projectID
		}
		if op.Terminal() {
			if !op.Succeeded() {
				return c.opError(op)
			}
			continue
		}
		pending = append(pending, op)
	}
	if len(pending) == 0 {
		return nil
	}
	began := c.now()
	deadline := began.Add(c.cfg.OperationTimeout)
	sched := c.pollSchedule(pending, fresh)
	interval := sched.next(0)
	reported := -1            // the pending count last reported to a progress reporter
	var running time.Duration // since began, when a poll last saw the pending ones running
	for len(pending) > 0 {
		if len(pending) != reported {
			reported = len(pending)
			progress.Detail(ctx, fmt.Sprintf("waiting for Neon operation %d/%d (%s)", len(ops)-len(pending)+1, len(ops), pending[0].Action))
		}
		now := c.now()
		if !now.Before(deadline) {
			op := pending[0]
			return fmt.Errorf("neon: operation %s %s on project %s still %s after %s: %w",
				op.Action, op.ID, op.ProjectID, op.Status, c.cfg.OperationTimeout, ErrOperationTimeout)
		}
		if err := c.sleep(ctx, min(interval, deadline.Sub(now))); err != nil {
			return fmt.Errorf("neon: waiting for operation %s %s: %w", pending[0].Action, pending[0].ID, err)
		}
		interval = sched.next(interval)
		next := pending[:0]
		for _, op := range pending {
			cur, err := c.GetOperation(ctx, op.ProjectID, op.ID)
			if err != nil {
				return fmt.Errorf("neon: waiting for operation %s %s: %w", op.Action, op.ID, err)
			}
			if cur.ProjectID == "" {
				cur.ProjectID = op.ProjectID
			}
			if !cur.Terminal() {
				next = append(next, *cur)
				continue
			}
			if !cur.Succeeded() {
				return c.opError(*cur)
			}
			if fresh {
				// It ended between the previous poll (still running) and this one.
				seen := c.now().Sub(began)
				c.opTimes.set(op.Action, (running+seen)/2)
			}
		}
		running = c.now().Sub(began)
		pending = next
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "neon operations finished",
		slog.Int("count", len(ops)), slog.Duration("waited", c.now().Sub(began)))
	return nil
}

// pollSchedule is when to poll operations: the waits listed, then doubling up to max.
type pollSchedule struct {
	waits []time.Duration
	max   time.Duration
}

func (s *pollSchedule) next(prev time.Duration) time.Duration {
	if len(s.waits) > 0 {
		d := s.waits[0]
		s.waits = s.waits[1:]
		return d
	}
	return min(prev*2, s.max)
}

// pollSchedule picks the schedule of a wait. Operations of actions waited for before (E: the
// estimate of the longest) are polled at E/2, 0.9 E, E, 1.1 E and 1.2 E, then the wait
// doubles from a tenth of E; no wait is longer than OperationPollMax. On Neon (operations of
// about a second, OperationPollMax 1 s) that is three or four requests and a lag of at most a
// tenth, where polling from 25 ms up takes six requests and lags up to half the duration; one
// much faster or slower than E is seen within E/2 or by the doubling, and the next E follows
// it. Otherwise polls start at OperationPoll: an unknown operation may be quick.
func (c *Client) pollSchedule(pending []Operation, fresh bool) pollSchedule {
	fast := pollSchedule{waits: []time.Duration{c.cfg.OperationPoll}, max: c.cfg.OperationPollMax}
	if !fresh {
		return fast
	}
	var e time.Duration
	for _, op := range pending {
		d, ok := c.opTimes.get(op.Action)
		if !ok {
			return fast
		}
		e = max(e, d)
	}
	// Every wait stays within [OperationPoll, OperationPollMax]: the emulator's small maximum
	// keeps its lag small when an operation is faster than the last one.
	within := func(d time.Duration) time.Duration { return min(max(d, c.cfg.OperationPoll), c.cfg.OperationPollMax) }
	return pollSchedule{
		waits: []time.Duration{within(e / 2), within(e * 2 / 5), within(e / 10), within(e / 10), within(e / 10)},
		max:   c.cfg.OperationPollMax,
	}
}

// opTimes is, per action, how long the last operation this client waited for took: the
// middle between the last poll that saw it running (or the answer that started it) and the
// poll that saw it terminal, on this client's clock.
type opTimes struct {
	mu   sync.Mutex
	last map[string]time.Duration
}

func (t *opTimes) set(action string, d time.Duration) {
	if d <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last = map[string]time.Duration{}
	}
	t.last[action] = d
}

func (t *opTimes) get(action string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.last[action]
	return d, ok
}

func (c *Client) opError(op Operation) error {
	return &OperationError{
		ProjectID:   op.ProjectID,
		OperationID: op.ID,
		Action:      op.Action,
		Status:      op.Status,
		Message:     clean(c.scrub(op.Error), maxMessageRunes),
	}
}

// waitRecentOperations is used after a lost answer was recovered: the operations the request
// started are unknown, so wait for every operation of the project that is not yet terminal.
// It is best effort (the next mutating call would retry a 423 anyway): a failure to list is
// logged, not returned.
func (c *Client) waitRecentOperations(ctx context.Context, projectID string) error {
	var out struct {
		Operations []Operation `json:"operations"`
	}
	_, err := c.do(ctx, &call{
		method: http.MethodGet,
		route:  "/projects/{project_id}/operations",
		path:   "/projects/" + p(projectID) + "/operations",
		query:  url.Values{"limit": {"100"}},
		out:    &out,
	})
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "neon: cannot list operations after a recovered call",
			slog.String("project_id", projectID), slog.String("error", err.Error()))
		return nil
	}
	var pending []Operation
	for _, op := range out.Operations {
		if !op.Terminal() {
			pending = append(pending, op)
		}
	}
	return c.waitOps(ctx, projectID, pending, false)
}

// started returns the time a call began, for effect checks; time.Now keeps the monotonic
// reading for budgets, the wall reading is compared with server timestamps (with clockSkew).
func (c *Client) started() time.Time { return c.now() }

// settle waits for what a mutating call started: the operations its answer listed, or, when
// the answer was lost and its effect found instead, every unfinished operation of the project.
func (c *Client) settle(ctx context.Context, projectID string, recovered bool, ops []Operation) error {
	if recovered {
		return c.waitRecentOperations(ctx, projectID)
	}
	return c.waitOperations(ctx, projectID, ops)
}
