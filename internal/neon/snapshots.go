package neon

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// CreateSnapshot snapshots a (root) branch and waits for its operations. The spec takes every
// field as a query parameter, not a body.
//
// If the answer is lost, the snapshot is looked up by exact name among snapshots created since
// the call started; req.Name must be set or the error wraps ErrOutcomeUnknown.
func (c *Client) CreateSnapshot(ctx context.Context, projectID, branchID string, req SnapshotCreate) (*Snapshot, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	if err := needID("branch id", branchID); err != nil {
		return nil, err
	}
	started := c.started()
	q := url.Values{}
	if req.Name != "" {
		q.Set("name", req.Name)
	}
	if req.Timestamp != nil {
		q.Set("timestamp", req.Timestamp.UTC().Format(time.RFC3339))
	}
	if req.LSN != "" {
		q.Set("lsn", req.LSN)
	}
	if req.ExpiresAt != nil {
		q.Set("expires_at", req.ExpiresAt.UTC().Truncate(time.Second).Format(time.RFC3339))
	}
	var out struct {
		Snapshot   Snapshot    `json:"snapshot"`
		Operations []Operation `json:"operations"`
	}
	var recovered *Snapshot
	res, err := c.do(ctx, &call{
		method: http.MethodPost,
		route:  "/projects/{project_id}/branches/{branch_id}/snapshot",
		path:   "/projects/" + p(projectID) + "/branches/" + p(branchID) + "/snapshot",
		query:  q,
		out:    &out,
		effect: func(ctx context.Context) (bool, error) {
			if req.Name == "" {
				return false, errors.New("the snapshot has no name to look for")
			}
			list, err := c.ListSnapshots(ctx, projectID)
			if err != nil {
				return false, err
			}
			for i := range list {
				s := &list[i]
				if s.Name != req.Name || !notBefore(s.CreatedAt, started) {
					continue
				}
				if recovered == nil || s.CreatedAt.After(recovered.CreatedAt) {
					recovered = s
				}
			}
			return recovered != nil, nil
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
	return &out.Snapshot, nil
}

// ListSnapshots lists a project's snapshots (the API does not paginate them).
func (c *Client) ListSnapshots(ctx context.Context, projectID string) ([]Snapshot, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	var out struct {
		Snapshots []Snapshot `json:"snapshots"`
	}
	if _, err := c.do(ctx, &call{
		method: http.MethodGet,
		route:  "/projects/{project_id}/snapshots",
		path:   "/projects/" + p(projectID) + "/snapshots",
		out:    &out,
	}); err != nil {
		return nil, err
	}
	return out.Snapshots, nil
}

// DeleteSnapshot deletes a snapshot (202 {operations}) and waits for its operations. A 404 means
// it is already gone (perhaps by an earlier attempt whose answer was lost) and counts as success.
func (c *Client) DeleteSnapshot(ctx context.Context, projectID, snapshotID string) error {
	if err := needID("project id", projectID); err != nil {
		return err
	}
	if err := needID("snapshot id", snapshotID); err != nil {
		return err
	}
	var out struct {
		Operations []Operation `json:"operations"`
	}
	_, err := c.do(ctx, &call{
		method: http.MethodDelete,
		route:  "/projects/{project_id}/snapshots/{snapshot_id}",
		path:   "/projects/" + p(projectID) + "/snapshots/" + p(snapshotID),
		out:    &out,
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return c.waitOperations(ctx, projectID, out.Operations)
}

// RestoreSnapshot restores a snapshot into a new branch and waits for its operations.
//
// If the answer is lost, the restore is taken as applied when a branch with restored_from equal
// to the snapshot id was created since the call started; it is returned with its endpoints.
func (c *Client) RestoreSnapshot(ctx context.Context, projectID, snapshotID string, req SnapshotRestore) (*RestoredSnapshot, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	if err := needID("snapshot id", snapshotID); err != nil {
		return nil, err
	}
	started := c.started()
	var out RestoredSnapshot
	var recovered *RestoredSnapshot
	res, err := c.do(ctx, &call{
		method: http.MethodPost,
		route:  "/projects/{project_id}/snapshots/{snapshot_id}/restore",
		path:   "/projects/" + p(projectID) + "/snapshots/" + p(snapshotID) + "/restore",
		body:   req,
		out:    &out,
		effect: func(ctx context.Context) (bool, error) {
			b, eps, err := c.recoveredBranch(ctx, projectID, started, "restore", func(b Branch) bool { return b.RestoredFrom == snapshotID })
			if err != nil || b == nil {
				return false, err
			}
			recovered = &RestoredSnapshot{Branch: *b, Endpoints: eps}
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

// FinalizeRestore finalizes a snapshot restore: branchID (the restored branch) takes over the
// target's computes and name, and the replaced branch is renamed oldBranchName (Neon generates a
// name when it is empty). It waits for the operations.
//
// If the answer is lost, it is taken as applied when the branch's restore_status is finalized.
func (c *Client) FinalizeRestore(ctx context.Context, projectID, branchID, oldBranchName string) error {
	if err := needID("project id", projectID); err != nil {
		return err
	}
	if err := needID("branch id", branchID); err != nil {
		return err
	}
	body := struct {
		Name string `json:"name,omitempty"`
	}{oldBranchName}
	var out struct {
		Operations []Operation `json:"operations"`
	}
	res, err := c.do(ctx, &call{
		method: http.MethodPost,
		route:  "/projects/{project_id}/branches/{branch_id}/finalize_restore",
		path:   "/projects/" + p(projectID) + "/branches/" + p(branchID) + "/finalize_restore",
		body:   body,
		out:    &out,
		effect: func(ctx context.Context) (bool, error) {
			b, err := c.GetBranch(ctx, projectID, branchID)
			if err != nil {
				return false, err
			}
			return b.RestoreStatus == "finalized", nil
		},
	})
	if err != nil {
		return err
	}
	return c.settle(ctx, projectID, res.recovered, out.Operations)
}
