package controlplane

import (
	"encoding/json"
	"slices"
	"strconv"
	"testing"
)

// TestAccountEndpointsPerKeyKind checks /auth, /users/me, /users/me/organizations and
// /organizations/{org_id}[/members] as Neon answers each key kind (spec-checked by newEnv).
func TestAccountEndpointsPerKeyKind(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.creds

	// The personal key: the user, member (admin) of both orgs.
	auth := e.expect(e.do("GET", "/auth", c.PersonalAPIKey, nil), 200)
	if str(auth.body, "auth_method") != "api_key_user" {
		t.Fatalf("personal /auth %s", auth.raw)
	}
	me := e.expect(e.do("GET", "/users/me", c.PersonalAPIKey, nil), 200)
	userID := str(me.body, "id")
	if userID == "" || userID != str(auth.body, "account_id") || str(me.body, "email") == "" {
		t.Fatalf("/users/me %s vs /auth %s", me.raw, auth.raw)
	}
	if _, ok := me.body["billing_account"]; ok {
		t.Fatalf("the user has no billing account of their own (orgs bill): %s", me.raw)
	}
	orgs := e.expect(e.do("GET", "/users/me/organizations", c.PersonalAPIKey, nil), 200)
	if got := orgIDs(orgs.body); !slices.Equal(got, []string{c.FreeOrgID, c.PaidOrgID}) {
		t.Fatalf("personal orgs %v, want free and paid: %s", got, orgs.raw)
	}
	for _, o := range orgs.body["organizations"].([]any) {
		if o.(map[string]any)["managed_by"] != "console" {
			t.Fatalf("org %v", o)
		}
	}
	paid := e.expect(e.do("GET", "/organizations/"+c.PaidOrgID, c.PersonalAPIKey, nil), 200)
	if str(paid.body, "id") != c.PaidOrgID || str(paid.body, "plan") != "scale" {
		t.Fatalf("paid org %s", paid.raw)
	}
	if free := e.expect(e.do("GET", "/organizations/"+c.FreeOrgID, c.PersonalAPIKey, nil), 200); str(free.body, "plan") != "free_v3" {
		t.Fatalf("free org %s", free.raw)
	}
	e.expect(e.do("GET", "/organizations/org-nope-12345678", c.PersonalAPIKey, nil), 404)
	members := e.expect(e.do("GET", "/organizations/"+c.FreeOrgID+"/members", c.PersonalAPIKey, nil), 200)
	ms := members.body["members"].([]any)
	if len(ms) != 1 || str(ms[0].(map[string]any), "member", "user_id") != userID ||
		str(ms[0].(map[string]any), "member", "role") != "admin" {
		t.Fatalf("members %s", members.raw)
	}

	// An org key: no user; it sees its own org only.
	auth = e.expect(e.do("GET", "/auth", c.FreeOrgAPIKey, nil), 200)
	if str(auth.body, "auth_method") != "api_key_org" || str(auth.body, "account_id") != c.FreeOrgID {
		t.Fatalf("org /auth %s", auth.raw)
	}
	mustContain(t, e.expect(e.do("GET", "/users/me", c.FreeOrgAPIKey, nil), 404), "not allowed for organization API keys")
	orgs = e.expect(e.do("GET", "/users/me/organizations", c.PaidOrgAPIKey, nil), 200)
	if got := orgIDs(orgs.body); !slices.Equal(got, []string{c.PaidOrgID}) {
		t.Fatalf("paid key's orgs %v", got)
	}
	e.expect(e.do("GET", "/organizations/"+c.PaidOrgID, c.PaidOrgAPIKey, nil), 200)
	e.expect(e.do("GET", "/organizations/"+c.FreeOrgID, c.PaidOrgAPIKey, nil), 404)
	e.expect(e.do("GET", "/organizations/"+c.FreeOrgID+"/members", c.PaidOrgAPIKey, nil), 404)

	// No key at all.
	e.expect(e.do("GET", "/auth", "", nil), 401)
	e.expect(e.do("GET", "/users/me/organizations", "napi_wrong", nil), 401)

	// The personal key names no org: Neon answers listProjects 400 "org_id is required"
	// (the user has two orgs), as it does for createProject.
	mustContain(t, e.expect(e.do("GET", "/projects", c.PersonalAPIKey, nil), 400), "org_id is required")

	// The user id is persisted: the same after a restart.
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv, err := New(t.Context(), Options{DataDir: e.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	e2 := newEnvFrom(t, srv)
	if id := str(e2.expect(e2.do("GET", "/users/me", c.PersonalAPIKey, nil), 200).body, "id"); id != userID {
		t.Fatalf("user id %q after restart, was %q", id, userID)
	}
}

func orgIDs(body map[string]any) []string {
	var out []string
	for _, o := range body["organizations"].([]any) {
		out = append(out, o.(map[string]any)["id"].(string))
	}
	return out
}

func TestSetDefaultBranch(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.creds.FreeOrgAPIKey
	prj := e.createProject(key, nil)
	pid := str(prj, "project", "id")
	mainID := str(prj, "branch", "id")
	dev := e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "dev"}}), 201)
	devID := str(dev.body, "branch", "id")

	r := e.expect(e.do("POST", "/projects/"+pid+"/branches/"+devID+"/set_as_default", key, nil), 200)
	if r.body["branch"].(map[string]any)["default"] != true || len(r.body["operations"].([]any)) != 0 {
		t.Fatalf("set_as_default %s", r.raw)
	}
	if b := e.expect(e.do("GET", "/projects/"+pid+"/branches/"+mainID, key, nil), 200); b.body["branch"].(map[string]any)["default"] != false {
		t.Fatalf("old default still default: %s", b.raw)
	}
	// Exactly one default in the list.
	l := e.expect(e.do("GET", "/projects/"+pid+"/branches", key, nil), 200)
	var defaults []string
	for _, b := range l.body["branches"].([]any) {
		if b.(map[string]any)["default"] == true {
			defaults = append(defaults, b.(map[string]any)["id"].(string))
		}
	}
	if !slices.Equal(defaults, []string{devID}) {
		t.Fatalf("defaults %v", defaults)
	}
	// The new default cannot be deleted; the old one now can.
	e.expect(e.do("DELETE", "/projects/"+pid+"/branches/"+devID, key, nil), 400)
	// Idempotent on the default itself.
	e.expect(e.do("POST", "/projects/"+pid+"/branches/"+devID+"/set_as_default", key, nil), 200)
	// Unknown branch, another org's key, a branch that expires.
	e.expect(e.do("POST", "/projects/"+pid+"/branches/br-nope-12345678/set_as_default", key, nil), 404)
	e.expect(e.do("POST", "/projects/"+pid+"/branches/"+mainID+"/set_as_default", e.creds.PaidOrgAPIKey, nil), 404)
	tmp := e.expect(e.createBranch(key, pid, map[string]any{"branch": map[string]any{"name": "tmp", "expires_at": "2999-01-01T00:00:00Z"}}), 201)
	tmpID := str(tmp.body, "branch", "id") // a child of dev, the default when it was made
	e.expect(e.do("POST", "/projects/"+pid+"/branches/"+tmpID+"/set_as_default", key, nil), 400)
	e.expect(e.do("POST", "/projects/"+pid+"/branches/"+mainID+"/set_as_default", key, nil), 200)
	e.expect(e.do("DELETE", "/projects/"+pid+"/branches/"+tmpID, key, nil), 200)
	e.waitOps(key, pid)
	e.expect(e.do("DELETE", "/projects/"+pid+"/branches/"+devID, key, nil), 200)
}

