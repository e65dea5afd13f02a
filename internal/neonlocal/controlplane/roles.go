package controlplane

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
)

// Roles and databases belong to a branch, as on Neon: a project starts with one of each on its
// first branch, a child branch gets copies of its parent's (at its point in time), and the
// API creates, changes and deletes them per branch. Each change is an apply_config operation
// on the branch's computes whose data-plane work (neonlocal.DataPlane.ApplyConfig) makes it
// in the branch's PostgreSQL.

// maxPerBranch is Neon's limit of roles, and of databases, per branch ([DOC] manage/roles,
// manage/databases).
const maxPerBranch = 500

// defaultLists are a project's first role and database, in a branch that lists none yet (a
// state file from before branches had lists). They exist from the branch's start (Since zero).
func defaultLists(prj *project, created time.Time) ([]*pgRole, []*pgDatabase) {
	return []*pgRole{{Name: prj.RoleName, Password: prj.RolePassword, CreatedAt: created, UpdatedAt: created}},
		[]*pgDatabase{{ID: prj.DatabaseID, Name: prj.DatabaseName, Owner: prj.RoleName, CreatedAt: created, UpdatedAt: created}}
}

// listsLocked returns b's roles and databases, filling in the project's one of each for a
// branch of an older state file.
func (s *Server) listsLocked(b *branch) ([]*pgRole, []*pgDatabase) {
	if b.Roles == nil || b.Databases == nil {
		if prj := s.st.Projects[b.ProjectID]; prj != nil {
			roles, dbs := defaultLists(prj, b.CreatedAt)
			if b.Roles == nil {
				b.Roles = roles
			}
			if b.Databases == nil {
				b.Databases = dbs
			}
		}
	}
	return b.Roles, b.Databases
}

// copyLists copies roles and databases to a new branch (or a restored one) made at now from
// their branch's state at `at` (nil = its head): what came to be after that point is left
// out, as Neon leaves out of a point-in-time branch a role created after its point ([DOC]
// manage/roles). resync names the roles whose password was reset after the point: the copied
// data holds the older one, so it must be set again.
func copyLists(roles []*pgRole, dbs []*pgDatabase, at *time.Time, now time.Time) (outR []*pgRole, outD []*pgDatabase, resync []*pgRole) {
	outR, outD = []*pgRole{}, []*pgDatabase{}
	for _, r := range roles {
		if at != nil && r.Since.After(*at) {
			continue
		}
		c := *r
		c.CreatedAt, c.UpdatedAt = now, now
		outR = append(outR, &c)
		if at != nil && r.PasswordAt.After(*at) && !r.NoLogin {
			resync = append(resync, &c)
		}
	}
	for _, d := range dbs {
		if at != nil && d.Since.After(*at) {
			continue
		}
		c := *d
		c.CreatedAt, c.UpdatedAt = now, now
		outD = append(outD, &c)
	}
	return outR, outD, resync
}

// resyncPasswords sets again, in a branch's new data, the passwords reset after its point in
// time (the control plane's roles are the truth, as Neon applies them to its computes).
func (s *Server) resyncPasswords(ctx context.Context, projectID, branchID string, roles []*pgRole) error {
	for _, r := range roles {
		if err := s.dp.ApplyConfig(ctx, neonlocal.ConfigChange{ProjectID: projectID, BranchID: branchID,
			Kind: neonlocal.SetPassword, Role: r.Name, Password: r.Password}); err != nil {
			return err
		}
	}
	return nil
}

