package operator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/progress"
	"github.com/neonguard/neonguard/internal/store"
)

// errRefused ends the plan step of a downgrade over the target's limits without force.
var errRefused = errors.New("refused")

// Run claims job id and runs it from its first unfinished step to its end. It returns the job
// as it ended: done, refused (a downgrade over the target's limits; Report says why), or failed
// with the step's error (then err is set too). A finished job is returned as it is.
func (s *TierChanges) Run(ctx context.Context, id string) (*Job, error) {
	if !s.enter(id) {
		j, err := s.d.Store.GetJob(ctx, id)
		if err != nil {
			return nil, err
		}
		return view(j), &errcode.Error{Code: errcode.InvalidArgument,
			Message: fmt.Sprintf("job %s is already running in this process", id),
			Hint:    "wait for it to finish (`neonguard jobs list` shows its state)",
			Err:     &store.JobLeasedError{Owner: s.owner, Until: j.LeaseUntil}}
	}
	defer s.leave(id)
	j, err := s.claim(ctx, id)
	switch {
	case errors.Is(err, store.ErrJobFinished):
		return view(j), nil
	case errors.Is(err, store.ErrNotFound):
		return nil, &errcode.Error{Code: errcode.NotFound, Message: "no job " + id, Hint: "`neonguard jobs list` shows the jobs"}
	case errors.Is(err, store.ErrJobLeased):
		return view(j), &errcode.Error{Code: errcode.InvalidArgument,
			Message: fmt.Sprintf("job %s is being run by another process", id),
			Hint:    "wait for it to finish (`neonguard jobs list` shows its state); a crashed runner's lease ends within a minute", Err: err}
	case err != nil:
		return nil, err
	}
	log := s.log.With("job", j.ID, "tenant", j.TenantID)
	p, err := decode(j)
	if err != nil {
		return view(j), errors.Join(err, s.d.Store.FailJob(context.WithoutCancel(ctx), j.ID, s.owner, j.Payload, err.Error(), s.d.Now()))
	}

	// Keep the lease while the steps run; losing it (another runner took over after our
	// renewals failed) stops this run before it records anything more.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		s.renew(runCtx, cancel, j.ID)
	}()
	defer func() { cancel(nil); <-renewDone }()

	progress.Plan(ctx, len(p.Steps))
	for step := j.Step; step != ""; {
		st := p.step(step)
		if st == nil {
			return view(j), fmt.Errorf("lifecycle: job %s: unknown step %q", j.ID, step)
		}
		st.Runs++
		progress.Step(ctx, fmt.Sprintf("tier change to %s: step %d/%d, %s", p.ToTier, stepIndex(p, step), len(p.Steps), step))
		log.InfoContext(ctx, "step started", "step", step, "run", st.Runs)
		result, err := s.runStep(runCtx, j, &p, step)
		now := s.d.Now().UTC()
		wctx := context.WithoutCancel(ctx) // record the outcome even when the caller went away
		if errors.Is(err, errRefused) {
			st.State, st.Result, st.FinishedAt = StepDone, result, &now
			msg := "refused: " + p.Report.String()
			if ferr := s.d.Store.FinishJob(wctx, j.ID, s.owner, store.JobRefused, encode(p), msg, now); ferr != nil {
				return view(j), ferr
			}
			log.WarnContext(ctx, "tier change refused", "report", p.Report.String())
			return s.reload(wctx, j)
		}
		if err != nil {
			if cause := context.Cause(runCtx); runCtx.Err() != nil && ctx.Err() == nil {
				err = fmt.Errorf("%w (%w)", err, cause) // lost the lease, not the caller
			}
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				// Shutdown, not a failure: give the job back as it was.
				log.InfoContext(ctx, "step interrupted", "step", step, "err", err)
				return view(j), errors.Join(err, s.d.Store.ReleaseJob(wctx, j.ID, s.owner, now))
			}
			st.State, st.Error = StepFailed, errText(err)
			log.ErrorContext(ctx, "step failed", "step", step, "err", err)
			if ferr := s.d.Store.FailJob(wctx, j.ID, s.owner, encode(p), fmt.Sprintf("step %s: %s", step, st.Error), now); ferr != nil {
				return view(j), errors.Join(err, ferr)
			}
			got, _ := s.reload(wctx, j)
			return got, stepError(j.ID, step, err)
		}
		st.State, st.Result, st.Error, st.FinishedAt = StepDone, result, "", &now
		next := p.next(step)
		if next == "" {
			err = s.d.Store.FinishJob(wctx, j.ID, s.owner, store.JobDone, encode(p), "", now)
		} else {
			err = s.d.Store.AdvanceJob(wctx, j.ID, s.owner, step, next, encode(p), now)
		}
		if err != nil {
			// The step's effect is in Neon but not recorded: the job stays unfinished and a
			// resume runs the step again, which is idempotent.
			return view(j), fmt.Errorf("lifecycle: job %s: record step %s: %w", j.ID, step, err)
		}
		log.InfoContext(ctx, "step done", "step", step, "result", result)
		if s.d.AfterStep != nil {
			s.d.AfterStep(j.ID, step)
		}
		j.Step = next
		if err := runCtx.Err(); err != nil && next != "" {
			return view(j), errors.Join(err, s.d.Store.ReleaseJob(wctx, j.ID, s.owner, s.d.Now()))
		}
		step = next
	}
	log.InfoContext(ctx, "tier change done", "to", p.ToTier)
	return s.reload(context.WithoutCancel(ctx), j)
}

