package controlplane

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

const maxRetentionSpec = 2592000 // spec maximum of history_retention_seconds

// regions are the region_id values Neon accepts, from https://neon.com/docs/introduction/regions
// (updated 2026-01-28: eight AWS regions, and three Azure ones that are deprecated but still
// listed). The spec only gives the format, "aws-us-east-1" (neon-openapi-v2 ProjectCreateRequest
// region_id), and points to GET /regions (reference/neon-api.md §10) for the list.
const regions = "aws-us-east-1, aws-us-east-2, aws-us-west-2, aws-eu-central-1, aws-eu-west-2, " +
	"aws-ap-southeast-1, aws-ap-southeast-2, aws-sa-east-1, azure-eastus2, azure-westus3, azure-gwc"

// checkRegion answers an unknown region_id with Neon's 400, naming the ones it knows.
func checkRegion(id string) error {
	if !slices.Contains(strings.Split(regions, ", "), id) {
		return errf(http.StatusBadRequest, "region_id %q is not a supported region; supported regions: %s", id, regions)
	}
	return nil
}

// result is what a mutating handler produces under s.mu.
type result struct {
	status int
	body   any
	steps  []opStep
	done   func(failed bool)
}

// mutate runs fn under s.mu, persists the state, then starts the
// operations. fn must validate before it changes anything, so an error
// leaves the state untouched.
func (s *Server) mutate(fn func() (result, error)) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, nil, &apiError{status: http.StatusServiceUnavailable, msg: "emulator is shutting down", retryAfter: 1}
	}
	res, err := fn()
	if err != nil {
		return 0, nil, err
	}
	s.runStepsLocked(res.steps, res.done)
	if err := s.saveLocked(); err != nil {
		return 0, nil, fmt.Errorf("commit: %w", err)
	}
	return res.status, res.body, nil
}

// projectLocked finds a project the caller may see; other orgs' projects
// are reported missing so their existence is not revealed.
func (s *Server) projectLocked(p principal, id string) (*project, error) {
	prj := s.st.Projects[id]
	if prj == nil || !p.seesProject(prj) {
		return nil, errf(http.StatusNotFound, "project not found")
	}
	return prj, nil
}

// mutableProjectLocked is the preamble of a mutating handler: the request's project, which the
// caller may see and which no running operation locks (423 otherwise, as on Neon).
func (s *Server) mutableProjectLocked(p principal, r *http.Request) (*project, error) {
	prj, err := s.projectLocked(p, r.PathValue("project_id"))
	if err != nil {
		return nil, err
	}
	if err := s.lockedLocked(prj.ID); err != nil {
		return nil, err
	}
	return prj, nil
}

// resolveOrgLocked picks the org of a call: an org key infers it, the
// personal key (member of two orgs) must name it.
func (s *Server) resolveOrgLocked(p principal, orgID string) (string, error) {
	if !p.personal {
		if orgID != "" && orgID != p.orgID {
			return "", errf(http.StatusNotFound, "organization not found")
		}
		return p.orgID, nil
	}
	if orgID == "" {
		return "", errf(http.StatusBadRequest, "org_id is required, you have access to more than one organization")
	}
	if orgID != s.st.FreeOrgID && orgID != s.st.PaidOrgID {
		return "", errf(http.StatusNotFound, "organization not found")
	}
	return orgID, nil
}

func checkRetention(pl plan, v int) error {
	if v < 0 || v > maxRetentionSpec {
		return errf(http.StatusBadRequest, "history_retention_seconds must be between 0 and %d", maxRetentionSpec)
	}
	if v > pl.MaxRetention {
		return errf(http.StatusBadRequest, "history_retention_seconds %d exceeds the maximum of %d allowed by the organization plan", v, pl.MaxRetention)
	}
	return nil
}

func checkCompute(pl plan, minCU, maxCU float64, suspend int64) error {
	if minCU < 0.25 || maxCU < 0.25 {
		return errf(http.StatusBadRequest, "autoscaling limits must be at least 0.25 CU")
	}
	if minCU > maxCU {
		return errf(http.StatusBadRequest, "autoscaling_limit_min_cu (%g) must not exceed autoscaling_limit_max_cu (%g)", minCU, maxCU)
	}
	if maxCU > pl.MaxCU {
		return errf(http.StatusBadRequest, "autoscaling_limit_max_cu %g exceeds the maximum of %g CU allowed by the organization plan", maxCU, pl.MaxCU)
	}
	switch {
	case suspend < -1 || suspend > 604800:
		return errf(http.StatusBadRequest, "suspend_timeout_seconds must be between -1 and 604800")
	case suspend == -1 && !pl.AllowNeverSuspend:
		return errf(http.StatusBadRequest, "disabling scale to zero is not allowed by the organization plan")
	case suspend > 0 && suspend < pl.MinSuspend:
		return errf(http.StatusBadRequest, "suspend_timeout_seconds must be at least %d on the organization plan", pl.MinSuspend)
	}
	return nil
}

