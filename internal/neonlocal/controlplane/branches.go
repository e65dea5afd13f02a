package controlplane

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
)

func (s *Server) branchesOfLocked(projectID string) []*branch {
	var out []*branch
	for _, b := range s.st.Branches {
		if b.ProjectID == projectID {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b *branch) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
}

func (s *Server) childrenLocked(b *branch) []*branch {
	var out []*branch
	for _, c := range s.branchesOfLocked(b.ProjectID) {
		if c.ParentID == b.ID {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) branchLocked(prj *project, id string) (*branch, error) {
	b := s.st.Branches[id]
	if b == nil || b.ProjectID != prj.ID {
		return nil, errf(http.StatusNotFound, "branch not found")
	}
	return b, nil
}

// branchOfLocked resolves the path's project and branch for a read.
func (s *Server) branchOfLocked(r *http.Request, p principal) (*project, *branch, error) {
	prj, err := s.projectLocked(p, r.PathValue("project_id"))
	if err != nil {
		return nil, nil, err
	}
	b, err := s.branchLocked(prj, r.PathValue("branch_id"))
	if err != nil {
		return nil, nil, err
	}
	return prj, b, nil
}

// mutableBranchLocked resolves the path's project and branch for a change (423 while an
// operation of the project runs).
func (s *Server) mutableBranchLocked(r *http.Request, p principal) (*project, *branch, error) {
	prj, err := s.mutableProjectLocked(p, r)
	if err != nil {
		return nil, nil, err
	}
	b, err := s.branchLocked(prj, r.PathValue("branch_id"))
	if err != nil {
		return nil, nil, err
	}
	return prj, b, nil
}

func (s *Server) nameTakenLocked(projectID, name, exceptID string) bool {
	for _, b := range s.branchesOfLocked(projectID) {
		if b.Name == name && b.ID != exceptID {
			return true
		}
	}
	return false
}

func errBranchExists(name string) error {
	return errf(http.StatusConflict, "branch already exists; branch_name:%q", name)
}

// checkBranchRoomLocked fails with Neon's 422 when adding n branches would
// pass the org plan's per-project limit. Every branch counts, backups and
// "(old)" branches included.
func (s *Server) checkBranchRoomLocked(prj *project, n int) error {
	pl := s.planOf(prj.OrgID)
	if have := len(s.branchesOfLocked(prj.ID)); have+n > pl.MaxBranches {
		return errCode(http.StatusUnprocessableEntity, "BRANCHES_LIMIT_EXCEEDED",
			"branches limit exceeded: the project has %d branches and the organization plan allows %d", have, pl.MaxBranches)
	}
	return nil
}

// checkWindowLocked enforces that a point in history lies within
// [now - history_retention_seconds, now], with messages shaped like Neon's.
func (s *Server) checkWindowLocked(prj *project, t time.Time, what, raw string) error {
	now := s.now()
	if t.After(now) {
		return errf(http.StatusBadRequest, "%s is in the future; %s:%q, now:%q", what, what, raw, ts(now))
	}
	win := time.Duration(prj.HistoryRetention) * time.Second
	if t.Before(now.Add(-win)) {
		return errf(http.StatusBadRequest, "%s is before retention window; %s:%q, retention_window:%q", what, what, raw, win.String())
	}
	if t.Before(prj.CreatedAt.Truncate(time.Second)) {
		return errf(http.StatusBadRequest, "%s is before the project was created; %s:%q, created_at:%q", what, what, raw, ts(prj.CreatedAt))
	}
	return nil
}

// pointInTime resolves an optional lsn/timestamp pair to a time inside the
// restore window; ok=false means "head".
func (s *Server) pointInTimeLocked(prj *project, lsn string, tsp *time.Time) (time.Time, bool, error) {
	switch {
	case lsn != "" && tsp != nil:
		return time.Time{}, false, errf(http.StatusBadRequest, "lsn and timestamp are mutually exclusive")
	case lsn != "":
		t, err := lsnTime(lsn)
		if err != nil {
			return time.Time{}, false, err
		}
		return t, true, s.checkWindowLocked(prj, t, "lsn", lsn)
	case tsp != nil:
		return tsp.UTC(), true, s.checkWindowLocked(prj, *tsp, "timestamp", tsp.Format(time.RFC3339))
	}
	return time.Time{}, false, nil
}

// latestBackupLocked is the backup of b's most recent in-place restore, or nil. Only its data
// can be missing after a crash (the restore's swap had not happened yet).
func (s *Server) latestBackupLocked(b *branch) *branch {
	var latest *branch
	for _, c := range s.st.Branches {
		if c.BackupOf == b.ID && (latest == nil || c.CreatedAt.After(latest.CreatedAt) ||
			(c.CreatedAt.Equal(latest.CreatedAt) && c.ID > latest.ID)) {
			latest = c
		}
	}
	return latest
}

func (s *Server) branchSpecLocked(b *branch, at *time.Time) neonlocal.BranchSpec {
	prj := s.st.Projects[b.ProjectID]
	spec := neonlocal.BranchSpec{ProjectID: b.ProjectID, BranchID: b.ID, ParentID: b.ParentID,
		FromSnapshotID: b.RestoredFrom}
	if at != nil {
		spec.ParentTime = *at
	}
	if spec.FromSnapshotID != "" {
		spec.ParentID = ""
	}
	if b.BackupOf != "" && b.BackupSource != "" {
		if of := s.st.Branches[b.BackupOf]; of != nil && s.latestBackupLocked(of) == b {
			spec.RestoreOf = &neonlocal.RestoreSpec{ProjectID: b.ProjectID, BranchID: of.ID, SourceBranchID: b.BackupSource, BackupBranchID: b.ID}
			if b.BackupTarget != nil {
				spec.RestoreOf.Target = *b.BackupTarget
			}
		}
	}
	if prj != nil {
		spec.PgVersion, spec.RoleName, spec.RolePassword, spec.DatabaseName = prj.PgVersion, prj.RoleName, prj.RolePassword, prj.DatabaseName
	}
	return spec
}

type endpointOptionsReq struct {
	Type           string            `json:"type"`
	MinCU          *float64          `json:"autoscaling_limit_min_cu"`
	MaxCU          *float64          `json:"autoscaling_limit_max_cu"`
	SuspendTimeout *int64            `json:"suspend_timeout_seconds"`
	Provisioner    string            `json:"provisioner"`
	Settings       *endpointSettings `json:"settings"`
}

type endpointSettings struct {
	PgSettings map[string]string `json:"pg_settings"`
}

func parseTimePtr(v *string, field string) (*time.Time, error) {
	if v == nil || *v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, *v)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "%s must be an RFC 3339 timestamp: %v", field, err)
	}
	t = t.UTC()
	return &t, nil
}

