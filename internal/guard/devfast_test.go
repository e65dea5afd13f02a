package guard_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/store"
)

// wantCalls asserts every neon.API call since the last reset, in order.
func wantCalls(t *testing.T, e *env, want ...string) {
	t.Helper()
	if got := methodsOf(e); !slices.Equal(got, want) {
		t.Errorf("Neon calls = %v, want %v", got, want)
	}
	e.free.ResetCalls()
}

func methodsOf(e *env) []string {
	var out []string
	for _, c := range e.free.Calls() {
		out = append(out, c.Method)
	}
	return out
}

func pooled(t *testing.T, e *env, databaseID, branchID string) string {
	t.Helper()
	uri, err := e.free.ConnectionURI(as(alice), databaseID, neon.ConnectionURIOptions{BranchID: branchID,
		DatabaseName: "neondb", RoleName: "neondb_owner", Pooled: true})
	if err != nil {
		t.Fatal(err)
	}
	return uri
}

// TestCreateDevBranchRequests: the common path asks Neon for the project and the create, and
// takes the connection string from the create's answer; the first call of a database (no
// logical size read lately) also lists its branches; a repeat asks only for the URI.
func TestCreateDevBranchRequests(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	create := func(name string) *guard.DevBranchResult {
		t.Helper()
		res, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if want := pooled(t, e, db.DatabaseID, res.BranchID); res.ConnectionString != want {
			t.Errorf("connection string = %q, want Neon's pooled URI %q", res.ConnectionString, want)
		}
		e.free.ResetCalls() // not the test's own ConnectionURI
		return res
	}
	e.free.ResetCalls()
	res, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e, "ListBranches", "GetProject", "CreateBranch")
	if want := pooled(t, e, db.DatabaseID, res.BranchID); res.ConnectionString != want {
		t.Errorf("connection string = %q, want %q", res.ConnectionString, want)
	}
	e.free.ResetCalls()

	res, err = e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "second"})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e, "GetProject", "CreateBranch")
	b, ok := e.free.BranchNamed(db.DatabaseID, "second")
	if !ok || b.ParentID != db.MainBranchID || b.ExpiresAt == nil || !b.ExpiresAt.Equal(res.ExpiresAt) {
		t.Errorf("branch on Neon = %+v (%v), want a child of main expiring at %s", b, ok, res.ExpiresAt)
	}
	if rec, ok := e.recorded(db.DatabaseID, res.BranchID); !ok || rec.Kind != store.BranchDev || !rec.ExpiresAt.Equal(res.ExpiresAt) {
		t.Errorf("record = %+v (%v)", rec, ok)
	}
	if n := e.openIntents(db.DatabaseID); n != 0 {
		t.Errorf("open intents = %d", n)
	}
	if want := pooled(t, e, db.DatabaseID, res.BranchID); res.ConnectionString != want {
		t.Errorf("connection string = %q, want %q", res.ConnectionString, want)
	}
	e.free.ResetCalls()

	// A repeat: the recorded branch, its URI; nothing else.
	again, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "second"})
	if err != nil || again.BranchID != res.BranchID || again.ConnectionString != res.ConnectionString || !again.ExpiresAt.Equal(res.ExpiresAt) {
		t.Errorf("repeat = %+v, %v; want %+v", again, err, res)
	}
	wantCalls(t, e, "ConnectionURI")

	// From a time: the same two requests.
	from := e.clock.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	pit, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "pit", From: from.Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e, "GetProject", "CreateBranch")
	if b, _ := e.free.BranchNamed(db.DatabaseID, "pit"); b.ParentTimestamp == nil || !b.ParentTimestamp.Equal(from) || pit.From != from.Format(time.RFC3339) {
		t.Errorf("branch from a time = %+v, result %+v", b, pit)
	}

	// The logical size read by the last list is stale after a while: listed again.
	e.clock.Advance(2 * time.Minute)
	create("third")
	e.free.ResetCalls()
	create("fourth")
	_ = create
}

