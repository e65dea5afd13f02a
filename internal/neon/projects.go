package neon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

const (
	projectPageSize   = 400 // the spec's maximum
	transferBatchSize = 400 // the spec's maxItems for project_ids
)

// CreateProject creates a project and waits for its operations.
//
// If the answer is lost, the project is looked up by exact name (and org) among projects created
// since the call started; req.Name must then be set or the error wraps ErrOutcomeUnknown. A
// project recovered that way is rebuilt from GET calls: Project, Branch (the default branch),
// Endpoints, Roles and Databases are filled, but ConnectionURIs is empty and Roles carry no
// passwords, so callers use ConnectionURI to get a connection string.
func (c *Client) CreateProject(ctx context.Context, req ProjectCreate) (*CreatedProject, error) {
	started := c.started()
	var out CreatedProject
	var recovered *CreatedProject
	res, err := c.do(ctx, &call{
		method: http.MethodPost,
		route:  "/projects",
		path:   "/projects",
		body: struct {
			Project ProjectCreate `json:"project"`
		}{req},
		out: &out,
		effect: func(ctx context.Context) (bool, error) {
			if req.Name == "" {
				return false, errors.New("the project has no name to look for")
			}
			pr, err := c.findProject(ctx, req.Name, req.OrgID, started)
			if err != nil || pr == nil {
				return false, err
			}
			recovered = c.describeProject(ctx, *pr)
			return true, nil
		},
	})
	if err != nil {
		return nil, err
	}
	result := &out
	if res.recovered {
		result = recovered
	}
	if err := c.settle(ctx, result.Project.ID, res.recovered, out.Operations); err != nil {
		return nil, err
	}
	return result, nil
}

// findProject returns the newest project named exactly name created since started, or nil.
func (c *Client) findProject(ctx context.Context, name, orgID string, started time.Time) (*Project, error) {
	list, _, err := c.ListProjects(ctx, ListProjectsOptions{Search: name, OrgID: orgID})
	if err != nil {
		return nil, err
	}
	var best *Project
	for i := range list {
		pr := &list[i]
		if pr.Name != name || !notBefore(pr.CreatedAt, started) {
			continue
		}
		if best == nil || pr.CreatedAt.After(best.CreatedAt) {
			best = pr
		}
	}
	return best, nil
}

// describeProject rebuilds what POST /projects would have answered. It is best effort: the
// project exists, so a failing read must not turn a success into a failure.
func (c *Client) describeProject(ctx context.Context, listed Project) *CreatedProject {
	cp := &CreatedProject{Project: listed}
	warn := func(what string, err error) {
		c.log.LogAttrs(ctx, slog.LevelWarn, "neon: recovered project is incomplete",
			slog.String("project_id", listed.ID), slog.String("reading", what), slog.String("error", err.Error()))
	}
	if pr, err := c.GetProject(ctx, listed.ID); err == nil {
		cp.Project = *pr
	} else {
		warn("project", err)
	}
	branches, err := c.ListBranches(ctx, listed.ID)
	if err != nil {
		warn("branches", err)
		return cp
	}
	for _, b := range branches {
		if b.Default || len(branches) == 1 {
			cp.Branch = b
			break
		}
	}
	if cp.Branch.ID == "" {
		return cp
	}
	if eps, err := c.ListBranchEndpoints(ctx, listed.ID, cp.Branch.ID); err == nil {
		cp.Endpoints = eps
	} else {
		warn("endpoints", err)
	}
	base := "/projects/" + p(listed.ID) + "/branches/" + p(cp.Branch.ID)
	var roles struct {
		Roles []Role `json:"roles"`
	}
	if _, err := c.do(ctx, &call{method: http.MethodGet, route: "/projects/{project_id}/branches/{branch_id}/roles", path: base + "/roles", out: &roles}); err == nil {
		cp.Roles = roles.Roles
	} else {
		warn("roles", err)
	}
	var dbs struct {
		Databases []Database `json:"databases"`
	}
	if _, err := c.do(ctx, &call{method: http.MethodGet, route: "/projects/{project_id}/branches/{branch_id}/databases", path: base + "/databases", out: &dbs}); err == nil {
		cp.Databases = dbs.Databases
	} else {
		warn("databases", err)
	}
	return cp
}

// GetProject reads one project.
func (c *Client) GetProject(ctx context.Context, projectID string) (*Project, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	var out struct {
		Project Project `json:"project"`
	}
	if _, err := c.do(ctx, &call{
		method: http.MethodGet,
		route:  "/projects/{project_id}",
		path:   "/projects/" + p(projectID),
		out:    &out,
	}); err != nil {
		return nil, err
	}
	return &out.Project, nil
}

// ListProjects lists projects. With opts.Limit == 0 it walks every page (400 per page, the
// cursor being the last id) and returns "" as the cursor. With opts.Limit > 0 it returns one
// page starting at opts.Cursor and the cursor of the next page, or "" when this page was the
// last (shorter than the limit: Neon always returns a cursor).
func (c *Client) ListProjects(ctx context.Context, opts ListProjectsOptions) ([]Project, string, error) {
	if opts.Limit > 0 {
		return c.projectsPage(ctx, opts)
	}
	opts.Limit = projectPageSize
	var all []Project
	seen := map[string]bool{}
	for {
		page, next, err := c.projectsPage(ctx, opts)
		if err != nil {
			return nil, "", err
		}
		all = append(all, page...)
		// A repeated cursor would loop forever.
		if next == "" || seen[next] {
			return all, "", nil
		}
		seen[next] = true
		opts.Cursor = next
	}
}

