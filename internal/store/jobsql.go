package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The jobs SQL, portable like queries.go. "Unfinished" is spelled out as the state list of the
// jobs_one_active index.
const (
	jobColumns = `id, kind, tenant_id, state, step, payload, error, attempts, lease_owner,
lease_until, created_at, updated_at, finished_at`
	unfinishedStates = `('pending', 'running', 'failed')`

	qCreateJob = `INSERT INTO jobs (id, kind, tenant_id, state, step, payload, created_at, updated_at)
VALUES ($1, $2, $3, 'pending', $4, $5, $6, $6)`
	qGetJob   = `SELECT ` + jobColumns + ` FROM jobs WHERE id = $1`
	qClaimJob = `UPDATE jobs SET state = 'running', lease_owner = $2, lease_until = $3,
attempts = attempts + 1, updated_at = $4
WHERE id = $1 AND state IN ` + unfinishedStates + `
AND (lease_owner = '' OR lease_until <= $4 OR lease_owner = $2 OR lease_owner = $5)`
	qRenewJob = `UPDATE jobs SET lease_until = $3, updated_at = $4
WHERE id = $1 AND lease_owner = $2 AND state = 'running'`
	qAdvanceJob = `UPDATE jobs SET step = $4, payload = $5, updated_at = $6
WHERE id = $1 AND lease_owner = $2 AND state = 'running' AND step = $3`
	qFinishJob = `UPDATE jobs SET state = $3, step = '', payload = $4, error = $5, lease_owner = '',
lease_until = 0, updated_at = $6, finished_at = $6
WHERE id = $1 AND lease_owner = $2 AND state = 'running'`
	qFailJob = `UPDATE jobs SET state = 'failed', payload = $3, error = $4, lease_owner = '',
lease_until = 0, updated_at = $5
WHERE id = $1 AND lease_owner = $2 AND state = 'running'`
	qReleaseJob = `UPDATE jobs SET state = 'pending', lease_owner = '', lease_until = 0, updated_at = $3
WHERE id = $1 AND lease_owner = $2 AND state = 'running'`
	qCancelJob = `UPDATE jobs SET state = 'cancelled', step = '', lease_owner = '', lease_until = 0,
updated_at = $2, finished_at = $2
WHERE id = $1 AND state IN ` + unfinishedStates + ` AND (lease_owner = '' OR lease_until <= $2)`
	qSetDatabaseOrg = `UPDATE databases SET org_id = $2 WHERE id = $1`
)

func (s *sqlStore) CreateJob(ctx context.Context, j Job) error {
	if j.ID == "" || j.Kind == "" || j.TenantID == "" {
		return errors.New("store: create job: empty id, kind or tenant")
	}
	_, err := s.w.ExecContext(ctx, qCreateJob, j.ID, j.Kind, j.TenantID, j.Step, j.Payload, micros(orNow(j.CreatedAt)))
	if err != nil {
		return fmt.Errorf("store: create job %s: %w", j.ID, mapWriteErr(err))
	}
	return nil
}

func (s *sqlStore) GetJob(ctx context.Context, id string) (Job, error) {
	j, err := scanJob(s.r.QueryRowContext(ctx, qGetJob, id))
	if err != nil {
		return Job{}, fmt.Errorf("store: job %s: %w", id, err)
	}
	return j, nil
}

func (s *sqlStore) ListJobs(ctx context.Context, f JobFilter) ([]Job, error) {
	q := `SELECT ` + jobColumns + ` FROM jobs`
	var args []any
	where := " WHERE "
	add := func(cond string, v any) {
		args = append(args, v)
		q += where + cond + strconv.Itoa(len(args))
		where = " AND "
	}
	if f.TenantID != "" {
		add("tenant_id = $", f.TenantID)
	}
	if f.Kind != "" {
		add("kind = $", f.Kind)
	}
	if f.Unfinished {
		q += where + "state IN " + unfinishedStates
	}
	args = append(args, auditLimit(f.Limit))
	q += " ORDER BY created_at DESC, id DESC LIMIT $" + strconv.Itoa(len(args))
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	out, err := collect(rows, scanJob)
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	return out, nil
}

