package guard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/store"
)

// SweptBranch is a branch one janitor pass handled.
type SweptBranch struct {
	TenantID   string
	DatabaseID string
	BranchID   string
	Name       string
	Kind       string // store.BranchDev or store.BranchBackup
	ExpiresAt  *time.Time
}

// SweepReport is what one janitor pass did.
type SweepReport struct {
	// Deleted are branches whose recorded expiry had passed but which Neon still had (a
	// backend that does not expire branches, or one that refused the expiry): deleted now.
	Deleted []SweptBranch
	// Pruned are records of branches Neon no longer has (expired there, or deleted outside
	// neonguard): the records are removed.
	Pruned []SweptBranch
	// Failed counts the databases the pass could not finish; the errors are logged and the
	// next pass tries again.
	Failed int
}

// SweepExpired is one janitor pass over every tenant's databases: it deletes the dev and
// backup branches the guard made whose expiry (as recorded when they were made) is before now
// but which Neon still has, and forgets the records of branches Neon no longer has. It never
// touches a database's main branch. Each database is handled under its lock, like a use case.
func (g *Guard) SweepExpired(ctx context.Context, now time.Time) (SweepReport, error) {
	var rep SweepReport
	// First what interrupted calls left: their branches are recorded (with kind and expiry)
	// before the sweep looks at the records.
	if err := g.Recover(ctx); err != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		rep.Failed++
		g.log.WarnContext(ctx, "janitor: recovery incomplete", "err", err)
	}
	tenants, err := g.store.ListTenants(ctx)
	if err != nil {
		return rep, fmt.Errorf("guard: janitor: %w", err)
	}
	for _, t := range tenants {
		dbs, err := g.store.ListDatabases(ctx, t.ID)
		if err != nil {
			return rep, fmt.Errorf("guard: janitor: databases of %s: %w", t.ID, err)
		}
		for _, db := range dbs {
			if db.ID == "" { // a create in flight
				continue
			}
			if err := g.sweepDatabase(ctx, db, now, &rep); err != nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				rep.Failed++
				g.log.WarnContext(ctx, "janitor: database skipped", "tenant", db.TenantID, "database_id", db.ID, "err", err)
			}
		}
	}
	return rep, nil
}

// finishedIntentRetention is how long finished intents stay in the store (an audit of what
// recovery did).
const finishedIntentRetention = 7 * 24 * time.Hour

// Recover settles what interrupted calls left: open intents (finished or rolled back) and
// reservations of create_database. serve runs it at start; every janitor pass runs it too.
func (g *Guard) Recover(ctx context.Context) error {
	settled, failed, err := g.ResumeIntents(ctx)
	if err != nil {
		return err
	}
	completed, dropped, rerr := g.ResumeReservations(ctx)
	if settled+failed+completed+dropped > 0 {
		g.log.InfoContext(ctx, "recovered interrupted operations", "intents_settled", settled, "intents_failed", failed,
			"databases_recorded", completed, "reservations_dropped", dropped)
	}
	if _, err := g.store.PruneIntents(ctx, g.now().Add(-finishedIntentRetention)); err != nil {
		rerr = errors.Join(rerr, err)
	}
	if failed > 0 {
		rerr = errors.Join(rerr, fmt.Errorf("guard: %d databases with interrupted operations could not be settled yet", failed))
	}
	return rerr
}

func (g *Guard) sweepDatabase(ctx context.Context, db store.Database, now time.Time, rep *SweepReport) error {
	recorded, err := g.store.ListBranches(ctx, db.ID)
	if err != nil || len(recorded) == 0 {
		return err // nothing recorded: no need to ask Neon
	}
	org, err := g.orgOf(db)
	if err != nil {
		return err
	}
	ctx, unlock, err := g.lock(ctx, "db:"+db.ID)
	if err != nil {
		return err
	}
	defer unlock()
	// Again under the lock: a use case may have recorded or removed one meanwhile.
	if recorded, err = g.store.ListBranches(ctx, db.ID); err != nil {
		return err
	}
	branches, err := org.API.ListBranches(ctx, db.ID)
	if errors.Is(err, neon.ErrNotFound) {
		// The project is gone from Neon (deleted outside neonguard): not the janitor's call.
		g.log.WarnContext(ctx, "janitor: database not found on Neon", "tenant", db.TenantID, "database_id", db.ID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("list branches: %w", err)
	}
	onNeon := make(map[string]neon.Branch, len(branches))
	for _, b := range branches {
		onNeon[b.ID] = b
	}
	var errs []error
	for _, r := range recorded {
		if r.Kind != store.BranchDev && r.Kind != store.BranchBackup {
			continue
		}
		sw := SweptBranch{TenantID: db.TenantID, DatabaseID: db.ID, BranchID: r.ID, Name: r.Name, Kind: r.Kind, ExpiresAt: r.ExpiresAt}
		b, ok := onNeon[r.ID]
		if !ok {
			if err := g.store.DeleteBranch(ctx, db.ID, r.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, err)
				continue
			}
			rep.Pruned = append(rep.Pruned, sw)
			g.log.InfoContext(ctx, "janitor: forgot a branch Neon no longer has", "tenant", db.TenantID,
				"database_id", db.ID, "branch_id", r.ID, "name", r.Name, "kind", r.Kind)
			continue
		}
		// Never main: not the default branch, not the root the guard recorded.
		if b.Default || b.ID == db.RootBranchID || r.ExpiresAt == nil || r.ExpiresAt.After(now) {
			continue
		}
		if err := g.deleteBranch(ctx, org, db.ID, b); err != nil {
			if hasChildren(err) {
				// Neon keeps it until its children are gone (a dev branch made from the state
				// this backup keeps): a later pass deletes it.
				g.log.InfoContext(ctx, "janitor: an expired branch has children; kept until they are gone", "tenant", db.TenantID,
					"database_id", db.ID, "branch_id", b.ID, "name", b.Name)
				continue
			}
			errs = append(errs, fmt.Errorf("delete expired branch %s: %w", b.ID, err))
			continue
		}
		if err := g.store.DeleteBranch(context.WithoutCancel(ctx), db.ID, r.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
		}
		rep.Deleted = append(rep.Deleted, sw)
		g.log.InfoContext(ctx, "janitor: deleted an expired branch", "tenant", db.TenantID, "database_id", db.ID,
			"branch_id", b.ID, "name", b.Name, "kind", r.Kind, "expired_at", r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return errors.Join(errs...)
}
