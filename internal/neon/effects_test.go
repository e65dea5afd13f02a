package neon_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	. "github.com/neonguard/neonguard/internal/neon" // the package under test: the tests read as they did inside it
	"github.com/neonguard/neonguard/internal/neon/neontest"
)

const (
	rPostProjects  = neontest.RoutePostProjects
	rGetProjects   = neontest.RouteGetProjects
	rPostBranches  = neontest.RoutePostBranches
	rGetBranches   = neontest.RouteGetBranches
	rRestoreBranch = neontest.RouteRestoreBranch
	rPostSnapshot  = neontest.RoutePostSnapshot
	rRestoreSnap   = neontest.RouteRestoreSnapshot
	rFinalize      = neontest.RouteFinalizeRestore
	rTransfer      = neontest.RouteTransfer
	rPostEndpoints = neontest.RoutePostEndpoints
	rGetOperation  = neontest.RouteGetOperation
	rDeleteProject = neontest.RouteDeleteProject
)

// TestLostAnswerIsNotRepeated: each non-idempotent POST is applied upstream, then its connection
// drops. The client must find the effect, send the POST exactly once and leave one resource.
// id is what the call works on: the project's main branch, or what setup made.
func TestLostAnswerIsNotRepeated(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		route string
		setup func(t *testing.T, f *neontest.Fake) (pid, id string)
		run   func(t *testing.T, c *Client, pid, id string)
		check func(t *testing.T, f *neontest.Fake, pid, id string)
	}{
		{
			name: "CreateProject", route: rPostProjects,
			setup: func(*testing.T, *neontest.Fake) (string, string) { return "", "" },
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
			check: func(t *testing.T, f *neontest.Fake, _, _ string) {
				if n := len(f.Projects()); n != 1 {
					t.Errorf("projects = %d, want 1", n)
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
			check: func(t *testing.T, f *neontest.Fake, pid, _ string) {
				if n := len(f.Branches(pid)); n != 2 {
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
			check: func(t *testing.T, f *neontest.Fake, pid, bid string) {
				n := 0
				for _, e := range f.Endpoints(pid) {
					if e.BranchID == bid {
						n++
					}
				}
				if n != 2 {
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
			check: func(t *testing.T, f *neontest.Fake, pid, _ string) {
				if n := len(f.Snapshots(pid)); n != 1 {
					t.Errorf("snapshots = %d, want 1", n)
				}
			},
		},
		{
			// main is a root branch: it stays one, and the backup is a separate root.
			name: "RestoreBranch", route: rRestoreBranch,
			run: func(t *testing.T, c *Client, pid, bid string) {
				b, err := c.RestoreBranch(ctx, pid, bid, BranchRestore{SourceBranchID: bid, SourceTimestamp: ptr(time.Now().Add(-time.Minute)), PreserveUnderName: "main_old"})
				if err != nil {
					t.Fatal(err)
				}
				if b.ID != bid || b.LastResetAt == nil || b.ParentID != "" {
					t.Errorf("recovered branch = %+v", b)
				}
			},
			check: func(t *testing.T, f *neontest.Fake, pid, _ string) {
				backup, ok := f.BranchNamed(pid, "main_old")
				if n := len(f.Branches(pid)); n != 2 || !ok || backup.ParentID != "" {
					t.Errorf("branches = %d, backup = %+v; want main and one root backup", n, backup)
				}
			},
		},
		{
			name: "RestoreSnapshot", route: rRestoreSnap,
			setup: func(t *testing.T, f *neontest.Fake) (string, string) {
				pr, b, _ := f.AddProject("app", "org-a")
				s, err := f.AddSnapshot(pr.ID, b.ID, "cp")
				if err != nil {
					t.Fatal(err)
				}
				return pr.ID, s.ID
			},
			run: func(t *testing.T, c *Client, pid, sid string) {
				rs, err := c.RestoreSnapshot(ctx, pid, sid, SnapshotRestore{Name: "restored", FinalizeRestore: true})
				if err != nil {
					t.Fatal(err)
				}
				if rs.Branch.RestoredFrom != sid {
					t.Errorf("recovered restore = %+v", rs)
				}
			},
			check: func(t *testing.T, f *neontest.Fake, pid, _ string) {
				main, _ := f.BranchNamed(pid, "main")
				_, old := f.BranchNamed(pid, "main (old)")
				if n := len(f.Branches(pid)); n != 2 || !main.Default || main.RestoredFrom == "" || !old {
					t.Errorf("branches = %d, main = %+v, old kept = %v; want the restored branch as main", n, main, old)
				}
			},
		},
		{
			name: "FinalizeRestore", route: rFinalize,
			setup: func(t *testing.T, f *neontest.Fake) (string, string) {
				pr, b, _ := f.AddProject("app", "org-a")
				s, err := f.AddSnapshot(pr.ID, b.ID, "cp")
				if err != nil {
					t.Fatal(err)
				}
				rs, err := f.RestoreSnapshot(ctx, pr.ID, s.ID, SnapshotRestore{Name: "restored", TargetBranchID: b.ID})
				if err != nil {
					t.Fatal(err)
				}
				return pr.ID, rs.Branch.ID
			},
			run: func(t *testing.T, c *Client, pid, bid string) {
				if err := c.FinalizeRestore(ctx, pid, bid, "main (old)"); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, f *neontest.Fake, pid, bid string) {
				if b, _ := f.Branch(pid, bid); b.RestoreStatus != "finalized" || !b.Default {
					t.Errorf("restored branch = %+v, want it finalized as the default branch", b)
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
			check: func(t *testing.T, f *neontest.Fake, pid, _ string) {
				if p, _ := f.Project(pid); p.OrgID != "org-b" {
					t.Error("not transferred")
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, client := newFake(t)
			var pid, id string
			if tc.setup != nil {
				pid, id = tc.setup(t, f)
			} else {
				pr, b, _ := f.AddProject("app", "org-a")
				pid, id = pr.ID, b.ID
			}
			f.ScriptOperations(2, OpFinished, "")
			f.LoseHTTP(tc.route, 1)
			tc.run(t, client(), pid, id)
			if n := f.Hits(tc.route); n != 1 {
				t.Errorf("%s sent %d times, want exactly once", tc.route, n)
			}
			if !f.OperationsTerminal() {
				t.Error("returned before the operations were terminal")
			}
			tc.check(t, f, pid, id)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestLostAnswerNotAppliedIsSentAgain: the POST fails ambiguously without effect; the client
// looks, finds nothing, and sends it again.
func TestLostAnswerNotAppliedIsSentAgain(t *testing.T) {
	f, client := newFake(t)
	pr, _, _ := f.AddProject("app", "org-a")
	f.FailHTTP(rPostBranches, 500)
	b, err := client().CreateBranch(context.Background(), pr.ID, BranchCreate{Name: "dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Hits(rPostBranches) != 2 || f.Hits(rGetBranches) != 1 {
		t.Errorf("posts = %d lists = %d; want 2 and 1", f.Hits(rPostBranches), f.Hits(rGetBranches))
	}
	if n := len(f.Branches(pr.ID)); b.Branch.Name != "dev" || n != 2 {
		t.Errorf("branch = %+v, branches = %d", b.Branch, n)
	}
}

// TestLostAnswerAfterTimeout: the client's own timeout fires while the server applies the
// request; the effect check must find it.
func TestLostAnswerAfterTimeout(t *testing.T) {
	f, _ := newFake(t)
	pr, main, _ := f.AddProject("app", "org-a")
	release := make(chan struct{})
	inner := f.Handler()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r)
		if r.Method == http.MethodPost {
			<-release // hold the answer past the client's timeout
		}
	})
	c, _ := NewTestClient(t, h, func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	})
	t.Cleanup(func() { close(release) }) // before the server's Close (cleanups run last-in first-out)
	if _, err := c.CreateSnapshot(context.Background(), pr.ID, main.ID, SnapshotCreate{Name: "cp-1"}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.Snapshots(pr.ID)); f.Hits(rPostSnapshot) != 1 || n != 1 {
		t.Errorf("posts = %d snapshots = %d; want 1 and 1", f.Hits(rPostSnapshot), n)
	}
}

func TestEffectCheckFailureIsOutcomeUnknown(t *testing.T) {
	f, client := newFake(t)
	pr, _, _ := f.AddProject("app", "org-a")
	f.LoseHTTP(rPostBranches, 1)
	f.FailHTTP(rGetBranches, 403)
	_, err := client().CreateBranch(context.Background(), pr.ID, BranchCreate{Name: "dev"}, nil)
	NoteErr(err)
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrForbidden) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown wrapping the 403", err)
	}
	if f.Hits(rPostBranches) != 1 {
		t.Errorf("POST sent %d times after an unknown outcome", f.Hits(rPostBranches))
	}
}

func TestUnnamedCreateIsOutcomeUnknownWhenLost(t *testing.T) {
	f, client := newFake(t)
	pr, _, _ := f.AddProject("app", "org-a")
	f.LoseHTTP(rPostBranches, 1)
	_, err := client().CreateBranch(context.Background(), pr.ID, BranchCreate{}, nil)
	NoteErr(err)
	if !errors.Is(err, ErrOutcomeUnknown) || f.Hits(rPostBranches) != 1 {
		t.Fatalf("posts = %d err = %v", f.Hits(rPostBranches), err)
	}
}

func TestOlderSameNameProjectIsNotTakenForOurs(t *testing.T) {
	f, client := newFake(t)
	old, _, _ := f.AddProject("app-1", "org-a")
	if err := f.EditProject(old.ID, func(p *Project) { p.CreatedAt = time.Now().Add(-time.Hour) }); err != nil {
		t.Fatal(err)
	}
	f.FailHTTP(rPostProjects, 502)
	cp, err := client().CreateProject(context.Background(), ProjectCreate{Name: "app-1", OrgID: "org-a"})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Project.ID == old.ID || f.Hits(rPostProjects) != 2 {
		t.Errorf("took the hour-old project for ours (posts = %d)", f.Hits(rPostProjects))
	}
}

func TestLockedPOSTRetriedWithoutEffectCheck(t *testing.T) {
	f, client := newFake(t)
	pr, _, _ := f.AddProject("app", "org-a")
	f.FailHTTP(rPostBranches, 423, 423)
	if _, err := client().CreateBranch(context.Background(), pr.ID, BranchCreate{Name: "dev"}, nil); err != nil {
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
	c, _ := NewTestClient(t, h)
	_, err := c.CreateBranch(ctx, "proj-1", BranchCreate{Name: "dev"}, nil)
	NoteErr(err)
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown and context.Canceled", err)
	}
}
