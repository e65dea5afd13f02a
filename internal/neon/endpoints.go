package neon

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// CreateEndpoint adds a compute to a branch and waits for its operations.
//
// If the answer is lost, the compute is looked up among the branch's endpoints of req.Type
// created since the call started (a branch has at most one read_write compute, so for that type
// the match is exact; for read_only the newest one is taken).
func (c *Client) CreateEndpoint(ctx context.Context, projectID, branchID string, req EndpointCreate) (*Endpoint, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	if err := needID("branch id", branchID); err != nil {
		return nil, err
	}
	if req.Type == "" {
		return nil, fmt.Errorf("neon: CreateEndpoint needs a type: %w", ErrInvalidArgument)
	}
	started := c.started()
	type endpointCreate struct {
		BranchID string `json:"branch_id"`
		EndpointCreate
	}
	var out struct {
		Endpoint   Endpoint    `json:"endpoint"`
		Operations []Operation `json:"operations"`
	}
	var recovered *Endpoint
	res, err := c.do(ctx, &call{
		method: http.MethodPost,
		route:  "/projects/{project_id}/endpoints",
		path:   "/projects/" + p(projectID) + "/endpoints",
		body: struct {
			Endpoint endpointCreate `json:"endpoint"`
		}{endpointCreate{branchID, req}},
		out: &out,
		effect: func(ctx context.Context) (bool, error) {
			eps, err := c.ListBranchEndpoints(ctx, projectID, branchID)
			if err != nil {
				return false, err
			}
			recovered = newestEndpoint(eps, req.Type, started)
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
	return &out.Endpoint, nil
}

func newestEndpoint(eps []Endpoint, typ string, started time.Time) *Endpoint {
	var best *Endpoint
	for i := range eps {
		e := &eps[i]
		if e.Type != typ || !notBefore(e.CreatedAt, started) {
			continue
		}
		if best == nil || e.CreatedAt.After(best.CreatedAt) {
			best = e
		}
	}
	return best
}

// ListBranchEndpoints lists the computes of one branch.
func (c *Client) ListBranchEndpoints(ctx context.Context, projectID, branchID string) ([]Endpoint, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	if err := needID("branch id", branchID); err != nil {
		return nil, err
	}
	var out struct {
		Endpoints []Endpoint `json:"endpoints"`
	}
	if _, err := c.do(ctx, &call{
		method: http.MethodGet,
		route:  "/projects/{project_id}/branches/{branch_id}/endpoints",
		path:   "/projects/" + p(projectID) + "/branches/" + p(branchID) + "/endpoints",
		out:    &out,
	}); err != nil {
		return nil, err
	}
	return out.Endpoints, nil
}

// ListEndpoints lists the computes of a project.
func (c *Client) ListEndpoints(ctx context.Context, projectID string) ([]Endpoint, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	var out struct {
		Endpoints []Endpoint `json:"endpoints"`
	}
	if _, err := c.do(ctx, &call{
		method: http.MethodGet,
		route:  "/projects/{project_id}/endpoints",
		path:   "/projects/" + p(projectID) + "/endpoints",
		out:    &out,
	}); err != nil {
		return nil, err
	}
	return out.Endpoints, nil
}
