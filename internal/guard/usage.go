package guard

import (
	"context"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// GetUsage reports this period's consumption of one database, or of all the tenant's, against
// the tier's quotas.
func (g *Guard) GetUsage(ctx context.Context, in DatabaseInput) (*UsageResult, error) {
	databaseID := in.DatabaseID
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	var dbs []store.Database
	if databaseID != "" {
		db, _, err := g.database(ctx, c, databaseID)
		if err != nil {
			return nil, err
		}
		dbs = []store.Database{db}
	} else {
		all, err := g.store.ListDatabases(ctx, c.tenant.ID)
		if err != nil {
			return nil, err
		}
		for _, db := range all {
			if db.ID != "" {
				dbs = append(dbs, db)
			}
		}
	}
	out := &UsageResult{Tier: c.tier.Name, Databases: make([]DatabaseUsage, 0, len(dbs))}
	for _, db := range dbs {
		u, err := g.databaseUsage(ctx, c, db)
		if err != nil {
			return nil, err
		}
		out.Databases = append(out.Databases, u)
	}
	return out, nil
}

func (g *Guard) databaseUsage(ctx context.Context, c caller, db store.Database) (DatabaseUsage, error) {
	org, err := g.orgOf(db)
	if err != nil {
		return DatabaseUsage{}, err
	}
	p, err := org.API.GetProject(ctx, db.ID)
	if err != nil {
		return DatabaseUsage{}, upstream("get_usage", err)
	}
	branches, err := org.API.ListBranches(ctx, db.ID)
	if err != nil {
		return DatabaseUsage{}, upstream("get_usage", err)
	}
	snaps, err := org.API.ListSnapshots(ctx, db.ID)
	if err != nil {
		return DatabaseUsage{}, upstream("get_usage", err)
	}
	alerts, err := g.alerts(ctx, db.ID)
	if err != nil {
		return DatabaseUsage{}, err
	}
	u := UsageOf(p, branches)
	return DatabaseUsage{
		DatabaseID: db.ID, Name: db.Name,
		PeriodStart: p.ConsumptionPeriodStart.UTC(), PeriodEnd: p.ConsumptionPeriodEnd.UTC(),
		Metrics:              metrics(c.tier, u),
		Branches:             Count{Used: len(branches), Limit: c.tier.Branches},
		Checkpoints:          Count{Used: len(snaps), Limit: c.tier.Checkpoints},
		RestoreWindowSeconds: int64(c.tier.RestoreWindow.Seconds()),
		Alerts:               alerts,
	}, nil
}

// alerts are the usage monitor's alerts of the database whose period contains now.
func (g *Guard) alerts(ctx context.Context, databaseID string) ([]UsageAlert, error) {
	as, err := g.store.ListAlerts(ctx, databaseID, g.now())
	if err != nil {
		return nil, err
	}
	out := make([]UsageAlert, 0, len(as))
	for _, a := range as {
		out = append(out, UsageAlert{Metric: a.Metric, Threshold: a.Threshold, Level: a.Level,
			RaisedAt: a.RaisedAt, Delivered: a.DeliveredAt != nil})
	}
	return out, nil
}

// UsageOf reads a project's period counters. Neon enforces logical_size_bytes per branch, so
// storage is the largest branch.
func UsageOf(p *neon.Project, branches []neon.Branch) policy.Usage {
	u := policy.Usage{
		ActiveTimeSeconds: p.ActiveTimeSeconds, ComputeTimeSeconds: p.ComputeTimeSeconds,
		WrittenDataBytes: p.WrittenDataBytes, DataTransferBytes: p.DataTransferBytes,
	}
	for _, b := range branches {
		u.LogicalSizeBytes = max(u.LogicalSizeBytes, b.LogicalSize)
	}
	return u
}
