package store

import (
	"context"
	"errors"
	"time"
)

// JobStore keeps durable jobs: multi-step operations (a tier change) whose progress survives a
// crash, so `neonguard jobs resume` or the next start finishes each exactly once.
//
// A job runs under a lease: ClaimJob gives it to one runner (owner) until a time the runner
// keeps pushing forward (RenewJobLease); every write of progress names the owner and fails
// with ErrLeaseLost when another runner has taken over, so two replicas never record the same
// job's steps. Progress is compare-and-set on the step name: a step's completion is recorded
// once, together with the job's payload (the step results).
type JobStore interface {
	// CreateJob inserts a job in state JobPending. ErrConflict when the tenant already has an
	// unfinished job of the same kind (or the id exists).
	CreateJob(ctx context.Context, j Job) error
	GetJob(ctx context.Context, id string) (Job, error)
	ListJobs(ctx context.Context, f JobFilter) ([]Job, error) // newest first
	// ClaimJob leases an unfinished job to owner until `until` and counts the attempt. It
	// succeeds when nobody holds the lease, the lease ended before now, owner already holds
	// it, or it is held by takeFrom (an owner the caller knows to be dead; "" for none).
	// Errors: ErrNotFound, ErrJobFinished, or ErrJobLeased (wrapped in a *JobLeasedError).
	ClaimJob(ctx context.Context, id, owner, takeFrom string, now, until time.Time) (Job, error)
	RenewJobLease(ctx context.Context, id, owner string, now, until time.Time) error
	// AdvanceJob records that step `from` finished: the job moves to step `to` with payload.
	AdvanceJob(ctx context.Context, id, owner, from, to, payload string, now time.Time) error
	// FinishJob ends a job in a final state (JobDone or JobRefused) and releases it.
	FinishJob(ctx context.Context, id, owner, state, payload, errText string, now time.Time) error
	// FailJob records a failed attempt (state JobFailed, resumable) and releases the lease.
	FailJob(ctx context.Context, id, owner, payload, errText string, now time.Time) error
	// ReleaseJob gives the job back unfinished (JobPending), e.g. on shutdown.
	ReleaseJob(ctx context.Context, id, owner string, now time.Time) error
	// CancelJob ends an unfinished job nobody runs (JobCancelled); ErrJobLeased if one does.
	CancelJob(ctx context.Context, id string, now time.Time) error

	// SetDatabaseOrg records the org a database's project now lives in (after a transfer).
	SetDatabaseOrg(ctx context.Context, databaseID, orgID string) error
}

// Job states. Pending, running and failed jobs are unfinished (resumable); a tenant has at
// most one unfinished job of a kind.
const (
	JobPending   = "pending"
	JobRunning   = "running"
	JobFailed    = "failed" // the last attempt failed; resume runs it again from its step
	JobDone      = "done"
	JobRefused   = "refused" // ended without changing anything (e.g. a downgrade over limits)
	JobCancelled = "cancelled"
)

// Errors of the job store, for errors.Is.
var (
	ErrJobFinished = errors.New("job is finished")
	ErrJobLeased   = errors.New("job is being run by another process")
	ErrLeaseLost   = errors.New("job lease lost to another runner")
)

// JobLeasedError says who holds a job's lease and until when. It matches ErrJobLeased.
type JobLeasedError struct {
	Owner string
	Until time.Time
}

func (e *JobLeasedError) Error() string {
	return ErrJobLeased.Error() + " (" + e.Owner + ", lease until " + e.Until.Format(time.RFC3339) + ")"
}

func (e *JobLeasedError) Is(target error) bool { return target == ErrJobLeased }

// Job is one durable job. Payload is the job kind's own JSON (internal/operator).
type Job struct {
	ID         string
	Kind       string
	TenantID   string
	State      string
	Step       string // the next step to run; "" once finished
	Payload    string
	Error      string // the last failure
	Attempts   int    // how many times a runner claimed it
	LeaseOwner string
	LeaseUntil time.Time // zero when not leased
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt *time.Time
}

// Unfinished reports whether the job still has work to do.
func (j Job) Unfinished() bool {
	return j.State == JobPending || j.State == JobRunning || j.State == JobFailed
}

// JobFilter selects jobs; zero fields match everything.
type JobFilter struct {
	TenantID   string
	Kind       string
	Unfinished bool
	Limit      int // 0: DefaultAuditLimit
}
