package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/store"
)

// Intents make the multi-step use cases crash-consistent. Before its first Neon call a use case
// records what it is about to do (names, kinds and expiries of what it creates, and what it
// deletes); after each step it records the step. Every step can be run again: it first looks on
// Neon for what an interrupted run may already have done. An open intent is finished (or
// rolled back, when its first change never happened) under the database's lock by the next
// call for that database, by the start of serve, and by every janitor pass, so nothing an
// interrupted call made on Neon is left unrecorded, uncounted or without its expiry.

// Intent kinds.
const (
	intentCheckpoint        = "checkpoint"
	intentUndo              = "undo_to_time"
	intentDevBranch         = "create_dev_branch"
	intentRestoreCheckpoint = "restore_checkpoint"
	intentDryRun            = "dry_run" // apply_migration dry_run: its temporary branch, always deleted
)

// Intent outcomes.
const (
	outcomeDone       = "done"        // finished by its own call, which answered
	outcomeRecovered  = "recovered"   // finished by a resume; a retry of its call may claim the result
	outcomeRolledBack = "rolled_back" // its first change never happened
	outcomeFailed     = "failed"      // Neon refused a step for good; logged
)

// recoveredWindow is how long a recovered result waits for a retry of its call. A later call
// with the same arguments is a new request.
const recoveredWindow = 15 * time.Minute

// intentBudget bounds the steps of an intent once its first change may have happened. They run
// on after the caller gave up (a timeout, a closed connection), so a call that started a
// change finishes it instead of leaving the database half-way.
const intentBudget = 2 * time.Minute

// intentRun is an open intent being worked on.
type intentRun struct {
	g   *Guard
	rec store.Intent
	// outcome is what a finished run records: done by its own call, recovered by a resume.
	outcome     string
	outcomeDone string // what finish recorded (for the log)
}

// beginIntent records an intent durably; nothing has been asked of Neon yet.
func (g *Guard) beginIntent(ctx context.Context, db store.Database, kind string, payload any) (*intentRun, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("guard: intent %s: %w", kind, err)
	}
	rec := store.Intent{ID: "int-" + uuid.NewString(), TenantID: db.TenantID, DatabaseID: db.ID, Kind: kind,
		Payload: string(b), CreatedAt: g.now()}
	if err := g.store.AddIntent(ctx, rec); err != nil {
		return nil, err
	}
	return &intentRun{g: g, rec: rec, outcome: outcomeDone}, nil
}

// save records the payload after a step.
func (r *intentRun) save(ctx context.Context, payload any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("guard: intent %s: %w", r.rec.ID, err)
	}
	r.rec.Payload = string(b)
	return r.g.store.UpdateIntent(ctx, r.rec.ID, r.rec.Payload)
}

// done finishes the intent with the work completed.
func (r *intentRun) done(ctx context.Context) error { return r.finish(ctx, r.outcome) }

// rollBack finishes an intent whose first change never happened.
func (r *intentRun) rollBack(ctx context.Context) error { return r.finish(ctx, outcomeRolledBack) }

// complete records the payload's last step and finishes the intent with the work completed.
func (r *intentRun) complete(ctx context.Context, payload any) error {
	if err := r.save(ctx, payload); err != nil {
		return err
	}
	return r.done(ctx)
}

// firstChangeFailed is the error of an intent's first change on Neon failing (what names the
// call). When Neon refused it, nothing happened: the intent is rolled back and the message ends
// with notChanged. When the outcome is unknown, the intent stays open for the next call for the
// database to resolve: the message ends with unknown, and hint replaces Neon's.
func (r *intentRun) firstChangeFailed(ctx context.Context, cause error, what, notChanged, unknown, hint string) error {
	err := upstream(what, cause)
	ge := errcode.As(err)
	switch {
	case ge == nil:
	case ge.Code != errcode.Upstream:
		if rerr := r.rollBack(ctx); rerr != nil {
			return errors.Join(err, rerr)
		}
		ge.Message += "; " + notChanged
	default:
		ge.Message += "; " + unknown
		ge.Hint = hint
	}
	return err
}

