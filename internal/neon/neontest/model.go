package neontest

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
)

// The model. Every method here runs with f.mu held and takes the neon.API method it serves, so
// that its errors name the route as the client's would. Errors are *neon.APIError with Neon's
// status (and code), so errors.Is against the neon sentinels works on them.

func (f *Fake) id(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s%s%d", prefix, f.idTag, f.seq)
}

func ptr[T any](v T) *T { return &v }

func (f *Fake) newOpLocked(projectID, branchID, endpointID, action string) neon.Operation {
	now := f.now()
	op := neon.Operation{ID: f.id("op-"), ProjectID: projectID, BranchID: branchID, EndpointID: endpointID,
		Action: action, Status: neon.OpRunning, CreatedAt: now, UpdatedAt: now}
	o := &operation{polls: f.opPolls}
	if f.opTime > 0 {
		o.until = now.Add(f.opTime)
	} else if f.opPolls == 0 {
		f.finishOp(&op)
	}
	o.op = op
	f.ops[op.ID] = o
	f.opOrder = append(f.opOrder, op.ID)
	return op
}

// finishOp gives op the scripted final status.
func (f *Fake) finishOp(op *neon.Operation) {
	op.Status = f.opFinal
	if op.Status != neon.OpFinished {
		op.Error = f.opErr
	}
}

func (f *Fake) projectLocked(method, id string) (*project, error) {
	for _, p := range f.projects {
		if p.ID == id {
			return p, nil
		}
	}
	return nil, apiError(method, http.StatusNotFound, "", "project %s not found", id)
}

func (p *project) branch(id string) *neon.Branch {
	for _, b := range p.branches {
		if b.ID == id {
			return b
		}
	}
	return nil
}

func (p *project) branchLocked(method, id string) (*neon.Branch, error) {
	if b := p.branch(id); b != nil {
		return b, nil
	}
	return nil, apiError(method, http.StatusNotFound, "", "branch %s not found", id)
}

func (p *project) named(name, except string) bool {
	return slices.ContainsFunc(p.branches, func(b *neon.Branch) bool { return b.Name == name && b.ID != except })
}

func (p *project) defaultBranch() *neon.Branch {
	for _, b := range p.branches {
		if b.Default {
			return b
		}
	}
	return nil
}

