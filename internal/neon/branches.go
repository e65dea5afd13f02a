package neon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// CreateBranch creates a branch (with the given computes) and waits for its operations.
//
// If the answer is lost, the branch is looked up by exact name among branches created since the
// call started, so req.Name must be set (the guard always names branches) or the error wraps
// ErrOutcomeUnknown. A recovered branch has Branch and Endpoints filled; Roles, Databases and
// ConnectionURIs are empty.
func (c *Client) CreateBranch(ctx context.Context, projectID string, req BranchCreate, endpoints []EndpointCreate) (*CreatedBranch, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	started := c.started()
	if req.ExpiresAt != nil {
		// Neon takes expires_at with seconds precision.
		t := req.ExpiresAt.UTC().Truncate(time.Second)
		req.ExpiresAt = &t
	}
	var out CreatedBranch
	var recovered *CreatedBranch
	res, err := c.do(ctx, &call{
		method: http.MethodPost,
		route:  "/projects/{project_id}/branches",
		path:   "/projects/" + p(projectID) + "/branches",
		body: struct {
			Branch    BranchCreate     `json:"branch"`
			Endpoints []EndpointCreate `json:"endpoints,omitempty"`
		}{req, endpoints},
		out: &out,
		effect: func(ctx context.Context) (bool, error) {
			if req.Name == "" {
				return false, errors.New("the branch has no name to look for")
			}
			b, eps, err := c.recoveredBranch(ctx, projectID, started, "branch", func(b Branch) bool { return b.Name == req.Name })
			if err != nil || b == nil {
				return false, err
			}
			recovered = &CreatedBranch{Branch: *b, Endpoints: eps}
			return true, nil
		},
	})
	if err != nil {
		return nil, err
	}
	if err := c.settle(ctx, projectID, res.recovered, out.Operations); err != nil {
		return nil, err
	}
	if res.recovered {
		return recovered, nil
	}
	return &out, nil
}

// recoveredBranch finds the branch a request whose answer was lost made (the newest matching
// one since started) with its endpoints, for that request's effect check. Endpoints that cannot
// be listed are logged and left out: the branch exists either way.
func (c *Client) recoveredBranch(ctx context.Context, projectID string, started time.Time, what string, match func(Branch) bool) (*Branch, []Endpoint, error) {
	b, err := c.findBranch(ctx, projectID, started, match)
	if err != nil || b == nil {
		return nil, nil, err
	}
	eps, err := c.ListBranchEndpoints(ctx, projectID, b.ID)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "neon: recovered "+what+" without endpoints",
			slog.String("branch_id", b.ID), slog.String("error", err.Error()))
	}
	return b, eps, nil
}

// findBranch returns the newest branch matching match created since started, or nil.
func (c *Client) findBranch(ctx context.Context, projectID string, started time.Time, match func(Branch) bool) (*Branch, error) {
	branches, err := c.ListBranches(ctx, projectID)
	if err != nil {
		return nil, err
	}
	var best *Branch
	for i := range branches {
		b := &branches[i]
		if !match(*b) || !notBefore(b.CreatedAt, started) {
			continue
		}
		if best == nil || b.CreatedAt.After(best.CreatedAt) {
			best = b
		}
	}
	return best, nil
}

// ListBranches lists every branch of a project, following pagination.next.
func (c *Client) ListBranches(ctx context.Context, projectID string) ([]Branch, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	var all []Branch
	seen := map[string]bool{}
	cursor := ""
	for {
		var q url.Values
		if cursor != "" {
			q = url.Values{"cursor": {cursor}}
		}
		var out struct {
			Branches   []Branch `json:"branches"`
			Pagination *struct {
				Next string `json:"next"`
			} `json:"pagination"`
		}
		if _, err := c.do(ctx, &call{
			method: http.MethodGet,
			route:  "/projects/{project_id}/branches",
			path:   "/projects/" + p(projectID) + "/branches",
			query:  q,
			out:    &out,
		}); err != nil {
			return nil, err
		}
		all = append(all, out.Branches...)
		if out.Pagination == nil || out.Pagination.Next == "" || len(out.Branches) == 0 || seen[out.Pagination.Next] {
			return all, nil
		}
		cursor = out.Pagination.Next
		seen[cursor] = true
	}
}

// GetBranch reads one branch.
func (c *Client) GetBranch(ctx context.Context, projectID, branchID string) (*Branch, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	if err := needID("branch id", branchID); err != nil {
		return nil, err
	}
	var out struct {
		Branch Branch `json:"branch"`
	}
	if _, err := c.do(ctx, &call{
		method: http.MethodGet,
		route:  "/projects/{project_id}/branches/{branch_id}",
		path:   "/projects/" + p(projectID) + "/branches/" + p(branchID),
		out:    &out,
	}); err != nil {
		return nil, err
	}
	return &out.Branch, nil
}