func (s *sqlStore) ClaimJob(ctx context.Context, id, owner, takeFrom string, now, until time.Time) (Job, error) {
	if owner == "" {
		return Job{}, errors.New("store: claim job: empty owner")
	}
	// One conditional UPDATE: of concurrent claimers (any replicas) exactly one matches the
	// row; PostgreSQL re-checks the WHERE clause after waiting for a concurrent update.
	res, err := s.w.ExecContext(ctx, qClaimJob, id, owner, micros(until), micros(now), takeFrom)
	if err := affectedOne(res, err); err != nil && !errors.Is(err, ErrNotFound) {
		return Job{}, fmt.Errorf("store: claim job %s: %w", id, err)
	}
	j, gerr := s.GetJob(ctx, id)
	if gerr != nil {
		return Job{}, gerr
	}
	switch {
	case j.LeaseOwner == owner && j.State == JobRunning:
		return j, nil
	case !j.Unfinished():
		return j, fmt.Errorf("store: claim job %s (%s): %w", id, j.State, ErrJobFinished)
	}
	return j, fmt.Errorf("store: claim job %s: %w", id, &JobLeasedError{Owner: j.LeaseOwner, Until: j.LeaseUntil})
}

// leaseWrite runs a write that only the lease holder may make; no row means the lease is lost.
func (s *sqlStore) leaseWrite(ctx context.Context, what, id, q string, args ...any) error {
	res, err := s.w.ExecContext(ctx, q, args...)
	if err := affectedOne(res, err); err != nil {
		if errors.Is(err, ErrNotFound) {
			err = ErrLeaseLost
		}
		return fmt.Errorf("store: %s job %s: %w", what, id, err)
	}
	return nil
}

func (s *sqlStore) RenewJobLease(ctx context.Context, id, owner string, now, until time.Time) error {
	return s.leaseWrite(ctx, "renew lease of", id, qRenewJob, id, owner, micros(until), micros(now))
}

func (s *sqlStore) AdvanceJob(ctx context.Context, id, owner, from, to, payload string, now time.Time) error {
	return s.leaseWrite(ctx, "advance", id, qAdvanceJob, id, owner, from, to, payload, micros(now))
}

func (s *sqlStore) FinishJob(ctx context.Context, id, owner, state, payload, errText string, now time.Time) error {
	if state != JobDone && state != JobRefused {
		return fmt.Errorf("store: finish job %s: %q is not a final state", id, state)
	}
	return s.leaseWrite(ctx, "finish", id, qFinishJob, id, owner, state, payload, errText, micros(now))
}

func (s *sqlStore) FailJob(ctx context.Context, id, owner, payload, errText string, now time.Time) error {
	return s.leaseWrite(ctx, "fail", id, qFailJob, id, owner, payload, errText, micros(now))
}

func (s *sqlStore) ReleaseJob(ctx context.Context, id, owner string, now time.Time) error {
	return s.leaseWrite(ctx, "release", id, qReleaseJob, id, owner, micros(now))
}

func (s *sqlStore) CancelJob(ctx context.Context, id string, now time.Time) error {
	res, err := s.w.ExecContext(ctx, qCancelJob, id, micros(now))
	if err := affectedOne(res, err); err == nil {
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("store: cancel job %s: %w", id, err)
	}
	j, err := s.GetJob(ctx, id)
	switch {
	case err != nil:
		return err
	case !j.Unfinished():
		return fmt.Errorf("store: cancel job %s (%s): %w", id, j.State, ErrJobFinished)
	}
	return fmt.Errorf("store: cancel job %s: %w", id, &JobLeasedError{Owner: j.LeaseOwner, Until: j.LeaseUntil})
}

func (s *sqlStore) SetDatabaseOrg(ctx context.Context, databaseID, orgID string) error {
	res, err := s.w.ExecContext(ctx, qSetDatabaseOrg, databaseID, orgID)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: set org of database %s: %w", databaseID, err)
	}
	return nil
}

func scanJob(r scanner) (Job, error) {
	var j Job
	var leaseUntil, created, updated int64
	var finished sql.NullInt64
	if err := r.Scan(&j.ID, &j.Kind, &j.TenantID, &j.State, &j.Step, &j.Payload, &j.Error, &j.Attempts,
		&j.LeaseOwner, &leaseUntil, &created, &updated, &finished); err != nil {
		return Job{}, notFound(err)
	}
	if leaseUntil != 0 {
		j.LeaseUntil = fromMicros(leaseUntil)
	}
	j.CreatedAt, j.UpdatedAt = fromMicros(created), fromMicros(updated)
	j.FinishedAt = fromNullMicros(finished)
	return j, nil
}