func (r *intentRun) finish(ctx context.Context, outcome string) error {
	r.outcomeDone = outcome
	if err := r.g.store.FinishIntent(ctx, r.rec.ID, outcome); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// detach is the context an intent's steps run in once its first change may have happened: the
// caller's cancellation no longer stops them (the budget does), but losing the database's
// lock does, since another replica may then work on the same database.
func detach(held context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(held), intentBudget)
	stop := context.AfterFunc(held, func() {
		if errors.Is(context.Cause(held), store.ErrLockLost) {
			cancel()
		}
	})
	return ctx, func() { stop(); cancel() }
}

// settle finishes or rolls back the open intents of db. The caller holds db's lock. An intent
// that cannot be finished now because Neon fails stays open and the error is returned: the use
// case must not act on a database in an unknown state. One that Neon refuses for good is
// closed as failed and logged, so that it cannot block the database for ever.
func (g *Guard) settle(ctx context.Context, org Org, db store.Database) error {
	open, err := g.store.OpenIntents(ctx, db.ID)
	if err != nil || len(open) == 0 {
		return err
	}
	for _, rec := range open {
		run := &intentRun{g: g, rec: rec, outcome: outcomeRecovered}
		switch rec.Kind {
		case intentCheckpoint:
			err = g.resumeCheckpoint(ctx, org, db, run)
		case intentUndo:
			err = g.resumeUndo(ctx, org, db, run)
		case intentDevBranch:
			err = g.resumeDevBranch(ctx, org, db, run)
		case intentRestoreCheckpoint:
			err = g.resumeRestoreCheckpoint(ctx, org, db, run)
		case intentDryRun:
			err = g.resumeDryRun(ctx, org, db, run)
		default:
			err = &errcode.Error{Code: errcode.InvalidArgument, Message: fmt.Sprintf("intent %s has an unknown kind %q", rec.ID, rec.Kind)}
		}
		if ge := errcode.As(err); ge != nil && ge.Code != errcode.Upstream {
			if owedCheckpoint(rec) {
				// The replaced checkpoint is gone and its successor is owed: keep trying on
				// every call, without holding the database hostage to Neon's refusal.
				g.log.ErrorContext(ctx, "a replacing checkpoint cannot be made yet; retried on the next call", "database_id", db.ID,
					"intent", rec.ID, "err", err)
				continue
			}
			g.log.ErrorContext(ctx, "an interrupted operation cannot be finished; it is closed as failed", "database_id", db.ID,
				"intent", rec.ID, "kind", rec.Kind, "err", err)
			if ferr := run.finish(ctx, outcomeFailed); ferr != nil {
				return ferr
			}
			continue
		}
		if err != nil {
			g.log.WarnContext(ctx, "could not finish an interrupted operation yet", "database_id", db.ID,
				"intent", rec.ID, "kind", rec.Kind, "err", err)
			ge := errcode.As(upstream("finish an interrupted "+rec.Kind, err))
			if ge == nil {
				return err
			}
			ge.Message += " (an earlier " + rec.Kind + " on this database was interrupted and is not finished yet; this call's own operation did not start)"
			ge.Hint = "try again in a moment: the next call for this database finishes the interrupted one first"
			return ge
		}
		g.log.InfoContext(ctx, "settled an interrupted operation", "database_id", db.ID, "intent", rec.ID, "kind", rec.Kind, "outcome", run.outcomeDone)
	}
	return nil
}

// owedCheckpoint reports whether rec is a checkpoint replace that deleted the old checkpoint(s)
// and has not made the new one.
func owedCheckpoint(rec store.Intent) bool {
	if rec.Kind != intentCheckpoint {
		return false
	}
	p, err := decodePayload[checkpointIntent](rec.Payload)
	return err == nil && len(p.Deleted) > 0 && p.CreatedID == ""
}