// UpdateBranch renames a branch or changes its expiry (ClearExpiry sends "expires_at": null)
// and waits for its operations.
func (c *Client) UpdateBranch(ctx context.Context, projectID, branchID string, req BranchUpdate) (*Branch, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	if err := needID("branch id", branchID); err != nil {
		return nil, err
	}
	if req.ClearExpiry && req.ExpiresAt != nil {
		return nil, fmt.Errorf("neon: UpdateBranch: ExpiresAt and ClearExpiry are exclusive: %w", ErrInvalidArgument)
	}
	// A map, because BranchUpdate must tell "leave alone" (absent) from "clear" (null).
	b := map[string]any{}
	if req.Name != "" {
		b["name"] = req.Name
	}
	switch {
	case req.ClearExpiry:
		b["expires_at"] = nil
	case req.ExpiresAt != nil:
		b["expires_at"] = req.ExpiresAt.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	var out struct {
		Branch     Branch      `json:"branch"`
		Operations []Operation `json:"operations"`
	}
	if _, err := c.do(ctx, &call{
		method: http.MethodPatch,
		route:  "/projects/{project_id}/branches/{branch_id}",
		path:   "/projects/" + p(projectID) + "/branches/" + p(branchID),
		body:   map[string]any{"branch": b},
		out:    &out,
	}); err != nil {
		return nil, err
	}
	if err := c.waitOperations(ctx, projectID, out.Operations); err != nil {
		return nil, err
	}
	return &out.Branch, nil
}

// DeleteBranch deletes a branch and waits for its operations. 204 (already gone) is success.
func (c *Client) DeleteBranch(ctx context.Context, projectID, branchID string) error {
	if err := needID("project id", projectID); err != nil {
		return err
	}
	if err := needID("branch id", branchID); err != nil {
		return err
	}
	var out struct {
		Operations []Operation `json:"operations"`
	}
	res, err := c.do(ctx, &call{
		method: http.MethodDelete,
		route:  "/projects/{project_id}/branches/{branch_id}",
		path:   "/projects/" + p(projectID) + "/branches/" + p(branchID),
		out:    &out,
	})
	if err != nil {
		return err
	}
	if res.status == http.StatusNoContent {
		return nil
	}
	return c.waitOperations(ctx, projectID, out.Operations)
}

// RestoreBranch restores a branch in place (PITR or reset from parent), waits for its
// operations and returns the branch as read afterwards (parent_lsn and parent_timestamp are
// final only then).
//
// If the answer is lost, the restore is taken as applied when the branch's last_reset_at is
// after the call started, or when its parent is a branch named req.PreserveUnderName created
// after the call started.
func (c *Client) RestoreBranch(ctx context.Context, projectID, branchID string, req BranchRestore) (*Branch, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	if err := needID("branch id", branchID); err != nil {
		return nil, err
	}
	if err := needID("source branch id", req.SourceBranchID); err != nil {
		return nil, err
	}
	started := c.started()
	var out struct {
		Branch     Branch      `json:"branch"`
		Operations []Operation `json:"operations"`
	}
	var recovered *Branch
	res, err := c.do(ctx, &call{
		method: http.MethodPost,
		route:  "/projects/{project_id}/branches/{branch_id}/restore",
		path:   "/projects/" + p(projectID) + "/branches/" + p(branchID) + "/restore",
		body:   req,
		out:    &out,
		effect: func(ctx context.Context) (bool, error) {
			b, err := c.GetBranch(ctx, projectID, branchID)
			if err != nil {
				return false, err
			}
			if b.LastResetAt != nil && notBefore(*b.LastResetAt, started) {
				recovered = b
				return true, nil
			}
			if req.PreserveUnderName != "" && b.ParentID != "" {
				parent, err := c.GetBranch(ctx, projectID, b.ParentID)
				if err != nil {
					return false, err
				}
				if parent.Name == req.PreserveUnderName && notBefore(parent.CreatedAt, started) {
					recovered = b
					return true, nil
				}
			}
			return false, nil
		},
	})
	if err != nil {
		return nil, err
	}
	if err := c.settle(ctx, projectID, res.recovered, out.Operations); err != nil {
		return nil, err
	}
	if res.recovered {
		out.Branch = *recovered
	}
	if len(out.Operations) == 0 && !res.recovered {
		return &out.Branch, nil
	}
	b, err := c.GetBranch(ctx, projectID, branchID)
	if err != nil {
		// The restore is done; only the refresh failed.
		c.log.LogAttrs(ctx, slog.LevelWarn, "neon: cannot re-read restored branch",
			slog.String("branch_id", branchID), slog.String("error", err.Error()))
		return &out.Branch, nil
	}
	return b, nil
}
