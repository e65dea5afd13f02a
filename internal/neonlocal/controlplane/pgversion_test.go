package controlplane

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/neonguard/neonguard/internal/neonlocal"
)

// majorsDataPlane serves only some PostgreSQL majors, as the real data plane serves the ones
// installed, and records the branches it is asked to make.
type majorsDataPlane struct {
	neonlocal.NopDataPlane
	majors []int

	mu   sync.Mutex
	made []neonlocal.BranchSpec
}

func (d *majorsDataPlane) PGVersions() []int { return d.majors }

func (d *majorsDataPlane) CreateBranch(_ context.Context, spec neonlocal.BranchSpec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.made = append(d.made, spec)
	return nil
}

func (d *majorsDataPlane) madeMajor(t *testing.T, projectID string) int {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, b := range d.made {
		if b.ProjectID == projectID {
			return b.PgVersion
		}
	}
	t.Fatalf("no branch made for project %s", projectID)
	return 0
}

// A data plane that serves some majors gets the major a project asks for, never another in
// its place: a major it lacks is refused with Neon's 400 naming the installed ones, and a
// project that names none gets the newest one Neon offers.
func TestProjectsGetTheRequestedInstalledMajorOrA400(t *testing.T) {
	dp := &majorsDataPlane{majors: []int{16, 15, 13}}
	e := newEnv(t, Options{DataPlane: dp})
	key := e.creds.FreeOrgAPIKey

	r := e.expect(e.do("POST", "/projects", key, map[string]any{"project": map[string]any{"pg_version": 17}}), 400)
	for _, want := range []string{"pg_version 17", "PostgreSQL 17 is not installed", "installed: 16, 15, 13"} {
		mustContain(t, r, want)
	}
	if l := e.expect(e.do("GET", "/projects", key, nil), 200); len(l.body["projects"].([]any)) != 0 {
		t.Fatalf("a refused project was created: %s", l.raw)
	}

	for _, tc := range []struct {
		name    string
		project map[string]any
		want    int
	}{
		{"installed", map[string]any{"pg_version": 15}, 15},
		{"unnamed", map[string]any{}, 16},
	} {
		body := e.createProject(key, tc.project)
		id := str(body, "project", "id")
		if got := int(body["project"].(map[string]any)["pg_version"].(float64)); got != tc.want {
			t.Errorf("%s: project pg_version %d, want %d", tc.name, got, tc.want)
		}
		if got := dp.madeMajor(t, id); got != tc.want {
			t.Errorf("%s: data plane made PostgreSQL %d, want %d", tc.name, got, tc.want)
		}
		g := e.expect(e.do("GET", "/projects/"+id, key, nil), 200)
		if got := int(g.body["project"].(map[string]any)["pg_version"].(float64)); got != tc.want {
			t.Errorf("%s: GET pg_version %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := e.srv.DefaultPGVersion(); got != 16 {
		t.Errorf("DefaultPGVersion = %d, want 16", got)
	}
	// Outside Neon's range stays Neon's error, installed or not.
	mustContain(t, e.expect(e.do("POST", "/projects", key, map[string]any{"project": map[string]any{"pg_version": 13}}), 400),
		"between 14 and 18")
}

// With no installed major Neon offers, a project is refused whatever it asks, with what is
// installed.
func TestProjectsRefusedWithoutAnOfferedMajor(t *testing.T) {
	e := newEnv(t, Options{DataPlane: &majorsDataPlane{majors: []int{13}}})
	if got := e.srv.DefaultPGVersion(); got != 0 {
		t.Errorf("DefaultPGVersion = %d, want 0", got)
	}
	r := e.expect(e.do("POST", "/projects", e.creds.FreeOrgAPIKey, map[string]any{"project": map[string]any{}}), 400)
	if msg := str(r.body, "message"); !strings.Contains(msg, "PostgreSQL 17 is not installed") || !strings.Contains(msg, "installed: 13") {
		t.Fatalf("message %q", msg)
	}
}

// Without a data plane that restricts majors (the API-only emulator), any major Neon offers
// goes, and Neon's default is 17.
func TestProjectsAnyMajorWithoutRealPostgres(t *testing.T) {
	e := newEnv(t, Options{})
	if got := e.srv.DefaultPGVersion(); got != 17 {
		t.Errorf("DefaultPGVersion = %d, want 17", got)
	}
	body := e.createProject(e.creds.FreeOrgAPIKey, map[string]any{"pg_version": 14})
	if got := body["project"].(map[string]any)["pg_version"].(float64); got != 14 {
		t.Errorf("pg_version %v, want 14", got)
	}
	body = e.createProject(e.creds.FreeOrgAPIKey, nil)
	if got := body["project"].(map[string]any)["pg_version"].(float64); got != 17 {
		t.Errorf("default pg_version %v, want 17", got)
	}
}
