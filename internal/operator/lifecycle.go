package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// Tier changes run as durable jobs: a list of named, idempotent steps recorded in the store
// (store.JobStore), so a crash at any point is finished exactly once by the next
// `neonguard jobs resume` or `serve` start:
//
//	plan      snapshot the databases (branches, checkpoints, usage) and compare them with the
//	          target tier; over a limit the job is refused with a Report unless forced
//	settings  PATCH each project to the tier's quotas, compute range, suspend timeout and
//	          restore window (skipped where they already match)
//	transfer  move the projects not yet in the target org (re-read where each one is; batches
//	          of at most 400; the personal API key)
//	record    record each project's org in the store and set the tenant's tier
//
// settings runs before transfer when the target tier fits the source org's plan (a downgrade:
// the free org refuses a project with a paid restore window), after it otherwise (an upgrade:
// the free org's plan cannot hold the paid settings).
//
// Each step's completion is written (compare-and-set on the step name, under the job's lease)
// before the next step starts; a runner that lost its lease stops. A failing step leaves the
// job failed and resumable with its error; nothing is marked done that did not happen.

// KindTierChange is the store's job kind of a tier change.
const KindTierChange = "tier_change"

// Step names.
const (
	StepPlan     = "plan"
	StepSettings = "settings"
	StepTransfer = "transfer"
	StepRecord   = "record"
)

// Step states within a job.
const (
	StepPending = "pending"
	StepDone    = "done"
	StepFailed  = "failed"
)

// ErrNoPersonalKey: a tier change needs Neon's personal API key (it alone may move projects).
var ErrNoPersonalKey = errors.New("set_tier needs Neon's personal API key: set neon.personal_api_key (NEON_PERSONAL_API_KEY), a key of a member of both orgs")

// TierChangeDeps are the Service's collaborators.
type TierChangeDeps struct {
	Store  store.Store
	Locker store.Locker
	Policy policy.Config
	Orgs   []guard.Org // the orgs tiers place projects in (IDs; their clients are not used)
	// Personal is a client on Neon's personal API key; nil when none is configured, which makes
	// every tier change fail with ErrNoPersonalKey.
	Personal neon.API
	Logger   *slog.Logger
	Now      func() time.Time // default time.Now
	// LeaseTTL is how long a runner that stopped renewing (crashed) keeps a job; default 1 min.
	LeaseTTL time.Duration
	// AfterStep, when set, is called right after a step's completion is recorded in the store.
	// Test-only: the crash tests make the process SIGKILL itself there (cmd/neonguard reads
	// NEONGUARD_TEST_CRASH_AFTER_STEP). Production wiring leaves it nil.
	AfterStep func(jobID, step string)
}

// Service runs tier-change jobs.
type TierChanges struct {
	d     TierChangeDeps
	owner string
	log   *slog.Logger

	// running holds the jobs this process runs now. The store's lease names this process as
	// the owner, and the lease alone would let a second caller in this process (the background
	// loop while admin_set_tier runs) claim the same job again.
	mu      sync.Mutex
	running map[string]bool
}

