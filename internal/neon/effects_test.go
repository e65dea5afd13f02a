package neon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

const (
	rPostProjects   = "POST /api/v2/projects"
	rGetProjects    = "GET /api/v2/projects"
	rPostBranches   = "POST /api/v2/projects/{pid}/branches"
	rGetBranches    = "GET /api/v2/projects/{pid}/branches"
	rGetBranch      = "GET /api/v2/projects/{pid}/branches/{bid}"
	rRestoreBranch  = "POST /api/v2/projects/{pid}/branches/{bid}/restore"
	rPostSnapshot   = "POST /api/v2/projects/{pid}/branches/{bid}/snapshot"
	rRestoreSnap    = "POST /api/v2/projects/{pid}/snapshots/{sid}/restore"
	rFinalize       = "POST /api/v2/projects/{pid}/branches/{bid}/finalize_restore"
	rTransfer       = "POST /api/v2/organizations/{org}/projects/transfer"
	rPostEndpoints  = "POST /api/v2/projects/{pid}/endpoints"
	rGetOperation   = "GET /api/v2/projects/{pid}/operations/{opid}"
	rDeleteBranch   = "DELETE /api/v2/projects/{pid}/branches/{bid}"
	rDeleteProject  = "DELETE /api/v2/projects/{pid}"
	rDeleteSnapshot = "DELETE /api/v2/projects/{pid}/snapshots/{sid}"
)

