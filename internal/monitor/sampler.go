package monitor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// consumptionMetrics are asked of GET /consumption_history/projects. The legacy endpoint has
// no data-transfer metric, so the monitor cannot alert on that quota (get_usage shows it).
var consumptionMetrics = []string{
	policy.MetricActiveTime, policy.MetricComputeTime, policy.MetricWrittenData, policy.MetricLogicalSize,
}

// RoundStats describe one sampling round.
type RoundStats struct {
	Databases int // databases found in the store
	Sampled   int // databases that got a sample
	Requests  int // consumption requests sent (429 retries by the sampler included)
	Alerts    int // alerts newly raised
}

// target is a database to sample, with its tenant's tier.
type target struct {
	db   store.Database
	tier policy.Tier
}

// Sample runs one round: every live database of every tenant, grouped by org, up to 100
// project ids a request, each request paced.
func (m *Monitor) Sample(ctx context.Context) (RoundStats, error) {
	var st RoundStats
	byOrg, n, err := m.targets(ctx)
	if err != nil {
		return st, err
	}
	st.Databases = n
	orgIDs := make([]string, 0, len(byOrg))
	for id := range byOrg {
		orgIDs = append(orgIDs, id)
	}
	slices.Sort(orgIDs)
	var errs []error
	for _, orgID := range orgIDs {
		ts := byOrg[orgID]
		for chunk := range slices.Chunk(ts, maxIDsPerRequest) {
			if err := m.sampleChunk(ctx, m.orgs[orgID], chunk, &st); err != nil {
				if ctx.Err() != nil {
					return st, ctx.Err()
				}
				errs = append(errs, err)
			}
		}
	}
	if _, err := m.cfg.Store.PruneUsageSamples(ctx, m.clock.Now().Add(-m.cfg.Retention)); err != nil {
		errs = append(errs, err)
	}
	return st, errors.Join(errs...)
}

// targets lists the databases to sample by org id, each org's sorted by database id.
func (m *Monitor) targets(ctx context.Context) (map[string][]target, int, error) {
	tenants, err := m.cfg.Store.ListTenants(ctx)
	if err != nil {
		return nil, 0, errorf("%w", err)
	}
	out := map[string][]target{}
	n := 0
	for _, t := range tenants {
		tier, err := m.cfg.Policy.Tier(t.Tier)
		if err != nil {
			m.log.Warn("usage monitor: tenant skipped", "tenant", t.ID, "err", err)
			continue
		}
		dbs, err := m.cfg.Store.ListDatabases(ctx, t.ID)
		if err != nil {
			return nil, 0, errorf("%w", err)
		}
		for _, db := range dbs {
			if db.ID == "" { // a create in flight
				continue
			}
			if _, ok := m.orgs[db.OrgID]; !ok {
				m.log.Debug("usage monitor: database in an unknown org skipped", "database_id", db.ID, "org_id", db.OrgID)
				continue
			}
			out[db.OrgID] = append(out[db.OrgID], target{db: db, tier: tier})
			n++
		}
	}
	for _, ts := range out {
		slices.SortFunc(ts, func(a, b target) int { return strings.Compare(a.db.ID, b.db.ID) })
	}
	return out, n, nil
}

