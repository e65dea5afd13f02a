package app_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/store"
)

// emulatorAPI is a Neon client on the app's emulator with the free org's key: the test's way
// to act on "Neon" behind the guard's back.
func emulatorAPI(t testing.TB, a *app.App) *neon.Client {
	t.Helper()
	cl, err := neon.New(neon.Config{BaseURL: a.EmulatorURL, APIKey: a.Emulator.Credentials().FreeOrgAPIKey,
		OperationPoll: 2 * time.Millisecond, RequestsPerSecond: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: did not happen", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func recorded(t testing.TB, a *app.App, databaseID string) map[string]store.Branch {
	t.Helper()
	rows, err := a.Store.ListBranches(context.Background(), databaseID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Branch{}
	for _, r := range rows {
		out[r.ID] = r
	}
	return out
}

// An expired dev branch disappears, as on Neon, and the branch limit frees up: ten branches
// (main and nine dev branches) fill the free tier, the next is BRANCH_LIMIT, one dev branch
// expires (its expiry brought forward to a few seconds on the emulator: the tier's shortest
// ttl is a minute), the emulator deletes it, and create_dev_branch succeeds again.
func TestExpiredDevBranchDisappearsAndFreesTheBranchLimit(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	id := createDB(t, c, "app")
	var expiring string
	for i := 1; i <= 9; i++ {
		r := mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": fmt.Sprintf("dev-%d", i), "ttl": "1h"}), "dev branch")
		if i == 4 {
			expiring = str(r, "branch_id")
		}
		// The guard sets the expiry on Neon, not only in its own records.
		b, err := emulatorAPI(t, a).GetBranch(context.Background(), id, str(r, "branch_id"))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := time.Parse(time.RFC3339, str(r, "expires_at"))
		if b.ExpiresAt == nil || !b.ExpiresAt.Equal(want) {
			t.Fatalf("dev-%d: Neon's expires_at = %v, want %v", i, b.ExpiresAt, want)
		}
	}
	if r := call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "dev-10"}); r.Code != "BRANCH_LIMIT" {
		t.Fatalf("11th branch: got %s, want BRANCH_LIMIT", r)
	}

	soon := time.Now().Truncate(time.Second).Add(2 * time.Second)
	if _, err := emulatorAPI(t, a).UpdateBranch(context.Background(), id, expiring, neon.BranchUpdate{ExpiresAt: &soon}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the emulator deletes the expired branch", func() bool {
		_, err := emulatorAPI(t, a).GetBranch(context.Background(), id, expiring)
		return errors.Is(err, neon.ErrNotFound)
	})
	list := mustOK(t, call(t, c, "list_branches", map[string]any{"database_id": id}), "list_branches")
	for _, b := range list["branches"].([]any) {
		if name := str(b.(map[string]any), "name"); name == "dev-4" {
			t.Fatal("list_branches still shows the expired branch")
		}
	}
	mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "dev-10"}), "dev branch after the expiry")

	// The guard's record of the expired branch is what the janitor forgets.
	if _, ok := recorded(t, a, id)[expiring]; !ok {
		t.Fatal("the expired branch's record is missing before the janitor ran")
	}
	rep, err := a.Guard.SweepExpired(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Pruned) != 1 || rep.Pruned[0].BranchID != expiring || len(rep.Deleted) != 0 {
		t.Fatalf("janitor: %+v, want the expired branch's record forgotten and nothing deleted", rep)
	}
	if _, ok := recorded(t, a, id)[expiring]; ok {
		t.Fatal("the janitor kept the record of a branch Neon no longer has")
	}
}

// The janitor deletes a dev branch whose recorded expiry passed but that Neon did not expire
// (here its expiry was cleared on Neon), forgets one deleted outside neonguard, keeps those
// not yet expired, and never touches main.
func TestJanitorDeletesWhatNeonDidNotExpire(t *testing.T) {
	a := newApp(t)
	c := connect(t, a)
	id := createDB(t, c, "app")
	api := emulatorAPI(t, a)
	ctx := context.Background()
	mk := func(name string) string {
		return str(mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": name, "ttl": "1m"}), name), "branch_id")
	}
	stuck, gone := mk("stuck"), mk("gone")
	young := str(mustOK(t, call(t, c, "create_dev_branch", map[string]any{"database_id": id, "name": "young", "ttl": "2h"}), "young"), "branch_id")
	if _, err := api.UpdateBranch(ctx, id, stuck, neon.BranchUpdate{ClearExpiry: true}); err != nil {
		t.Fatal(err)
	}
	if err := api.DeleteBranch(ctx, id, gone); err != nil {
		t.Fatal(err)
	}

	// As if an hour had passed.
	rep, err := a.Guard.SweepExpired(ctx, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0].BranchID != stuck || len(rep.Pruned) != 1 || rep.Pruned[0].BranchID != gone || rep.Failed != 0 {
		t.Fatalf("janitor: %+v", rep)
	}
	if _, err := api.GetBranch(ctx, id, stuck); !errors.Is(err, neon.ErrNotFound) {
		t.Fatalf("the expired branch is still on Neon: %v", err)
	}
	rows := recorded(t, a, id)
	if _, ok := rows[stuck]; ok {
		t.Error("the deleted branch is still recorded")
	}
	if _, ok := rows[young]; !ok {
		t.Error("the janitor forgot a branch that has not expired")
	}
	branches := mustOK(t, call(t, c, "list_branches", map[string]any{"database_id": id}), "list_branches")["branches"].([]any)
	var names []string
	for _, b := range branches {
		names = append(names, str(b.(map[string]any), "name"))
	}
	if strings.Join(names, ",") != "main,young" && strings.Join(names, ",") != "young,main" {
		t.Fatalf("branches after the janitor: %v, want main and young", names)
	}
	// A second pass has nothing to do.
	if rep, err := a.Guard.SweepExpired(ctx, time.Now().Add(time.Hour)); err != nil || len(rep.Deleted)+len(rep.Pruned)+rep.Failed != 0 {
		t.Fatalf("second pass: %+v, %v", rep, err)
	}
}

// With janitor.interval set, serve's background loop runs the janitor.
func TestJanitorRunsInTheBackground(t *testing.T) {
	a := newApp(t, func(c *config.Config) { c.Janitor.Interval = 10 * time.Millisecond })
	c := connect(t, a)
	id := createDB(t, c, "app")
	api := emulatorAPI(t, a)
	ctx := context.Background()
	// A branch the guard recorded as a dev branch that expired a minute ago, which Neon kept.
	b, err := api.CreateBranch(ctx, id, neon.BranchCreate{Name: "left-behind"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	if err := a.Store.AddBranch(ctx, store.Branch{ID: b.Branch.ID, DatabaseID: id, Name: "left-behind", Kind: store.BranchDev,
		ExpiresAt: &past, CreatedAt: past.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	bg, stop := context.WithCancel(ctx)
	wait := a.RunBackground(bg, nil)
	defer func() { stop(); wait() }()
	eventually(t, "the janitor deletes the left-behind branch", func() bool {
		_, err := api.GetBranch(ctx, id, b.Branch.ID)
		return errors.Is(err, neon.ErrNotFound) && len(recorded(t, a, id)) == 0
	})
}
