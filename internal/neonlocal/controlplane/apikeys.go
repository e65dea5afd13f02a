package controlplane

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// apiKey is an organization API key made through POST /organizations/{org_id}/api_keys:
// org-wide, or project-scoped when ProjectID is set. The two org keys the emulator starts
// with (Credentials) are not listed among them.
type apiKey struct {
	ID        int64     `json:"id"`
	Key       string    `json:"key"`
	Name      string    `json:"name"`
	OrgID     string    `json:"org_id"`
	ProjectID string    `json:"project_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// errProjectKey is the refusal of what a project-scoped key may not do: create or delete
// projects, or act on its organization ([DOC] manage/api-keys).
func errProjectKey() error {
	return errf(http.StatusForbidden, "not allowed for project-scoped API keys")
}

// errOrgKeyManagement: API keys are made and revoked with the personal key of an org admin.
func errOrgKeyManagement() error {
	return errf(http.StatusForbidden, "managing organization API keys requires a personal API key; not allowed for organization API keys")
}

type apiKeyCreated struct {
	ID        int64  `json:"id"`
	Key       string `json:"key"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
	CreatedBy string `json:"created_by"`
	ProjectID string `json:"project_id,omitempty"`
}

type apiKeyCreator struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image string `json:"image"`
}

type apiKeyListed struct {
	ID               int64         `json:"id"`
	Name             string        `json:"name"`
	CreatedAt        string        `json:"created_at"`
	CreatedBy        apiKeyCreator `json:"created_by"`
	LastUsedFromAddr string        `json:"last_used_from_addr"`
	ProjectID        string        `json:"project_id,omitempty"`
}

type apiKeyRevoked struct {
	ID               int64  `json:"id"`
	Name             string `json:"name"`
	CreatedAt        string `json:"created_at"`
	CreatedBy        string `json:"created_by"`
	LastUsedFromAddr string `json:"last_used_from_addr"`
	Revoked          bool   `json:"revoked"`
	ProjectID        string `json:"project_id,omitempty"`
}

// createOrgAPIKey is POST /organizations/{org_id}/api_keys {key_name, project_id?}: the key
// is shown once. project_id must be a project of the org.
func (s *Server) createOrgAPIKey(r *http.Request, p principal) (int, any, error) {
	if !p.personal {
		return 0, nil, errOrgKeyManagement()
	}
	var req struct {
		KeyName   string `json:"key_name"`
		ProjectID string `json:"project_id"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.KeyName == "" || len(req.KeyName) > 64 {
		return 0, nil, errf(http.StatusBadRequest, "key_name must be 1..64 characters")
	}
	return s.mutate(func() (result, error) {
		orgID, err := s.orgLocked(p, r.PathValue("org_id"))
		if err != nil {
			return result{}, err
		}
		if req.ProjectID != "" {
			if prj := s.st.Projects[req.ProjectID]; prj == nil || prj.OrgID != orgID {
				return result{}, errf(http.StatusNotFound, "project not found")
			}
		}
		s.st.NextAPIKeyID++
		k := &apiKey{ID: s.st.NextAPIKeyID, Key: newAPIKey(), Name: req.KeyName, OrgID: orgID,
			ProjectID: req.ProjectID, CreatedAt: s.now().Truncate(time.Second)}
		s.st.APIKeys = append(s.st.APIKeys, k)
		return result{status: http.StatusOK, body: apiKeyCreated{ID: k.ID, Key: k.Key, Name: k.Name,
			CreatedAt: ts(k.CreatedAt), CreatedBy: s.st.UserID, ProjectID: k.ProjectID}}, nil
	})
}

// listOrgAPIKeys is GET /organizations/{org_id}/api_keys: the keys made for the org.
func (s *Server) listOrgAPIKeys(r *http.Request, p principal) (int, any, error) {
	if !p.personal {
		return 0, nil, errOrgKeyManagement()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	orgID, err := s.orgLocked(p, r.PathValue("org_id"))
	if err != nil {
		return 0, nil, err
	}
	out := []apiKeyListed{}
	for _, k := range s.st.APIKeys {
		if k.OrgID == orgID {
			out = append(out, apiKeyListed{ID: k.ID, Name: k.Name, CreatedAt: ts(k.CreatedAt),
				CreatedBy: apiKeyCreator{ID: s.st.UserID, Name: userFirstName + " " + userLastName},
				ProjectID: k.ProjectID})
		}
	}
	return http.StatusOK, out, nil
}

// revokeOrgAPIKey is DELETE /organizations/{org_id}/api_keys/{key_id}: the key stops working.
func (s *Server) revokeOrgAPIKey(r *http.Request, p principal) (int, any, error) {
	if !p.personal {
		return 0, nil, errOrgKeyManagement()
	}
	id, err := strconv.ParseInt(r.PathValue("key_id"), 10, 64)
	if err != nil {
		return 0, nil, errf(http.StatusBadRequest, "key_id must be an integer")
	}
	return s.mutate(func() (result, error) {
		orgID, err := s.orgLocked(p, r.PathValue("org_id"))
		if err != nil {
			return result{}, err
		}
		i := slices.IndexFunc(s.st.APIKeys, func(k *apiKey) bool { return k.ID == id && k.OrgID == orgID })
		if i < 0 {
			return result{}, errf(http.StatusNotFound, "API key not found")
		}
		k := s.st.APIKeys[i]
		s.st.APIKeys = slices.Delete(s.st.APIKeys, i, i+1)
		return result{status: http.StatusOK, body: apiKeyRevoked{ID: k.ID, Name: k.Name, CreatedAt: ts(k.CreatedAt),
			CreatedBy: s.st.UserID, Revoked: true, ProjectID: k.ProjectID}}, nil
	})
}