// where returns, in order, the items of s that keep accepts.
func where[T any](s []T, keep func(T) bool) []T {
	var out []T
	for _, v := range s {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

func (p *project) children(id string) []*neon.Branch {
	return where(p.branches, func(b *neon.Branch) bool { return b.ParentID == id })
}

func (p *project) endpointsOf(branchID string) []*neon.Endpoint {
	return where(p.endpoints, func(e *neon.Endpoint) bool { return e.BranchID == branchID })
}

func (p *project) snapshot(id string) *neon.Snapshot {
	for _, s := range p.snapshots {
		if s.ID == id {
			return s
		}
	}
	return nil
}

func errBranchExists(method, name string) error {
	return apiError(method, http.StatusConflict, "", "branch with name %q already exists", name)
}

func (f *Fake) checkBranchRoom(method string, p *project) error {
	if l := f.limits.BranchesPerProject; l > 0 && len(p.branches) >= l {
		return apiError(method, http.StatusUnprocessableEntity, neon.CodeBranchesLimitExceeded,
			"branches limit exceeded: the project has %d branches and the plan allows %d", len(p.branches), l)
	}
	return nil
}

// checkWindow refuses a point in time in the future or before the project's history retention.
func (f *Fake) checkWindow(method string, p *project, what string, t time.Time) error {
	now := f.now()
	if t.After(now) {
		return apiError(method, http.StatusBadRequest, "", "%s is in the future; %s:%q, now:%q", what, what,
			t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	win := time.Duration(p.HistoryRetentionSeconds) * time.Second
	if t.Before(now.Add(-win)) {
		return apiError(method, http.StatusBadRequest, "", "%s is before retention window; %s:%q, retention_window:%q", what, what,
			t.UTC().Format(time.RFC3339), win.String())
	}
	return nil
}

func (f *Fake) addBranchLocked(p *project, name, parentID string) *neon.Branch {
	now := f.now()
	b := &neon.Branch{ID: f.id("br-"), ProjectID: p.ID, ParentID: parentID, Name: name,
		CurrentState: neon.BranchStateReady, InitSource: "parent-data", CreatedAt: now, UpdatedAt: now}
	if parentID != "" {
		b.ParentTimestamp = ptr(now)
	}
	p.branches = append(p.branches, b)
	return b
}

func (f *Fake) addEndpointLocked(p *project, branchID string, req neon.EndpointCreate) *neon.Endpoint {
	now := f.now()
	e := &neon.Endpoint{ID: f.id("ep-"), ProjectID: p.ID, BranchID: branchID, RegionID: p.RegionID, Type: req.Type,
		CurrentState: neon.EndpointStateActive, AutoscalingLimitMinCU: req.AutoscalingLimitMinCU,
		AutoscalingLimitMaxCU: req.AutoscalingLimitMaxCU, SuspendTimeoutSeconds: req.SuspendTimeoutSeconds,
		CreatedAt: now, UpdatedAt: now}
	e.Host = e.ID + ".neontest.invalid"
	if e.Type == "" {
		e.Type = neon.EndpointReadWrite
	}
	p.endpoints = append(p.endpoints, e)
	return e
}

func (f *Fake) uri(host, role, database string, pooled bool) string {
	if pooled {
		host = poolerHost(host)
	}
	return "postgresql://" + url.PathEscape(role) + ":" + url.PathEscape(f.password) + "@" + host + "/" + url.PathEscape(database) + "?sslmode=require"
}

func (f *Fake) createProjectLocked(req neon.ProjectCreate) *neon.CreatedProject {
	now := f.now()
	period := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	p := &project{Project: neon.Project{ID: f.id("proj-"), Name: req.Name, OrgID: req.OrgID, RegionID: req.RegionID,
		PGVersion: req.PGVersion, HistoryRetentionSeconds: int64(defaultRetention / time.Second), CreatedAt: now, UpdatedAt: now,
		DefaultEndpointSettings: req.DefaultEndpointSettings, Settings: req.Settings,
		ConsumptionPeriodStart: period, ConsumptionPeriodEnd: period.AddDate(0, 1, 0)},
		role: "neondb_owner", database: "neondb", restoreTargets: map[string]string{}}
	if p.RegionID == "" {
		p.RegionID = "aws-us-east-2"
	}
	if p.PGVersion == 0 {
		p.PGVersion = 17
	}
	if req.HistoryRetentionSeconds != nil {
		p.HistoryRetentionSeconds = *req.HistoryRetentionSeconds
	}
	branchName := "main"
	if req.Branch != nil {
		branchName = cmpOr(req.Branch.Name, branchName)
		p.role = cmpOr(req.Branch.RoleName, p.role)
		p.database = cmpOr(req.Branch.DatabaseName, p.database)
	}
	f.projects = append(f.projects, p)
	b := f.addBranchLocked(p, branchName, "")
	b.Default = true
	var ec neon.EndpointCreate
	if s := req.DefaultEndpointSettings; s != nil {
		ec = neon.EndpointCreate{AutoscalingLimitMinCU: s.AutoscalingLimitMinCU, AutoscalingLimitMaxCU: s.AutoscalingLimitMaxCU,
			SuspendTimeoutSeconds: s.SuspendTimeoutSeconds}
	}
	ep := f.addEndpointLocked(p, b.ID, ec)
	return &neon.CreatedProject{
		Project: p.Project, Branch: *b, Endpoints: []neon.Endpoint{*ep},
		Operations:     []neon.Operation{f.newOpLocked(p.ID, b.ID, "", "create_timeline"), f.newOpLocked(p.ID, b.ID, ep.ID, "start_compute")},
		ConnectionURIs: []neon.ConnectionDetails{f.connectionDetails(p, ep)},
		Roles:          []neon.Role{{BranchID: b.ID, Name: p.role, Password: f.password}},
		Databases:      []neon.Database{{ID: 1, BranchID: b.ID, Name: p.database, OwnerName: p.role}},
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// listProjectsLocked answers one page: projects after cursor (an id) matching search (in the
// name or id) and org, at most limit of them (0 = all).
func (f *Fake) listProjectsLocked(search, orgID, cursor string, limit int) []neon.Project {
	out := []neon.Project{}
	after := cursor == ""
	for _, p := range f.projects {
		if !after {
			after = p.ID == cursor
			continue
		}
		if search != "" && !strings.Contains(p.Name, search) && !strings.Contains(p.ID, search) {
			continue
		}
		if orgID != "" && p.OrgID != orgID {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, p.Project)
	}
	return out
}

func (f *Fake) updateProjectLocked(method, id string, req neon.ProjectUpdate) (*neon.Project, []neon.Operation, error) {
	p, err := f.projectLocked(method, id)
	if err != nil {
		return nil, nil, err
	}
	if req.Name != "" {
		p.Name = req.Name
	}
	if req.HistoryRetentionSeconds != nil {
		p.HistoryRetentionSeconds = *req.HistoryRetentionSeconds
	}
	if req.DefaultEndpointSettings != nil {
		p.DefaultEndpointSettings = ptr(*req.DefaultEndpointSettings)
	}
	if req.Settings != nil {
		p.Settings = ptr(*req.Settings)
	}
	p.UpdatedAt = f.now()
	out := p.Project
	return &out, []neon.Operation{f.newOpLocked(p.ID, "", "", "apply_storage_config")}, nil
}

func (f *Fake) deleteProjectLocked(method, id string) (*neon.Project, error) {
	for i, p := range f.projects {
		if p.ID == id {
			f.projects = slices.Delete(f.projects, i, i+1)
			out := p.Project
			return &out, nil
		}
	}
	return nil, apiError(method, http.StatusNotFound, "", "project %s not found", id)
}

func (f *Fake) connectionURILocked(method, projectID string, opts neon.ConnectionURIOptions) (string, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return "", err
	}
	var b *neon.Branch
	if opts.BranchID != "" {
		if b, err = p.branchLocked(method, opts.BranchID); err != nil {
			return "", err
		}
	} else {
		b = p.defaultBranch()
	}
	for _, e := range p.endpoints {
		if (opts.EndpointID != "" && e.ID == opts.EndpointID) || (opts.EndpointID == "" && b != nil && e.BranchID == b.ID && e.Type == neon.EndpointReadWrite) {
			return f.uri(e.Host, opts.RoleName, opts.DatabaseName, opts.Pooled), nil
		}
	}
	return "", apiError(method, http.StatusNotFound, "", "no read-write endpoint for the branch")
}

func (f *Fake) transferLocked(destination string, ids []string) {
	for _, id := range ids {
		for _, p := range f.projects {
			if p.ID == id {
				p.OrgID = destination
			}
		}
	}
}

func (f *Fake) createBranchLocked(method, projectID string, req neon.BranchCreate, endpoints []neon.EndpointCreate) (*neon.CreatedBranch, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, err
	}
	parent := p.defaultBranch()
	if req.ParentID != "" {
		if parent, err = p.branchLocked(method, req.ParentID); err != nil {
			return nil, err
		}
	}
	if req.ParentTimestamp != nil {
		if err := f.checkWindow(method, p, "parent_timestamp", *req.ParentTimestamp); err != nil {
			return nil, err
		}
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(f.now()) {
		return nil, apiError(method, http.StatusBadRequest, "", "expires_at must be in the future")
	}
	if req.Name != "" && p.named(req.Name, "") {
		return nil, errBranchExists(method, req.Name)
	}
	rw := 0
	for _, e := range endpoints {
		if e.Type == neon.EndpointReadWrite {
			rw++
		}
	}
	if rw > 1 {
		return nil, apiError(method, http.StatusConflict, "", "read-write endpoint already exists: a branch can have only one read_write endpoint")
	}
	if err := f.checkBranchRoom(method, p); err != nil {
		return nil, err
	}
	parentID := ""
	if parent != nil {
		parentID = parent.ID
	}
	b := f.addBranchLocked(p, req.Name, parentID)
	if b.Name == "" {
		b.Name = b.ID // as Neon names an unnamed branch
	}
	if req.ParentTimestamp != nil {
		b.ParentTimestamp = ptr(req.ParentTimestamp.UTC())
	}
	b.ParentLSN = req.ParentLSN
	if req.ExpiresAt != nil {
		b.ExpiresAt = ptr(req.ExpiresAt.UTC())
	}
	out := &neon.CreatedBranch{Branch: *b, Endpoints: []neon.Endpoint{},
		Operations: []neon.Operation{f.newOpLocked(p.ID, b.ID, "", "create_branch")},
		Roles:      []neon.Role{{BranchID: b.ID, Name: p.role}},
		Databases:  []neon.Database{{ID: 1, BranchID: b.ID, Name: p.database, OwnerName: p.role}}}
	for _, ec := range endpoints {
		e := f.addEndpointLocked(p, b.ID, ec)
		out.Endpoints = append(out.Endpoints, *e)
		out.Operations = append(out.Operations, f.newOpLocked(p.ID, b.ID, e.ID, "start_compute"))
		if e.Type == neon.EndpointReadWrite {
			// As Neon: the new compute's URI for the project's one role and database.
			out.ConnectionURIs = []neon.ConnectionDetails{f.connectionDetails(p, e)}
		}
	}
	return out, nil
}

// connectionDetails is one entry of connection_uris: e's URI for the project's role and
// database, with the pooler host Neon names ("-pooler" after the endpoint id).
func (f *Fake) connectionDetails(p *project, e *neon.Endpoint) neon.ConnectionDetails {
	return neon.ConnectionDetails{ConnectionURI: f.uri(e.Host, p.role, p.database, false),
		ConnectionParameters: neon.ConnectionParameters{Database: p.database, Password: f.password, Role: p.role, Host: e.Host,
			PoolerHost: poolerHost(e.Host)}}
}

func poolerHost(host string) string { return strings.Replace(host, ".", "-pooler.", 1) }

func (f *Fake) branchesLocked(method, projectID string) ([]neon.Branch, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, err
	}
	out := make([]neon.Branch, 0, len(p.branches))
	for _, b := range p.branches {
		out = append(out, *b)
	}
	return out, nil
}

func (f *Fake) getBranchLocked(method, projectID, branchID string) (*neon.Branch, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, err
	}
	b, err := p.branchLocked(method, branchID)
	if err != nil {
		return nil, err
	}
	out := *b
	return &out, nil
}

func (f *Fake) updateBranchLocked(method, projectID, branchID string, req neon.BranchUpdate) (*neon.Branch, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, err
	}
	b, err := p.branchLocked(method, branchID)
	if err != nil {
		return nil, err
	}
	if req.ClearExpiry && req.ExpiresAt != nil {
		return nil, fmt.Errorf("neon: UpdateBranch: ExpiresAt and ClearExpiry are exclusive: %w", neon.ErrInvalidArgument)
	}
	if req.Name != "" && p.named(req.Name, b.ID) {
		return nil, errBranchExists(method, req.Name)
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(f.now()) {
		return nil, apiError(method, http.StatusBadRequest, "", "expires_at must be in the future")
	}
	if willExpire := req.ExpiresAt != nil || (b.ExpiresAt != nil && !req.ClearExpiry); willExpire && (b.Default || b.Protected) {
		return nil, apiError(method, http.StatusBadRequest, "", "expires_at cannot be set on the default branch or a protected branch")
	}
	if req.Name != "" {
		b.Name = req.Name
	}
	switch {
	case req.ClearExpiry:
		b.ExpiresAt = nil
	case req.ExpiresAt != nil:
		b.ExpiresAt = ptr(req.ExpiresAt.UTC().Truncate(time.Second))
	}
	b.UpdatedAt = f.now()
	out := *b
	return &out, nil
}

// deleteBranchLocked deletes a branch and its computes; a branch that does not exist is nil
// (Neon's 204).
func (f *Fake) deleteBranchLocked(method, projectID, branchID string) (*neon.Branch, []neon.Operation, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, nil, err
	}
	b := p.branch(branchID)
	if b == nil {
		return nil, nil, nil
	}
	if b.Default {
		return nil, nil, apiError(method, http.StatusBadRequest, "", "cannot delete the project's default branch")
	}
	if len(p.children(b.ID)) > 0 {
		return nil, nil, apiError(method, http.StatusUnprocessableEntity, "", "branch %s has children and cannot be deleted", b.ID)
	}
	var ops []neon.Operation
	for _, e := range p.endpointsOf(b.ID) {
		ops = append(ops, f.newOpLocked(p.ID, b.ID, e.ID, "suspend_compute"))
	}
	p.endpoints = slices.DeleteFunc(p.endpoints, func(e *neon.Endpoint) bool { return e.BranchID == b.ID })
	p.branches = slices.DeleteFunc(p.branches, func(x *neon.Branch) bool { return x.ID == b.ID })
	delete(p.restoreTargets, b.ID)
	ops = append(ops, f.newOpLocked(p.ID, b.ID, "", "delete_timeline"))
	out := *b
	return &out, ops, nil
}

// restoreBranchLocked restores a branch in place, with Neon's rules for the backup that
// preserve_under_name keeps: the branch's children move to the backup; a root branch stays a
// root and its backup is a separate root; the backup of a non-root branch takes its place in
// the tree and becomes its parent.
func (f *Fake) restoreBranchLocked(method, projectID, branchID string, req neon.BranchRestore) (*neon.Branch, []neon.Operation, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, nil, err
	}
	b, err := p.branchLocked(method, branchID)
	if err != nil {
		return nil, nil, err
	}
	src, err := p.branchLocked(method, req.SourceBranchID)
	if err != nil {
		return nil, nil, err
	}
	pit := req.SourceTimestamp != nil || req.SourceLSN != ""
	if src.ID == b.ID && !pit {
		return nil, nil, apiError(method, http.StatusBadRequest, "", "source_timestamp or source_lsn is required when restoring a branch to its own history")
	}
	if src.ID == b.ID && req.PreserveUnderName == "" {
		return nil, nil, apiError(method, http.StatusBadRequest, "", "preserve_under_name is required when restoring a branch to its own history")
	}
	children := p.children(b.ID)
	if len(children) > 0 && req.PreserveUnderName == "" {
		return nil, nil, apiError(method, http.StatusBadRequest, "", "preserve_under_name is required when the branch has children")
	}
	now := f.now()
	at := now
	if req.SourceTimestamp != nil {
		if err := f.checkWindow(method, p, "timestamp", *req.SourceTimestamp); err != nil {
			return nil, nil, err
		}
		at = req.SourceTimestamp.UTC()
	}
	if req.PreserveUnderName != "" {
		if p.named(req.PreserveUnderName, "") {
			return nil, nil, errBranchExists(method, req.PreserveUnderName)
		}
		if err := f.checkBranchRoom(method, p); err != nil {
			return nil, nil, err
		}
		backup := f.addBranchLocked(p, req.PreserveUnderName, b.ParentID)
		backup.ParentTimestamp = b.ParentTimestamp
		for _, c := range children {
			c.ParentID = backup.ID
		}
		if b.ParentID != "" {
			b.ParentID = backup.ID
		}
	} else if src.ID != b.ID {
		b.ParentID = src.ID
	}
	if b.ParentID != "" {
		b.ParentTimestamp = ptr(at)
	} else {
		b.ParentTimestamp = nil
	}
	b.LastResetAt, b.UpdatedAt = ptr(now), now
	ops := []neon.Operation{f.newOpLocked(p.ID, b.ID, "", "create_branch")}
	for _, e := range p.endpointsOf(b.ID) {
		ops = append(ops, f.newOpLocked(p.ID, b.ID, e.ID, "start_compute"))
	}
	out := *b
	return &out, ops, nil
}

func (f *Fake) branchEndpointsLocked(method, projectID, branchID string) ([]neon.Endpoint, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, err
	}
	if _, err := p.branchLocked(method, branchID); err != nil {
		return nil, err
	}
	out := []neon.Endpoint{}
	for _, e := range p.endpointsOf(branchID) {
		out = append(out, *e)
	}
	return out, nil
}