// Organization API keys made through the API: org-wide or project-scoped. A project-scoped
// key sees its project only, cannot create or delete projects nor act on its org, and stops
// working when revoked or when the project leaves the org.
func TestProjectScopedKeys(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.creds
	a := str(e.createProject(c.FreeOrgAPIKey, map[string]any{"name": "a"}), "project", "id")
	b := str(e.createProject(c.FreeOrgAPIKey, map[string]any{"name": "b"}), "project", "id")
	keys := "/organizations/" + c.FreeOrgID + "/api_keys"

	// Only the personal key manages keys; the project must be the org's.
	e.expect(e.do("POST", keys, c.FreeOrgAPIKey, map[string]any{"key_name": "x"}), 403)
	e.expect(e.do("GET", keys, c.FreeOrgAPIKey, nil), 403)
	e.expect(e.do("POST", keys, c.PersonalAPIKey, map[string]any{"key_name": ""}), 400)
	e.expect(e.do("POST", "/organizations/"+c.PaidOrgID+"/api_keys", c.PersonalAPIKey,
		map[string]any{"key_name": "x", "project_id": a}), 404)
	made := e.expect(e.do("POST", keys, c.PersonalAPIKey, map[string]any{"key_name": "only-a", "project_id": a}), 200)
	pk := str(made.body, "key")
	if pk == "" || str(made.body, "project_id") != a {
		t.Fatalf("created %s", made.raw)
	}
	orgWide := str(e.expect(e.do("POST", keys, c.PersonalAPIKey, map[string]any{"key_name": "all"}), 200).body, "key")
	listed := e.expect(e.do("GET", keys, c.PersonalAPIKey, nil), 200)
	var names []string
	if err := keyNames(listed.raw, &names); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"only-a", "all"}) {
		t.Fatalf("listed %s", listed.raw)
	}

	// What the project key sees and may do.
	if auth := e.expect(e.do("GET", "/auth", pk, nil), 200); str(auth.body, "auth_method") != "api_key_org" || str(auth.body, "account_id") != c.FreeOrgID {
		t.Fatalf("/auth %s", auth.raw)
	}
	l := e.expect(e.do("GET", "/projects", pk, nil), 200)
	if ps := l.body["projects"].([]any); len(ps) != 1 || ps[0].(map[string]any)["id"] != a {
		t.Fatalf("project key lists %s", l.raw)
	}
	e.expect(e.do("GET", "/projects/"+a, pk, nil), 200)
	e.expect(e.do("GET", "/projects/"+b, pk, nil), 404)
	e.expect(e.createBranch(pk, a, map[string]any{"branch": map[string]any{"name": "dev"}}), 201)
	e.expect(e.do("POST", "/projects", pk, map[string]any{"project": map[string]any{}}), 403)
	e.expect(e.do("DELETE", "/projects/"+a, pk, nil), 403)
	e.expect(e.do("GET", "/organizations/"+c.FreeOrgID+"/members", pk, nil), 403)
	e.expect(e.do("GET", "/organizations/"+c.FreeOrgID, pk, nil), 200)
	mustContain(t, e.expect(e.do("GET", "/users/me", pk, nil), 404), "not allowed for organization API keys")
	// The org-wide key made through the API sees both projects.
	if l := e.expect(e.do("GET", "/projects", orgWide, nil), 200); len(l.body["projects"].([]any)) != 2 {
		t.Fatalf("org-wide key lists %s", l.raw)
	}

	// Transferred out of the org, the project is out of the key's reach.
	e.expect(e.do("POST", "/organizations/"+c.FreeOrgID+"/projects/transfer", c.PersonalAPIKey,
		map[string]any{"destination_org_id": c.PaidOrgID, "project_ids": []string{a}}), 200)
	e.expect(e.do("GET", "/projects/"+a, pk, nil), 404)

	// Revoked, it no longer authenticates; the keys survive a restart until then.
	id := int64(made.body["id"].(float64))
	e.expect(e.do("DELETE", keys+"/"+strconv.FormatInt(id, 10), c.PersonalAPIKey, nil), 200)
	e.expect(e.do("GET", "/projects", pk, nil), 401)
	e.expect(e.do("DELETE", keys+"/"+strconv.FormatInt(id, 10), c.PersonalAPIKey, nil), 404)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv, err := New(t.Context(), Options{DataDir: e.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	e2 := newEnvFrom(t, srv)
	e2.expect(e2.do("GET", "/projects", orgWide, nil), 200)
	e2.expect(e2.do("GET", "/projects", pk, nil), 401)
}

func keyNames(raw []byte, names *[]string) error {
	var items []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return err
	}
	for _, it := range items {
		*names = append(*names, it.Name)
	}
	return nil
}