func (c *Client) projectsPage(ctx context.Context, opts ListProjectsOptions) ([]Project, string, error) {
	q := url.Values{"limit": {strconv.Itoa(opts.Limit)}}
	if opts.Search != "" {
		q.Set("search", opts.Search)
	}
	if opts.OrgID != "" {
		q.Set("org_id", opts.OrgID)
	}
	if opts.Cursor != "" {
		q.Set("cursor", opts.Cursor)
	}
	var out struct {
		Projects   []Project `json:"projects"`
		Pagination *struct {
			Cursor string `json:"cursor"`
		} `json:"pagination"`
	}
	if _, err := c.do(ctx, &call{method: http.MethodGet, route: "/projects", path: "/projects", query: q, out: &out}); err != nil {
		return nil, "", err
	}
	if len(out.Projects) < opts.Limit || len(out.Projects) == 0 {
		return out.Projects, "", nil
	}
	next := out.Projects[len(out.Projects)-1].ID
	if out.Pagination != nil && out.Pagination.Cursor != "" {
		next = out.Pagination.Cursor
	}
	return out.Projects, next, nil
}

// UpdateProject patches a project and waits for its operations.
func (c *Client) UpdateProject(ctx context.Context, projectID string, req ProjectUpdate) (*Project, error) {
	if err := needID("project id", projectID); err != nil {
		return nil, err
	}
	var out struct {
		Project    Project     `json:"project"`
		Operations []Operation `json:"operations"`
	}
	if _, err := c.do(ctx, &call{
		method: http.MethodPatch,
		route:  "/projects/{project_id}",
		path:   "/projects/" + p(projectID),
		body: struct {
			Project ProjectUpdate `json:"project"`
		}{req},
		out: &out,
	}); err != nil {
		return nil, err
	}
	if err := c.waitOperations(ctx, projectID, out.Operations); err != nil {
		return nil, err
	}
	return &out.Project, nil
}

// DeleteProject deletes a project. A 404 means it is already gone (perhaps by an earlier attempt
// whose answer was lost) and counts as success; so does an unknown id, which the caller should
// rule out. Operations are not waited for: a deleted project's operations cannot be read.
func (c *Client) DeleteProject(ctx context.Context, projectID string) error {
	if err := needID("project id", projectID); err != nil {
		return err
	}
	_, err := c.do(ctx, &call{
		method: http.MethodDelete,
		route:  "/projects/{project_id}",
		path:   "/projects/" + p(projectID),
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// ConnectionURI returns a connection string. It holds a password: it is returned to the caller
// and never logged.
func (c *Client) ConnectionURI(ctx context.Context, projectID string, opts ConnectionURIOptions) (string, error) {
	if err := needID("project id", projectID); err != nil {
		return "", err
	}
	if opts.DatabaseName == "" || opts.RoleName == "" {
		return "", fmt.Errorf("neon: connection_uri needs a database name and a role name: %w", ErrInvalidArgument)
	}
	q := url.Values{"database_name": {opts.DatabaseName}, "role_name": {opts.RoleName}}
	if opts.BranchID != "" {
		q.Set("branch_id", opts.BranchID)
	}
	if opts.EndpointID != "" {
		q.Set("endpoint_id", opts.EndpointID)
	}
	if opts.Pooled {
		q.Set("pooled", "true")
	}
	var out struct {
		URI string `json:"uri"`
	}
	if _, err := c.do(ctx, &call{
		method: http.MethodGet,
		route:  "/projects/{project_id}/connection_uri",
		path:   "/projects/" + p(projectID) + "/connection_uri",
		query:  q,
		out:    &out,
	}); err != nil {
		return "", err
	}
	if out.URI == "" {
		return "", fmt.Errorf("neon: GET /projects/{project_id}/connection_uri: empty uri in answer")
	}
	return out.URI, nil
}

// TransferProjects moves projects from one org to another (personal key only), at most 400 per
// request. A 406 is a *TransferLimitsError. A lost answer is checked by reading every project of
// the batch: all in the destination org = done, none = send again, some = ErrOutcomeUnknown.
// Batches before a failing one stay transferred.
func (c *Client) TransferProjects(ctx context.Context, sourceOrgID, destinationOrgID string, projectIDs []string) error {
	if err := needID("source org id", sourceOrgID); err != nil {
		return err
	}
	if err := needID("destination org id", destinationOrgID); err != nil {
		return err
	}
	if len(projectIDs) == 0 {
		return fmt.Errorf("neon: transfer needs at least one project id: %w", ErrInvalidArgument)
	}
	for _, id := range projectIDs {
		if err := needID("project id", id); err != nil {
			return err
		}
	}
	for start := 0; start < len(projectIDs); start += transferBatchSize {
		batch := projectIDs[start:min(start+transferBatchSize, len(projectIDs))]
		if _, err := c.do(ctx, &call{
			method: http.MethodPost,
			route:  "/organizations/{source_org_id}/projects/transfer",
			path:   "/organizations/" + p(sourceOrgID) + "/projects/transfer",
			body: struct {
				DestinationOrgID string   `json:"destination_org_id"`
				ProjectIDs       []string `json:"project_ids"`
			}{destinationOrgID, batch},
			effect: func(ctx context.Context) (bool, error) {
				moved := 0
				for _, id := range batch {
					pr, err := c.GetProject(ctx, id)
					if err != nil {
						return false, err
					}
					if pr.OrgID == destinationOrgID {
						moved++
					}
				}
				switch moved {
				case len(batch):
					return true, nil
				case 0:
					return false, nil
				}
				return false, fmt.Errorf("%d of %d projects are in the destination org", moved, len(batch))
			},
		}); err != nil {
			if start > 0 {
				return fmt.Errorf("neon: transfer stopped after %d of %d projects: %w", start, len(projectIDs), err)
			}
			return err
		}
	}
	return nil
}
