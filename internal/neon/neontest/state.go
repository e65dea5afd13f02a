package neontest

import (
	"fmt"

	"github.com/neonguard/neonguard/internal/neon"
)

// Seeding and inspection: tests set the model up and read it back without going through the
// neon.API face, so none of this is logged as a call or takes a fault.

// AddProject adds a project in orgID with a default root branch "main" that has a read-write
// compute, as CreateProject would.
func (f *Fake) AddProject(name, orgID string) (neon.Project, neon.Branch, neon.Endpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := f.createProjectLocked(neon.ProjectCreate{Name: name, OrgID: orgID})
	return cp.Project, cp.Branch, cp.Endpoints[0]
}

// AddBranch adds a branch without a compute; parentID "" makes it a root branch.
func (f *Fake) AddBranch(projectID, name, parentID string) (neon.Branch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.projectLocked("CreateBranch", projectID)
	if err != nil {
		return neon.Branch{}, err
	}
	if parentID != "" && p.branch(parentID) == nil {
		return neon.Branch{}, fmt.Errorf("neontest: parent branch %s not found", parentID)
	}
	if p.named(name, "") {
		return neon.Branch{}, errBranchExists("CreateBranch", name)
	}
	return *f.addBranchLocked(p, name, parentID), nil
}

// AddSnapshot adds a snapshot of branchID, whatever the branch and the limits.
func (f *Fake) AddSnapshot(projectID, branchID, name string) (neon.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.projectLocked("CreateSnapshot", projectID)
	if err != nil {
		return neon.Snapshot{}, err
	}
	now := f.now()
	s := &neon.Snapshot{ID: f.id("snap-"), Name: name, SourceBranchID: branchID, Timestamp: ptr(now), CreatedAt: now, Manual: true}
	p.snapshots = append(p.snapshots, s)
	return *s, nil
}

// EditProject changes a project in place (counters, created_at, settings).
func (f *Fake) EditProject(id string, edit func(*neon.Project)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.projectLocked("UpdateProject", id)
	if err != nil {
		return err
	}
	edit(&p.Project)
	return nil
}

// EditBranch changes a branch in place (its parent, expiry, logical size, …).
func (f *Fake) EditBranch(projectID, branchID string, edit func(*neon.Branch)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.projectLocked("UpdateBranch", projectID)
	if err != nil {
		return err
	}
	b, err := p.branchLocked("UpdateBranch", branchID)
	if err != nil {
		return err
	}
	edit(b)
	return nil
}

// Projects returns every project, oldest first.
func (f *Fake) Projects() []neon.Project {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]neon.Project, 0, len(f.projects))
	for _, p := range f.projects {
		out = append(out, p.Project)
	}
	return out
}

// Project returns a project; false when it does not exist.
func (f *Fake) Project(id string) (neon.Project, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.projectLocked("GetProject", id)
	if err != nil {
		return neon.Project{}, false
	}
	return p.Project, true
}

// Branches returns a project's branches, oldest first (none for an unknown project).
func (f *Fake) Branches(projectID string) []neon.Branch {
	f.mu.Lock()
	defer f.mu.Unlock()
	out, _ := f.branchesLocked("ListBranches", projectID)
	return out
}

// Branch returns a branch by id; false when it does not exist.
func (f *Fake) Branch(projectID, branchID string) (neon.Branch, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.getBranchLocked("GetBranch", projectID, branchID)
	if err != nil {
		return neon.Branch{}, false
	}
	return *b, true
}

// BranchNamed returns a branch by name; false when there is none.
func (f *Fake) BranchNamed(projectID, name string) (neon.Branch, bool) {
	for _, b := range f.Branches(projectID) {
		if b.Name == name {
			return b, true
		}
	}
	return neon.Branch{}, false
}

// Snapshots returns a project's snapshots, oldest first.
func (f *Fake) Snapshots(projectID string) []neon.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	out, _ := f.snapshotsLocked("ListSnapshots", projectID)
	return out
}

// Endpoints returns a project's computes.
func (f *Fake) Endpoints(projectID string) []neon.Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	out, _ := f.endpointsLocked("ListEndpoints", projectID)
	return out
}
