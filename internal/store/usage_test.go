package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var usagePeriod = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

func testAlert(id, db, metric string, threshold int) Alert {
	return Alert{ID: id, DatabaseID: db, TenantID: "t1", Metric: metric, Threshold: threshold, Level: "warning",
		Used: 81, Quota: 100, PeriodStart: usagePeriod, PeriodEnd: usagePeriod.AddDate(0, 1, 0),
		RaisedAt: usagePeriod.Add(time.Hour)}
}

func TestUsageSamples(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := t.Context()
		if _, err := s.LatestUsageSample(ctx, "db1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("latest of none: %v", err)
		}
		at := usagePeriod.Add(time.Hour)
		var batch []UsageSample
		for i := range 3 {
			batch = append(batch, UsageSample{DatabaseID: "db1", TenantID: "t1", TakenAt: at.Add(time.Duration(i) * time.Minute),
				PeriodStart: usagePeriod, PeriodEnd: usagePeriod.AddDate(0, 1, 0),
				ActiveTimeSeconds: int64(i), ComputeTimeSeconds: 2, WrittenDataBytes: 3, DataTransferBytes: 4, LogicalSizeBytes: 5})
		}
		batch = append(batch, UsageSample{DatabaseID: "db2", TakenAt: at, PeriodStart: usagePeriod, PeriodEnd: usagePeriod})
		if err := s.AddUsageSamples(ctx, batch); err != nil {
			t.Fatal(err)
		}
		// The same sample again is kept once.
		if err := s.AddUsageSamples(ctx, batch[:1]); err != nil {
			t.Fatal(err)
		}
		got, err := s.LatestUsageSample(ctx, "db1")
		if err != nil {
			t.Fatal(err)
		}
		if got != batch[2] {
			t.Fatalf("latest %+v, want %+v", got, batch[2])
		}
		n, err := s.PruneUsageSamples(ctx, at.Add(90*time.Second))
		if err != nil || n != 3 {
			t.Fatalf("pruned %d, %v; want 3", n, err)
		}
		if got, err := s.LatestUsageSample(ctx, "db1"); err != nil || got != batch[2] {
			t.Fatalf("after prune: %+v %v", got, err)
		}
		if err := s.AddUsageSamples(ctx, []UsageSample{{}}); err == nil {
			t.Fatal("empty sample accepted")
		}
	})
}

func TestRaiseAlertOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := t.Context()
		a := testAlert("al-1", "db1", "active_time_seconds", 80)
		raised, err := s.RaiseAlert(ctx, a, []byte(`{"id":"al-1"}`))
		if err != nil || !raised {
			t.Fatalf("first raise: %v %v", raised, err)
		}
		// Same key, another id (another replica's draw): a no-op, and no second outbox row.
		b := a
		b.ID = "al-other"
		for _, x := range []Alert{a, b} {
			if raised, err := s.RaiseAlert(ctx, x, []byte(`{}`)); err != nil || raised {
				t.Fatalf("second raise of %s: %v %v", x.ID, raised, err)
			}
		}
		// Another threshold, and the next period, are new alerts; this one has no outbox row.
		c := testAlert("al-2", "db1", "active_time_seconds", 95)
		if raised, err := s.RaiseAlert(ctx, c, nil); err != nil || !raised {
			t.Fatalf("raise 95: %v %v", raised, err)
		}
		next := testAlert("al-3", "db1", "active_time_seconds", 80)
		next.PeriodStart, next.PeriodEnd = a.PeriodEnd, a.PeriodEnd.AddDate(0, 1, 0)
		if raised, err := s.RaiseAlert(ctx, next, []byte(`{}`)); err != nil || !raised {
			t.Fatalf("raise next period: %v %v", raised, err)
		}

		list, err := s.ListAlerts(ctx, "db1", usagePeriod.Add(48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != "al-1" || list[1].ID != "al-2" {
			t.Fatalf("alerts this period: %+v", list)
		}
		if !list[0].Queued || list[0].DeliveredAt != nil || list[1].Queued {
			t.Fatalf("delivery state: %+v", list)
		}
		want := a
		want.Queued = true
		if list[0] != want {
			t.Fatalf("stored %+v, want %+v", list[0], want)
		}
		if list, _ := s.ListAlerts(ctx, "db1", a.PeriodEnd); len(list) != 1 || list[0].ID != "al-3" {
			t.Fatalf("alerts next period: %+v", list)
		}
		if list, _ := s.ListAlerts(ctx, "db2", a.RaisedAt); len(list) != 0 {
			t.Fatalf("alerts of db2: %+v", list)
		}
		var n int
		if err := rawDB(s).QueryRowContext(ctx, `SELECT COUNT(*) FROM usage_outbox`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("outbox rows %d %v, want 2", n, err)
		}
	})
}

