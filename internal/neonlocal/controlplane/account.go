package controlplane

import (
	"net/http"
	"time"

	"github.com/google/uuid"
)

// The emulated account: one user (the owner of the personal key) who is the admin of two
// organizations, a free one and a paid one, each with its own organization API key. As on
// Neon since organizations replaced personal accounts, the user has no billing account of
// their own (GET /users/me has no billing_account): every project belongs to an org.

const (
	userEmail     = "local@neonguard.local"
	userFirstName = "Local"
	userLastName  = "User"
	freeOrgName   = "local-free"
	paidOrgName   = "local-paid"
)

// initAccount gives a state its user id, the members' ids and the account's creation time
// (older state files have none).
func (s *Server) initAccount(now time.Time) {
	st := s.st
	if st.UserID == "" {
		st.UserID = uuid.NewString()
	}
	if st.FreeOrgMemberID == "" {
		st.FreeOrgMemberID = uuid.NewString()
	}
	if st.PaidOrgMemberID == "" {
		st.PaidOrgMemberID = uuid.NewString()
	}
	if st.AccountCreatedAt.IsZero() {
		st.AccountCreatedAt = now.Truncate(time.Second)
	}
}

type apiAuthDetails struct {
	AccountID  string `json:"account_id"`
	AuthMethod string `json:"auth_method"`
}

// getAuth is GET /auth: the personal key is "api_key_user" with the user's id, an org key
// "api_key_org" with its org's id (Neon's MCP server and neonctl tell the two apart by it).
func (s *Server) getAuth(_ *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.personal {
		return http.StatusOK, apiAuthDetails{AccountID: s.st.UserID, AuthMethod: "api_key_user"}, nil
	}
	return http.StatusOK, apiAuthDetails{AccountID: p.orgID, AuthMethod: "api_key_org"}, nil
}

type apiAuthAccount struct {
	Email    string `json:"email"`
	Image    string `json:"image"`
	Login    string `json:"login"`
	Name     string `json:"name"`
	Provider string `json:"provider"`
}

type apiCurrentUser struct {
	ActiveSecondsLimit  int64            `json:"active_seconds_limit"`
	AuthAccounts        []apiAuthAccount `json:"auth_accounts"`
	Email               string           `json:"email"`
	ID                  string           `json:"id"`
	Image               string           `json:"image"`
	Login               string           `json:"login"`
	Name                string           `json:"name"`
	LastName            string           `json:"last_name"`
	ProjectsLimit       int64            `json:"projects_limit"`
	BranchesLimit       int64            `json:"branches_limit"`
	MaxAutoscalingLimit float64          `json:"max_autoscaling_limit"`
	ComputeSecondsLimit int64            `json:"compute_seconds_limit"`
	Plan                string           `json:"plan"`
}