// New checks d and returns a Service.
func NewTierChanges(d TierChangeDeps) (*TierChanges, error) {
	if d.Store == nil || d.Locker == nil {
		return nil, errors.New("lifecycle: store and locker are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.LeaseTTL <= 0 {
		d.LeaseTTL = time.Minute
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &TierChanges{d: d, owner: newOwner(), log: log.With("component", "lifecycle")}, nil
}

// Job is a tier-change job as the operator sees it (CLI, admin tool).
type Job struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	Tenant     string     `json:"tenant"`
	State      string     `json:"state" jsonschema_description:"pending, running, failed (resumable), done, refused or cancelled"`
	FromTier   string     `json:"from_tier"`
	ToTier     string     `json:"to_tier"`
	Force      bool       `json:"force"`
	NextStep   string     `json:"next_step,omitempty" jsonschema_description:"the step a resume starts with; empty once finished"`
	Steps      []Step     `json:"steps"`
	Report     *Report    `json:"report,omitempty" jsonschema_description:"the databases compared with the target tier (plan step)"`
	Error      string     `json:"error,omitempty"`
	Attempts   int        `json:"attempts"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// Step is one step of a job and what it did.
type Step struct {
	Name       string     `json:"name"`
	State      string     `json:"state" jsonschema_description:"pending, done or failed"`
	Result     string     `json:"result,omitempty"`
	Error      string     `json:"error,omitempty"`
	Runs       int        `json:"runs" jsonschema_description:"how many times the step was started"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// payload is the job's state in the store (store.Job.Payload).
type payload struct {
	FromTier  string             `json:"from_tier"`
	ToTier    string             `json:"to_tier"`
	Force     bool               `json:"force"`
	Steps     []Step             `json:"steps"`
	Databases []DatabaseSnapshot `json:"databases,omitempty"`
	Report    *Report            `json:"report,omitempty"`
}

func (p *payload) step(name string) *Step {
	for i := range p.Steps {
		if p.Steps[i].Name == name {
			return &p.Steps[i]
		}
	}
	return nil
}

// next is the step after name, "" for the last.
func (p *payload) next(name string) string {
	for i := range p.Steps {
		if p.Steps[i].Name == name && i+1 < len(p.Steps) {
			return p.Steps[i+1].Name
		}
	}
	return ""
}

func decode(j store.Job) (payload, error) {
	var p payload
	if err := json.Unmarshal([]byte(j.Payload), &p); err != nil {
		return p, fmt.Errorf("lifecycle: job %s: payload: %w", j.ID, err)
	}
	return p, nil
}

func encode(p payload) string {
	b, _ := json.Marshal(p) // plain data: cannot fail
	return string(b)
}

func view(j store.Job) *Job {
	p, _ := decode(j) // a broken payload still shows the row
	out := &Job{ID: j.ID, Kind: j.Kind, Tenant: j.TenantID, State: j.State, FromTier: p.FromTier, ToTier: p.ToTier,
		Force: p.Force, NextStep: j.Step, Steps: p.Steps, Report: p.Report, Error: j.Error, Attempts: j.Attempts,
		CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, FinishedAt: j.FinishedAt}
	if out.Steps == nil {
		out.Steps = []Step{}
	}
	return out
}

// Start records a tier change of tenant to tier and returns it without running it. If the
// tenant has an unfinished tier change to the same tier, that job is returned (so a repeated
// set_tier resumes it); to another tier, the answer is an INVALID_ARGUMENT naming it.
func (s *TierChanges) Start(ctx context.Context, tenant, tier string, force bool) (*Job, error) {
	target, err := s.d.Policy.Tier(tier)
	if err != nil {
		return nil, &errcode.Error{Code: errcode.InvalidArgument, Message: fmt.Sprintf("unknown tier %q", tier),
			Hint: "use a tier of policy.tiers", Err: err}
	}
	t, err := s.d.Store.GetTenant(ctx, tenant)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &errcode.Error{Code: errcode.NotFound, Message: fmt.Sprintf("no tenant %q", tenant), Hint: "list tenants with admin_list_tenants or `neonguard tenant list`"}
	}
	if err != nil {
		return nil, err
	}
	if s.d.Personal == nil {
		return nil, &errcode.Error{Code: errcode.InvalidArgument, Message: ErrNoPersonalKey.Error(), Err: ErrNoPersonalKey}
	}
	source, err := s.d.Policy.Tier(t.Tier)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: tenant %s: %w", tenant, err)
	}
	p := payload{FromTier: t.Tier, ToTier: target.Name, Force: force}
	for _, name := range s.order(source, target) {
		p.Steps = append(p.Steps, Step{Name: name, State: StepPending})
	}
	j := store.Job{ID: "job-" + uuid.NewString(), Kind: KindTierChange, TenantID: tenant, Step: StepPlan,
		Payload: encode(p), CreatedAt: s.d.Now()}
	err = s.d.Store.CreateJob(ctx, j)
	if errors.Is(err, store.ErrConflict) {
		return s.existing(ctx, tenant, target.Name)
	}
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "tier change started", "job", j.ID, "tenant", tenant, "from", t.Tier, "to", target.Name, "force", force)
	got, err := s.d.Store.GetJob(ctx, j.ID)
	if err != nil {
		return nil, err
	}
	return view(got), nil
}

