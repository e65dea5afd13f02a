package guard

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/progress"
	"github.com/neonguard/neonguard/internal/store"
)

// namePattern is what database, branch and checkpoint names must match (tools/ checks the
// same rule first).
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

const nameRule = "1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"

func checkName(arg, v string) error {
	if !namePattern.MatchString(v) {
		return invalid(fmt.Sprintf("%s %q is not valid", arg, v), arg+" must be "+nameRule)
	}
	return nil
}

const (
	defaultDatabaseName = "neondb"
	defaultRoleName     = "neondb_owner"
	mainBranchName      = "main"
)

// projectName is the Neon project name for a tenant's database. It is unique per (tenant,
// name), which is what lets the client find a project whose create answer was lost.
func projectName(tenantID, name string) string { return tenantID + "/" + name }

// CreateDatabase creates a Neon project for the tenant, idempotent per (tenant, name).
func (g *Guard) CreateDatabase(ctx context.Context, in CreateDatabaseInput) (*CreateDatabaseResult, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkName("name", in.Name); err != nil {
		return nil, err
	}
	region, pg := in.Region, in.PGVersion
	if region == "" {
		region = g.region
	}
	if pg == 0 {
		pg = g.pg
	}
	if pg < 14 || pg > 18 {
		return nil, invalid(fmt.Sprintf("pg_version %d is not supported", pg), "use a PostgreSQL major version from 14 to 18, or omit it")
	}

	// One create per tenant at a time: a second call with the same name waits and then sees
	// the first's row, and two different names cannot both pass the database limit.
	ctx, unlock, err := g.lock(ctx, "tenant:"+c.tenant.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	progress.Plan(ctx, 4)
	progress.Step(ctx, "checking the database limit")

	existing, err := g.store.GetDatabaseByName(ctx, c.tenant.ID, in.Name)
	switch {
	case err == nil && existing.ID != "":
		return g.existingDatabase(ctx, c, existing)
	case err == nil:
		// A reservation of this name: an earlier call was interrupted. It already holds its
		// slot in the count, so the limit is not checked again; the project it may have
		// made is looked for below.
	case errors.Is(err, store.ErrNotFound):
		n, err := g.store.CountDatabases(ctx, c.tenant.ID)
		if err != nil {
			return nil, err
		}
		if d := policy.CheckDatabaseCount(c.tier, n); !d.Allow {
			return nil, denied(d)
		}
	default:
		return nil, err
	}

	// Reserve first: if the process dies between Neon's create and our write, the reservation
	// tells the next call to look for the project before creating another.
	reserved, _, err := g.store.ReserveDatabase(ctx, c.tenant.ID, in.Name)
	if err != nil {
		return nil, err
	}
	if reserved.ID != "" {
		return g.existingDatabase(ctx, c, reserved)
	}

	pname := projectName(c.tenant.ID, in.Name)
	created, err := g.findProject(ctx, c.org, pname)
	if err != nil {
		return nil, upstream("create_database", err)
	}
	if created == nil {
		progress.Step(ctx, fmt.Sprintf("creating the Neon project for %q", in.Name))
		// Once asked, Neon's create runs to its end even if the caller goes away (a
		// cancellation, a closed connection): stopping while its operations run would leave a
		// project that the reservation may no longer account for.
		work, cancel := detach(ctx)
		created, err = c.org.API.CreateProject(work, g.projectSpec(c, pname, region, pg))
		cancel()
		if err != nil {
			if !errors.Is(err, neon.ErrOutcomeUnknown) {
				// Neon refused or never got it: nothing exists, so drop the reservation.
				_ = g.store.ForgetReservation(ctx, c.tenant.ID, in.Name)
			}
			return nil, upstream("create_database", err, "call create_database again with the same name: it is idempotent and finds a database the lost answer created")
		}
	}

	// Neon made it: record it even if the caller has gone.
	progress.Step(ctx, "recording the database")
	db, err := g.completeReservation(context.WithoutCancel(ctx), c.tenant.ID, in.Name, c.org, created)
	if err != nil {
		return nil, err
	}
	progress.Step(ctx, "reading the connection string")
	uri, err := g.connectionURI(ctx, c.org, db, db.RootBranchID, true)
	if err != nil {
		return nil, err
	}
	return &CreateDatabaseResult{Database: toDatabase(db), Created: true, Tier: c.tier.Name, ConnectionString: uri}, nil
}

// completeReservation records the project Neon made for a reservation.
func (g *Guard) completeReservation(ctx context.Context, tenantID, name string, org Org, created *neon.CreatedProject) (store.Database, error) {
	db := store.Database{
		ID: created.Project.ID, TenantID: tenantID, Name: name, OrgID: org.ID,
		RootBranchID: created.Branch.ID, RegionID: created.Project.RegionID, PGVersion: created.Project.PGVersion,
		RoleName: defaultRoleName, DatabaseName: defaultDatabaseName, CreatedAt: created.Project.CreatedAt,
	}
	if len(created.Roles) > 0 {
		db.RoleName = created.Roles[0].Name
	}
	if len(created.Databases) > 0 {
		db.DatabaseName = created.Databases[0].Name
	}
	return db, g.store.CompleteDatabase(ctx, db)
}

// ResumeReservations settles the reservations that interrupted create_database calls left
// (at start and on every janitor pass): the project an interrupted call made is found by its
// name and recorded, so it is neither orphaned on Neon nor missing from list_databases;
// without one the reservation is dropped and its slot in the tenant's count freed.
func (g *Guard) ResumeReservations(ctx context.Context) (completed, dropped int, err error) {
	tenants, err := g.store.ListTenants(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("guard: reservations: %w", err)
	}
	var errs []error
	for _, t := range tenants {
		dbs, err := g.store.ListDatabases(ctx, t.ID)
		if err != nil {
			return completed, dropped, fmt.Errorf("guard: reservations of %s: %w", t.ID, err)
		}
		for _, db := range dbs {
			if db.ID != "" {
				continue
			}
			done, err := g.resumeReservation(ctx, t, db.Name)
			if err != nil {
				errs = append(errs, fmt.Errorf("database %q of tenant %s: %w", db.Name, t.ID, err))
				continue
			}
			if done {
				completed++
			} else {
				dropped++
			}
		}
	}
	return completed, dropped, errors.Join(errs...)
}

func (g *Guard) resumeReservation(ctx context.Context, t store.Tenant, name string) (completed bool, err error) {
	tier, err := g.policy.Tier(t.Tier)
	if err != nil {
		return false, err
	}
	org, _ := findOrg(g.orgs, tier.Org)
	ctx, unlock, err := g.lock(ctx, "tenant:"+t.ID)
	if err != nil {
		return false, err
	}
	defer unlock()
	db, err := g.store.GetDatabaseByName(ctx, t.ID, name)
	if err != nil || db.ID != "" {
		return db.ID != "", err // completed or gone meanwhile
	}
	created, err := g.findProject(ctx, org, projectName(t.ID, name))
	if err != nil {
		return false, err
	}
	if created == nil {
		return false, g.store.ForgetReservation(ctx, t.ID, name)
	}
	if _, err := g.completeReservation(ctx, t.ID, name, org, created); err != nil {
		return false, err
	}
	g.log.InfoContext(ctx, "recorded the database an interrupted create_database made", "tenant", t.ID, "name", name, "database_id", created.Project.ID)
	return true, nil
}

// findProject looks for a project a previous, interrupted call may have created.
func (g *Guard) findProject(ctx context.Context, org Org, name string) (*neon.CreatedProject, error) {
	projects, _, err := org.API.ListProjects(ctx, neon.ListProjectsOptions{Search: name, OrgID: org.ID, Limit: 100})
	if err != nil {
		return nil, err
	}
	for _, p := range projects {
		if p.Name != name {
			continue
		}
		branches, err := org.API.ListBranches(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		cp := &neon.CreatedProject{Project: p}
		for _, b := range branches {
			if b.Default {
				cp.Branch = b
			}
		}
		return cp, nil
	}
	return nil, nil
}

func (g *Guard) projectSpec(c caller, name, region string, pg int) neon.ProjectCreate {
	set := TierProjectSettings(c.tier)
	return neon.ProjectCreate{
		Name: name, RegionID: region, PGVersion: pg, OrgID: c.org.ID,
		HistoryRetentionSeconds: set.HistoryRetentionSeconds,
		DefaultEndpointSettings: set.DefaultEndpointSettings,
		Settings:                set.Settings,
		Branch:                  &neon.ProjectCreateBranch{Name: mainBranchName, DatabaseName: defaultDatabaseName, RoleName: defaultRoleName},
	}
}

// TierProjectSettings is what a tier sets on each of its projects: the restore window as
// history retention, the compute range and suspend timeout, and the quotas. create_database
// sets them on a new project and a tier change on every project of the tenant, so the two
// cannot drift apart.
func TierProjectSettings(t policy.Tier) neon.ProjectUpdate {
	retention := int64(t.RestoreWindow / time.Second)
	return neon.ProjectUpdate{
		HistoryRetentionSeconds: &retention,
		DefaultEndpointSettings: &neon.DefaultEndpointSettings{
			AutoscalingLimitMinCU: t.MinComputeCU, AutoscalingLimitMaxCU: t.MaxComputeCU,
			SuspendTimeoutSeconds: int64(t.SuspendTimeout / time.Second),
		},
		Settings: &neon.ProjectSettings{Quota: &neon.Quota{
			ActiveTimeSeconds: t.Quota.ActiveTimeSeconds, ComputeTimeSeconds: t.Quota.ComputeTimeSeconds,
			WrittenDataBytes: t.Quota.WrittenDataBytes, DataTransferBytes: t.Quota.DataTransferBytes,
			LogicalSizeBytes: t.Quota.LogicalSizeBytes,
		}},
	}
}

func (g *Guard) existingDatabase(ctx context.Context, c caller, db store.Database) (*CreateDatabaseResult, error) {
	org, err := g.orgOf(db)
	if err != nil {
		return nil, err
	}
	uri, err := g.connectionURI(ctx, org, db, db.RootBranchID, true)
	if err != nil {
		return nil, err
	}
	return &CreateDatabaseResult{Database: toDatabase(db), Created: false, Tier: c.tier.Name, ConnectionString: uri}, nil
}

func toDatabase(db store.Database) Database {
	return Database{DatabaseID: db.ID, Name: db.Name, Region: db.RegionID, PGVersion: db.PGVersion,
		MainBranchID: db.RootBranchID, CreatedAt: db.CreatedAt.UTC()}
}

func (g *Guard) connectionURI(ctx context.Context, org Org, db store.Database, branchID string, pooled bool) (string, error) {
	uri, err := org.API.ConnectionURI(ctx, db.ID, neon.ConnectionURIOptions{
		BranchID: branchID, DatabaseName: db.DatabaseName, RoleName: db.RoleName, Pooled: pooled,
	})
	if err != nil {
		return "", upstream("get connection string", err)
	}
	return uri, nil
}

// ListDatabases lists the tenant's databases.
func (g *Guard) ListDatabases(ctx context.Context) (*ListDatabasesResult, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	dbs, err := g.store.ListDatabases(ctx, c.tenant.ID)
	if err != nil {
		return nil, err
	}
	out := &ListDatabasesResult{Tier: c.tier.Name, Databases: make([]Database, 0, len(dbs)), Limit: c.tier.MaxDatabases}
	for _, db := range dbs {
		if db.ID == "" { // a create in flight or interrupted
			continue
		}
		out.Databases = append(out.Databases, toDatabase(db))
	}
	return out, nil
}

// GetConnectionString returns a branch's connection URI.
func (g *Guard) GetConnectionString(ctx context.Context, in ConnectionInput) (*ConnectionResult, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	db, org, err := g.database(ctx, c, in.DatabaseID)
	if err != nil {
		return nil, err
	}
	if err := g.settleForRead(ctx, org, db); err != nil {
		return nil, err
	}
	st, err := g.state(ctx, org, db)
	if err != nil {
		return nil, err
	}
	b, err := st.resolve(in.Branch)
	if err != nil {
		return nil, err
	}
	if err := g.ensureCompute(ctx, c, org, db, b.ID); err != nil {
		return nil, err
	}
	uri, err := g.connectionURI(ctx, org, db, b.ID, in.Pooled)
	if err != nil {
		return nil, err
	}
	return &ConnectionResult{DatabaseID: db.ID, BranchID: b.ID, Branch: b.Name, Pooled: in.Pooled, ConnectionString: uri}, nil
}

// DescribeLimits returns the caller's tier and every limit.
func (g *Guard) DescribeLimits(ctx context.Context) (*Limits, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	t := c.tier
	return &Limits{
		Tier: t.Name, Org: t.Org, MaxDatabases: t.MaxDatabases,
		BranchesPerDatabase: t.Branches, CheckpointsPerDatabase: t.Checkpoints,
		RestoreWindowSeconds: int64(t.RestoreWindow.Seconds()),
		Compute:              ComputeLimits{MinCU: t.MinComputeCU, MaxCU: t.MaxComputeCU, SuspendTimeoutSeconds: int64(t.SuspendTimeout.Seconds())},
		DevBranchTTL:         TTLLimits{DefaultSeconds: int64(t.DevBranchTTL.Seconds()), MaxSeconds: int64(t.MaxDevBranchTTL.Seconds())},
		UndoBackupTTLSeconds: int64(t.UndoBackupTTL.Seconds()),
		Quota:                metrics(t, policy.Usage{}),
	}, nil
}

func metrics(t policy.Tier, u policy.Usage) []Metric {
	ms := policy.Metrics(t, u)
	out := make([]Metric, 0, len(ms))
	for _, m := range ms {
		out = append(out, Metric{Name: m.Name, Unit: m.Unit, Used: m.Used, Limit: m.Limit, Percent: m.Percent, Level: m.Level})
	}
	return out
}

// ensureCompute gives a branch without one (an undo backup, a checkpoint restore's leftover) a
// compute in the tier's range, so that it can be connected to and inspected.
func (g *Guard) ensureCompute(ctx context.Context, c caller, org Org, db store.Database, branchID string) error {
	eps, err := org.API.ListBranchEndpoints(ctx, db.ID, branchID)
	if err != nil {
		return upstream("get connection string", err)
	}
	if len(eps) > 0 {
		return nil
	}
	ctx, unlock, err := g.lock(ctx, "db:"+db.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if eps, err := org.API.ListBranchEndpoints(ctx, db.ID, branchID); err == nil && len(eps) > 0 {
		return nil // another call made it meanwhile
	}
	_, err = org.API.CreateEndpoint(ctx, db.ID, branchID, neon.EndpointCreate{Type: neon.EndpointReadWrite,
		AutoscalingLimitMinCU: c.tier.MinComputeCU, AutoscalingLimitMaxCU: c.tier.MaxComputeCU,
		SuspendTimeoutSeconds: int64(c.tier.SuspendTimeout.Seconds())})
	if err != nil {
		return upstream("start a compute for the branch", err)
	}
	return nil
}
