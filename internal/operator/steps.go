package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// runStep runs one step; each is idempotent, so a resume after a crash may run it again.
func (s *TierChanges) runStep(ctx context.Context, j store.Job, p *payload, step string) (string, error) {
	target, err := s.d.Policy.Tier(p.ToTier)
	if err != nil {
		return "", fmt.Errorf("lifecycle: target tier: %w", err)
	}
	if s.d.Personal == nil {
		return "", ErrNoPersonalKey
	}
	switch step {
	case StepPlan:
		return s.plan(ctx, j, p, target)
	case StepSettings:
		dbs, err := s.databases(ctx, j.TenantID)
		if err != nil {
			return "", err
		}
		return s.settings(ctx, dbs, target)
	case StepTransfer:
		dbs, err := s.databases(ctx, j.TenantID)
		if err != nil {
			return "", err
		}
		return s.transfer(ctx, dbs, target)
	case StepRecord:
		return s.record(ctx, j, p, target)
	}
	return "", fmt.Errorf("lifecycle: unknown step %q", step)
}

// databases are the tenant's live databases (reservations of creates in flight excluded).
func (s *TierChanges) databases(ctx context.Context, tenant string) ([]store.Database, error) {
	all, err := s.d.Store.ListDatabases(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]store.Database, 0, len(all))
	for _, db := range all {
		if db.ID != "" {
			out = append(out, db)
		}
	}
	return out, nil
}

// plan snapshots every database and compares it with the target tier.
func (s *TierChanges) plan(ctx context.Context, j store.Job, p *payload, target policy.Tier) (string, error) {
	dbs, err := s.databases(ctx, j.TenantID)
	if err != nil {
		return "", err
	}
	p.Databases = make([]DatabaseSnapshot, 0, len(dbs))
	for _, db := range dbs {
		snap, err := s.snapshot(ctx, db)
		if errors.Is(err, neon.ErrNotFound) {
			s.log.WarnContext(ctx, "database's project is gone from Neon; skipped", "job", j.ID, "database", db.ID)
			continue
		}
		if err != nil {
			return "", err
		}
		p.Databases = append(p.Databases, snap)
	}
	p.Report = Compare(target, p.Databases)
	n := len(p.Report.Exceeds)
	switch {
	case n == 0:
		return fmt.Sprintf("%d database(s) fit tier %s", len(p.Databases), target.Name), nil
	case p.Force:
		return fmt.Sprintf("%d database(s); %d limit(s) of tier %s exceeded; forced", len(p.Databases), n, target.Name), nil
	}
	return fmt.Sprintf("%d database(s); %d limit(s) of tier %s exceeded", len(p.Databases), n, target.Name), errRefused
}

func (s *TierChanges) snapshot(ctx context.Context, db store.Database) (DatabaseSnapshot, error) {
	api := s.d.Personal
	pr, err := api.GetProject(ctx, db.ID)
	if err != nil {
		return DatabaseSnapshot{}, fmt.Errorf("database %s: %w", db.ID, err)
	}
	branches, err := api.ListBranches(ctx, db.ID)
	if err != nil {
		return DatabaseSnapshot{}, fmt.Errorf("database %s: %w", db.ID, err)
	}
	snaps, err := api.ListSnapshots(ctx, db.ID)
	if err != nil {
		return DatabaseSnapshot{}, fmt.Errorf("database %s: %w", db.ID, err)
	}
	u := guard.UsageOf(pr, branches)
	return DatabaseSnapshot{DatabaseID: db.ID, Name: db.Name, OrgID: pr.OrgID, Branches: len(branches),
		Checkpoints: len(snaps), HistoryRetentionSeconds: pr.HistoryRetentionSeconds, Usage: u}, nil
}

// settingsMatch reports whether a project already has the tier's settings.
func settingsMatch(pr *neon.Project, want neon.ProjectUpdate) bool {
	if pr.HistoryRetentionSeconds != *want.HistoryRetentionSeconds || pr.DefaultEndpointSettings == nil ||
		*pr.DefaultEndpointSettings != *want.DefaultEndpointSettings {
		return false
	}
	var q neon.Quota
	if pr.Settings != nil && pr.Settings.Quota != nil {
		q = *pr.Settings.Quota
	}
	return q == *want.Settings.Quota
}

// settings PATCHes every project whose settings differ from the tier's.
func (s *TierChanges) settings(ctx context.Context, dbs []store.Database, target policy.Tier) (string, error) {
	want := guard.TierProjectSettings(target)
	updated, unchanged, gone := 0, 0, 0
	for _, db := range dbs {
		pr, err := s.d.Personal.GetProject(ctx, db.ID)
		if errors.Is(err, neon.ErrNotFound) {
			gone++
			continue
		}
		if err != nil {
			return "", fmt.Errorf("database %s: %w", db.ID, err)
		}
		if settingsMatch(pr, want) {
			unchanged++
			continue
		}
		if _, err := s.d.Personal.UpdateProject(ctx, db.ID, want); err != nil {
			return "", fmt.Errorf("database %s: update settings: %w", db.ID, err)
		}
		updated++
	}
	res := fmt.Sprintf("settings of tier %s: %d project(s) updated, %d already set", target.Name, updated, unchanged)
	if gone > 0 {
		res += fmt.Sprintf(", %d gone from Neon", gone)
	}
	return res, nil
}

