package guard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/store"
)

// Operator use cases: they name the tenant explicitly (admin tool set, `neonguard tenant`
// commands) instead of reading it from the caller.

// DeleteDatabaseInput is admin_delete_database's input.
type DeleteDatabaseInput struct {
	TenantID    string
	DatabaseID  string
	ConfirmName string // must repeat the database's name
}

// DeleteDatabaseResult is admin_delete_database's result.
type DeleteDatabaseResult struct {
	Tenant     string    `json:"tenant"`
	DatabaseID string    `json:"database_id"`
	Name       string    `json:"name"`
	Deleted    bool      `json:"deleted" jsonschema_description:"false when it had been deleted already"`
	DeletedAt  time.Time `json:"deleted_at"`
	Note       string    `json:"note" jsonschema_description:"what happened to the data"`
}

// deletionNote explains why no final checkpoint is taken.
const deletionNote = "the Neon project is deleted with its branches and checkpoints (Neon deletes a project's " +
	"snapshots with it, so a final checkpoint would not outlive it); Neon keeps a deleted project " +
	"recoverable for 7 days; the name is free for a new database"

// DeleteDatabase deletes a tenant's database: the Neon project, then the record (so it leaves
// list_databases and its name can be used again). The name must be given again. Deleting an
// already deleted database succeeds with Deleted=false.
func (g *Guard) DeleteDatabase(ctx context.Context, in DeleteDatabaseInput) (*DeleteDatabaseResult, error) {
	if in.TenantID == "" || in.DatabaseID == "" {
		return nil, invalid("tenant and database_id are required", "list the tenant's databases to find the id")
	}
	// The tenant lock keeps a create of the same name out while the record changes; the
	// database lock waits for the use cases working on it.
	ctx, unlockTenant, err := g.lock(ctx, "tenant:"+in.TenantID)
	if err != nil {
		return nil, err
	}
	defer unlockTenant()
	db, err := g.store.GetDatabaseWithDeleted(ctx, in.TenantID, in.DatabaseID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &errcode.Error{Code: errcode.NotFound, Message: fmt.Sprintf("tenant %s has no database %s", in.TenantID, in.DatabaseID),
			Hint: "list the tenant's databases (neonguard tenant inactive --days 0 --tenant TENANT lists them all)"}
	}
	if err != nil {
		return nil, err
	}
	if in.ConfirmName != db.Name {
		return nil, invalid(fmt.Sprintf("confirm_name does not match the name of database %s", db.ID),
			"pass the database's name again as confirm_name to confirm its deletion")
	}
	out := &DeleteDatabaseResult{Tenant: db.TenantID, DatabaseID: db.ID, Name: db.Name, Note: deletionNote}
	if db.DeletedAt != nil {
		out.DeletedAt = db.DeletedAt.UTC()
		return out, nil
	}
	org, err := g.orgOf(db)
	if err != nil {
		return nil, err
	}
	ctx, unlock, err := g.lock(ctx, "db:"+db.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := g.deleteProject(ctx, org, db.ID); err != nil {
		return nil, err
	}
	// Neon deleted it: record it even if the caller has gone.
	now := g.now().UTC().Truncate(time.Microsecond) // as the store keeps it
	if err := g.store.MarkDatabaseDeleted(context.WithoutCancel(ctx), db.ID, now); err != nil {
		return nil, err
	}
	g.log.InfoContext(ctx, "database deleted", "tenant", db.TenantID, "database_id", db.ID, "name", db.Name, "org_id", db.OrgID)
	out.Deleted, out.DeletedAt = true, now
	return out, nil
}

// deleteProject deletes a project through the org that has it. An org key sees only its own
// org's projects (404 for the others; the client also takes a DELETE's 404 as done), and the
// record can lag behind Neon: a tier change between its transfer and its record step, or one
// that failed there. So the project is looked up in the recorded org first, then in the others;
// only when no org has it is it taken as already gone (an earlier attempt whose record was not
// written).
func (g *Guard) deleteProject(ctx context.Context, recorded Org, projectID string) error {
	orgs := []Org{recorded}
	for _, o := range g.orgs {
		if o.ID != recorded.ID {
			orgs = append(orgs, o)
		}
	}
	for _, o := range orgs {
		if _, err := o.API.GetProject(ctx, projectID); err != nil {
			if errors.Is(err, neon.ErrNotFound) {
				continue
			}
			return upstream("delete database", err, "call it again: deleting is idempotent")
		}
		if o.ID != recorded.ID {
			g.log.WarnContext(ctx, "database found in another org than recorded", "database_id", projectID,
				"recorded_org", recorded.ID, "org", o.ID)
		}
		err := o.API.DeleteProject(ctx, projectID)
		g.sql.evict(projectID, "")
		if err != nil {
			return upstream("delete database", err, "call it again: deleting is idempotent")
		}
		return nil
	}
	return nil
}

// InactiveDatabase is a database without compute activity since a cutoff.
type InactiveDatabase struct {
	Tenant     string    `json:"tenant"`
	DatabaseID string    `json:"database_id"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"created_at"`
	LastActive time.Time `json:"last_active" jsonschema_description:"Neon's compute_last_active_at, or created_at when no compute ever ran"`
	NeverUsed  bool      `json:"never_used" jsonschema_description:"no compute activity was ever observed"`
	Missing    bool      `json:"missing,omitempty" jsonschema_description:"the project is not on Neon any more"`
}

// InactiveDatabases lists the live databases of tenant ("" = every tenant) whose last compute
// activity on Neon is before cutoff, oldest activity first. A database Neon no longer has is
// listed too, marked Missing.
func (g *Guard) InactiveDatabases(ctx context.Context, tenant string, cutoff time.Time) ([]InactiveDatabase, error) {
	var tenantIDs []string
	if tenant != "" {
		if _, err := g.store.GetTenant(ctx, tenant); errors.Is(err, store.ErrNotFound) {
			return nil, &errcode.Error{Code: errcode.NotFound, Message: fmt.Sprintf("tenant %q does not exist", tenant), Hint: "list tenants with neonguard tenant list"}
		} else if err != nil {
			return nil, err
		}
		tenantIDs = []string{tenant}
	} else {
		ts, err := g.store.ListTenants(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			tenantIDs = append(tenantIDs, t.ID)
		}
	}
	out := []InactiveDatabase{}
	for _, tid := range tenantIDs {
		dbs, err := g.store.ListDatabases(ctx, tid)
		if err != nil {
			return nil, err
		}
		for _, db := range dbs {
			if db.ID == "" {
				continue
			}
			org, err := g.orgOf(db)
			if err != nil {
				return nil, err
			}
			d := InactiveDatabase{Tenant: tid, DatabaseID: db.ID, Name: db.Name, CreatedAt: db.CreatedAt.UTC(), LastActive: db.CreatedAt.UTC()}
			p, err := org.API.GetProject(ctx, db.ID)
			switch {
			case errors.Is(err, neon.ErrNotFound):
				d.Missing, d.NeverUsed = true, false
			case err != nil:
				return nil, upstream("read project "+db.ID, err)
			case p.ComputeLastActiveAt != nil && !p.ComputeLastActiveAt.IsZero():
				d.LastActive = p.ComputeLastActiveAt.UTC()
			default:
				d.NeverUsed = true
			}
			if d.Missing || d.LastActive.Before(cutoff) {
				out = append(out, d)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b InactiveDatabase) int { return a.LastActive.Compare(b.LastActive) })
	return out, nil
}
