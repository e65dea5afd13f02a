package store

import (
	"errors"
	"testing"
	"time"
)

func TestGetDatabaseWithDeleted(t *testing.T) { forEachStore(t, testGetDatabaseWithDeleted) }

func testGetDatabaseWithDeleted(t *testing.T, s Store) {
	ctx := t.Context()
	for _, id := range []string{"t1", "t2"} {
		if _, err := s.EnsureTenant(ctx, id, "free"); err != nil {
			t.Fatal(err)
		}
	}
	createDB(t, s, "t1", "app", "proj-1")
	if got, err := s.GetDatabaseWithDeleted(ctx, "t1", "proj-1"); err != nil || got.DeletedAt != nil || got.Name != "app" {
		t.Fatalf("live: %+v, %v", got, err)
	}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.MarkDatabaseDeleted(ctx, "proj-1", at); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDatabaseWithDeleted(ctx, "t1", "proj-1")
	if err != nil || got.DeletedAt == nil || !got.DeletedAt.Equal(at) || got.Name != "app" {
		t.Fatalf("deleted: %+v, %v", got, err)
	}
	if _, err := s.GetDatabaseWithDeleted(ctx, "t2", "proj-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("other tenant: %v, want ErrNotFound", err)
	}
	if _, err := s.GetDatabaseWithDeleted(ctx, "t1", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty id: %v, want ErrNotFound", err)
	}
}
