package neon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
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
	interval := c.cfg.OperationPoll
	reported := -1 // the pending count last reported to a progress reporter
	for len(pending) > 0 {
		if len(pending) != reported {
			reported = len(pending)
			progress.Detail(ctx, fmt.Sprintf("waiting for Neon operation %d/%d (%s)", len(ops)-len(pending)+1, len(ops), pending[0].Action))
		}
		if !c.now().Before(deadline) {
			op := pending[0]
			return fmt.Errorf("neon: operation %s %s on project %s still %s after %s: %w",
				op.Action, op.ID, op.ProjectID, op.Status, c.cfg.OperationTimeout, ErrOperationTimeout)
		}
		if err := c.sleep(ctx, interval); err != nil {
			return fmt.Errorf("neon: waiting for operation %s %s: %w", pending[0].Action, pending[0].ID, err)
		}
		// Poll quickly at first (most operations finish within a second), then back off to 1s.
		interval = min(interval*2, c.cfg.OperationPollMax)
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
		}
		pending = next
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "neon operations finished",
		slog.Int("count", len(ops)), slog.Duration("waited", c.now().Sub(began)))
	return nil
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
	return c.waitOperations(ctx, projectID, pending)
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