// claimRecovered finds the result of an interrupted call of kind that a resume finished, for a
// retry of that same call (match compares the payload with the retry's arguments). Each
// recovered result answers one retry, within recoveredWindow of its recovery.
func (g *Guard) claimRecovered(ctx context.Context, db store.Database, kind string, match func(payload string) bool) (store.Intent, bool) {
	recs, err := g.store.RecoveredIntents(ctx, db.ID, g.now().Add(-recoveredWindow))
	if err != nil {
		g.log.WarnContext(ctx, "could not read recovered operations", "database_id", db.ID, "err", err)
		return store.Intent{}, false
	}
	for _, rec := range recs {
		if rec.Kind != kind || !match(rec.Payload) {
			continue
		}
		if err := g.store.ClaimIntent(ctx, rec.ID); err == nil {
			return rec, true
		}
	}
	return store.Intent{}, false
}

// ResumeIntents settles the open intents of every database: at start and on every janitor
// pass. Each database is handled under its lock, like a use case; one that cannot be settled
// now is counted in failed and tried again later.
func (g *Guard) ResumeIntents(ctx context.Context) (settled, failed int, err error) {
	open, err := g.store.OpenIntents(ctx, "")
	if err != nil {
		return 0, 0, fmt.Errorf("guard: open intents: %w", err)
	}
	seen := map[string]bool{}
	for _, in := range open {
		if seen[in.DatabaseID] {
			continue
		}
		seen[in.DatabaseID] = true
		n, err := g.resumeDatabase(ctx, in.TenantID, in.DatabaseID)
		settled += n
		if err != nil {
			if ctx.Err() != nil {
				return settled, failed, ctx.Err()
			}
			failed++
		}
	}
	return settled, failed, nil
}

func (g *Guard) resumeDatabase(ctx context.Context, tenantID, databaseID string) (int, error) {
	db, err := g.store.GetDatabaseWithDeleted(ctx, tenantID, databaseID)
	if err != nil {
		return 0, err
	}
	org, err := g.orgOf(db)
	if err != nil {
		return 0, err
	}
	ctx, unlock, err := g.lock(ctx, "db:"+db.ID)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if db.DeletedAt != nil {
		// Deleted with its project: nothing of it is left on Neon to finish.
		open, err := g.store.OpenIntents(ctx, db.ID)
		if err != nil {
			return 0, err
		}
		for _, in := range open {
			run := &intentRun{g: g, rec: in}
			if err := run.rollBack(ctx); err != nil {
				return 0, err
			}
		}
		return len(open), nil
	}
	open, err := g.store.OpenIntents(ctx, db.ID)
	if err != nil {
		return 0, err
	}
	return len(open), g.settle(ctx, org, db)
}

// hasOpenIntents tells a read-only use case whether db has unfinished work to settle first.
func (g *Guard) hasOpenIntents(ctx context.Context, databaseID string) (bool, error) {
	open, err := g.store.OpenIntents(ctx, databaseID)
	return len(open) > 0, err
}

// settleForRead settles db's open intents for a use case that does not otherwise lock (a list),
// so that it never shows a half-done operation as if it were the database's state.
func (g *Guard) settleForRead(ctx context.Context, org Org, db store.Database) error {
	open, err := g.hasOpenIntents(ctx, db.ID)
	if err != nil || !open {
		return err
	}
	ctx, unlock, err := g.lock(ctx, "db:"+db.ID)
	if err != nil {
		return err
	}
	defer unlock()
	return g.settle(ctx, org, db)
}

// busy is the answer when the database's lock could not be had within the call: the call
// never started, so nothing was changed by it.
func busy(databaseID string, err error) error {
	return &errcode.Error{Code: errcode.RateLimited,
		Message: fmt.Sprintf("database %s is busy with other operations; this call did not start and changed nothing", databaseID),
		Hint:    "retry in a few seconds", Err: err}
}

func decodePayload[T any](payload string) (T, error) {
	var p T
	if err := json.Unmarshal([]byte(payload), &p); err != nil {
		return p, fmt.Errorf("guard: intent payload: %w", err)
	}
	return p, nil
}