// transfer moves the projects that are not in the target org there, reading first where each
// one is, so a run after a crash moves only what is left.
func (s *TierChanges) transfer(ctx context.Context, dbs []store.Database, target policy.Tier) (string, error) {
	dst, err := s.orgID(target.Org)
	if err != nil {
		return "", err
	}
	bySource := map[string][]string{}
	there := 0
	for _, db := range dbs {
		pr, err := s.d.Personal.GetProject(ctx, db.ID)
		if errors.Is(err, neon.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("database %s: %w", db.ID, err)
		}
		if pr.OrgID == dst {
			there++
			if db.OrgID != dst { // moved by an earlier run that did not record it
				if err := s.d.Store.SetDatabaseOrg(ctx, db.ID, dst); err != nil {
					return "", err
				}
			}
			continue
		}
		bySource[pr.OrgID] = append(bySource[pr.OrgID], db.ID)
	}
	moved := 0
	sources := make([]string, 0, len(bySource))
	for src := range bySource {
		sources = append(sources, src)
	}
	slices.Sort(sources)
	for _, src := range sources {
		ids := bySource[src]
		// The client sends at most 400 ids a request, as Neon requires.
		if err := s.d.Personal.TransferProjects(ctx, src, dst, ids); err != nil {
			return "", fmt.Errorf("transfer %d project(s) from %s to %s: %w", len(ids), src, dst, err)
		}
		// Recorded at once so the guard finds the projects in their new org; the record step
		// checks every row again.
		for _, id := range ids {
			if err := s.d.Store.SetDatabaseOrg(ctx, id, dst); err != nil {
				return "", err
			}
		}
		moved += len(ids)
	}
	return fmt.Sprintf("%d project(s) moved to org %s (%s), %d already there", moved, target.Org, dst, there), nil
}

func (s *TierChanges) orgID(plan string) (string, error) {
	for _, o := range s.d.Orgs {
		if o.Plan == plan {
			return o.ID, nil
		}
	}
	return "", fmt.Errorf("lifecycle: org %q is not configured", plan)
}

// record sets the tenant's tier. It holds the tenant lock create_database takes, so no
// database is created in the old tier's org meanwhile; databases created since the plan step
// are brought to the target first, and every row's org is checked against Neon.
func (s *TierChanges) record(ctx context.Context, j store.Job, p *payload, target policy.Tier) (string, error) {
	unlock, err := s.d.Locker.Lock(ctx, "tenant:"+j.TenantID)
	if err != nil {
		return "", fmt.Errorf("lifecycle: lock tenant %s: %w", j.TenantID, err)
	}
	defer unlock()
	dbs, err := s.databases(ctx, j.TenantID)
	if err != nil {
		return "", err
	}
	var fresh []store.Database
	for _, db := range dbs {
		if !slices.ContainsFunc(p.Databases, func(d DatabaseSnapshot) bool { return d.DatabaseID == db.ID }) {
			fresh = append(fresh, db)
		}
	}
	if len(fresh) > 0 {
		for _, st := range p.Steps {
			var err error
			switch st.Name {
			case StepSettings:
				_, err = s.settings(ctx, fresh, target)
			case StepTransfer:
				_, err = s.transfer(ctx, fresh, target)
			}
			if err != nil {
				return "", fmt.Errorf("database(s) created during the tier change: %w", err)
			}
		}
	}
	dst, err := s.orgID(target.Org)
	if err != nil {
		return "", err
	}
	for _, db := range dbs {
		pr, err := s.d.Personal.GetProject(ctx, db.ID)
		if errors.Is(err, neon.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("database %s: %w", db.ID, err)
		}
		if pr.OrgID != dst {
			return "", fmt.Errorf("database %s is in org %s, not the target org %s", db.ID, pr.OrgID, dst)
		}
		if db.OrgID != pr.OrgID {
			if err := s.d.Store.SetDatabaseOrg(ctx, db.ID, pr.OrgID); err != nil {
				return "", err
			}
		}
	}
	if err := s.d.Store.SetTenantTier(ctx, j.TenantID, target.Name); err != nil {
		return "", err
	}
	res := fmt.Sprintf("tenant %s is on tier %s (%d database(s) in org %s)", j.TenantID, target.Name, len(dbs), dst)
	if len(fresh) > 0 {
		res += fmt.Sprintf("; %d created during the change brought along", len(fresh))
	}
	return res, nil
}
