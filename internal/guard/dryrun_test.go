package guard_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon/neontest"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// The dry run's Neon side, without PostgreSQL: the fake's connection strings lead nowhere, so
// every rehearsal here fails at the connection string (injected) or later; what is proven is
// the temporary branch's life: counted, made under an intent, always deleted.

func dryRun(databaseID string) guard.ApplyMigrationInput {
	return guard.ApplyMigrationInput{DatabaseID: databaseID, Name: "0001_init", SQL: "DROP TABLE IF EXISTS t; CREATE TABLE t (n int)", DryRun: true}
}

// wantOnlyMain asserts that Neon holds only main and the dev branches named, that no intent
// is open and that no record of a dry-run branch is left.
func (e *env) wantNoDryRunLeft(databaseID string, devs int) {
	e.t.Helper()
	bs := e.free.Branches(databaseID)
	for _, b := range bs {
		if strings.HasPrefix(b.Name, "dry-run-") {
			e.t.Errorf("the temporary branch %s (%s) is still on Neon", b.Name, b.ID)
		}
	}
	if len(bs) != 1+devs {
		e.t.Errorf("branches = %v, want main and %d dev branches", names(bs), devs)
	}
	if n := e.openIntents(databaseID); n != 0 {
		e.t.Errorf("open intents = %d", n)
	}
	recs, err := e.st.ListBranches(context.Background(), databaseID)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range recs {
		if strings.HasPrefix(r.Name, "dry-run-") {
			e.t.Errorf("the temporary branch is still recorded: %+v", r)
		}
	}
}

// TestDryRunBranchLimit: the temporary branch needs a free slot, as a dev branch does; at the
// limit nothing is asked of Neon and the hint names what delete_dev_branch can remove.
func TestDryRunBranchLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(alice, "shop")
	for i := range 9 { // main and 9 dev branches: the free tier's 10
		e.devBranch(alice, db.DatabaseID, fmt.Sprintf("dev%d", i))
	}
	_, err := e.g.ApplyMigration(as(alice), dryRun(db.DatabaseID))
	ge := wantCode(t, err, errcode.BranchLimit, "a dry run needs one free branch slot", "free tier allows 10 branches")
	wantHint(t, ge, "delete_dev_branch", `"dev0" (dev)`)
	wantMutations(t, e.free)
	e.wantNoDryRunLeft(db.DatabaseID, 9)

	// One slot free: the rehearsal takes it while it runs and gives it back, though it fails.
	if _, err := e.g.DeleteDevBranch(as(alice), guard.DeleteBranchInput{DatabaseID: db.DatabaseID, Branch: "dev0"}); err != nil {
		t.Fatal(err)
	}
	e.free.ResetCalls()
	e.free.Fail("ConnectionURI", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
	_, err = e.g.ApplyMigration(as(alice), dryRun(db.DatabaseID))
	wantCode(t, err, errcode.Upstream, "dry run on a temporary copy of branch main")
	wantMutations(t, e.free, "CreateBranch", "DeleteBranch")
	e.wantNoDryRunLeft(db.DatabaseID, 8)
}

// TestDryRunNeverLeavesItsBranch: whatever fails and wherever the call stops, the temporary
// branch is deleted: by the call itself, or, when Neon fails the deletion too (as after a
// kill), by serve's recovery or by the next call for the database, before that call counts.
func TestDryRunNeverLeavesItsBranch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(f *neontest.Fake)
		code  errcode.Code
		left  bool // the call could not delete it
	}{
		{"refused", func(f *neontest.Fake) {
			f.Fail("CreateBranch", neontest.Refuse(http.StatusUnprocessableEntity, "", "no"))
		}, errcode.InvalidArgument, false},
		{"lost answer, deleted at once", func(f *neontest.Fake) {
			f.Fail("CreateBranch", neontest.LostAnswer())
		}, errcode.Upstream, false},
		{"no connection string", func(f *neontest.Fake) {
			f.Fail("ConnectionURI", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
		}, errcode.Upstream, false},
		// As a kill right after Neon made it: its id never recorded, found by its name.
		{"lost answer, then Neon down", func(f *neontest.Fake) {
			f.Fail("CreateBranch", neontest.LostAnswer())
			f.Fail("ListBranches", neontest.Fault{}, neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
		}, errcode.Upstream, true},
		// As a kill after it was recorded.
		{"deletion fails", func(f *neontest.Fake) {
			f.Fail("ConnectionURI", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
			f.FailAlways("DeleteBranch", neontest.Refuse(http.StatusServiceUnavailable, "", "down"))
		}, errcode.Upstream, true},
	} {
		for _, settle := range []string{"recover", "next call"} {
			t.Run(tc.name+", "+settle, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				db := e.createDB(alice, "shop")
				for i := range 8 { // one slot left: the next call needs the temporary branch's
					e.devBranch(alice, db.DatabaseID, fmt.Sprintf("dev%d", i))
				}
				tc.setup(e.free)
				_, err := e.g.ApplyMigration(as(alice), dryRun(db.DatabaseID))
				wantCode(t, err, tc.code, "dry run on a temporary copy of branch main")
				main, _ := e.free.BranchNamed(db.DatabaseID, "main")
				if main.ID != db.MainBranchID {
					t.Fatalf("main changed: %+v", main)
				}
				if !tc.left {
					e.wantNoDryRunLeft(db.DatabaseID, 8)
					return
				}
				if n := len(e.free.Branches(db.DatabaseID)); n != 10 || e.openIntents(db.DatabaseID) != 1 {
					t.Fatalf("branches = %d, open intents = %d: want the temporary branch left with its intent", n, e.openIntents(db.DatabaseID))
				}
				e.free.Heal()
				switch settle {
				case "recover":
					// A restarted server: a new Guard on the same store.
					g2, err := guard.New(guard.Deps{Store: e.st, Locker: store.NewMemLocker(), Policy: policy.Default(), Now: e.clock.Now,
						Orgs: []guard.Org{{Plan: "free", ID: "org-free", API: e.free}, {Plan: "paid", ID: "org-paid", API: e.paid}}})
					if err != nil {
						t.Fatal(err)
					}
					if err := g2.Recover(context.Background()); err != nil {
						t.Fatal(err)
					}
					e.wantNoDryRunLeft(db.DatabaseID, 8)
				case "next call":
					// The slot it held is free for the next call's own branch.
					e.devBranch(alice, db.DatabaseID, "dev8")
					e.wantNoDryRunLeft(db.DatabaseID, 9)
				}
			})
		}
	}
}

// TestDryRunOfAnotherTenantsDatabase: NOT_FOUND, and nothing is asked of Neon.
func TestDryRunOfAnotherTenantsDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.createDB(bob, "shop")
	_, err := e.g.ApplyMigration(as(alice), dryRun(db.DatabaseID))
	wantCode(t, err, errcode.NotFound)
	wantMutations(t, e.paid)
	_, err = e.g.CompareSchema(as(alice), guard.CompareSchemaInput{DatabaseID: db.DatabaseID, Branch: "main"})
	wantCode(t, err, errcode.NotFound)
}