func findRole(roles []*pgRole, name string) *pgRole {
	for _, r := range roles {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func findDatabase(dbs []*pgDatabase, name string) *pgDatabase {
	for _, d := range dbs {
		if d.Name == name {
			return d
		}
	}
	return nil
}

func renderRole(b *branch, r *pgRole, withPassword bool) apiRole {
	out := apiRole{BranchID: b.ID, Name: r.Name, CreatedAt: ts(r.CreatedAt), UpdatedAt: ts(r.UpdatedAt)}
	if withPassword {
		out.Password = r.Password
	}
	return out
}

func renderDatabase(b *branch, d *pgDatabase) apiDatabase {
	return apiDatabase{ID: d.ID, BranchID: b.ID, Name: d.Name, OwnerName: d.Owner,
		CreatedAt: ts(d.CreatedAt), UpdatedAt: ts(d.UpdatedAt)}
}

// reservedRoles are names the API refuses: PostgreSQL's own (pg_*, public, none), Neon's
// system roles, and the emulator's superuser (pgctl.AdminUser).
var reservedRoles = []string{"public", "none", "neon_superuser", "cloud_admin", "neonguard_admin"}

// reservedDatabases exist in every cluster (and on every Neon compute) outside the API.
var reservedDatabases = []string{"postgres", "template0", "template1"}

// checkName applies PostgreSQL's limit (63 bytes, no NUL) and the reserved names.
func checkName(kind, name string, reserved []string) error {
	switch {
	case name == "":
		return errf(http.StatusBadRequest, "%s name is required", kind)
	case len(name) > 63:
		return errf(http.StatusBadRequest, "%s name cannot exceed 63 bytes", kind)
	case strings.ContainsRune(name, 0):
		return errf(http.StatusBadRequest, "%s name must not contain NUL", kind)
	case slices.Contains(reserved, strings.ToLower(name)) || (kind == "role" && strings.HasPrefix(strings.ToLower(name), "pg_")):
		return errf(http.StatusBadRequest, "%s name %q is reserved", kind, name)
	}
	return nil
}

// configStepsLocked are the operations of a role or database change on b, as Neon reports
// them: apply_config on each of the branch's computes, then suspend_compute on those that
// were idle (Neon wakes an idle compute for the change and suspends it afterwards). The
// change is made once, in the branch's PostgreSQL, by the first apply_config. A branch
// without computes gets one apply_config without endpoint_id (the data plane starts the
// branch's PostgreSQL for it).
func (s *Server) configStepsLocked(b *branch, ch neonlocal.ConfigChange) []opStep {
	ch.ProjectID, ch.BranchID = b.ProjectID, b.ID
	run := func(ctx context.Context) error { return s.dp.ApplyConfig(ctx, ch) }
	eps := s.endpointsOfBranchLocked(b.ID)
	// The read_write compute first: it is the one Neon applies the change through.
	slices.SortStableFunc(eps, func(x, y *endpoint) int {
		return boolRank(x.Type != "read_write") - boolRank(y.Type != "read_write")
	})
	if len(eps) == 0 {
		return []opStep{s.newOpLocked(b.ProjectID, b.ID, "", "apply_config", run)}
	}
	var steps, suspends []opStep
	for i, ep := range eps {
		var fn func(context.Context) error
		if i == 0 {
			fn = run
		}
		steps = append(steps, s.newOpLocked(b.ProjectID, b.ID, ep.ID, "apply_config", fn))
		if !ep.Disabled && s.renderEndpoint(ep).CurrentState == "idle" {
			suspends = append(suspends, s.newOpLocked(b.ProjectID, b.ID, ep.ID, "suspend_compute", nil))
		}
	}
	return append(steps, suspends...)
}

// configResultLocked is the answer to a role or database change on b: the change's
// operations (configStepsLocked) and the changed item, rendered by the caller, under key.
func (s *Server) configResultLocked(b *branch, status int, key string, item any, ch neonlocal.ConfigChange) result {
	steps := s.configStepsLocked(b, ch)
	return result{status: status, steps: steps, body: map[string]any{key: item, "operations": opsOf(steps)}}
}

func boolRank(v bool) int {
	if v {
		return 1
	}
	return 0
}

func (s *Server) listRoles(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOfLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	roles, _ := s.listsLocked(b)
	out := make([]apiRole, 0, len(roles))
	for _, role := range roles {
		out = append(out, renderRole(b, role, false)) // lists never carry passwords; reveal_password does
	}
	return http.StatusOK, map[string]any{"roles": out}, nil
}

func errRoleNotFound(name string) error {
	return errf(http.StatusNotFound, "role %q not found", name)
}

func errDatabaseNotFound(name string) error {
	return errf(http.StatusNotFound, "database %q not found", name)
}

func (s *Server) getRole(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOfLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	roles, _ := s.listsLocked(b)
	role := findRole(roles, r.PathValue("role_name"))
	if role == nil {
		return 0, nil, errRoleNotFound(r.PathValue("role_name"))
	}
	return http.StatusOK, map[string]any{"role": renderRole(b, role, false)}, nil
}

// revealPassword answers the role's password, or 412 when the project does not store
// passwords (spec). A NOLOGIN role has none.
func (s *Server) revealPassword(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prj, b, err := s.branchOfLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	roles, _ := s.listsLocked(b)
	role := findRole(roles, r.PathValue("role_name"))
	if role == nil {
		return 0, nil, errRoleNotFound(r.PathValue("role_name"))
	}
	if !prj.StorePasswords {
		return 0, nil, errf(http.StatusPreconditionFailed, "passwords are not stored for this project")
	}
	if role.NoLogin {
		return 0, nil, errf(http.StatusBadRequest, "role %q cannot log in and has no password", role.Name)
	}
	return http.StatusOK, map[string]any{"password": role.Password}, nil
}

// createRole is POST .../roles {"role": {"name", "no_login"?}} → 201 {role (with its
// password, the only answer that carries it unless the project stores passwords), operations}.
func (s *Server) createRole(r *http.Request, p principal) (int, any, error) {
	var req struct {
		Role *struct {
			Name    string `json:"name"`
			NoLogin bool   `json:"no_login"`
		} `json:"role"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Role == nil {
		return 0, nil, errf(http.StatusBadRequest, "role is required")
	}
	if err := checkName("role", req.Role.Name, reservedRoles); err != nil {
		return 0, nil, err
	}
	return s.mutate(func() (result, error) {
		_, b, err := s.mutableBranchLocked(r, p)
		if err != nil {
			return result{}, err
		}
		roles, _ := s.listsLocked(b)
		if findRole(roles, req.Role.Name) != nil {
			return result{}, errf(http.StatusConflict, "role %q already exists", req.Role.Name)
		}
		if len(roles) >= maxPerBranch {
			return result{}, errf(http.StatusUnprocessableEntity, "roles limit exceeded: a branch can have at most %d roles", maxPerBranch)
		}
		now := s.now()
		role := &pgRole{Name: req.Role.Name, NoLogin: req.Role.NoLogin, Since: now, CreatedAt: now, UpdatedAt: now}
		if !role.NoLogin {
			role.Password = newPassword()
		}
		b.Roles = append(roles, role)
		return s.configResultLocked(b, http.StatusCreated, "role", renderRole(b, role, true),
			neonlocal.ConfigChange{Kind: neonlocal.CreateRole, Role: role.Name, Password: role.Password, NoLogin: role.NoLogin}), nil
	})
}

// deleteRole is DELETE .../roles/{role_name} → 200 {role, operations}, 204 when the role does
// not exist. A role that owns a database cannot be deleted ([DOC] manage/roles): 422.
func (s *Server) deleteRole(r *http.Request, p principal) (int, any, error) {
	name := r.PathValue("role_name")
	return s.mutate(func() (result, error) {
		_, b, err := s.mutableBranchLocked(r, p)
		if err != nil {
			return result{}, err
		}
		roles, dbs := s.listsLocked(b)
		role := findRole(roles, name)
		if role == nil {
			return result{status: http.StatusNoContent}, nil
		}
		for _, d := range dbs {
			if d.Owner == name {
				return result{}, errf(http.StatusUnprocessableEntity,
					"role %q owns database %q: delete the database or change its owner first", name, d.Name)
			}
		}
		b.Roles = slices.DeleteFunc(roles, func(x *pgRole) bool { return x == role })
		return s.configResultLocked(b, http.StatusOK, "role", renderRole(b, role, false),
			neonlocal.ConfigChange{Kind: neonlocal.DropRole, Role: name}), nil
	})
}

// resetPassword is POST .../roles/{role_name}/reset_password → 200 {role with the new
// password, operations}. The old password works until the operations finish (spec).
func (s *Server) resetPassword(r *http.Request, p principal) (int, any, error) {
	name := r.PathValue("role_name")
	return s.mutate(func() (result, error) {
		_, b, err := s.mutableBranchLocked(r, p)
		if err != nil {
			return result{}, err
		}
		roles, _ := s.listsLocked(b)
		role := findRole(roles, name)
		if role == nil {
			return result{}, errRoleNotFound(name)
		}
		if role.NoLogin {
			return result{}, errf(http.StatusBadRequest, "role %q cannot log in and has no password", name)
		}
		now := s.now()
		role.Password, role.PasswordAt, role.UpdatedAt = newPassword(), now, now
		return s.configResultLocked(b, http.StatusOK, "role", renderRole(b, role, true),
			neonlocal.ConfigChange{Kind: neonlocal.SetPassword, Role: name, Password: role.Password}), nil
	})
}

func (s *Server) listDatabases(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOfLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	_, dbs := s.listsLocked(b)
	out := make([]apiDatabase, 0, len(dbs))
	for _, d := range dbs {
		out = append(out, renderDatabase(b, d))
	}
	return http.StatusOK, map[string]any{"databases": out}, nil
}

func (s *Server) getDatabase(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOfLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	_, dbs := s.listsLocked(b)
	d := findDatabase(dbs, r.PathValue("database_name"))
	if d == nil {
		return 0, nil, errDatabaseNotFound(r.PathValue("database_name"))
	}
	return http.StatusOK, map[string]any{"database": renderDatabase(b, d)}, nil
}

type databaseFields struct {
	Name      *string `json:"name"`
	OwnerName *string `json:"owner_name"`
}

func errDatabaseExists(name string) error {
	return errf(http.StatusConflict, "database %q already exists", name)
}

// checkOwner: a database's owner must be a role of the branch.
func checkOwner(roles []*pgRole, owner string) error {
	if findRole(roles, owner) == nil {
		return errf(http.StatusBadRequest, "owner role %q does not exist in the branch", owner)
	}
	return nil
}

// createDatabase is POST .../databases {"database": {"name", "owner_name"}} (both required,
// spec) → 201 {database, operations}.
func (s *Server) createDatabase(r *http.Request, p principal) (int, any, error) {
	var req struct {
		Database *databaseFields `json:"database"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Database == nil {
		return 0, nil, errf(http.StatusBadRequest, "database is required")
	}
	if req.Database.Name == nil || req.Database.OwnerName == nil || *req.Database.OwnerName == "" {
		return 0, nil, errf(http.StatusBadRequest, "database.name and database.owner_name are required")
	}
	name, owner := *req.Database.Name, *req.Database.OwnerName
	if err := checkName("database", name, reservedDatabases); err != nil {
		return 0, nil, err
	}
	return s.mutate(func() (result, error) {
		_, b, err := s.mutableBranchLocked(r, p)
		if err != nil {
			return result{}, err
		}
		roles, dbs := s.listsLocked(b)
		if findDatabase(dbs, name) != nil {
			return result{}, errDatabaseExists(name)
		}
		if err := checkOwner(roles, owner); err != nil {
			return result{}, err
		}
		if len(dbs) >= maxPerBranch {
			return result{}, errf(http.StatusUnprocessableEntity, "databases limit exceeded: a branch can have at most %d databases", maxPerBranch)
		}
		now := s.now()
		d := &pgDatabase{ID: s.st.NextDatabaseID, Name: name, Owner: owner, Since: now, CreatedAt: now, UpdatedAt: now}
		s.st.NextDatabaseID++
		b.Databases = append(dbs, d)
		return s.configResultLocked(b, http.StatusCreated, "database", renderDatabase(b, d),
			neonlocal.ConfigChange{Kind: neonlocal.CreateDatabase, Database: name, Owner: owner}), nil
	})
}

// updateDatabase is PATCH .../databases/{database_name} {"database": {"name"?, "owner_name"?}}
// → 200 {database, operations}: a rename and/or a new owner.
func (s *Server) updateDatabase(r *http.Request, p principal) (int, any, error) {
	var req struct {
		Database *databaseFields `json:"database"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Database == nil {
		return 0, nil, errf(http.StatusBadRequest, "database is required")
	}
	cur := r.PathValue("database_name")
	newName, newOwner := ptrOr(req.Database.Name, ""), ptrOr(req.Database.OwnerName, "")
	if newName != "" && newName != cur {
		if err := checkName("database", newName, reservedDatabases); err != nil {
			return 0, nil, err
		}
	}
	return s.mutate(func() (result, error) {
		_, b, err := s.mutableBranchLocked(r, p)
		if err != nil {
			return result{}, err
		}
		roles, dbs := s.listsLocked(b)
		d := findDatabase(dbs, cur)
		if d == nil {
			return result{}, errDatabaseNotFound(cur)
		}
		if newName == cur {
			newName = ""
		}
		if newName != "" && findDatabase(dbs, newName) != nil {
			return result{}, errDatabaseExists(newName)
		}
		if newOwner == d.Owner {
			newOwner = ""
		}
		if newOwner != "" {
			if err := checkOwner(roles, newOwner); err != nil {
				return result{}, err
			}
		}
		if newName == "" && newOwner == "" { // nothing to change: no operation
			return result{status: http.StatusOK,
				body: map[string]any{"database": renderDatabase(b, d), "operations": []apiOperation{}}}, nil
		}
		now := s.now()
		if newName != "" {
			d.Name = newName
		}
		if newOwner != "" {
			d.Owner = newOwner
		}
		d.UpdatedAt = now
		return s.configResultLocked(b, http.StatusOK, "database", renderDatabase(b, d),
			neonlocal.ConfigChange{Kind: neonlocal.AlterDatabase, Database: cur, NewName: newName, Owner: newOwner}), nil
	})
}

// deleteDatabase is DELETE .../databases/{database_name} → 200 {database, operations}, 204
// when it does not exist. Its sessions end (DROP DATABASE ... WITH (FORCE)).
func (s *Server) deleteDatabase(r *http.Request, p principal) (int, any, error) {
	name := r.PathValue("database_name")
	return s.mutate(func() (result, error) {
		_, b, err := s.mutableBranchLocked(r, p)
		if err != nil {
			return result{}, err
		}
		_, dbs := s.listsLocked(b)
		d := findDatabase(dbs, name)
		if d == nil {
			return result{status: http.StatusNoContent}, nil
		}
		b.Databases = slices.DeleteFunc(dbs, func(x *pgDatabase) bool { return x == d })
		return s.configResultLocked(b, http.StatusOK, "database", renderDatabase(b, d),
			neonlocal.ConfigChange{Kind: neonlocal.DropDatabase, Database: name}), nil
	})
}