// sampleChunk reads the consumption of up to 100 databases of one org in one request, stores
// their samples and raises their alerts.
func (m *Monitor) sampleChunk(ctx context.Context, org Org, ts []target, st *RoundStats) error {
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.db.ID
	}
	now := m.clock.Now().UTC()
	from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	var page *neon.ConsumptionPage
	for try := 1; ; try++ {
		if err := m.pacer.Wait(ctx); err != nil {
			return err
		}
		st.Requests++
		var err error
		page, err = org.API.Consumption(ctx, neon.ConsumptionOptions{
			OrgID: org.ID, ProjectIDs: ids, From: from, To: now, Granularity: "monthly",
			Metrics: consumptionMetrics, Limit: len(ids),
		})
		if err == nil {
			break
		}
		if errors.Is(err, neon.ErrRateLimited) && try < rateLimitTries {
			// The client's own Retry-After retries were not enough: Neon's bucket is empty
			// (another process of the account uses it too). Let it refill.
			m.log.Warn("usage monitor: Neon's consumption rate limit reached; pausing", "org_id", org.ID, "pause", rateLimitPause)
			m.pacer.Pause(rateLimitPause)
			continue
		}
		return errorf("consumption of %d databases in org %s: %w", len(ids), org.ID, err)
	}
	byID := make(map[string]neon.ProjectConsumption, len(page.Projects))
	for _, p := range page.Projects {
		byID[p.ProjectID] = p
	}
	taken := m.clock.Now().UTC()
	samples := make([]store.UsageSample, 0, len(ts))
	type pending struct {
		t target
		s store.UsageSample
	}
	var ps []pending
	for _, t := range ts {
		pc, ok := byID[t.db.ID]
		if !ok {
			m.log.Debug("usage monitor: no consumption for database", "database_id", t.db.ID)
			continue
		}
		s := sampleOf(pc, now)
		s.DatabaseID, s.TenantID, s.TakenAt = t.db.ID, t.db.TenantID, taken
		samples = append(samples, s)
		ps = append(ps, pending{t, s})
	}
	if err := m.cfg.Store.AddUsageSamples(ctx, samples); err != nil {
		return errorf("%w", err)
	}
	st.Sampled += len(samples)
	var errs []error
	for _, p := range ps {
		n, err := m.raise(ctx, p.t, p.s)
		st.Alerts += n
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sampleOf sums a project's consumption in its current period: the period with the latest
// start (Neon lists past periods with an end). Time and written data accumulate; the logical
// size is a level, so the largest value counts.
func sampleOf(pc neon.ProjectConsumption, now time.Time) store.UsageSample {
	var cur *neon.ConsumptionPeriod
	for i := range pc.Periods {
		if cur == nil || pc.Periods[i].PeriodStart.After(cur.PeriodStart) {
			cur = &pc.Periods[i]
		}
	}
	var s store.UsageSample
	if cur == nil {
		s.PeriodStart = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		s.PeriodEnd = s.PeriodStart.AddDate(0, 1, 0)
		return s
	}
	s.PeriodStart = cur.PeriodStart.UTC()
	if cur.PeriodEnd != nil && cur.PeriodEnd.After(cur.PeriodStart) {
		s.PeriodEnd = cur.PeriodEnd.UTC()
	} else {
		s.PeriodEnd = s.PeriodStart.AddDate(0, 1, 0)
	}
	for _, c := range cur.Consumption {
		s.ActiveTimeSeconds += c.ActiveTimeSeconds
		s.ComputeTimeSeconds += c.ComputeTimeSeconds
		s.WrittenDataBytes += c.WrittenDataBytes
		s.LogicalSizeBytes = max(s.LogicalSizeBytes, c.LogicalSizeBytes)
	}
	return s
}

// Payload is the JSON body POSTed to the webhook.
type Payload struct {
	ID          string    `json:"id"` // also X-Neonguard-Delivery
	Type        string    `json:"type"`
	DatabaseID  string    `json:"database_id"`
	TenantID    string    `json:"tenant_id"`
	Metric      string    `json:"metric"`
	Threshold   int       `json:"threshold"`
	Level       string    `json:"level"`
	Used        int64     `json:"used"`
	Limit       int64     `json:"limit"`
	Percent     float64   `json:"percent"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
	RaisedAt    time.Time `json:"raised_at"`
}

// PayloadType is Payload.Type.
const PayloadType = "usage.threshold_crossed"

// raise stores the alerts of every threshold s crossed and logs the new ones.
func (m *Monitor) raise(ctx context.Context, t target, s store.UsageSample) (int, error) {
	u := policy.Usage{ActiveTimeSeconds: s.ActiveTimeSeconds, ComputeTimeSeconds: s.ComputeTimeSeconds,
		WrittenDataBytes: s.WrittenDataBytes, DataTransferBytes: s.DataTransferBytes, LogicalSizeBytes: s.LogicalSizeBytes}
	var errs []error
	n := 0
	for _, met := range policy.Metrics(t.tier, u) {
		if met.Limit <= 0 {
			continue
		}
		for _, th := range thresholds {
			if met.Percent < float64(th) {
				break
			}
			a := store.Alert{
				ID: AlertID(s.DatabaseID, met.Name, th, s.PeriodStart), DatabaseID: s.DatabaseID, TenantID: s.TenantID,
				Metric: met.Name, Threshold: th, Level: policy.Level(float64(th)), Used: met.Used, Quota: met.Limit,
				PeriodStart: s.PeriodStart, PeriodEnd: s.PeriodEnd, RaisedAt: s.TakenAt,
			}
			var payload []byte
			if m.cfg.WebhookURL != "" {
				var err error
				if payload, err = json.Marshal(Payload{ID: a.ID, Type: PayloadType, DatabaseID: a.DatabaseID,
					TenantID: a.TenantID, Metric: a.Metric, Threshold: th, Level: a.Level, Used: a.Used,
					Limit: a.Quota, Percent: met.Percent, PeriodStart: a.PeriodStart, PeriodEnd: a.PeriodEnd,
					RaisedAt: a.RaisedAt}); err != nil {
					return n, errorf("alert payload: %w", err)
				}
			}
			raised, err := m.cfg.Store.RaiseAlert(ctx, a, payload)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !raised {
				continue
			}
			n++
			level := slog.LevelInfo
			if th >= 95 {
				level = slog.LevelWarn
			}
			m.log.LogAttrs(ctx, level, "usage alert: database crossed a quota threshold",
				slog.String("alert_id", a.ID), slog.String("database_id", a.DatabaseID), slog.String("tenant", a.TenantID),
				slog.String("metric", a.Metric), slog.Int("threshold", th), slog.String("level", a.Level),
				slog.Int64("used", a.Used), slog.Int64("limit", a.Quota),
				slog.String("percent", strconv.FormatFloat(met.Percent, 'f', 1, 64)),
				slog.Time("period_start", a.PeriodStart))
			if payload != nil {
				m.poke()
			}
		}
	}
	return n, errors.Join(errs...)
}

// AlertID is the alert's id, derived from what makes it unique, so every replica and every
// round names the same alert alike (receivers deduplicate on it).
func AlertID(databaseID, metric string, threshold int, periodStart time.Time) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%d", databaseID, metric, threshold, periodStart.UnixMicro()))
	return "alert-" + hex.EncodeToString(h[:12])
}