func (f *Fake) endpointsLocked(method, projectID string) ([]neon.Endpoint, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, err
	}
	out := make([]neon.Endpoint, 0, len(p.endpoints))
	for _, e := range p.endpoints {
		out = append(out, *e)
	}
	return out, nil
}

func (f *Fake) createEndpointLocked(method, projectID, branchID string, req neon.EndpointCreate) (*neon.Endpoint, []neon.Operation, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, nil, err
	}
	if _, err := p.branchLocked(method, branchID); err != nil {
		return nil, nil, err
	}
	if req.Type == "" || req.Type == neon.EndpointReadWrite {
		for _, e := range p.endpointsOf(branchID) {
			if e.Type == neon.EndpointReadWrite {
				return nil, nil, apiError(method, http.StatusConflict, "", "read-write endpoint already exists")
			}
		}
	}
	e := f.addEndpointLocked(p, branchID, req)
	return ptr(*e), []neon.Operation{f.newOpLocked(p.ID, branchID, e.ID, "start_compute")}, nil
}

func (f *Fake) createSnapshotLocked(method, projectID, branchID string, req neon.SnapshotCreate) (*neon.Snapshot, []neon.Operation, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, nil, err
	}
	b, err := p.branchLocked(method, branchID)
	if err != nil {
		return nil, nil, err
	}
	if b.ParentID != "" {
		return nil, nil, apiError(method, http.StatusBadRequest, "", "snapshots can only be created from root branches; branch %s has parent %s", b.ID, b.ParentID)
	}
	now := f.now()
	at := now
	if req.Timestamp != nil {
		if err := f.checkWindow(method, p, "timestamp", *req.Timestamp); err != nil {
			return nil, nil, err
		}
		at = req.Timestamp.UTC()
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(now) {
		return nil, nil, apiError(method, http.StatusBadRequest, "", "expires_at must be in the future")
	}
	if l := f.limits.SnapshotsPerProject; l > 0 && len(p.snapshots) >= l {
		return nil, nil, apiError(method, http.StatusUnprocessableEntity, neon.CodeSnapshotsLimitExceeded,
			"snapshots limit exceeded: the project has %d snapshots and the plan allows %d", len(p.snapshots), l)
	}
	s := &neon.Snapshot{ID: f.id("snap-"), Name: req.Name, LSN: req.LSN, Timestamp: ptr(at), SourceBranchID: b.ID,
		CreatedAt: now, Manual: true}
	if s.Name == "" {
		s.Name = b.Name + " " + at.UTC().Format(time.RFC3339)
	}
	if req.ExpiresAt != nil {
		s.ExpiresAt = ptr(req.ExpiresAt.UTC().Truncate(time.Second))
	}
	p.snapshots = append(p.snapshots, s)
	return ptr(*s), []neon.Operation{f.newOpLocked(p.ID, b.ID, "", "timeline_archive")}, nil
}