// stepIndex is step's 1-based place in the job's steps.
func stepIndex(p payload, step string) int {
	for i, st := range p.Steps {
		if st.Name == step {
			return i + 1
		}
	}
	return 0
}

// enter marks job id as run by this process; false if it already is.
func (s *TierChanges) enter(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		s.running = make(map[string]bool)
	}
	if s.running[id] {
		return false
	}
	s.running[id] = true
	return true
}

func (s *TierChanges) leave(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, id)
}

func (s *TierChanges) reload(ctx context.Context, j store.Job) (*Job, error) {
	got, err := s.d.Store.GetJob(ctx, j.ID)
	if err != nil {
		return view(j), err
	}
	return view(got), nil
}

// claim leases the job, taking it at once from a runner on this host that has died.
func (s *TierChanges) claim(ctx context.Context, id string) (store.Job, error) {
	now := s.d.Now()
	j, err := s.d.Store.ClaimJob(ctx, id, s.owner, "", now, now.Add(s.d.LeaseTTL))
	var le *store.JobLeasedError
	if errors.As(err, &le) && ownerDead(le.Owner) {
		s.log.InfoContext(ctx, "taking over the job of a dead runner", "job", id, "owner", le.Owner)
		j, err = s.d.Store.ClaimJob(ctx, id, s.owner, le.Owner, now, now.Add(s.d.LeaseTTL))
	}
	return j, err
}

func (s *TierChanges) renew(ctx context.Context, cancel context.CancelCauseFunc, id string) {
	t := time.NewTicker(s.d.LeaseTTL / 3)
	defer t.Stop()
	renewed := s.d.Now() // the claim set the lease
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.d.Now()
		err := s.d.Store.RenewJobLease(ctx, id, s.owner, now, now.Add(s.d.LeaseTTL))
		if errors.Is(err, store.ErrLeaseLost) {
			cancel(err)
			return
		}
		if err == nil {
			renewed = now
			continue
		}
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "renewing job lease", "job", id, "err", err)
		}
		// The store is unreachable: once the lease we last recorded is about to end, another
		// runner may claim the job, so stop before both change Neon.
		if now.Sub(renewed) >= s.d.LeaseTTL*2/3 {
			cancel(fmt.Errorf("%w: renewals failed since %s: %w", store.ErrLeaseLost, renewed.Format(time.RFC3339), err))
			return
		}
	}
}

// errText is an error for the job record and the operator: Neon's answers are already scrubbed
// of keys and passwords (internal/neon), and a transfer refusal names the limits.
func errText(err error) string {
	var tl *neon.TransferLimitsError
	if errors.As(err, &tl) {
		msg := "Neon refused the transfer: the destination org's plan does not fit:"
		for _, l := range tl.Limits {
			msg += fmt.Sprintf(" %s %s (allowed %s);", l.Name, l.Actual, l.Expected)
		}
		return msg[:len(msg)-1]
	}
	return err.Error()
}

// stepError is the caller's error for a failed step: what failed, and that the job resumes.
func stepError(jobID, step string, err error) error {
	code := errcode.Upstream
	var tl *neon.TransferLimitsError
	if errors.As(err, &tl) {
		code = errcode.InvalidArgument
	}
	return &errcode.Error{Code: code,
		Message: fmt.Sprintf("tier change job %s failed at step %s: %s", jobID, step, errText(err)),
		Hint:    fmt.Sprintf("the job is kept and resumable: fix the cause, then run `neonguard jobs resume %s` (or call admin_set_tier again with the same tier); `neonguard jobs cancel %s` abandons it", jobID, jobID),
		Err:     err}
}