// getCurrentUser is GET /users/me. Organization keys belong to no user: Neon answers them
// 404 "not allowed for organization API keys" (neonctl checks for that message).
func (s *Server) getCurrentUser(_ *http.Request, p principal) (int, any, error) {
	if !p.personal {
		return 0, nil, errf(http.StatusNotFound, "not allowed for organization API keys")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	free := freePlan()
	return http.StatusOK, apiCurrentUser{
		AuthAccounts: []apiAuthAccount{{Email: userEmail, Login: userEmail, Name: userFirstName + " " + userLastName,
			Provider: "keycloak"}},
		Email: userEmail, ID: s.st.UserID, Login: userEmail, Name: userFirstName, LastName: userLastName,
		// The user's own limits are the free plan's (Neon's "Projects per account"); the paid
		// org's are higher, and apply to its projects.
		ProjectsLimit: 100, BranchesLimit: int64(free.MaxBranches), MaxAutoscalingLimit: free.MaxCU,
		Plan: free.Name,
	}, nil
}

type apiOrganization struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Handle    string    `json:"handle"`
	Plan      string    `json:"plan"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	ManagedBy string    `json:"managed_by"`
	// RequireMFA is sent as in Neon's example.
	RequireMFA bool `json:"require_mfa"`
}

func (s *Server) renderOrgLocked(orgID string) apiOrganization {
	name := freeOrgName
	if orgID == s.st.PaidOrgID {
		name = paidOrgName
	}
	at := s.st.AccountCreatedAt
	return apiOrganization{ID: orgID, Name: name, Handle: name + "-" + orgID, Plan: s.planOf(orgID).Name,
		CreatedAt: at, UpdatedAt: at, ManagedBy: "console"}
}

// orgsOfLocked lists the orgs a key sees: both for the personal key (free first), its own
// for an org key.
func (s *Server) orgsOfLocked(p principal) []string {
	if p.personal {
		return []string{s.st.FreeOrgID, s.st.PaidOrgID}
	}
	return []string{p.orgID}
}

// listCurrentUserOrgs is GET /users/me/organizations. With an organization key (tied to no
// user) Neon answers the single organization that owns the key.
func (s *Server) listCurrentUserOrgs(_ *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	orgs := []apiOrganization{}
	for _, id := range s.orgsOfLocked(p) {
		orgs = append(orgs, s.renderOrgLocked(id))
	}
	return http.StatusOK, map[string]any{"organizations": orgs}, nil
}

// orgLocked resolves {org_id} to an org the caller belongs to; others are 404, as another
// org's projects are.
func (s *Server) orgLocked(p principal, orgID string) (string, error) {
	if (orgID != s.st.FreeOrgID && orgID != s.st.PaidOrgID) || !p.sees(orgID) {
		return "", errf(http.StatusNotFound, "organization not found")
	}
	return orgID, nil
}

// getOrganization is GET /organizations/{org_id}.
func (s *Server) getOrganization(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.orgLocked(p, r.PathValue("org_id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.renderOrgLocked(id), nil
}

type apiMember struct {
	ID       string    `json:"id"`
	UserID   string    `json:"user_id"`
	OrgID    string    `json:"org_id"`
	Role     string    `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

type apiMemberWithUser struct {
	Member apiMember         `json:"member"`
	User   map[string]string `json:"user"`
}

// listOrgMembers is GET /organizations/{org_id}/members: the user, the org's only member,
// as its admin (Neon's MCP server's fetch tool reads it).
func (s *Server) listOrgMembers(r *http.Request, p principal) (int, any, error) {
	if p.projectID != "" {
		return 0, nil, errProjectKey()
	}
	if _, err := intParam(r, "limit", 10, 1, 500); err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	sortBy, sortOrder := q.Get("sort_by"), q.Get("sort_order")
	if sortBy == "" {
		sortBy = "joined_at"
	}
	if sortOrder == "" {
		sortOrder = "desc"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.orgLocked(p, r.PathValue("org_id"))
	if err != nil {
		return 0, nil, err
	}
	memberID := s.st.FreeOrgMemberID
	if id == s.st.PaidOrgID {
		memberID = s.st.PaidOrgMemberID
	}
	members := []apiMemberWithUser{}
	if q.Get("cursor") == "" { // one member: there is no second page
		members = append(members, apiMemberWithUser{
			Member: apiMember{ID: memberID, UserID: s.st.UserID, OrgID: id, Role: "admin", JoinedAt: s.st.AccountCreatedAt},
			User:   map[string]string{"email": userEmail},
		})
	}
	return http.StatusOK, map[string]any{
		"members":    members,
		"pagination": map[string]string{"sort_by": sortBy, "sort_order": sortOrder},
	}, nil
}

// listSharedProjects is GET /projects/shared: projects of other accounts shared with the
// user. Every project of the emulated account lives in one of the user's own orgs, so none.
func (s *Server) listSharedProjects(r *http.Request, _ principal) (int, any, error) {
	if _, err := intParam(r, "limit", 10, 1, 400); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"projects": []apiProjectListItem{}}, nil
}