func (f *Fake) snapshotsLocked(method, projectID string) ([]neon.Snapshot, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, err
	}
	out := make([]neon.Snapshot, 0, len(p.snapshots))
	for _, s := range p.snapshots {
		out = append(out, *s)
	}
	return out, nil
}

func (f *Fake) deleteSnapshotLocked(method, projectID, snapshotID string) ([]neon.Operation, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, err
	}
	if p.snapshot(snapshotID) == nil {
		return nil, apiError(method, http.StatusNotFound, "", "snapshot %s not found", snapshotID)
	}
	p.snapshots = slices.DeleteFunc(p.snapshots, func(s *neon.Snapshot) bool { return s.ID == snapshotID })
	return []neon.Operation{f.newOpLocked(p.ID, "", "", "delete_timeline")}, nil
}

// restoreSnapshotLocked restores a snapshot into a new root branch; finalized, that branch
// replaces the target at once.
func (f *Fake) restoreSnapshotLocked(method, projectID, snapshotID string, req neon.SnapshotRestore) (*neon.RestoredSnapshot, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, err
	}
	s := p.snapshot(snapshotID)
	if s == nil {
		return nil, apiError(method, http.StatusNotFound, "", "snapshot %s not found", snapshotID)
	}
	target := p.branch(cmpOr(req.TargetBranchID, s.SourceBranchID))
	if target == nil {
		return nil, apiError(method, http.StatusBadRequest, "", "target branch %s not found", cmpOr(req.TargetBranchID, s.SourceBranchID))
	}
	name := req.Name
	if name == "" {
		name = fmt.Sprintf("%s (restored %s)", target.Name, s.CreatedAt.UTC().Format(time.RFC3339))
	}
	if p.named(name, "") {
		return nil, errBranchExists(method, name)
	}
	if err := f.checkBranchRoom(method, p); err != nil {
		return nil, err
	}
	nb := f.addBranchLocked(p, name, "")
	nb.RestoreStatus, nb.RestoredFrom = "restored", s.ID
	p.restoreTargets[nb.ID] = target.ID
	ops := []neon.Operation{f.newOpLocked(p.ID, nb.ID, "", "timeline_unarchive"), f.newOpLocked(p.ID, nb.ID, "", "create_branch")}
	out := &neon.RestoredSnapshot{}
	if req.FinalizeRestore {
		moved, more, err := f.finalizeLocked(method, p, nb, target, "")
		if err != nil {
			return nil, err
		}
		ops = append(ops, more...)
		for _, e := range moved {
			out.Endpoints = append(out.Endpoints, *e)
		}
	}
	out.Branch, out.Operations = *nb, ops
	return out, nil
}