// TestLostAnswerIsNotRepeated: each non-idempotent POST is applied upstream, then its connection
// drops. The client must find the effect, send the POST exactly once and leave one resource.
func TestLostAnswerIsNotRepeated(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		route string
		setup func(f *fakeNeon) (pid, bid string)
		run   func(t *testing.T, c *Client, pid, bid string)
		check func(t *testing.T, f *fakeNeon, pid, bid string)
	}{
		{
			name: "CreateProject", route: rPostProjects,
			run: func(t *testing.T, c *Client, _, _ string) {
				cp, err := c.CreateProject(ctx, ProjectCreate{Name: "app-1", OrgID: "org-a"})
				if err != nil {
					t.Fatal(err)
				}
				if cp.Project.Name != "app-1" || cp.Branch.Name != "main" || len(cp.Endpoints) != 1 || len(cp.Roles) != 1 || len(cp.Databases) != 1 {
					t.Errorf("recovered project is incomplete: %+v", cp)
				}
				if len(cp.ConnectionURIs) != 0 {
					t.Errorf("a recovered project has no connection URIs, got %d", len(cp.ConnectionURIs))
				}
			},
			check: func(t *testing.T, f *fakeNeon, _, _ string) {
				if len(f.projects) != 1 {
					t.Errorf("projects = %d, want 1", len(f.projects))
				}
			},
		},
		{
			name: "CreateBranch", route: rPostBranches,
			run: func(t *testing.T, c *Client, pid, _ string) {
				b, err := c.CreateBranch(ctx, pid, BranchCreate{Name: "dev-1"}, []EndpointCreate{{Type: EndpointReadWrite}})
				if err != nil {
					t.Fatal(err)
				}
				if b.Branch.Name != "dev-1" || len(b.Endpoints) != 1 {
					t.Errorf("recovered branch = %+v", b)
				}
			},
			check: func(t *testing.T, f *fakeNeon, pid, _ string) {
				if n := len(f.branches[pid]); n != 2 {
					t.Errorf("branches = %d, want 2 (main and dev-1)", n)
				}
			},
		},
		{
			name: "CreateEndpoint", route: rPostEndpoints,
			run: func(t *testing.T, c *Client, pid, bid string) {
				ep, err := c.CreateEndpoint(ctx, pid, bid, EndpointCreate{Type: EndpointReadOnly})
				if err != nil {
					t.Fatal(err)
				}
				if ep.Type != EndpointReadOnly || ep.BranchID != bid {
					t.Errorf("recovered endpoint = %+v", ep)
				}
			},
			check: func(t *testing.T, f *fakeNeon, _, bid string) {
				if n := len(f.endpoints[bid]); n != 2 {
					t.Errorf("endpoints = %d, want 2", n)
				}
			},
		},
		{
			name: "CreateSnapshot", route: rPostSnapshot,
			run: func(t *testing.T, c *Client, pid, bid string) {
				s, err := c.CreateSnapshot(ctx, pid, bid, SnapshotCreate{Name: "before-auth"})
				if err != nil {
					t.Fatal(err)
				}
				if s.Name != "before-auth" || s.ID == "" {
					t.Errorf("recovered snapshot = %+v", s)
				}
			},
			check: func(t *testing.T, f *fakeNeon, pid, _ string) {
				if n := len(f.snapshots[pid]); n != 1 {
					t.Errorf("snapshots = %d, want 1", n)
				}
			},
		},
		{
			name: "RestoreBranch", route: rRestoreBranch,
			run: func(t *testing.T, c *Client, pid, bid string) {
				b, err := c.RestoreBranch(ctx, pid, bid, BranchRestore{SourceBranchID: bid, SourceTimestamp: ptr(time.Now().Add(-time.Minute)), PreserveUnderName: "main_old"})
				if err != nil {
					t.Fatal(err)
				}
				if b.ID != bid || b.ParentID == "" {
					t.Errorf("recovered branch = %+v", b)
				}
			},
			check: func(t *testing.T, f *fakeNeon, pid, _ string) {
				if n := len(f.branches[pid]); n != 2 {
					t.Errorf("branches = %d, want 2 (main and one backup)", n)
				}
			},
		},
		{
			name: "RestoreSnapshot", route: rRestoreSnap,
			setup: func(f *fakeNeon) (string, string) {
				pr, b, _ := f.addProject("app", "org-a")
				f.snapshots[pr.ID] = []*Snapshot{{ID: "snap-x", Name: "cp", CreatedAt: time.Now()}}
				return pr.ID, b.ID
			},
			run: func(t *testing.T, c *Client, pid, _ string) {
				rs, err := c.RestoreSnapshot(ctx, pid, "snap-x", SnapshotRestore{Name: "restored", FinalizeRestore: true})
				if err != nil {
					t.Fatal(err)
				}
				if rs.Branch.RestoredFrom != "snap-x" {
					t.Errorf("recovered restore = %+v", rs)
				}
			},
			check: func(t *testing.T, f *fakeNeon, pid, _ string) {
				if n := len(f.branches[pid]); n != 2 {
					t.Errorf("branches = %d, want 2", n)
				}
			},
		},
		{
			name: "FinalizeRestore", route: rFinalize,
			run: func(t *testing.T, c *Client, pid, bid string) {
				if err := c.FinalizeRestore(ctx, pid, bid, "main (old)"); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, f *fakeNeon, pid, bid string) {
				if f.findBranch(pid, bid).RestoreStatus != "finalized" {
					t.Error("not finalized")
				}
			},
		},
		{
			name: "TransferProjects", route: rTransfer,
			run: func(t *testing.T, c *Client, pid, _ string) {
				if err := c.TransferProjects(ctx, "org-a", "org-b", []string{pid}); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, f *fakeNeon, pid, _ string) {
				if f.findProject(pid).OrgID != "org-b" {
					t.Error("not transferred")
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNeon(t)
			f.opPolls = 2
			var pid, bid string
			if tc.setup != nil {
				pid, bid = tc.setup(f)
			} else if tc.route != rPostProjects {
				pr, b, _ := f.addProject("app", "org-a")
				pid, bid = pr.ID, b.ID
			}
			f.lose[tc.route] = 1
			c, _ := newTestClient(t, f.Handler())
			tc.run(t, c, pid, bid)
			if n := f.Hits(tc.route); n != 1 {
				t.Errorf("%s sent %d times, want exactly once", tc.route, n)
			}
			if !f.allOpsTerminal() {
				t.Error("returned before the operations were terminal")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			tc.check(t, f, pid, bid)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestLostAnswerNotAppliedIsSentAgain: the POST fails ambiguously without effect; the client
// looks, finds nothing, and sends it again.
func TestLostAnswerNotAppliedIsSentAgain(t *testing.T) {
	f := newFakeNeon(t)
	pr, _, _ := f.addProject("app", "org-a")
	f.fail[rPostBranches] = []int{500}
	c, _ := newTestClient(t, f.Handler())
	b, err := c.CreateBranch(context.Background(), pr.ID, BranchCreate{Name: "dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Hits(rPostBranches) != 2 || f.Hits(rGetBranches) != 1 {
		t.Errorf("posts = %d lists = %d; want 2 and 1", f.Hits(rPostBranches), f.Hits(rGetBranches))
	}
	if n := f.count(func(f *fakeNeon) int { return len(f.branches[pr.ID]) }); b.Branch.Name != "dev" || n != 2 {
		t.Errorf("branch = %+v, branches = %d", b.Branch, n)
	}
}

// TestLostAnswerAfterTimeout: the client's own timeout fires while the server applies the
// request; the effect check must find it.
func TestLostAnswerAfterTimeout(t *testing.T) {
	f := newFakeNeon(t)
	pr, _, _ := f.addProject("app", "org-a")
	release := make(chan struct{})
	inner := f.Handler()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r)
		if r.Method == http.MethodPost {
			<-release // hold the answer past the client's timeout
		}
	})
	c, _ := newTestClient(t, h, func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	})
	t.Cleanup(func() { close(release) }) // before the server's Close (cleanups run last-in first-out)
	if _, err := c.CreateSnapshot(context.Background(), pr.ID, f.branches[pr.ID][0].ID, SnapshotCreate{Name: "cp-1"}); err != nil {
		t.Fatal(err)
	}
	if n := f.count(func(f *fakeNeon) int { return len(f.snapshots[pr.ID]) }); f.Hits(rPostSnapshot) != 1 || n != 1 {
		t.Errorf("posts = %d snapshots = %d; want 1 and 1", f.Hits(rPostSnapshot), n)
	}
}

func TestEffectCheckFailureIsOutcomeUnknown(t *testing.T) {
	f := newFakeNeon(t)
	pr, _, _ := f.addProject("app", "org-a")
	f.lose[rPostBranches] = 1
	f.fail[rGetBranches] = []int{403}
	c, _ := newTestClient(t, f.Handler())
	_, err := c.CreateBranch(context.Background(), pr.ID, BranchCreate{Name: "dev"}, nil)
	noteErr(err)
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrForbidden) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown wrapping the 403", err)
	}
	if f.Hits(rPostBranches) != 1 {
		t.Errorf("POST sent %d times after an unknown outcome", f.Hits(rPostBranches))
	}
}

