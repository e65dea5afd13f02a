package store

import (
	"testing"
	"time"
)

func TestTallyBranches(t *testing.T) { forEachStore(t, testTallyBranches) }

// testTallyBranches: the count is of the database's records, and the named branch (expired or
// not) is found without listing.
func testTallyBranches(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	createDB(t, s, "t1", "app", "proj-1")
	createDB(t, s, "t1", "other", "proj-2")
	now := time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Minute), now.Add(time.Hour)
	for _, b := range []Branch{
		{ID: "br-a", DatabaseID: "proj-1", Name: "a", Kind: BranchDev, ExpiresAt: &future, CreatedAt: now},
		{ID: "br-b", DatabaseID: "proj-1", Name: "b", Kind: BranchDev, ExpiresAt: &past, CreatedAt: now},
		{ID: "br-c", DatabaseID: "proj-1", Name: "c", Kind: BranchBackup, CreatedAt: now},
		{ID: "br-x", DatabaseID: "proj-2", Name: "a", Kind: BranchDev, ExpiresAt: &past, CreatedAt: now},
	} {
		if err := s.AddBranch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.TallyBranches(ctx, "proj-1", "b")
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != 3 || got.Named == nil || got.Named.ID != "br-b" || got.Named.Kind != BranchDev ||
		got.Named.ExpiresAt == nil || !got.Named.ExpiresAt.Equal(past) {
		t.Errorf("tally = %+v (named %+v)", got, got.Named)
	}
	if got, err := s.TallyBranches(ctx, "proj-1", "nope"); err != nil || got.Count != 3 || got.Named != nil {
		t.Errorf("tally of an unknown name = %+v, %v", got, err)
	}
	if got, err := s.TallyBranches(ctx, "proj-3", "a"); err != nil || got.Count != 0 || got.Named != nil {
		t.Errorf("tally of an unknown database = %+v, %v", got, err)
	}
}