func TestRaiseAlertConcurrent(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				raised, err := s.RaiseAlert(t.Context(), testAlert(fmt.Sprintf("al-%d", i), "db1", "written_data_bytes", 100), []byte(`{}`))
				if err != nil {
					t.Error(err)
				}
				if raised {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d raises took effect, want 1", wins.Load())
		}
	})
}

func TestOutboxClaims(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := t.Context()
		now := usagePeriod.Add(2 * time.Hour)
		for i := range 6 {
			a := testAlert(fmt.Sprintf("al-%d", i), "db1", "active_time_seconds", i)
			a.RaisedAt = now.Add(-time.Duration(6-i) * time.Minute)
			if _, err := s.RaiseAlert(ctx, a, fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
				t.Fatal(err)
			}
		}
		// Two replicas claim at once: each row goes to one of them.
		var mu sync.Mutex
		got := map[string]string{}
		var wg sync.WaitGroup
		for _, owner := range []string{"r1", "r2"} {
			wg.Go(func() {
				ds, err := s.ClaimDeliveries(ctx, owner, now, time.Minute, 10)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, d := range ds {
					if prev, ok := got[d.AlertID]; ok {
						t.Errorf("%s claimed by %s and %s", d.AlertID, prev, owner)
					}
					got[d.AlertID] = owner
				}
			})
		}
		wg.Wait()
		if len(got) != 6 {
			t.Fatalf("claimed %v", got)
		}
		// Leased rows are not claimable until the lease runs out.
		if ds, err := s.ClaimDeliveries(ctx, "r3", now.Add(30*time.Second), time.Minute, 10); err != nil || len(ds) != 0 {
			t.Fatalf("claimed leased rows: %v %v", ds, err)
		}
		owner0 := got["al-0"]
		if err := s.DeliverySucceeded(ctx, "al-0", owner0, now); err != nil {
			t.Fatal(err)
		}
		if err := s.DeliveryFailed(ctx, "al-1", got["al-1"], "500 Internal Server Error", now.Add(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeliveryFailed(ctx, "al-2", "not-the-owner", "x", now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("failure by a non-owner: %v", err)
		}
		// After the lease: al-0 is delivered, al-1 not yet due, the other four are claimable.
		later := now.Add(2 * time.Minute)
		ds, err := s.ClaimDeliveries(ctx, "r3", later, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 4 || ds[0].AlertID != "al-2" || string(ds[0].Payload) != `{"n":2}` || !ds[0].LeaseUntil.Equal(later.Add(time.Minute)) {
			t.Fatalf("reclaimed %+v", ds)
		}
		// The old owner of al-2 lost it: its late success is refused.
		if err := s.DeliverySucceeded(ctx, "al-2", got["al-2"], later); !errors.Is(err, ErrNotFound) {
			t.Fatalf("success by a former owner: %v", err)
		}
		for _, d := range ds {
			if err := s.DeliverySucceeded(ctx, d.AlertID, "r3", later); err != nil {
				t.Fatal(err)
			}
		}
		ds, err = s.ClaimDeliveries(ctx, "r1", now.Add(11*time.Minute), time.Minute, 10)
		if err != nil || len(ds) != 1 || ds[0].AlertID != "al-1" || ds[0].Attempts != 1 || ds[0].LastError != "500 Internal Server Error" {
			t.Fatalf("due again: %+v %v", ds, err)
		}
		if err := s.DeliverySucceeded(ctx, "al-1", "r1", now.Add(11*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeliverySucceeded(ctx, "al-1", "r1", now.Add(11*time.Minute)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second success: %v", err)
		}
		list, err := s.ListAlerts(ctx, "db1", now)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range list {
			if a.DeliveredAt == nil {
				t.Errorf("%s delivered at %v", a.ID, a.DeliveredAt)
			}
			if a.ID == "al-1" && a.Attempts != 1 {
				t.Errorf("al-1 attempts %d", a.Attempts)
			}
		}
		if _, err := s.ClaimDeliveries(ctx, "", now, time.Minute, 1); err == nil {
			t.Fatal("empty owner accepted")
		}
	})
}