type defaultEndpointSettingsReq struct {
	PgSettings     map[string]string `json:"pg_settings"`
	MinCU          *float64          `json:"autoscaling_limit_min_cu"`
	MaxCU          *float64          `json:"autoscaling_limit_max_cu"`
	SuspendTimeout *int64            `json:"suspend_timeout_seconds"`
}

func (d *defaultEndpointSettingsReq) applyTo(dst *endpointDefaults) {
	if d == nil {
		return
	}
	if d.PgSettings != nil {
		dst.PgSettings = copyMap(d.PgSettings)
	}
	if d.MinCU != nil {
		dst.MinCU = *d.MinCU
	}
	if d.MaxCU != nil {
		dst.MaxCU = *d.MaxCU
	}
	if d.SuspendTimeout != nil {
		dst.SuspendTimeout = *d.SuspendTimeout
	}
}

// normalizeSettings checks that settings is an object and makes sure it
// carries a quota (Neon always answers with one).
func normalizeSettings(raw json.RawMessage) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, errf(http.StatusBadRequest, "settings must be an object: %v", err)
		}
	}
	if _, ok := m["quota"]; !ok {
		m["quota"] = json.RawMessage(`{}`)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode settings: %w", err)
	}
	return b, nil
}

// projectCreateReq is the body of POST /projects.
type projectCreateReq struct {
	Project *projectCreateFields `json:"project"`
}