// branchCreateReq is the body of POST /projects/{project_id}/branches.
type branchCreateReq struct {
	Branch          branchCreateFields   `json:"branch"`
	Endpoints       []endpointOptionsReq `json:"endpoints"`
	AnnotationValue map[string]string    `json:"annotation_value"`
}

type branchCreateFields struct {
	ParentID        string  `json:"parent_id"`
	Name            *string `json:"name"`
	ParentLSN       string  `json:"parent_lsn"`
	ParentTimestamp *string `json:"parent_timestamp"`
	Protected       bool    `json:"protected"`
	InitSource      string  `json:"init_source"`
	ExpiresAt       *string `json:"expires_at"`
}

func (s *Server) createBranch(r *http.Request, p principal) (int, any, error) {
	var req branchCreateReq
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	rb := req.Branch
	parentTS, err := parseTimePtr(rb.ParentTimestamp, "parent_timestamp")
	if err != nil {
		return 0, nil, err
	}
	expiresAt, err := parseTimePtr(rb.ExpiresAt, "expires_at")
	if err != nil {
		return 0, nil, err
	}
	if err := s.disk.refresh(r.Context()); err != nil {
		return 0, nil, err
	}
	return s.mutate(func() (result, error) {
		prj, err := s.mutableProjectLocked(p, r)
		if err != nil {
			return result{}, err
		}
		parent := s.defaultBranchLocked(prj.ID)
		if rb.ParentID != "" {
			if parent, err = s.branchLocked(prj, rb.ParentID); err != nil {
				return result{}, err
			}
		}
		if err := checkInitSource(rb.InitSource); err != nil {
			return result{}, err
		}
		at, pit, err := s.pointInTimeLocked(prj, rb.ParentLSN, parentTS)
		if err != nil {
			return result{}, err
		}
		now := s.now()
		if !pit {
			at = now
		}
		if expiresAt != nil && !expiresAt.After(now) {
			return result{}, errf(http.StatusBadRequest, "expires_at must be in the future")
		}
		if expiresAt != nil && rb.Protected {
			return result{}, errNoExpiry()
		}
		id := newBranchID()
		name := id
		if rb.Name != nil {
			if l := len(*rb.Name); l < 1 || l > 256 {
				return result{}, errf(http.StatusBadRequest, "name must be 1..256 characters")
			}
			name = *rb.Name
		}
		if s.nameTakenLocked(prj.ID, name, "") {
			return result{}, errBranchExists(name)
		}
		if err := s.checkNewEndpointsLocked(prj, req.Endpoints); err != nil {
			return result{}, err
		}
		if err := s.checkBranchRoomLocked(prj, 1); err != nil {
			return result{}, err
		}
		ports := make([]int, len(req.Endpoints))
		for i := range ports {
			if ports[i], err = s.allocPortLocked(ports[:i]...); err != nil {
				return result{}, err
			}
		}
		if err := s.disk.admit(); err != nil { // last check: room on disk for the new cluster
			return result{}, err
		}

		b := &branch{
			ID: id, ProjectID: prj.ID, ParentID: parent.ID, Name: name, Protected: rb.Protected,
			InitSource: cmp.Or(rb.InitSource, "parent-data"), CurrentState: "init", PendingState: "ready", StateChangedAt: now,
			CreatedAt: now, UpdatedAt: now, ExpiresAt: expiresAt, Annotations: copyMap(req.AnnotationValue),
			ParentTime: &at,
		}
		if len(req.AnnotationValue) > 0 {
			b.AnnotatedAt = now
		}
		s.st.Branches[b.ID] = b
		// From the parent's head unless a point in time was asked for: the data plane then
		// copies the head instead of replaying WAL up to "now".
		var specAt *time.Time
		if pit {
			specAt = &at
		}
		// The parent's roles and databases (at the point in time), as its data has them.
		pr, pd := s.listsLocked(parent)
		var resync []*pgRole
		b.Roles, b.Databases, resync = copyLists(pr, pd, specAt, now)
		return s.createdBranchLocked(prj, b, specAt, req.Endpoints, ports, resync), nil
	})
}