func TestUnnamedCreateIsOutcomeUnknownWhenLost(t *testing.T) {
	f := newFakeNeon(t)
	pr, _, _ := f.addProject("app", "org-a")
	f.lose[rPostBranches] = 1
	c, _ := newTestClient(t, f.Handler())
	_, err := c.CreateBranch(context.Background(), pr.ID, BranchCreate{}, nil)
	noteErr(err)
	if !errors.Is(err, ErrOutcomeUnknown) || f.Hits(rPostBranches) != 1 {
		t.Fatalf("posts = %d err = %v", f.Hits(rPostBranches), err)
	}
}

func TestOlderSameNameProjectIsNotTakenForOurs(t *testing.T) {
	f := newFakeNeon(t)
	old, _, _ := f.addProject("app-1", "org-a")
	old.CreatedAt = time.Now().Add(-time.Hour)
	f.fail[rPostProjects] = []int{502}
	c, _ := newTestClient(t, f.Handler())
	cp, err := c.CreateProject(context.Background(), ProjectCreate{Name: "app-1", OrgID: "org-a"})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Project.ID == old.ID || f.Hits(rPostProjects) != 2 {
		t.Errorf("took the hour-old project for ours (posts = %d)", f.Hits(rPostProjects))
	}
}

func TestLockedPOSTRetriedWithoutEffectCheck(t *testing.T) {
	f := newFakeNeon(t)
	pr, _, _ := f.addProject("app", "org-a")
	f.fail[rPostBranches] = []int{423, 423}
	c, _ := newTestClient(t, f.Handler())
	if _, err := c.CreateBranch(context.Background(), pr.ID, BranchCreate{Name: "dev"}, nil); err != nil {
		t.Fatal(err)
	}
	if f.Hits(rPostBranches) != 3 || f.Hits(rGetBranches) != 0 {
		t.Errorf("posts = %d lists = %d; want 3 and 0", f.Hits(rPostBranches), f.Hits(rGetBranches))
	}
}

func TestCancelledInFlightPOSTIsOutcomeUnknown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // let the server notice the client going away
		cancel()                           // the request arrived (and may be applied) when the caller gives up
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	c, _ := newTestClient(t, h)
	_, err := c.CreateBranch(ctx, "proj-1", BranchCreate{Name: "dev"}, nil)
	noteErr(err)
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown and context.Canceled", err)
	}
}