type projectCreateFields struct {
	Name                    *string                     `json:"name"`
	RegionID                string                      `json:"region_id"`
	PgVersion               *int                        `json:"pg_version"`
	OrgID                   string                      `json:"org_id"`
	StorePasswords          *bool                       `json:"store_passwords"`
	HistoryRetention        *int                        `json:"history_retention_seconds"`
	Provisioner             string                      `json:"provisioner"`
	MinCU                   *float64                    `json:"autoscaling_limit_min_cu"`
	MaxCU                   *float64                    `json:"autoscaling_limit_max_cu"`
	DefaultEndpointSettings *defaultEndpointSettingsReq `json:"default_endpoint_settings"`
	Settings                json.RawMessage             `json:"settings"`
	Branch                  *struct {
		Name         string            `json:"name"`
		RoleName     string            `json:"role_name"`
		DatabaseName string            `json:"database_name"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"branch"`
}

func (s *Server) createProject(r *http.Request, p principal) (int, any, error) {
	var req projectCreateReq
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Project == nil {
		return 0, nil, errf(http.StatusBadRequest, "project is required")
	}
	rp := req.Project
	if rp.RegionID != "" {
		if err := checkRegion(rp.RegionID); err != nil {
			return 0, nil, err
		}
	}
	if err := s.disk.refresh(r.Context()); err != nil {
		return 0, nil, err
	}
	if p.projectID != "" {
		return 0, nil, errProjectKey()
	}
	return s.mutate(func() (result, error) {
		orgID, err := s.resolveOrgLocked(p, rp.OrgID)
		if err != nil {
			return result{}, err
		}
		now := s.now()
		prj, err := s.newProject(orgID, rp, now)
		if err != nil {
			return result{}, err
		}
		branchName := "main"
		var annotations map[string]string
		if bq := rp.Branch; bq != nil {
			branchName = cmp.Or(bq.Name, branchName)
			annotations = bq.Annotations
		}
		// Last check before the state changes: the disk has room for one more cluster.
		if err := s.disk.admit(); err != nil {
			return result{}, err
		}
		prj.DatabaseID = s.st.NextDatabaseID
		s.st.NextDatabaseID++

		br := &branch{
			ID: newBranchID(), ProjectID: prj.ID, Name: branchName, Default: true, InitSource: "parent-data",
			CurrentState: "init", PendingState: "ready", StateChangedAt: now, CreatedAt: now, UpdatedAt: now,
			Annotations: copyMap(annotations),
		}
		br.Roles, br.Databases = defaultLists(prj, now)
		if len(annotations) > 0 {
			br.AnnotatedAt = now
		}
		port, err := s.allocPortLocked()
		if err != nil {
			s.disk.release()
			return result{}, err
		}
		d := prj.DefaultEndpoint
		ep := &endpoint{
			ID: newEndpointID(), ProjectID: prj.ID, BranchID: br.ID, Type: "read_write",
			MinCU: d.MinCU, MaxCU: d.MaxCU, SuspendTimeout: d.SuspendTimeout, PgSettings: copyMap(d.PgSettings),
			Port: port, CurrentState: "init", PendingState: "active", CreatedAt: now, UpdatedAt: now,
		}
		s.st.Projects[prj.ID] = prj
		s.st.Branches[br.ID] = br
		s.st.Endpoints[ep.ID] = ep
		return s.createdProjectLocked(prj, br, ep), nil
	})
}

// newProject is a project of org from a create request: Neon's defaults, the request's values,
// and Neon's checks of them (major, retention, compute range, settings, name).
func (s *Server) newProject(orgID string, rp *projectCreateFields, now time.Time) (*project, error) {
	pl := s.planOf(orgID)
	prj := &project{
		ID: newProjectID(), OrgID: orgID, RegionID: cmp.Or(rp.RegionID, "aws-us-east-2"),
		Provisioner: cmp.Or(rp.Provisioner, "k8s-neonvm"), StorePasswords: true, HistoryRetention: 86400,
		DefaultEndpoint: endpointDefaults{MinCU: 0.25, MaxCU: 0.25},
		DatabaseName:    "neondb", RolePassword: newPassword(),
		CreationSource: "console", CreatedAt: now, UpdatedAt: now,
	}
	var err error
	if prj.PgVersion, err = s.projectPGVersion(rp.PgVersion); err != nil {
		return nil, err
	}
	if rp.StorePasswords != nil {
		prj.StorePasswords = *rp.StorePasswords
	}
	if rp.HistoryRetention != nil {
		prj.HistoryRetention = *rp.HistoryRetention
	}
	if prj.HistoryRetention > pl.MaxRetention && rp.HistoryRetention == nil {
		prj.HistoryRetention = pl.MaxRetention
	}
	if err := checkRetention(pl, prj.HistoryRetention); err != nil {
		return nil, err
	}
	if rp.MinCU != nil {
		prj.DefaultEndpoint.MinCU = *rp.MinCU
	}
	if rp.MaxCU != nil {
		prj.DefaultEndpoint.MaxCU = *rp.MaxCU
	}
	rp.DefaultEndpointSettings.applyTo(&prj.DefaultEndpoint)
	d := prj.DefaultEndpoint
	if err := checkCompute(pl, d.MinCU, d.MaxCU, d.SuspendTimeout); err != nil {
		return nil, err
	}
	if prj.Settings, err = normalizeSettings(rp.Settings); err != nil {
		return nil, err
	}
	prj.Name = prj.ID
	if rp.Name != nil {
		if l := len(*rp.Name); l < 1 || l > 256 {
			return nil, errf(http.StatusBadRequest, "name must be 1..256 characters")
		}
		prj.Name = *rp.Name
	}
	if bq := rp.Branch; bq != nil {
		prj.DatabaseName = cmp.Or(bq.DatabaseName, prj.DatabaseName)
		prj.RoleName = bq.RoleName
	}
	prj.RoleName = cmp.Or(prj.RoleName, prj.DatabaseName+"_owner")
	return prj, nil
}

// createdProjectLocked adds the operations of a new project (its timeline, its compute) and
// renders the 201 answer.
func (s *Server) createdProjectLocked(prj *project, br *branch, ep *endpoint) result {
	bspec := s.branchSpecLocked(br, nil)
	espec := s.endpointSpecLocked(ep)
	steps := []opStep{
		s.newOpLocked(prj.ID, br.ID, "", "create_timeline", func(ctx context.Context) error { return s.dp.CreateBranch(ctx, bspec) }),
		s.newOpLocked(prj.ID, br.ID, ep.ID, "start_compute", func(ctx context.Context) error { return s.dp.StartEndpoint(ctx, espec) }),
	}
	roles, dbs := s.rolesAndDatabases(prj, br)
	body := map[string]any{
		"project":         s.renderProject(prj),
		"connection_uris": []apiConnectionDetails{s.connectionDetails(br.Roles[0], br.Databases[0].Name, ep)},
		"roles":           roles,
		"databases":       dbs,
		"operations":      opsOf(steps),
		"branch":          s.renderBranch(br),
		"endpoints":       []apiEndpoint{s.renderEndpoint(ep)},
	}
	return result{status: http.StatusCreated, body: body, steps: steps, done: func(bool) {
		s.settleBranchLocked(br.ID)
		s.settleEndpointLocked(ep.ID)
		s.disk.release()
	}}
}

// settleBranchLocked ends a transient branch state once its operations ran.
func (s *Server) settleBranchLocked(id string) {
	if b := s.st.Branches[id]; b != nil && b.PendingState != "" {
		b.CurrentState, b.PendingState, b.StateChangedAt = b.PendingState, "", s.now()
	}
}

// settleEndpointLocked ends a transient endpoint state once its operations ran.
func (s *Server) settleEndpointLocked(id string) {
	e := s.st.Endpoints[id]
	if e == nil || e.PendingState == "" {
		return
	}
	now := s.now()
	e.CurrentState, e.PendingState, e.UpdatedAt = e.PendingState, "", now
	switch e.CurrentState {
	case "active":
		e.StartedAt, e.SuspendedAt = &now, nil
	case "idle":
		e.SuspendedAt = &now
	}
	// Started now, or active until now.
	s.touchProjectLocked(e.ProjectID, now)
}

// touchProjectLocked records that a compute of the project was active at t
// (compute_last_active_at).
func (s *Server) touchProjectLocked(projectID string, t time.Time) {
	if prj := s.st.Projects[projectID]; prj != nil && (prj.ComputeLastActiveAt == nil || t.After(*prj.ComputeLastActiveAt)) {
		prj.ComputeLastActiveAt = &t
	}
}

func (s *Server) listProjects(r *http.Request, p principal) (int, any, error) {
	q := r.URL.Query()
	limit, err := intParam(r, "limit", 10, 1, 400)
	if err != nil {
		return 0, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	orgID, err := s.resolveOrgLocked(p, q.Get("org_id"))
	if err != nil {
		return 0, nil, err
	}
	search := strings.ToLower(q.Get("search"))
	cursor := q.Get("cursor")
	var ids []string
	for id, prj := range s.st.Projects {
		if prj.OrgID != orgID || !p.seesProject(prj) || (cursor != "" && id <= cursor) {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(prj.Name), search) && !strings.Contains(id, search) {
			continue
		}
		ids = append(ids, id)
	}
	// Ordered by id so that "cursor = last id" pages deterministically.
	slices.Sort(ids)
	if len(ids) > limit {
		ids = ids[:limit]
	}
	items := []apiProjectListItem{}
	for _, id := range ids {
		items = append(items, s.renderProjectListItem(s.st.Projects[id]))
	}
	next := cursor
	if len(ids) > 0 {
		next = ids[len(ids)-1]
	}
	return http.StatusOK, withCursor(map[string]any{
		"projects":     items,
		"applications": map[string]any{},
		"integrations": map[string]any{},
	}, next), nil
}

func (s *Server) getProject(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prj, err := s.projectLocked(p, r.PathValue("project_id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"project": s.renderProject(prj)}, nil
}

func (s *Server) updateProject(r *http.Request, p principal) (int, any, error) {
	var req struct {
		Project *struct {
			Name                    *string                     `json:"name"`
			Settings                json.RawMessage             `json:"settings"`
			DefaultEndpointSettings *defaultEndpointSettingsReq `json:"default_endpoint_settings"`
			HistoryRetention        *int                        `json:"history_retention_seconds"`
		} `json:"project"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Project == nil {
		return 0, nil, errf(http.StatusBadRequest, "project is required")
	}
	rp := req.Project
	return s.mutate(func() (result, error) {
		prj, err := s.mutableProjectLocked(p, r)
		if err != nil {
			return result{}, err
		}
		pl := s.planOf(prj.OrgID)
		if rp.Name != nil && (len(*rp.Name) < 1 || len(*rp.Name) > 256) {
			return result{}, errf(http.StatusBadRequest, "name must be 1..256 characters")
		}
		if rp.HistoryRetention != nil {
			if err := checkRetention(pl, *rp.HistoryRetention); err != nil {
				return result{}, err
			}
		}
		d := prj.DefaultEndpoint
		d.PgSettings = copyMap(d.PgSettings)
		rp.DefaultEndpointSettings.applyTo(&d)
		if err := checkCompute(pl, d.MinCU, d.MaxCU, d.SuspendTimeout); err != nil {
			return result{}, err
		}
		var settings json.RawMessage
		if len(rp.Settings) > 0 {
			if settings, err = mergeSettings(prj.Settings, rp.Settings); err != nil {
				return result{}, err
			}
		}
		// Validation done; apply.
		var steps []opStep
		if rp.Name != nil {
			prj.Name = *rp.Name
		}
		if rp.HistoryRetention != nil && *rp.HistoryRetention != prj.HistoryRetention {
			prj.HistoryRetention = *rp.HistoryRetention
			steps = append(steps, s.newOpLocked(prj.ID, "", "", "apply_storage_config", nil))
		}
		prj.DefaultEndpoint = d
		if settings != nil {
			prj.Settings = settings
			steps = append(steps, s.newOpLocked(prj.ID, "", "", "apply_config", nil))
		}
		prj.UpdatedAt = s.now()
		return result{status: http.StatusOK, steps: steps, body: map[string]any{
			"project": s.renderProject(prj), "operations": opsOf(steps),
		}}, nil
	})
}

// mergeSettings overlays the given top-level settings keys on the current ones.
func mergeSettings(cur, upd json.RawMessage) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(cur) > 0 {
		if err := json.Unmarshal(cur, &m); err != nil {
			return nil, fmt.Errorf("decode stored settings: %w", err)
		}
	}
	u := map[string]json.RawMessage{}
	if err := json.Unmarshal(upd, &u); err != nil {
		return nil, errf(http.StatusBadRequest, "settings must be an object: %v", err)
	}
	for k, v := range u {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode settings: %w", err)
	}
	return normalizeSettings(b)
}

func (s *Server) deleteProject(r *http.Request, p principal) (int, any, error) {
	if p.projectID != "" {
		return 0, nil, errProjectKey()
	}
	return s.mutate(func() (result, error) {
		prj, err := s.mutableProjectLocked(p, r)
		if err != nil {
			return result{}, err
		}
		body := map[string]any{"project": s.renderProject(prj)}
		s.removeProjectLocked(prj.ID)
		id := prj.ID
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.dp.DeleteProject(s.ctx, id); err != nil {
				s.log.Error("neonlocal: data plane delete project", "project", id, "err", err)
			}
		}()
		return result{status: http.StatusOK, body: body}, nil
	})
}

func (s *Server) removeProjectLocked(id string) {
	delete(s.st.Projects, id)
	delete(s.st.Operations, id)
	for k, b := range s.st.Branches {
		if b.ProjectID == id {
			delete(s.st.Branches, k)
		}
	}
	for k, e := range s.st.Endpoints {
		if e.ProjectID == id {
			delete(s.st.Endpoints, k)
		}
	}
	for k, sn := range s.st.Snapshots {
		if sn.ProjectID == id {
			delete(s.st.Snapshots, k)
		}
	}
}

func (s *Server) connectionURI(r *http.Request, p principal) (int, any, error) {
	q := r.URL.Query()
	dbName, roleName := q.Get("database_name"), q.Get("role_name")
	if dbName == "" || roleName == "" {
		return 0, nil, errf(http.StatusBadRequest, "database_name and role_name are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prj, err := s.projectLocked(p, r.PathValue("project_id"))
	if err != nil {
		return 0, nil, err
	}
	branchID := q.Get("branch_id")
	if branchID == "" {
		branchID = s.defaultBranchLocked(prj.ID).ID
	}
	b := s.st.Branches[branchID]
	if b == nil || b.ProjectID != prj.ID {
		return 0, nil, errf(http.StatusNotFound, "branch not found")
	}
	var ep *endpoint
	if id := q.Get("endpoint_id"); id != "" {
		ep = s.st.Endpoints[id]
		if ep == nil || ep.BranchID != b.ID {
			return 0, nil, errf(http.StatusNotFound, "endpoint not found")
		}
	} else if ep = s.readWriteEndpointLocked(b.ID); ep == nil {
		return 0, nil, errf(http.StatusNotFound, "branch %s has no read_write endpoint", b.ID)
	}
	roles, dbs := s.listsLocked(b)
	role := findRole(roles, roleName)
	if role == nil {
		return 0, nil, errRoleNotFound(roleName)
	}
	if findDatabase(dbs, dbName) == nil {
		return 0, nil, errDatabaseNotFound(dbName)
	}
	// pooled: the same host and port for now (no pgbouncer in the emulator).
	return http.StatusOK, map[string]string{"uri": s.uriOf(role, dbName, ep)}, nil
}

func (s *Server) defaultBranchLocked(projectID string) *branch {
	for _, b := range s.st.Branches {
		if b.ProjectID == projectID && b.Default {
			return b
		}
	}
	return &branch{}
}
