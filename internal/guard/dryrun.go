package guard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/progress"
	"github.com/neonguard/neonguard/internal/sqlguard"
	"github.com/neonguard/neonguard/internal/store"
)

// A dry run of a migration rehearses it on a temporary branch of the target, made for the call
// and deleted before it answers, whatever happened. The temporary branch counts against the
// tier's branch limit while it exists, so it is made under the database's lock after the same
// check as create_dev_branch, and an intent naming it is recorded before Neon is asked for it:
// after a crash at any point the next call for the database, serve's start or a janitor pass
// deletes it. A dry run is never finished by a resume, only undone.

// dryRunTTL is the expiry the temporary branch is created with: should every deletion fail,
// Neon (and the janitor, which finds it recorded) removes it by then.
const dryRunTTL = time.Hour

// dryRunIntent is a dry run in progress: the temporary branch it makes and deletes.
type dryRunIntent struct {
	Name      string    `json:"name"`
	ParentID  string    `json:"parent_id"`
	ExpiresAt time.Time `json:"expires_at"`
	BranchID  string    `json:"branch_id,omitempty"` // known once Neon answered the create
}

// dryRunMigration applies a migration on a temporary branch of its target and deletes the
// branch. Nothing is recorded on the target; destructive statements need no confirm.
func (g *Guard) dryRunMigration(ctx context.Context, c caller, in ApplyMigrationInput, analysis sqlguard.Analysis, checksum string) (*ApplyMigrationResult, error) {
	ctx, db, org, unlock, err := g.lockDatabase(ctx, c, in.DatabaseID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	progress.Plan(ctx, 5)
	progress.Step(ctx, "reading the branches")
	st, err := g.state(ctx, org, db)
	if err != nil {
		return nil, err
	}
	target, err := st.resolve(in.Branch)
	if err != nil {
		return nil, err
	}
	if d := policy.CheckNewBranch(c.tier, st.refs()); !d.Allow {
		ge := denied(d)
		ge.Message = "a dry run needs one free branch slot for its temporary branch: " + ge.Message
		return nil, ge
	}
	// Its compute would be suspended at once on a project over its quota.
	p, err := org.API.GetProject(ctx, db.ID)
	if err != nil {
		return nil, upstream("apply_migration dry_run", err)
	}
	if d := policy.CheckQuota(c.tier, UsageOf(p, st.branches)); !d.Allow {
		return nil, denied(d)
	}
	now := g.now()
	di := dryRunIntent{Name: uniqueName(st, "dry-run-"+now.UTC().Format("20060102-150405")), ParentID: target.ID,
		ExpiresAt: now.Add(dryRunTTL).UTC().Truncate(time.Second)}
	run, err := g.beginIntent(ctx, db, intentDryRun, di)
	if err != nil {
		return nil, err
	}
	work, cancel := detach(ctx)
	defer cancel()
	// The rehearsal stops when the caller goes away (a cancellation, the call's timeout): it
	// changes nothing but its temporary branch, which is deleted below either way, on the
	// detached context.
	rehearsal, stop := context.WithCancelCause(work)
	defer stop(nil)
	unhook := context.AfterFunc(ctx, func() { stop(context.Cause(ctx)) })
	defer unhook()
	res, runErr := g.rehearse(rehearsal, c, org, db, run, &di, in, analysis, checksum)
	if res != nil {
		res.Branch = target.Name
	}
	// Always: the temporary branch goes, whether the rehearsal worked or not.
	progress.Step(ctx, fmt.Sprintf("deleting the temporary branch %q", di.Name))
	// Should Neon fail the deletion, the intent stays open and the next call for the database
	// (or serve's start, or a janitor pass) deletes the branch before anything else.
	if err := g.dropDryRun(work, org, db, run, &di); err != nil {
		g.log.WarnContext(ctx, "a dry run's temporary branch could not be deleted yet; the next call for the database deletes it",
			"database_id", db.ID, "branch", di.Name, "err", err)
	}
	if runErr != nil {
		return nil, dryRunError(runErr, target.Name)
	}
	return res, nil
}

// rehearse makes the temporary branch and applies the migration on it, without committing.
func (g *Guard) rehearse(ctx context.Context, c caller, org Org, db store.Database, run *intentRun, di *dryRunIntent,
	in ApplyMigrationInput, analysis sqlguard.Analysis, checksum string) (*ApplyMigrationResult, error) {
	endpoint := neon.EndpointCreate{Type: neon.EndpointReadWrite, AutoscalingLimitMinCU: c.tier.MinComputeCU,
		AutoscalingLimitMaxCU: c.tier.MaxComputeCU, SuspendTimeoutSeconds: int64(c.tier.SuspendTimeout.Seconds())}
	progress.Step(ctx, fmt.Sprintf("creating the temporary branch %q with its compute", di.Name))
	created, err := org.API.CreateBranch(ctx, db.ID, neon.BranchCreate{ParentID: di.ParentID, Name: di.Name, ExpiresAt: &di.ExpiresAt},
		[]neon.EndpointCreate{endpoint})
	if err != nil {
		err = upstream("apply_migration dry_run", err)
		if ge := errcode.As(err); ge != nil {
			ge.Message = "could not make the temporary branch: " + ge.Message
		}
		return nil, err
	}
	di.BranchID = created.Branch.ID
	if err := run.save(ctx, di); err != nil {
		return nil, err
	}
	// Recorded like a dev branch with its expiry: should its deletion fail for good, the
	// janitor still removes it.
	if err := g.recordDev(ctx, db.ID, di.BranchID, di.Name, di.ExpiresAt); err != nil {
		return nil, err
	}
	if len(created.Endpoints) == 0 {
		progress.Step(ctx, "starting the temporary branch's compute")
		// (ensureCompute would take the lock this call holds.)
		if _, err := org.API.CreateEndpoint(ctx, db.ID, di.BranchID, endpoint); err != nil {
			return nil, upstream("start the temporary branch's compute", err)
		}
	}
	uri, err := g.connectionURI(ctx, org, db, di.BranchID, false)
	if err != nil {
		return nil, err
	}
	out := newMigrationResult(db.ID, "", analysis)
	out.DryRun = true
	t := sqlTarget{db: db, branchID: di.BranchID, uri: uri}
	progress.Step(ctx, "rehearsing the migration on the temporary branch")
	if err := g.migrate(ctx, t, c.tier.SQL.WithDefaults(), in, analysis, checksum, false, out); err != nil {
		return nil, err
	}
	return out, nil
}

// dropDryRun deletes the intent's temporary branch, if Neon has it, and closes the intent.
func (g *Guard) dropDryRun(ctx context.Context, org Org, db store.Database, run *intentRun, di *dryRunIntent) error {
	b, err := g.branchNamed(ctx, org, db.ID, di.BranchID, di.Name)
	if err != nil {
		return err
	}
	if b != nil {
		if b.Default || b.ID == db.RootBranchID || b.ID == di.ParentID {
			// Never main, never the target: a name clash made outside neonguard.
			// An error of its own code: settle closes the intent as failed instead of retrying.
			return &errcode.Error{Code: errcode.InvalidArgument, Message: fmt.Sprintf("dry run %s: branch %q is not its temporary branch", run.rec.ID, di.Name)}
		}
		if err := g.deleteBranch(ctx, org, db.ID, *b); err != nil {
			return upstream("delete the dry run's temporary branch", err)
		}
		di.BranchID = b.ID
	}
	if di.BranchID != "" {
		if err := g.store.DeleteBranch(ctx, db.ID, di.BranchID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if run.outcome == outcomeDone && di.BranchID != "" {
		return run.done(ctx) // its own call: the rehearsal happened and is cleaned up
	}
	return run.rollBack(ctx) // never made, or a resume: what it made is gone
}

// resumeDryRun undoes an interrupted dry run: its temporary branch is deleted if it exists.
func (g *Guard) resumeDryRun(ctx context.Context, org Org, db store.Database, run *intentRun) error {
	di, err := decodePayload[dryRunIntent](run.rec.Payload)
	if err != nil {
		return err
	}
	return g.dropDryRun(ctx, org, db, run, &di)
}

// dryRunError says that a failed rehearsal left the target as it was.
func dryRunError(err error, target string) error {
	ge := errcode.As(err)
	if ge == nil {
		return err
	}
	out := *ge
	out.Message = fmt.Sprintf("dry run on a temporary copy of branch %s: %s", target, ge.Message)
	var pe *pgconn.PgError
	if errors.As(ge.Err, &pe) && out.Code == errcode.InvalidArgument {
		out.Hint = fmt.Sprintf("the migration would fail; branch %s was not changed and the temporary branch is deleted; fix the SQL and dry-run it again", target)
	}
	return &out
}