// checkInitSource accepts parent-data only: a schema-only branch would need its data plane to
// copy the schema without the rows; nothing here uses it, so it is refused rather than
// answered with a full copy.
func checkInitSource(initSource string) error {
	switch cmp.Or(initSource, "parent-data") {
	case "parent-data":
		return nil
	case "schema-only":
		return errf(http.StatusBadRequest, "init_source schema-only is not supported by the local emulator; use parent-data")
	default:
		return errf(http.StatusBadRequest, "init_source must be parent-data or schema-only")
	}
}

// checkNewEndpointsLocked applies Neon's rules to the endpoints of a branch create: known
// types, computes inside the plan, at most one read_write.
func (s *Server) checkNewEndpointsLocked(prj *project, eps []endpointOptionsReq) error {
	pl := s.planOf(prj.OrgID)
	rw := 0
	for _, e := range eps {
		switch e.Type {
		case "read_write":
			rw++
		case "read_only":
		default:
			return errf(http.StatusBadRequest, "endpoint type must be read_write or read_only")
		}
		if err := checkCompute(pl, ptrOr(e.MinCU, prj.DefaultEndpoint.MinCU), ptrOr(e.MaxCU, prj.DefaultEndpoint.MaxCU),
			ptrOr(e.SuspendTimeout, prj.DefaultEndpoint.SuspendTimeout)); err != nil {
			return err
		}
	}
	if rw > 1 {
		return errf(http.StatusConflict, "read-write endpoint already exists: a branch can have only one read_write endpoint")
	}
	return nil
}

