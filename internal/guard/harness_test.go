package guard_test

// The harness of the guard's tests: a Guard on a real SQLite store and two neontest Fakes, one
// per organization, with one clock for all of them. Nothing here needs PostgreSQL or a network.

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neon/neontest"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// Tenants of every env: alice is on the free tier (org-free: 1 checkpoint, 10 branches, 3
// databases, a 1-day restore window), bob on pro (org-paid: 10 checkpoints).
const (
	alice = "alice"
	bob   = "bob"
)

// clock is the one time of the guard and both Neons. It starts two hours in the past: the
// store stamps when an intent was finished with the real time, and the guard looks for
// recovered results since its own now minus 15 minutes, so the test clock must not run ahead
// of the real one by more than that.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	g     *guard.Guard
	st    *store.SQLite
	lock  *store.MemLocker
	free  *neontest.Fake // org-free, where the free tier's projects go
	paid  *neontest.Fake // org-paid, where the pro tier's projects go
	clock *clock
}

func newEnv(t *testing.T, mods ...func(*guard.Deps)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "neonguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for tenant, tier := range map[string]string{alice: "free", bob: "pro"} {
		if _, err := st.EnsureTenant(ctx, tenant, tier); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{t: time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)}
	plans := policy.Default().Plans
	fake := func(tag string, plan policy.OrgPlan) *neontest.Fake {
		return neontest.New(neontest.WithClock(clk.Now), neontest.WithIDTag(tag),
			neontest.WithLimits(neontest.Limits{BranchesPerProject: plan.BranchesPerProject, SnapshotsPerProject: plan.SnapshotsPerProject}))
	}
	e := &env{t: t, st: st, lock: store.NewMemLocker(), free: fake("f", plans["free"]), paid: fake("p", plans["paid"]), clock: clk}
	d := guard.Deps{Store: st, Locker: e.lock, Policy: policy.Default(), Now: clk.Now,
		Orgs: []guard.Org{{Plan: "free", ID: "org-free", API: e.free}, {Plan: "paid", ID: "org-paid", API: e.paid}}}
	for _, m := range mods {
		m(&d)
	}
	if e.g, err = guard.New(d); err != nil {
		t.Fatal(err)
	}
	return e
}

// as is a context whose principal is tenant.
func as(tenant string) context.Context {
	return identity.NewContext(context.Background(), identity.Principal{TenantID: tenant})
}

// neonOf is the Fake that holds tenant's projects.
func (e *env) neonOf(tenant string) *neontest.Fake {
	if tenant == bob {
		return e.paid
	}
	return e.free
}

// createDB creates a database for tenant and forgets the Neon calls it took, so a test's
// assertions see only its own.
func (e *env) createDB(tenant, name string) *guard.CreateDatabaseResult {
	e.t.Helper()
	res, err := e.g.CreateDatabase(as(tenant), guard.CreateDatabaseInput{Name: name})
	if err != nil {
		e.t.Fatalf("create database %s for %s: %v", name, tenant, err)
	}
	e.neonOf(tenant).ResetCalls()
	return res
}

// devBranch creates a dev branch and forgets the Neon calls it took.
func (e *env) devBranch(tenant, databaseID, name string) *guard.DevBranchResult {
	e.t.Helper()
	res, err := e.g.CreateDevBranch(as(tenant), guard.DevBranchInput{DatabaseID: databaseID, Name: name})
	if err != nil {
		e.t.Fatalf("create dev branch %s: %v", name, err)
	}
	e.neonOf(tenant).ResetCalls()
	return res
}

// checkpoint takes a checkpoint and forgets the Neon calls it took.
func (e *env) checkpoint(tenant, databaseID, name string) *guard.CheckpointResult {
	e.t.Helper()
	res, err := e.g.Checkpoint(as(tenant), guard.CheckpointInput{DatabaseID: databaseID, Name: name})
	if err != nil {
		e.t.Fatalf("checkpoint %s: %v", name, err)
	}
	e.neonOf(tenant).ResetCalls()
	return res
}

// openIntents is how many intents of the database are left open.
func (e *env) openIntents(databaseID string) int {
	e.t.Helper()
	open, err := e.st.OpenIntents(context.Background(), databaseID)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(open)
}

// recoveredIntents is how many intents of the database a resume finished whose result no
// retry has claimed yet.
func (e *env) recoveredIntents(databaseID string) int {
	e.t.Helper()
	recs, err := e.st.RecoveredIntents(context.Background(), databaseID, time.Time{})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(recs)
}

// recorded returns the store's record of a branch the guard made.
func (e *env) recorded(databaseID, branchID string) (store.Branch, bool) {
	e.t.Helper()
	bs, err := e.st.ListBranches(context.Background(), databaseID)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, b := range bs {
		if b.ID == branchID {
			return b, true
		}
	}
	return store.Branch{}, false
}

// wantCode asserts that err is an *errcode.Error with code whose message contains every fact.
func wantCode(t *testing.T, err error, code errcode.Code, facts ...string) *errcode.Error {
	t.Helper()
	ge := errcode.As(err)
	if ge == nil {
		t.Fatalf("err = %v, want a %s *errcode.Error", err, code)
	}
	if ge.Code != code {
		t.Fatalf("code = %s (%s), want %s", ge.Code, ge.Message, code)
	}
	for _, f := range facts {
		if !strings.Contains(ge.Message, f) {
			t.Errorf("message %q does not say %q", ge.Message, f)
		}
	}
	return ge
}

// wantHint asserts that the error's hint contains every fact.
func wantHint(t *testing.T, ge *errcode.Error, facts ...string) {
	t.Helper()
	for _, f := range facts {
		if !strings.Contains(ge.Hint, f) {
			t.Errorf("hint %q does not say %q", ge.Hint, f)
		}
	}
}

// wantMutations asserts the methods of the changes a call asked Neon for, in order.
func wantMutations(t *testing.T, f *neontest.Fake, want ...string) {
	t.Helper()
	if got := neontest.Methods(f.Mutations()); !slices.Equal(got, want) {
		t.Errorf("Neon changes = %v, want %v\ncalls: %v", got, want, f.Calls())
	}
}

func names(bs []neon.Branch) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name
	}
	return out
}

func ptr[T any](v T) *T { return &v }
