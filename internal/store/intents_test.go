package store

import (
	"errors"
	"testing"
	"time"
)

// An intent is open from Add until Finish, its payload follows each Update, and a finished
// intent can be neither updated nor finished again (a second runner cannot act on it).
func TestIntentLifecycle(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := t.Context()
		at := time.Now().Add(-time.Minute)
		for i, id := range []string{"i1", "i2", "i3"} {
			db := "db-a"
			if id == "i3" {
				db = "db-b"
			}
			if err := s.AddIntent(ctx, Intent{ID: id, TenantID: "t", DatabaseID: db, Kind: "checkpoint",
				Payload: `{"step":0}`, CreatedAt: at.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddIntent(ctx, Intent{ID: "i1", DatabaseID: "db-a", Kind: "x"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate id: %v, want ErrConflict", err)
		}
		if err := s.AddIntent(ctx, Intent{ID: "i9", Kind: "x"}); err == nil {
			t.Fatal("an intent without a database was accepted")
		}
		if err := s.UpdateIntent(ctx, "i1", `{"step":1}`); err != nil {
			t.Fatal(err)
		}
		open, err := s.OpenIntents(ctx, "db-a")
		if err != nil {
			t.Fatal(err)
		}
		if len(open) != 2 || open[0].ID != "i1" || open[1].ID != "i2" || open[0].Payload != `{"step":1}` || open[0].DoneAt != nil {
			t.Fatalf("open intents of db-a: %+v", open)
		}
		if err := s.FinishIntent(ctx, "i1", "done"); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishIntent(ctx, "i1", "rolled_back"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("finishing twice: %v, want ErrNotFound", err)
		}
		if err := s.UpdateIntent(ctx, "i1", `{}`); !errors.Is(err, ErrNotFound) {
			t.Fatalf("updating a finished intent: %v, want ErrNotFound", err)
		}
		all, err := s.OpenIntents(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].ID != "i2" || all[1].ID != "i3" {
			t.Fatalf("open intents: %+v", all)
		}

		// A recovered intent is claimed by exactly one retry.
		if err := s.FinishIntent(ctx, "i2", "recovered"); err != nil {
			t.Fatal(err)
		}
		rec, err := s.RecoveredIntents(ctx, "db-a", time.Now().Add(-time.Hour))
		if err != nil || len(rec) != 1 || rec[0].ID != "i2" || rec[0].Outcome != "recovered" {
			t.Fatalf("recovered: %+v, %v", rec, err)
		}
		if rec, _ := s.RecoveredIntents(ctx, "db-a", time.Now().Add(time.Hour)); len(rec) != 0 {
			t.Fatalf("recovered since a later time: %+v", rec)
		}
		if err := s.ClaimIntent(ctx, "i2"); err != nil {
			t.Fatal(err)
		}
		if err := s.ClaimIntent(ctx, "i2"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second claim: %v, want ErrNotFound", err)
		}
		if rec, _ := s.RecoveredIntents(ctx, "db-a", time.Now().Add(-time.Hour)); len(rec) != 0 {
			t.Fatalf("a claimed intent is still offered: %+v", rec)
		}
		// i1 was done by its call, i2 recovered and answered: both completed; i3 is open.
		done, err := s.CompletedIntents(ctx, "db-a", "checkpoint")
		if err != nil || len(done) != 2 || done[0].ID != "i2" || done[1].ID != "i1" {
			t.Fatalf("completed: %+v, %v", done, err)
		}
		if err := s.AddIntent(ctx, Intent{ID: "i4", DatabaseID: "db-a", Kind: "checkpoint", Payload: "{}"}); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishIntent(ctx, "i4", "rolled_back"); err != nil {
			t.Fatal(err)
		}
		if done, _ := s.CompletedIntents(ctx, "db-a", "checkpoint"); len(done) != 2 {
			t.Fatalf("a rolled back intent counts as completed: %+v", done)
		}
		n, err := s.PruneIntents(ctx, time.Now().Add(time.Minute))
		if err != nil || n != 3 {
			t.Fatalf("prune: %d, %v; want the 3 finished intents", n, err)
		}
		if all, _ := s.OpenIntents(ctx, ""); len(all) != 1 || all[0].ID != "i3" {
			t.Fatalf("prune removed an open intent: %+v", all)
		}
	})
}
