package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/app"
	"github.com/neonguard/neonguard/internal/config"
	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/operator"
	"github.com/neonguard/neonguard/internal/store"
)

const transferRoute = "POST /organizations/{source_org_id}/projects/transfer"

// personalClient reads the emulator as Neon's personal key does: every project of both orgs.
func personalClient(t *testing.T, a *app.App) *neon.Client {
	t.Helper()
	c, err := neon.New(neon.Config{BaseURL: a.EmulatorURL, APIKey: a.Emulator.Credentials().PersonalAPIKey,
		RequestsPerSecond: 10000, OperationPoll: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkOnTier reads every database back from the emulator and the store: the project is in the
// tier's org with the tier's settings, the row records that org, the tenant has the tier.
func checkOnTier(t *testing.T, a *app.App, tenant string, ids []string, tierName string) {
	t.Helper()
	ctx := context.Background()
	tier, _ := a.Config.Policy.Tier(tierName)
	creds := a.Emulator.Credentials()
	org := map[string]string{"free": creds.FreeOrgID, "paid": creds.PaidOrgID}[tier.Org]
	c := personalClient(t, a)
	for _, id := range ids {
		p, err := c.GetProject(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if p.OrgID != org {
			t.Errorf("%s: org %s, want %s (%s)", id, p.OrgID, org, tier.Org)
		}
		if want := int64(tier.RestoreWindow / time.Second); p.HistoryRetentionSeconds != want {
			t.Errorf("%s: history_retention_seconds %d, want %d", id, p.HistoryRetentionSeconds, want)
		}
		des := p.DefaultEndpointSettings
		if des == nil || des.AutoscalingLimitMinCU != tier.MinComputeCU || des.AutoscalingLimitMaxCU != tier.MaxComputeCU ||
			des.SuspendTimeoutSeconds != int64(tier.SuspendTimeout/time.Second) {
			t.Errorf("%s: default endpoint settings %+v, want tier %s's", id, des, tierName)
		}
		var q neon.Quota
		if p.Settings != nil && p.Settings.Quota != nil {
			q = *p.Settings.Quota
		}
		want := neon.Quota{ActiveTimeSeconds: tier.Quota.ActiveTimeSeconds, ComputeTimeSeconds: tier.Quota.ComputeTimeSeconds,
			WrittenDataBytes: tier.Quota.WrittenDataBytes, DataTransferBytes: tier.Quota.DataTransferBytes, LogicalSizeBytes: tier.Quota.LogicalSizeBytes}
		if q != want {
			t.Errorf("%s: quota %+v, want %+v", id, q, want)
		}
		db, err := a.Store.GetDatabase(ctx, tenant, id)
		if err != nil || db.OrgID != org {
			t.Errorf("%s: store row org %q (%v), want %s", id, db.OrgID, err, org)
		}
	}
	if got, err := a.Store.GetTenant(ctx, tenant); err != nil || got.Tier != tierName {
		t.Errorf("tenant tier %q (%v), want %s", got.Tier, err, tierName)
	}
}

func stepNames(j *operator.Job) string {
	var out []string
	for _, s := range j.Steps {
		out = append(out, fmt.Sprintf("%s:%s:%d", s.Name, s.State, s.Runs))
	}
	return strings.Join(out, " ")
}

// TestSetTier walks a tenant through an upgrade, a refused downgrade, a forced downgrade that
// Neon refuses (406), and its resume after the cause is fixed.
func TestSetTier(t *testing.T) {
	// The free tier allows fewer branches than the free org's plan, so a database can be over
	// the tier (refused without force) yet fit Neon's plan (a forced change goes through).
	a := newApp(t, func(c *config.Config) {
		free := c.Policy.Tiers["free"]
		free.Branches = 5
		c.Policy.Tiers["free"] = free
	})
	ctx := context.Background()
	if _, err := a.Store.EnsureTenant(ctx, "acme", "free"); err != nil {
		t.Fatal(err)
	}
	actx := identity.NewContext(ctx, identity.Principal{TenantID: "acme"})
	var ids []string
	for _, name := range []string{"app", "blog"} {
		res, err := a.Guard.CreateDatabase(actx, guard.CreateDatabaseInput{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.DatabaseID)
	}
	checkOnTier(t, a, "acme", ids, "free")

	// Upgrade: one transfer request moves both projects, then the paid settings are applied.
	before := a.Emulator.Requests()[transferRoute]
	j, err := a.Lifecycle.SetTier(ctx, "acme", "pro", false)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != store.JobDone || stepNames(j) != "plan:done:1 transfer:done:1 settings:done:1 record:done:1" {
		t.Fatalf("upgrade job %s: %s (%s)", j.State, stepNames(j), j.Error)
	}
	if n := a.Emulator.Requests()[transferRoute] - before; n != 1 {
		t.Errorf("%d transfer requests, want 1", n)
	}
	checkOnTier(t, a, "acme", ids, "pro")

	// Over the free tier: 3 checkpoints on app (tier and plan allow 1), 7 branches on blog (the
	// tier allows 5, the plan 10).
	for i := range 3 {
		if _, err := a.Guard.Checkpoint(actx, guard.CheckpointInput{DatabaseID: ids[0], Name: fmt.Sprintf("cp%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 {
		if _, err := a.Guard.CreateDevBranch(actx, guard.DevBranchInput{DatabaseID: ids[1], Name: fmt.Sprintf("dev%d", i)}); err != nil {
			t.Fatal(err)
		}
	}

	// Refused with the report: which database, what, by how much. Nothing moves.
	before = a.Emulator.Requests()[transferRoute]
	svc := &operator.Service{Store: a.Store, Policy: a.Config.Policy, Lifecycle: a.Lifecycle}
	_, err = svc.SetTier(ctx, "acme", "free", false)
	ge := errcode.As(err)
	if ge == nil || ge.Code != errcode.InvalidArgument {
		t.Fatalf("downgrade over the limits: %v, want INVALID_ARGUMENT", err)
	}
	for _, want := range []string{"database app (" + ids[0] + "): checkpoints 3, tier allows 1 (2 over)",
		"database blog (" + ids[1] + "): branches 7, tier allows 5 (2 over)"} {
		if !strings.Contains(ge.Message, want) {
			t.Errorf("report %q lacks %q", ge.Message, want)
		}
	}
	if !strings.Contains(ge.Hint, "force") {
		t.Errorf("hint %q does not mention force", ge.Hint)
	}
	jobs, _ := a.Lifecycle.List(ctx, "acme", false, 0)
	if len(jobs) != 2 || jobs[0].State != store.JobRefused || len(jobs[0].Report.Exceeds) != 2 {
		t.Fatalf("jobs after the refusal: %+v", jobs)
	}
	if n := a.Emulator.Requests()[transferRoute] - before; n != 0 {
		t.Errorf("refused downgrade sent %d transfers", n)
	}
	checkOnTier(t, a, "acme", ids, "pro")

	// Forced: app's 3 snapshots do not fit the free org's plan, so Neon refuses the transfer
	// (406). The job fails resumable, naming the limit; the tier is unchanged.
	j, err = a.Lifecycle.SetTier(ctx, "acme", "free", true)
	ge = errcode.As(err)
	if ge == nil || j == nil || j.State != store.JobFailed {
		t.Fatalf("forced downgrade over the plan: %v, job %+v", err, j)
	}
	var tl *neon.TransferLimitsError
	if !errors.As(err, &tl) || !strings.Contains(ge.Message, "snapshots_count 3 (allowed 1)") || !strings.Contains(ge.Hint, "jobs resume "+j.ID) {
		t.Errorf("406 error: %v (hint %q)", ge.Message, ge.Hint)
	}
	if stepNames(j) != "plan:done:1 settings:done:1 transfer:failed:1 record:pending:0" || j.NextStep != operator.StepTransfer {
		t.Errorf("failed job steps: %s, next %s", stepNames(j), j.NextStep)
	}
	if got, _ := a.Store.GetTenant(ctx, "acme"); got.Tier != "pro" {
		t.Errorf("tier after the failed job: %s", got.Tier)
	}
	// One unfinished tier change per tenant.
	if _, err := a.Lifecycle.Start(ctx, "acme", "pro", false); errcode.As(err) == nil || !strings.Contains(err.Error(), j.ID) {
		t.Errorf("second tier change while %s is unfinished: %v", j.ID, err)
	}

	// The operator deletes two snapshots outside neonguard and resumes: the job ends from its
	// failed step, with blog still over the tier (forced) but within Neon's plan.
	c := personalClient(t, a)
	snaps, err := c.ListSnapshots(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps[1:] {
		if err := c.DeleteSnapshot(ctx, ids[0], s.ID); err != nil {
			t.Fatal(err)
		}
	}
	before = a.Emulator.Requests()[transferRoute]
	j, err = a.Lifecycle.Run(ctx, j.ID)
	if err != nil || j.State != store.JobDone {
		t.Fatalf("resume: %v, %+v", err, j)
	}
	if stepNames(j) != "plan:done:1 settings:done:1 transfer:done:2 record:done:1" || j.Attempts != 2 {
		t.Errorf("resumed job steps: %s, attempts %d", stepNames(j), j.Attempts)
	}
	if n := a.Emulator.Requests()[transferRoute] - before; n != 1 {
		t.Errorf("%d transfer requests on resume, want 1", n)
	}
	checkOnTier(t, a, "acme", ids, "free")

	// Running it again is a no-op.
	if again, err := a.Lifecycle.Run(ctx, j.ID); err != nil || again.State != store.JobDone || again.Attempts != 2 {
		t.Errorf("running a done job: %v, %+v", err, again)
	}
}

// TestJobRunsOnceInAProcess: while admin_set_tier runs a tier change, the background loop of
// the same process (which holds the same lease owner) must not run the job a second time.
func TestJobRunsOnceInAProcess(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Local.OperationDelay = 5 * time.Millisecond
	cfg.Local.Postgres = "off"
	a, err := app.New(context.Background(), cfg, app.Options{
		Logger: slog.New(slog.DiscardHandler),
		NeonClient: func(c *neon.Config) {
			c.BaseBackoff, c.MaxBackoff = time.Millisecond, 20*time.Millisecond
			c.OperationPoll, c.EffectPause = 2*time.Millisecond, 10*time.Millisecond
		},
		AfterJobStep: func(_, step string) {
			if step == "plan" {
				once.Do(func() { close(started); <-release })
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ctx := context.Background()
	if _, err := a.Store.EnsureTenant(ctx, "acme", "free"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Guard.CreateDatabase(asTenant(ctx, "acme"), guard.CreateDatabaseInput{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		job *operator.Job
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		j, err := a.Lifecycle.SetTier(ctx, "acme", "pro", false)
		done <- outcome{j, err}
	}()
	<-started
	resumed, err := a.Lifecycle.ResumeAll(ctx, true) // the background loop's tick
	if err != nil || len(resumed) != 0 {
		t.Fatalf("ResumeAll ran %d job(s) (err %v) that this process is running", len(resumed), err)
	}
	// A second runner in the same process (another admin_set_tier) holds the same lease owner,
	// so only the in-process guard can refuse it.
	open, err := a.Lifecycle.List(ctx, "acme", true, 1)
	if err != nil || len(open) != 1 {
		t.Fatalf("unfinished jobs: %v, %v", open, err)
	}
	if _, err := a.Lifecycle.Run(ctx, open[0].ID); err == nil || !strings.Contains(err.Error(), "already running in this process") {
		t.Fatalf("a second Run of a running job: %v", err)
	}
	close(release)
	got := <-done
	if got.err != nil || got.job.State != "done" {
		t.Fatalf("SetTier: %+v, %v", got.job, got.err)
	}
	for _, st := range got.job.Steps {
		if st.Runs != 1 {
			t.Errorf("step %s ran %d times", st.Name, st.Runs)
		}
	}
}