// TestCreateDevBranchNearLimitCountsOnNeon: far from the limit the store counts; in the last
// slots Neon does, so a branch made outside neonguard is counted and the limit holds exactly.
func TestCreateDevBranchNearLimitCountsOnNeon(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	// Free tier: 10 branches. main + 6 recorded dev branches: the 8th is still counted by the
	// store (2 slots left after it).
	for i := range 6 {
		e.devBranch(alice, db.DatabaseID, fmt.Sprintf("dev%d", i))
	}
	// One made outside neonguard: the store does not know it.
	if _, err := e.free.AddBranch(db.DatabaseID, "console", db.MainBranchID); err != nil {
		t.Fatal(err)
	}
	e.devBranch(alice, db.DatabaseID, "dev6") // 7 recorded + main + console = 9 on Neon
	// Near the limit: counted on Neon (10 with this one): allowed, and listed.
	if _, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "dev7"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(methodsOf(e), "ListBranches") {
		t.Errorf("near the limit, calls = %v, want a list of the branches", methodsOf(e))
	}
	e.free.ResetCalls()
	// The store says 9 (main + 8), Neon 10: refused, as Neon's count says.
	_, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "dev8"})
	wantCode(t, err, errcode.BranchLimit, "free tier allows 10 branches", "10 exist")
	wantMutations(t, e.free)
	if got := len(e.free.Branches(db.DatabaseID)); got != 10 {
		t.Errorf("branches on Neon = %d, want 10", got)
	}
}

// TestCreateDevBranchExpired: a recorded branch whose expiry passed may be gone from Neon. Its
// name is then free, and near the limit it does not count: both are asked of Neon.
func TestCreateDevBranchExpired(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	old := e.devBranch(alice, db.DatabaseID, "old")
	for i := range 8 {
		e.devBranch(alice, db.DatabaseID, fmt.Sprintf("dev%d", i))
	}
	// Neon deleted "old" at its expiry; the store still has it (the janitor has not run).
	e.clock.Advance(25 * time.Hour)
	if err := e.free.DeleteBranch(as(alice), db.DatabaseID, old.BranchID); err != nil {
		t.Fatal(err)
	}
	e.free.ResetCalls()
	// The store says 10 of 10 (main + 9 recorded); Neon 9: allowed.
	res, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if res.BranchID == old.BranchID {
		t.Errorf("the expired branch %s was returned as if it existed", old.BranchID)
	}
	calls := methodsOf(e)
	if !slices.Contains(calls, "ListBranches") || !slices.Contains(calls, "CreateBranch") {
		t.Errorf("calls = %v, want Neon's list and a new branch", calls)
	}
	if b, ok := e.free.BranchNamed(db.DatabaseID, "old"); !ok || b.ID != res.BranchID {
		t.Errorf("branch on Neon = %+v (%v), want %s", b, ok, res.BranchID)
	}
	// Neon now has 10: the next is refused.
	_, err = e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "more"})
	wantCode(t, err, errcode.BranchLimit, "10 exist")
}

// TestCreateDevBranchNameTakenOutside: a name Neon has but the store does not (made outside
// neonguard) is refused as before, and nothing is left open.
func TestCreateDevBranchNameTakenOutside(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	e.devBranch(alice, db.DatabaseID, "warm") // a recent list: the common path
	if _, err := e.free.AddBranch(db.DatabaseID, "console", db.MainBranchID); err != nil {
		t.Fatal(err)
	}
	_, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "console"})
	wantCode(t, err, errcode.InvalidArgument, `branch "console" already exists and is not a dev branch`)
	if n := e.openIntents(db.DatabaseID); n != 0 {
		t.Errorf("open intents = %d", n)
	}
}

// TestCreateDevBranchQuotaFromRecentList: the logical size the quota needs comes from the last
// list; near the quota the list is read again, so a branch that grew is seen.
func TestCreateDevBranchQuotaFromRecentList(t *testing.T) {
	t.Parallel()
	e, db := undoEnv(t)
	e.devBranch(alice, db.DatabaseID, "warm")
	// main grows past the free tier's 512 MiB: the reading says 0, but it is a minute old soon.
	if err := e.free.EditBranch(db.DatabaseID, db.MainBranchID, func(b *neon.Branch) { b.LogicalSize = 600 << 20 }); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Minute)
	_, err := e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "big"})
	wantCode(t, err, errcode.QuotaExceeded, "logical_size_bytes")
	// Still over: the reading is fresh and near the quota, so it is listed again each time.
	e.free.ResetCalls()
	_, err = e.g.CreateDevBranch(as(alice), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "big"})
	wantCode(t, err, errcode.QuotaExceeded, "logical_size_bytes")
	if !slices.Contains(methodsOf(e), "ListBranches") {
		t.Errorf("near the quota, calls = %v, want a list", methodsOf(e))
	}
}