// createdBranchLocked adds the operations and endpoints of a new branch b (already in the
// state) and renders the 201 answer.
func (s *Server) createdBranchLocked(prj *project, b *branch, at *time.Time, reqEps []endpointOptionsReq, ports []int, resync []*pgRole) result {
	bspec := s.branchSpecLocked(b, at)
	bspec.ParentID = b.ParentID
	steps := []opStep{s.newOpLocked(prj.ID, b.ID, "", "create_branch", func(ctx context.Context) error {
		if err := s.dp.CreateBranch(ctx, bspec); err != nil {
			return err
		}
		return s.resyncPasswords(ctx, prj.ID, b.ID, resync)
	})}
	var eps []*endpoint
	for i, e := range reqEps {
		ep := s.addEndpointLocked(prj, b.ID, e.Type, ports[i], e.MinCU, e.MaxCU, e.SuspendTimeout, e.Settings)
		eps = append(eps, ep)
		espec := s.endpointSpecLocked(ep)
		steps = append(steps, s.newOpLocked(prj.ID, b.ID, ep.ID, "start_compute", func(ctx context.Context) error {
			return s.dp.StartEndpoint(ctx, espec)
		}))
	}
	roles, dbs := s.rolesAndDatabases(prj, b)
	body := map[string]any{
		"branch": s.renderBranch(b), "endpoints": s.renderEndpoints(eps), "operations": opsOf(steps),
		"roles": roles, "databases": dbs,
	}
	// Neon omits connection_uris when the branch has more than one role or database.
	if ep := s.readWriteEndpointLocked(b.ID); ep != nil && len(b.Roles) == 1 && len(b.Databases) == 1 {
		body["connection_uris"] = []apiConnectionDetails{s.connectionDetails(b.Roles[0], b.Databases[0].Name, ep)}
	}
	return result{status: http.StatusCreated, body: body, steps: steps, done: func(bool) {
		s.settleBranchLocked(b.ID)
		for _, ep := range eps {
			s.settleEndpointLocked(ep.ID)
		}
		s.disk.release()
	}}
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func (s *Server) listBranches(r *http.Request, p principal) (int, any, error) {
	q := r.URL.Query()
	sortBy := cmp.Or(q.Get("sort_by"), "updated_at")
	sortOrder := cmp.Or(q.Get("sort_order"), "desc")
	if sortBy != "name" && sortBy != "created_at" && sortBy != "updated_at" {
		return 0, nil, errf(http.StatusBadRequest, "sort_by must be name, created_at or updated_at")
	}
	if sortOrder != "asc" && sortOrder != "desc" {
		return 0, nil, errf(http.StatusBadRequest, "sort_order must be asc or desc")
	}
	limit, err := intParam(r, "limit", 10000, 1, 10000)
	if err != nil {
		return 0, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prj, err := s.projectLocked(p, r.PathValue("project_id"))
	if err != nil {
		return 0, nil, err
	}
	search := strings.ToLower(q.Get("search"))
	var list []*branch
	for _, b := range s.branchesOfLocked(prj.ID) {
		if search == "" || strings.Contains(strings.ToLower(b.Name), search) || strings.Contains(b.ID, search) {
			list = append(list, b)
		}
	}
	slices.SortStableFunc(list, func(a, b *branch) int {
		var c int
		switch sortBy {
		case "name":
			c = strings.Compare(a.Name, b.Name)
		case "created_at":
			c = a.CreatedAt.Compare(b.CreatedAt)
		default:
			c = a.UpdatedAt.Compare(b.UpdatedAt)
		}
		c = cmp.Or(c, strings.Compare(a.ID, b.ID))
		if sortOrder == "desc" {
			c = -c
		}
		return c
	})
	// The cursor is the id of the last branch of the previous page.
	if cursor := q.Get("cursor"); cursor != "" {
		i := slices.IndexFunc(list, func(b *branch) bool { return b.ID == cursor })
		if i < 0 {
			return 0, nil, errf(http.StatusBadRequest, "invalid cursor")
		}
		list = list[i+1:]
	}
	pagination := map[string]string{"sort_by": sortBy, "sort_order": sortOrder}
	if len(list) > limit {
		list = list[:limit]
		pagination["next"] = list[len(list)-1].ID
	}
	branches := []apiBranch{}
	annotations := map[string]apiAnnotation{}
	for _, b := range list {
		branches = append(branches, s.renderBranch(b))
		if len(b.Annotations) > 0 {
			annotations[b.ID] = renderAnnotation(b)
		}
	}
	return http.StatusOK, map[string]any{"branches": branches, "annotations": annotations, "pagination": pagination}, nil
}

func (s *Server) getBranch(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOfLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"branch": s.renderBranch(b), "annotation": renderAnnotation(b)}, nil
}

func (s *Server) updateBranch(r *http.Request, p principal) (int, any, error) {
	var req struct {
		Branch *struct {
			Name      *string         `json:"name"`
			Protected *bool           `json:"protected"`
			ExpiresAt json.RawMessage `json:"expires_at"` // null clears the TTL
		} `json:"branch"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Branch == nil {
		return 0, nil, errf(http.StatusBadRequest, "branch is required")
	}
	rb := req.Branch
	var expires *time.Time
	clearExpiry := string(rb.ExpiresAt) == "null"
	if len(rb.ExpiresAt) > 0 && !clearExpiry {
		var v string
		if err := json.Unmarshal(rb.ExpiresAt, &v); err != nil {
			return 0, nil, errf(http.StatusBadRequest, "expires_at must be an RFC 3339 timestamp or null")
		}
		t, err := parseTimePtr(&v, "expires_at")
		if err != nil {
			return 0, nil, err
		}
		expires = t
	}
	return s.mutate(func() (result, error) {
		prj, b, err := s.mutableBranchLocked(r, p)
		if err != nil {
			return result{}, err
		}
		now := s.now()
		if rb.Name != nil {
			if l := len(*rb.Name); l < 1 || l > 256 {
				return result{}, errf(http.StatusBadRequest, "name must be 1..256 characters")
			}
			if s.nameTakenLocked(prj.ID, *rb.Name, b.ID) {
				return result{}, errBranchExists(*rb.Name)
			}
		}
		if expires != nil && !expires.After(now) {
			return result{}, errf(http.StatusBadRequest, "expires_at must be in the future")
		}
		if willExpire := expires != nil || (b.ExpiresAt != nil && !clearExpiry); willExpire &&
			(b.Default || ptrOr(rb.Protected, b.Protected)) {
			return result{}, errNoExpiry()
		}
		if rb.Name != nil {
			b.Name = *rb.Name
		}
		if rb.Protected != nil {
			b.Protected = *rb.Protected
		}
		switch {
		case clearExpiry:
			b.ExpiresAt = nil
		case expires != nil:
			b.ExpiresAt = expires
		}
		b.UpdatedAt = now
		return result{status: http.StatusOK, body: map[string]any{"branch": s.renderBranch(b), "operations": []apiOperation{}}}, nil
	})
}

// setDefaultBranch is POST .../branches/{branch_id}/set_as_default: the branch becomes the
// project's default and the previous default loses the flag. No operation runs (the
// computes stay as they are), so "operations" is empty. A branch that expires cannot be the
// default (the same rule as setting a TTL on the default), nor can a snapshot restore's
// branch that is not finalized yet.
func (s *Server) setDefaultBranch(r *http.Request, p principal) (int, any, error) {
	return s.mutate(func() (result, error) {
		prj, b, err := s.mutableBranchLocked(r, p)
		if err != nil {
			return result{}, err
		}
		if b.ExpiresAt != nil {
			return result{}, errNoExpiry()
		}
		if b.RestoreStatus == "restored" {
			return result{}, errf(http.StatusBadRequest, "branch %s is a snapshot restore that is not finalized", b.ID)
		}
		now := s.now()
		if !b.Default {
			if old := s.defaultBranchLocked(prj.ID); old.ID != "" {
				old.Default, old.UpdatedAt = false, now
			}
			b.Default, b.UpdatedAt = true, now
		}
		return result{status: http.StatusOK, body: map[string]any{"branch": s.renderBranch(b), "operations": []apiOperation{}}}, nil
	})
}

// errNoExpiry is Neon's refusal of a TTL where branch expiration is not allowed.
func errNoExpiry() error {
	return errf(http.StatusBadRequest, "expires_at cannot be set on the default branch or a protected branch")
}

func (s *Server) deleteBranch(r *http.Request, p principal) (int, any, error) {
	return s.mutate(func() (result, error) {
		prj, err := s.projectLocked(p, r.PathValue("project_id"))
		if err != nil {
			return result{}, err
		}
		b := s.st.Branches[r.PathValue("branch_id")]
		if b == nil || b.ProjectID != prj.ID {
			return result{status: http.StatusNoContent}, nil
		}
		if err := s.lockedLocked(prj.ID); err != nil {
			return result{}, err
		}
		if err := s.deletableLocked(b); err != nil {
			return result{}, err
		}
		steps := s.removeBranchLocked(b)
		return result{status: http.StatusOK, steps: steps,
			body: map[string]any{"branch": s.renderBranch(b), "operations": opsOf(steps)}}, nil
	})
}

// deletableLocked applies Neon's rules: the default branch and branches with children stay.
// An undo backup of a root branch has no children, so it can go; the backup of a non-root
// branch is that branch's parent and stays until the branch is gone.
func (s *Server) deletableLocked(b *branch) error {
	if b.Default {
		return errf(http.StatusBadRequest, "cannot delete the project's default branch")
	}
	if len(s.childrenLocked(b)) > 0 {
		return errf(http.StatusUnprocessableEntity, "branch %s has children and cannot be deleted", b.ID)
	}
	return nil
}

// removeBranchLocked deletes b and its endpoints and returns the operations.
func (s *Server) removeBranchLocked(b *branch) []opStep {
	var steps []opStep
	for _, ep := range s.endpointsOfBranchLocked(b.ID) {
		espec := s.endpointSpecLocked(ep)
		steps = append(steps, s.newOpLocked(b.ProjectID, b.ID, ep.ID, "suspend_compute", func(ctx context.Context) error {
			return s.dp.SuspendEndpoint(ctx, espec)
		}))
		delete(s.st.Endpoints, ep.ID)
	}
	projectID, id := b.ProjectID, b.ID
	steps = append(steps, s.newOpLocked(projectID, id, "", "delete_timeline", func(ctx context.Context) error {
		return s.dp.DeleteBranch(ctx, projectID, id)
	}))
	delete(s.st.Branches, b.ID)
	return steps
}

func (s *Server) restoreBranch(r *http.Request, p principal) (int, any, error) {
	var req struct {
		SourceBranchID    string  `json:"source_branch_id"`
		SourceLSN         string  `json:"source_lsn"`
		SourceTimestamp   *string `json:"source_timestamp"`
		PreserveUnderName string  `json:"preserve_under_name"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.SourceBranchID == "" {
		return 0, nil, errf(http.StatusBadRequest, "source_branch_id is required")
	}
	srcTS, err := parseTimePtr(req.SourceTimestamp, "source_timestamp")
	if err != nil {
		return 0, nil, err
	}
	return s.mutate(func() (result, error) {
		prj, b, err := s.mutableBranchLocked(r, p)
		if err != nil {
			return result{}, err
		}
		src, err := s.branchLocked(prj, req.SourceBranchID)
		if err != nil {
			return result{}, err
		}
		if src.ID == b.ID {
			if req.SourceLSN == "" && srcTS == nil {
				return result{}, errf(http.StatusBadRequest, "source_timestamp or source_lsn is required when restoring a branch to its own history")
			}
			if req.PreserveUnderName == "" {
				return result{}, errf(http.StatusBadRequest, "preserve_under_name is required when restoring a branch to its own history")
			}
		}
		children := s.childrenLocked(b)
		if len(children) > 0 && req.PreserveUnderName == "" {
			return result{}, errf(http.StatusBadRequest, "preserve_under_name is required when the branch has children")
		}
		at, pit, err := s.pointInTimeLocked(prj, req.SourceLSN, srcTS)
		if err != nil {
			return result{}, err
		}
		now := s.now()
		if !pit {
			at = now
		}
		if req.PreserveUnderName != "" {
			if s.nameTakenLocked(prj.ID, req.PreserveUnderName, "") {
				return result{}, errBranchExists(req.PreserveUnderName)
			}
			if err := s.checkBranchRoomLocked(prj, 1); err != nil {
				return result{}, err
			}
		}

		// The branch takes the source's roles and databases at the point (its data does); the
		// backup keeps the branch's own.
		oldRoles, oldDBs := s.listsLocked(b)
		srcRoles, srcDBs := s.listsLocked(src)
		var srcAt *time.Time
		if pit {
			srcAt = &at
		}
		newRoles, newDBs, resync := copyLists(srcRoles, srcDBs, srcAt, now)
		backupID := ""
		if req.PreserveUnderName != "" {
			backup := &branch{
				ID: newBranchID(), ProjectID: prj.ID, ParentID: b.ParentID, ParentTime: b.ParentTime,
				Name: req.PreserveUnderName, InitSource: b.InitSource, CurrentState: "ready",
				StateChangedAt: now, CreatedAt: now, UpdatedAt: now, BackupOf: b.ID, BackupSource: src.ID,
				Roles: oldRoles, Databases: oldDBs,
			}
			if pit {
				backup.BackupTarget = &at
			}
			s.st.Branches[backup.ID] = backup
			// Neon's rules (docs, "Instant restore"): the children move to the backup; a
			// root branch stays a root and its backup is a separate root, while the backup of
			// a non-root branch takes its place in the tree and becomes its parent.
			for _, c := range children {
				c.ParentID = backup.ID
			}
			backupID = backup.ID
			if b.ParentID != "" {
				b.ParentID = backup.ID
			}
		} else if src.ID != b.ID {
			b.ParentID = src.ID
		}
		if b.ParentID != "" {
			b.ParentTime = &at
		} else {
			b.ParentTime = nil
		}
		b.Roles, b.Databases = newRoles, newDBs
		b.LastResetAt = &now
		b.UpdatedAt = now
		b.CurrentState, b.PendingState, b.StateChangedAt = "resetting", "ready", now

		spec := neonlocal.RestoreSpec{ProjectID: prj.ID, BranchID: b.ID, SourceBranchID: src.ID, BackupBranchID: backupID}
		if pit {
			spec.Target = at
		}
		eps := s.endpointsOfBranchLocked(b.ID)
		for _, ep := range eps {
			spec.Endpoints = append(spec.Endpoints, s.endpointSpecLocked(ep))
		}
		steps := []opStep{s.newOpLocked(prj.ID, b.ID, "", "create_branch", func(ctx context.Context) error {
			if err := s.dp.RestoreBranch(ctx, spec); err != nil {
				return err
			}
			return s.resyncPasswords(ctx, prj.ID, b.ID, resync)
		})}
		// Computes restart on the same port; RestoreBranch does the restart.
		for _, ep := range eps {
			steps = append(steps, s.newOpLocked(prj.ID, b.ID, ep.ID, "start_compute", nil))
		}
		return result{status: http.StatusOK, steps: steps,
			body: map[string]any{"branch": s.renderBranch(b), "operations": opsOf(steps)},
			done: func(bool) { s.settleBranchLocked(b.ID) }}, nil
	})
}

// sweep deletes expired branches and snapshots, as Neon does: like a DELETE,
// with the branch's computes and its data, recorded as operations
// (suspend_compute per endpoint, then delete_timeline). The default branch
// and protected branches are never deleted; a branch that cannot be deleted
// yet (children, project busy) is retried on the next sweep.
func (s *Server) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := s.now()
	changed := false
	for _, b := range s.st.Branches {
		if b.ExpiresAt == nil || b.ExpiresAt.After(now) {
			continue
		}
		if b.Protected || s.lockedLocked(b.ProjectID) != nil || s.deletableLocked(b) != nil {
			continue
		}
		s.log.Info("neonlocal: deleting expired branch", "project", b.ProjectID, "branch", b.ID, "expires_at", ts(*b.ExpiresAt))
		s.runStepsLocked(s.removeBranchLocked(b), nil)
		changed = true
	}
	for _, sn := range s.st.Snapshots {
		if sn.ExpiresAt == nil || sn.ExpiresAt.After(now) || s.lockedLocked(sn.ProjectID) != nil {
			continue
		}
		s.runStepsLocked(s.removeSnapshotLocked(sn), nil)
		changed = true
	}
	if changed {
		s.commitLocked()
	}
}