// finalizeLocked makes nb replace target: nb takes target's name, default flag and computes,
// and target is renamed oldName ("<name> (old)" when empty).
func (f *Fake) finalizeLocked(method string, p *project, nb, target *neon.Branch, oldName string) ([]*neon.Endpoint, []neon.Operation, error) {
	if oldName == "" {
		oldName = target.Name + " (old)"
		for i := 2; p.named(oldName, target.ID); i++ {
			oldName = fmt.Sprintf("%s (old %d)", target.Name, i)
		}
	} else if p.named(oldName, target.ID) {
		return nil, nil, errBranchExists(method, oldName)
	}
	now := f.now()
	target.Name, nb.Name = oldName, target.Name
	nb.Default, target.Default = target.Default, false
	nb.Protected = target.Protected
	nb.RestoreStatus, nb.UpdatedAt = "finalized", now
	target.RestoredAs, target.UpdatedAt = nb.ID, now
	delete(p.restoreTargets, nb.ID)
	moved := p.endpointsOf(target.ID)
	var ops []neon.Operation
	for _, e := range moved {
		ops = append(ops, f.newOpLocked(p.ID, target.ID, e.ID, "suspend_compute"))
		e.BranchID, e.UpdatedAt = nb.ID, now
		ops = append(ops, f.newOpLocked(p.ID, nb.ID, e.ID, "start_compute"))
	}
	return moved, ops, nil
}

