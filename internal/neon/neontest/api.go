package neontest

import (
	"context"
	"errors"
	"fmt"

	"github.com/neonguard/neonguard/internal/neon"
)

// The neon.API face. Like *neon.Client, every mutating method returns once its operations are
// terminal (here: at once), a DELETE of something already gone succeeds, and empty ids are
// refused with neon.ErrInvalidArgument before anything is "sent".

// CreateProject creates a project with a default branch (req.Branch.Name, or "main") that has a
// read-write compute.
func (f *Fake) CreateProject(ctx context.Context, req neon.ProjectCreate) (*neon.CreatedProject, error) {
	var out *neon.CreatedProject
	err := f.call(ctx, Call{Method: "CreateProject", Name: req.Name}, nil, func() error {
		out = f.createProjectLocked(req)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetProject reads a project.
func (f *Fake) GetProject(ctx context.Context, projectID string) (*neon.Project, error) {
	var out *neon.Project
	err := f.call(ctx, Call{Method: "GetProject", ProjectID: projectID}, needIDs("project id", projectID), func() error {
		p, err := f.projectLocked("GetProject", projectID)
		if err == nil {
			out = ptr(p.Project)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListProjects lists projects as the client does: every match with opts.Limit 0, else one page
// from opts.Cursor and the next page's cursor ("" after a short page).
func (f *Fake) ListProjects(ctx context.Context, opts neon.ListProjectsOptions) ([]neon.Project, string, error) {
	var out []neon.Project
	next := ""
	err := f.call(ctx, Call{Method: "ListProjects", Name: opts.Search}, nil, func() error {
		out = f.listProjectsLocked(opts.Search, opts.OrgID, opts.Cursor, opts.Limit)
		if opts.Limit > 0 && len(out) == opts.Limit {
			next = out[len(out)-1].ID
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// UpdateProject changes a project's name, history retention and settings.
func (f *Fake) UpdateProject(ctx context.Context, projectID string, req neon.ProjectUpdate) (*neon.Project, error) {
	var out *neon.Project
	err := f.call(ctx, Call{Method: "UpdateProject", ProjectID: projectID, Name: req.Name}, needIDs("project id", projectID), func() (err error) {
		out, _, err = f.updateProjectLocked("UpdateProject", projectID, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteProject deletes a project; one that does not exist is already deleted.
func (f *Fake) DeleteProject(ctx context.Context, projectID string) error {
	return f.call(ctx, Call{Method: "DeleteProject", ProjectID: projectID}, needIDs("project id", projectID), func() error {
		_, err := f.deleteProjectLocked("DeleteProject", projectID)
		if errors.Is(err, neon.ErrNotFound) {
			return nil
		}
		return err
	})
}

// ConnectionURI returns the URI of the branch's read-write compute (opts.BranchID, or the
// default branch). Its host names the compute, with "-pooler" when pooled.
func (f *Fake) ConnectionURI(ctx context.Context, projectID string, opts neon.ConnectionURIOptions) (string, error) {
	var out string
	invalid := needIDs("project id", projectID, "database name", opts.DatabaseName, "role name", opts.RoleName)
	err := f.call(ctx, Call{Method: "ConnectionURI", ProjectID: projectID, BranchID: opts.BranchID}, invalid, func() (err error) {
		out, err = f.connectionURILocked("ConnectionURI", projectID, opts)
		return err
	})
	return out, err
}

// TransferProjects moves projects to another org; ids it does not have are ignored.
func (f *Fake) TransferProjects(ctx context.Context, sourceOrgID, destinationOrgID string, projectIDs []string) error {
	invalid := needIDs("source org id", sourceOrgID, "destination org id", destinationOrgID)
	return f.call(ctx, Call{Method: "TransferProjects", Name: destinationOrgID}, invalid, func() error {
		f.transferLocked(destinationOrgID, projectIDs)
		return nil
	})
}

// CreateBranch creates a branch (from the default branch unless req.ParentID is set) with the
// given computes.
func (f *Fake) CreateBranch(ctx context.Context, projectID string, req neon.BranchCreate, endpoints []neon.EndpointCreate) (*neon.CreatedBranch, error) {
	var out *neon.CreatedBranch
	err := f.call(ctx, Call{Method: "CreateBranch", ProjectID: projectID, BranchID: req.ParentID, Name: req.Name}, needIDs("project id", projectID), func() (err error) {
		out, err = f.createBranchLocked("CreateBranch", projectID, req, endpoints)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListBranches lists a project's branches, oldest first.
func (f *Fake) ListBranches(ctx context.Context, projectID string) ([]neon.Branch, error) {
	var out []neon.Branch
	err := f.call(ctx, Call{Method: "ListBranches", ProjectID: projectID}, needIDs("project id", projectID), func() (err error) {
		out, err = f.branchesLocked("ListBranches", projectID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetBranch reads a branch.
func (f *Fake) GetBranch(ctx context.Context, projectID, branchID string) (*neon.Branch, error) {
	var out *neon.Branch
	invalid := needIDs("project id", projectID, "branch id", branchID)
	err := f.call(ctx, Call{Method: "GetBranch", ProjectID: projectID, BranchID: branchID}, invalid, func() (err error) {
		out, err = f.getBranchLocked("GetBranch", projectID, branchID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateBranch renames a branch or sets or clears its expiry (refused on the default branch).
func (f *Fake) UpdateBranch(ctx context.Context, projectID, branchID string, req neon.BranchUpdate) (*neon.Branch, error) {
	var out *neon.Branch
	invalid := needIDs("project id", projectID, "branch id", branchID)
	err := f.call(ctx, Call{Method: "UpdateBranch", ProjectID: projectID, BranchID: branchID, Name: req.Name}, invalid, func() (err error) {
		out, err = f.updateBranchLocked("UpdateBranch", projectID, branchID, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteBranch deletes a branch and its computes. The default branch (400) and a branch with
// children (422) stay; one that does not exist is already deleted.
func (f *Fake) DeleteBranch(ctx context.Context, projectID, branchID string) error {
	invalid := needIDs("project id", projectID, "branch id", branchID)
	return f.call(ctx, Call{Method: "DeleteBranch", ProjectID: projectID, BranchID: branchID}, invalid, func() error {
		_, _, err := f.deleteBranchLocked("DeleteBranch", projectID, branchID)
		return err
	})
}

// RestoreBranch restores a branch in place and returns it as read afterwards.
func (f *Fake) RestoreBranch(ctx context.Context, projectID, branchID string, req neon.BranchRestore) (*neon.Branch, error) {
	var out *neon.Branch
	invalid := needIDs("project id", projectID, "branch id", branchID, "source branch id", req.SourceBranchID)
	c := Call{Method: "RestoreBranch", ProjectID: projectID, BranchID: branchID, Name: req.PreserveUnderName}
	err := f.call(ctx, c, invalid, func() (err error) {
		out, _, err = f.restoreBranchLocked("RestoreBranch", projectID, branchID, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListBranchEndpoints lists a branch's computes.
func (f *Fake) ListBranchEndpoints(ctx context.Context, projectID, branchID string) ([]neon.Endpoint, error) {
	var out []neon.Endpoint
	invalid := needIDs("project id", projectID, "branch id", branchID)
	err := f.call(ctx, Call{Method: "ListBranchEndpoints", ProjectID: projectID, BranchID: branchID}, invalid, func() (err error) {
		out, err = f.branchEndpointsLocked("ListBranchEndpoints", projectID, branchID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateSnapshot snapshots a root branch (400 for a branch with a parent; 422 over the limit).
func (f *Fake) CreateSnapshot(ctx context.Context, projectID, branchID string, req neon.SnapshotCreate) (*neon.Snapshot, error) {
	var out *neon.Snapshot
	invalid := needIDs("project id", projectID, "branch id", branchID)
	err := f.call(ctx, Call{Method: "CreateSnapshot", ProjectID: projectID, BranchID: branchID, Name: req.Name}, invalid, func() (err error) {
		out, _, err = f.createSnapshotLocked("CreateSnapshot", projectID, branchID, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListSnapshots lists a project's snapshots, oldest first.
func (f *Fake) ListSnapshots(ctx context.Context, projectID string) ([]neon.Snapshot, error) {
	var out []neon.Snapshot
	err := f.call(ctx, Call{Method: "ListSnapshots", ProjectID: projectID}, needIDs("project id", projectID), func() (err error) {
		out, err = f.snapshotsLocked("ListSnapshots", projectID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteSnapshot deletes a snapshot; one that does not exist is already deleted.
func (f *Fake) DeleteSnapshot(ctx context.Context, projectID, snapshotID string) error {
	invalid := needIDs("project id", projectID, "snapshot id", snapshotID)
	return f.call(ctx, Call{Method: "DeleteSnapshot", ProjectID: projectID, SnapshotID: snapshotID}, invalid, func() error {
		_, err := f.deleteSnapshotLocked("DeleteSnapshot", projectID, snapshotID)
		if errors.Is(err, neon.ErrNotFound) { // the client takes the 404 as done
			return nil
		}
		return err
	})
}

// RestoreSnapshot restores a snapshot into a new root branch; with FinalizeRestore that branch
// replaces the target (req.TargetBranchID, or the snapshot's source) at once.
func (f *Fake) RestoreSnapshot(ctx context.Context, projectID, snapshotID string, req neon.SnapshotRestore) (*neon.RestoredSnapshot, error) {
	var out *neon.RestoredSnapshot
	invalid := needIDs("project id", projectID, "snapshot id", snapshotID)
	c := Call{Method: "RestoreSnapshot", ProjectID: projectID, BranchID: req.TargetBranchID, SnapshotID: snapshotID, Name: req.Name}
	err := f.call(ctx, c, invalid, func() (err error) {
		out, err = f.restoreSnapshotLocked("RestoreSnapshot", projectID, snapshotID, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FinalizeRestore makes a restored branch replace its target, which is renamed oldBranchName
// ("<name> (old)" when empty).
func (f *Fake) FinalizeRestore(ctx context.Context, projectID, branchID, oldBranchName string) error {
	invalid := needIDs("project id", projectID, "branch id", branchID)
	return f.call(ctx, Call{Method: "FinalizeRestore", ProjectID: projectID, BranchID: branchID, Name: oldBranchName}, invalid, func() error {
		_, err := f.finalizeRestoreLocked("FinalizeRestore", projectID, branchID, oldBranchName)
		return err
	})
}

// ListEndpoints lists a project's computes.
func (f *Fake) ListEndpoints(ctx context.Context, projectID string) ([]neon.Endpoint, error) {
	var out []neon.Endpoint
	err := f.call(ctx, Call{Method: "ListEndpoints", ProjectID: projectID}, needIDs("project id", projectID), func() (err error) {
		out, err = f.endpointsLocked("ListEndpoints", projectID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateEndpoint adds a compute to a branch (409 for a second read-write one).
func (f *Fake) CreateEndpoint(ctx context.Context, projectID, branchID string, req neon.EndpointCreate) (*neon.Endpoint, error) {
	var out *neon.Endpoint
	invalid := needIDs("project id", projectID, "branch id", branchID)
	err := f.call(ctx, Call{Method: "CreateEndpoint", ProjectID: projectID, BranchID: branchID}, invalid, func() (err error) {
		out, _, err = f.createEndpointLocked("CreateEndpoint", projectID, branchID, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetOperation reads an operation.
func (f *Fake) GetOperation(ctx context.Context, projectID, operationID string) (*neon.Operation, error) {
	var out *neon.Operation
	invalid := needIDs("project id", projectID, "operation id", operationID)
	err := f.call(ctx, Call{Method: "GetOperation", ProjectID: projectID}, invalid, func() (err error) {
		out, err = f.operationLocked("GetOperation", projectID, operationID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Consumption returns one page with one period per project (of opts.ProjectIDs, or all of
// opts.OrgID's), whose single point carries the project's counters.
func (f *Fake) Consumption(ctx context.Context, opts neon.ConsumptionOptions) (*neon.ConsumptionPage, error) {
	var out *neon.ConsumptionPage
	var invalid error
	if len(opts.ProjectIDs) > 100 {
		invalid = fmt.Errorf("neon: Consumption: %d project ids, at most 100: %w", len(opts.ProjectIDs), neon.ErrInvalidArgument)
	}
	err := f.call(ctx, Call{Method: "Consumption"}, invalid, func() error {
		out = f.consumptionLocked(opts)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