// existing answers a set_tier while the tenant has an unfinished tier change.
func (s *TierChanges) existing(ctx context.Context, tenant, tier string) (*Job, error) {
	open, err := s.d.Store.ListJobs(ctx, store.JobFilter{TenantID: tenant, Kind: KindTierChange, Unfinished: true, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(open) == 0 { // finished meanwhile: the caller may simply try again
		return nil, &errcode.Error{Code: errcode.InvalidArgument, Message: "another tier change of tenant " + tenant + " just finished", Hint: "check `neonguard jobs list` and try again"}
	}
	j := view(open[0])
	if j.ToTier == tier {
		return j, nil
	}
	return nil, &errcode.Error{Code: errcode.InvalidArgument,
		Message: fmt.Sprintf("tenant %s has an unfinished tier change to %s (job %s, %s)", tenant, j.ToTier, j.ID, j.State),
		Hint:    fmt.Sprintf("finish it with `neonguard jobs resume %s` or cancel it with `neonguard jobs cancel %s`, then change the tier", j.ID, j.ID)}
}

// order is the step list: settings first when the target tier's settings fit the source org's
// plan (so the destination's transfer check sees settings it accepts), after the transfer
// otherwise.
func (s *TierChanges) order(source, target policy.Tier) []string {
	if source.Org == target.Org {
		return []string{StepPlan, StepSettings, StepTransfer, StepRecord}
	}
	plan, err := s.d.Policy.Plan(source.Org)
	if err == nil && target.RestoreWindow <= plan.MaxRestoreWindow && target.MaxComputeCU <= plan.MaxComputeCU &&
		(target.SuspendTimeout <= 0 || target.SuspendTimeout >= plan.MinSuspendTimeout) {
		return []string{StepPlan, StepSettings, StepTransfer, StepRecord}
	}
	return []string{StepPlan, StepTransfer, StepSettings, StepRecord}
}

// SetTier starts (or picks up) a tier change and runs it to its end.
func (s *TierChanges) SetTier(ctx context.Context, tenant, tier string, force bool) (*Job, error) {
	j, err := s.Start(ctx, tenant, tier, force)
	if err != nil {
		return nil, err
	}
	return s.Run(ctx, j.ID)
}

// Get returns one job.
func (s *TierChanges) Get(ctx context.Context, id string) (*Job, error) {
	j, err := s.d.Store.GetJob(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &errcode.Error{Code: errcode.NotFound, Message: "no job " + id, Hint: "`neonguard jobs list` shows the jobs"}
	}
	if err != nil {
		return nil, err
	}
	return view(j), nil
}

// List returns the tier-change jobs, newest first ("" tenant: all).
func (s *TierChanges) List(ctx context.Context, tenant string, unfinished bool, limit int) ([]*Job, error) {
	js, err := s.d.Store.ListJobs(ctx, store.JobFilter{TenantID: tenant, Kind: KindTierChange, Unfinished: unfinished, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]*Job, 0, len(js))
	for _, j := range js {
		out = append(out, view(j))
	}
	return out, nil
}

// Cancel ends an unfinished job that nobody runs. What its finished steps did stays done (the
// tenant's tier is unchanged; setting it again converges the projects).
func (s *TierChanges) Cancel(ctx context.Context, id string) (*Job, error) {
	if err := s.d.Store.CancelJob(ctx, id, s.d.Now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, &errcode.Error{Code: errcode.NotFound, Message: "no job " + id, Hint: "`neonguard jobs list` shows the jobs"}
		}
		return nil, err
	}
	s.log.InfoContext(ctx, "job cancelled", "job", id)
	return s.Get(ctx, id)
}

// ResumeAll runs every unfinished job to its end, one after the other, and returns them. Jobs
// another live runner holds are skipped (it finishes them). With failedToo false, jobs whose
// last attempt failed are left for an explicit resume (a periodic sweep must not hammer Neon
// with a request it keeps refusing).
func (s *TierChanges) ResumeAll(ctx context.Context, failedToo bool) ([]*Job, error) {
	open, err := s.d.Store.ListJobs(ctx, store.JobFilter{Kind: KindTierChange, Unfinished: true, Limit: store.MaxAuditLimit})
	if err != nil {
		return nil, err
	}
	var out []*Job
	var errs []error
	for i := len(open) - 1; i >= 0; i-- { // oldest first
		j := open[i]
		if j.State == store.JobFailed && !failedToo {
			continue
		}
		if j.State == store.JobRunning && j.LeaseUntil.After(s.d.Now()) && !ownerDead(j.LeaseOwner) {
			continue // a live runner, this process included, holds it
		}
		got, err := s.Run(ctx, j.ID)
		if errors.Is(err, store.ErrJobLeased) || errors.Is(err, store.ErrJobFinished) {
			continue
		}
		if got != nil {
			out = append(out, got)
		}
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return out, errors.Join(errs...)
}

// Loop resumes unfinished jobs at start (failed ones too: a restart is the operator's retry)
// and then, every interval, jobs a crashed runner left behind; it returns when ctx ends.
func (s *TierChanges) Loop(ctx context.Context, interval time.Duration) {
	failedToo := true
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if jobs, err := s.ResumeAll(ctx, failedToo); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "resuming jobs", "err", err)
		} else if len(jobs) > 0 {
			s.log.InfoContext(ctx, "resumed jobs", "count", len(jobs))
		}
		failedToo = false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