func (f *Fake) finalizeRestoreLocked(method, projectID, branchID, oldName string) ([]neon.Operation, error) {
	p, err := f.projectLocked(method, projectID)
	if err != nil {
		return nil, err
	}
	nb, err := p.branchLocked(method, branchID)
	if err != nil {
		return nil, err
	}
	if nb.RestoreStatus != "restored" {
		return nil, apiError(method, http.StatusBadRequest, "", "branch %s is not a restored branch awaiting finalization", nb.ID)
	}
	target := p.branch(p.restoreTargets[nb.ID])
	if target == nil {
		return nil, apiError(method, http.StatusBadRequest, "", "the branch to replace (%s) no longer exists", p.restoreTargets[nb.ID])
	}
	_, ops, err := f.finalizeLocked(method, p, nb, target, oldName)
	return ops, err
}

func (f *Fake) operationLocked(method, projectID, operationID string) (*neon.Operation, error) {
	o := f.ops[operationID]
	if o == nil || o.op.ProjectID != projectID {
		return nil, apiError(method, http.StatusNotFound, "", "operation %s not found", operationID)
	}
	out := o.op
	return &out, nil
}

func (f *Fake) consumptionLocked(opts neon.ConsumptionOptions) *neon.ConsumptionPage {
	page := &neon.ConsumptionPage{Projects: []neon.ProjectConsumption{}}
	for _, p := range f.projects {
		if len(opts.ProjectIDs) > 0 && !slices.Contains(opts.ProjectIDs, p.ID) {
			continue
		}
		if opts.OrgID != "" && p.OrgID != opts.OrgID {
			continue
		}
		page.Projects = append(page.Projects, neon.ProjectConsumption{ProjectID: p.ID, Periods: []neon.ConsumptionPeriod{{
			PeriodID: p.ID + "-period", PeriodPlan: "neontest", PeriodStart: p.ConsumptionPeriodStart,
			Consumption: []neon.ConsumptionPoint{{TimeframeStart: opts.From, TimeframeEnd: opts.To,
				ActiveTimeSeconds: p.ActiveTimeSeconds, ComputeTimeSeconds: p.ComputeTimeSeconds,
				WrittenDataBytes: p.WrittenDataBytes, SyntheticStorageSizeBytes: p.SyntheticStorageSize}},
		}}})
	}
	return page
}
