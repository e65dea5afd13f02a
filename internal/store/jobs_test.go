package store

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
)

func newJobTenant(t *testing.T, s Store, tenant string) {
	t.Helper()
	if _, err := s.EnsureTenant(t.Context(), tenant, "free"); err != nil {
		t.Fatal(err)
	}
}

func TestJobLifecycle(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := t.Context()
		newJobTenant(t, s, "acme")
		now := time.Now().Truncate(time.Microsecond)
		if err := s.CreateJob(ctx, Job{ID: "j1", Kind: "tier_change", TenantID: "acme", Step: "plan", Payload: `{"a":1}`, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		// One unfinished job per tenant and kind.
		err := s.CreateJob(ctx, Job{ID: "j2", Kind: "tier_change", TenantID: "acme", Step: "plan"})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("second unfinished job: %v, want ErrConflict", err)
		}
		j, err := s.GetJob(ctx, "j1")
		if err != nil {
			t.Fatal(err)
		}
		if j.State != JobPending || j.Step != "plan" || j.Payload != `{"a":1}` || !j.CreatedAt.Equal(now) || j.LeaseOwner != "" || !j.LeaseUntil.IsZero() {
			t.Fatalf("created job = %+v", j)
		}

		until := now.Add(time.Minute)
		j, err = s.ClaimJob(ctx, "j1", "A", "", now, until)
		if err != nil || j.State != JobRunning || j.LeaseOwner != "A" || j.Attempts != 1 || !j.LeaseUntil.Equal(until) {
			t.Fatalf("claim by A = %+v, %v", j, err)
		}
		// B cannot take a live lease.
		_, err = s.ClaimJob(ctx, "j1", "B", "", now.Add(time.Second), now.Add(2*time.Minute))
		var le *JobLeasedError
		if !errors.Is(err, ErrJobLeased) || !errors.As(err, &le) || le.Owner != "A" {
			t.Fatalf("claim by B under A's lease: %v", err)
		}
		if err := s.CancelJob(ctx, "j1", now.Add(time.Second)); !errors.Is(err, ErrJobLeased) {
			t.Fatalf("cancel of a running job: %v", err)
		}
		// Progress is compare-and-set on the step.
		if err := s.AdvanceJob(ctx, "j1", "A", "plan", "transfer", `{"a":2}`, now); err != nil {
			t.Fatal(err)
		}
		if err := s.AdvanceJob(ctx, "j1", "A", "plan", "transfer", `{"a":3}`, now); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("advancing the same step twice: %v", err)
		}
		if err := s.AdvanceJob(ctx, "j1", "B", "transfer", "settings", `{}`, now); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("advance by a non-owner: %v", err)
		}
		// A crashes: its lease runs out and B takes over.
		later := until.Add(time.Second)
		j, err = s.ClaimJob(ctx, "j1", "B", "", later, later.Add(time.Minute))
		if err != nil || j.LeaseOwner != "B" || j.Step != "transfer" || j.Payload != `{"a":2}` || j.Attempts != 2 {
			t.Fatalf("claim after expiry = %+v, %v", j, err)
		}
		if err := s.RenewJobLease(ctx, "j1", "A", later, later.Add(time.Hour)); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("renew by the old owner: %v", err)
		}
		if err := s.RenewJobLease(ctx, "j1", "B", later, later.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		// A failure keeps it resumable, with the error.
		if err := s.FailJob(ctx, "j1", "B", `{"a":4}`, "neon said no", later); err != nil {
			t.Fatal(err)
		}
		j, _ = s.GetJob(ctx, "j1")
		if j.State != JobFailed || j.Error != "neon said no" || j.LeaseOwner != "" || j.Step != "transfer" || !j.Unfinished() {
			t.Fatalf("failed job = %+v", j)
		}
		if err := s.CreateJob(ctx, Job{ID: "j3", Kind: "tier_change", TenantID: "acme", Step: "plan"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("a failed job is unfinished: new job: %v", err)
		}
		// A known dead owner's live lease can be taken.
		if _, err := s.ClaimJob(ctx, "j1", "C", "", later, later.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClaimJob(ctx, "j1", "D", "C", later, later.Add(time.Hour)); err != nil {
			t.Fatalf("take over from a dead owner: %v", err)
		}
		if err := s.ReleaseJob(ctx, "j1", "D", later); err != nil {
			t.Fatal(err)
		}
		if j, _ = s.GetJob(ctx, "j1"); j.State != JobPending || j.LeaseOwner != "" {
			t.Fatalf("released job = %+v", j)
		}
		if _, err := s.ClaimJob(ctx, "j1", "D", "", later, later.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishJob(ctx, "j1", "D", JobDone, `{"a":5}`, "", later); err != nil {
			t.Fatal(err)
		}
		j, _ = s.GetJob(ctx, "j1")
		if j.State != JobDone || j.Step != "" || j.FinishedAt == nil || j.Unfinished() || j.Payload != `{"a":5}` {
			t.Fatalf("done job = %+v", j)
		}
		if _, err := s.ClaimJob(ctx, "j1", "E", "", later, later.Add(time.Hour)); !errors.Is(err, ErrJobFinished) {
			t.Fatalf("claim of a done job: %v", err)
		}
		if err := s.FinishJob(ctx, "j1", "D", JobDone, `{}`, "", later); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("finishing twice: %v", err)
		}
		// Finished: the tenant may start another, and the list shows both, newest first.
		if err := s.CreateJob(ctx, Job{ID: "j4", Kind: "tier_change", TenantID: "acme", Step: "plan", CreatedAt: later}); err != nil {
			t.Fatal(err)
		}
		newJobTenant(t, s, "other")
		if err := s.CreateJob(ctx, Job{ID: "k1", Kind: "tier_change", TenantID: "other", Step: "plan", CreatedAt: later.Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
		all, err := s.ListJobs(ctx, JobFilter{})
		if err != nil || len(all) != 3 || all[0].ID != "k1" || all[2].ID != "j1" {
			t.Fatalf("list = %v, %v", ids(all), err)
		}
		mine, _ := s.ListJobs(ctx, JobFilter{TenantID: "acme"})
		open, _ := s.ListJobs(ctx, JobFilter{TenantID: "acme", Unfinished: true})
		if len(mine) != 2 || len(open) != 1 || open[0].ID != "j4" {
			t.Fatalf("acme's jobs = %v, unfinished %v", ids(mine), ids(open))
		}
		if err := s.CancelJob(ctx, "j4", later); err != nil {
			t.Fatal(err)
		}
		if j, _ = s.GetJob(ctx, "j4"); j.State != JobCancelled {
			t.Fatalf("cancelled job = %+v", j)
		}
		if _, err := s.GetJob(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown job: %v", err)
		}
	})
}

func ids(js []Job) []string {
	out := make([]string, 0, len(js))
	for _, j := range js {
		out = append(out, j.ID)
	}
	return out
}

// TestJobClaimIsExclusive races claimers (the replicas of a PostgreSQL store share one
// database): exactly one wins.
func TestJobClaimIsExclusive(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		newJobTenant(t, s, "acme")
		if err := s.CreateJob(ctx, Job{ID: "j1", Kind: "tier_change", TenantID: "acme", Step: "plan"}); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := range 8 {
			wg.Go(func() {
				_, err := s.ClaimJob(ctx, "j1", "owner-"+string(rune('a'+i)), "", now, now.Add(time.Minute))
				switch {
				case err == nil:
					mu.Lock()
					won++
					mu.Unlock()
				case !errors.Is(err, ErrJobLeased):
					t.Errorf("claim: %v", err)
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d claimers won", won)
		}
	})
}

func TestSetDatabaseOrg(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := t.Context()
		newJobTenant(t, s, "acme")
		if _, _, err := s.ReserveDatabase(ctx, "acme", "app"); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteDatabase(ctx, Database{ID: "p1", TenantID: "acme", Name: "app", OrgID: "org-free"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetDatabaseOrg(ctx, "p1", "org-paid"); err != nil {
			t.Fatal(err)
		}
		if db, _ := s.GetDatabase(ctx, "acme", "p1"); db.OrgID != "org-paid" {
			t.Fatalf("org = %q", db.OrgID)
		}
		if err := s.SetDatabaseOrg(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown database: %v", err)
		}
	})
}

// migrationCount is the number of migrations (numbered 1..n: the embedded files and the Go
// ones), the schema version a migrated store must report.
func migrationCount(t *testing.T) int64 {
	t.Helper()
	files, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(files) + len(goMigrations(goose.DialectSQLite3)))
}
