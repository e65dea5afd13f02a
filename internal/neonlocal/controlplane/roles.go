package controlplane

import (
	"net/http"
)

// Roles and databases are read-only here: one role and one database per project, shared by
// its branches (see doc.go). neonctl reads them to build connection strings.

func (s *Server) branchRolesLocked(r *http.Request, p principal) (*project, []apiRole, []apiDatabase, error) {
	prj, err := s.projectLocked(p, r.PathValue("project_id"))
	if err != nil {
		return nil, nil, nil, err
	}
	b, err := s.branchLocked(prj, r.PathValue("branch_id"))
	if err != nil {
		return nil, nil, nil, err
	}
	roles, dbs := s.rolesAndDatabases(prj, b.ID)
	for i := range roles {
		roles[i].Password = "" // lists never carry passwords; reveal_password does
	}
	return prj, roles, dbs, nil
}

func (s *Server) listRoles(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, roles, _, err := s.branchRolesLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"roles": roles}, nil
}

func (s *Server) getRole(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, roles, _, err := s.branchRolesLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	for _, role := range roles {
		if role.Name == r.PathValue("role_name") {
			return http.StatusOK, map[string]any{"role": role}, nil
		}
	}
	return 0, nil, errf(http.StatusNotFound, "role %q not found", r.PathValue("role_name"))
}

func (s *Server) revealPassword(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prj, roles, _, err := s.branchRolesLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	for _, role := range roles {
		if role.Name == r.PathValue("role_name") {
			if !prj.StorePasswords {
				return 0, nil, errf(http.StatusPreconditionFailed, "passwords are not stored for this project")
			}
			return http.StatusOK, map[string]any{"password": prj.RolePassword}, nil
		}
	}
	return 0, nil, errf(http.StatusNotFound, "role %q not found", r.PathValue("role_name"))
}

func (s *Server) listDatabases(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _, dbs, err := s.branchRolesLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"databases": dbs}, nil
}

func (s *Server) getDatabase(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _, dbs, err := s.branchRolesLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	for _, db := range dbs {
		if db.Name == r.PathValue("database_name") {
			return http.StatusOK, map[string]any{"database": db}, nil
		}
	}
	return 0, nil, errf(http.StatusNotFound, "database %q not found", r.PathValue("database_name"))
}
