package operator

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/policy"
)

// DatabaseSnapshot is what the plan step read of one database: the counts and usage a
// downgrade is checked against.
type DatabaseSnapshot struct {
	DatabaseID              string       `json:"database_id"`
	Name                    string       `json:"name"`
	OrgID                   string       `json:"org_id"`
	Branches                int          `json:"branches"`
	Checkpoints             int          `json:"checkpoints"`
	HistoryRetentionSeconds int64        `json:"history_retention_seconds"`
	Usage                   policy.Usage `json:"usage"`
}

// Report is the comparison of a tenant's databases with a target tier. A tier change with
// Exceeds is refused unless forced; Warnings never block.
type Report struct {
	Tier     string   `json:"tier"`
	Exceeds  []Excess `json:"exceeds"`
	Warnings []string `json:"warnings"`
}

// Excess is one figure of one database over the target tier's limit.
type Excess struct {
	DatabaseID string `json:"database_id"`
	Database   string `json:"database"`
	What       string `json:"what" jsonschema_description:"branches, checkpoints or a quota metric (e.g. active_time_seconds)"`
	Used       int64  `json:"used"`
	Limit      int64  `json:"limit"`
	Over       int64  `json:"over" jsonschema_description:"used - limit"`
	Unit       string `json:"unit,omitempty"`
}

func (e Excess) String() string {
	u := ""
	if e.Unit != "" {
		u = " " + e.Unit
	}
	return fmt.Sprintf("database %s (%s): %s %d%s, tier allows %d (%d over)", e.Database, e.DatabaseID, e.What, e.Used, u, e.Limit, e.Over)
}

// String is the report in one paragraph, for error messages and the CLI.
func (r *Report) String() string {
	if r == nil || len(r.Exceeds) == 0 {
		return "every database fits tier " + r.tierName()
	}
	parts := make([]string, 0, len(r.Exceeds))
	for _, e := range r.Exceeds {
		parts = append(parts, e.String())
	}
	return fmt.Sprintf("%d limit(s) of tier %s exceeded: %s", len(r.Exceeds), r.Tier, strings.Join(parts, "; "))
}

func (r *Report) tierName() string {
	if r == nil {
		return ""
	}
	return r.Tier
}

// Compare checks every database against tier t: branches and checkpoints (Neon counts, every
// branch included) and this billing period's usage against the quotas (0 = unlimited). A
// restore window shorter than a database's history is a warning: older history stops being
// restorable, which is the point of a downgrade rather than a reason to refuse it.
func Compare(t policy.Tier, dbs []DatabaseSnapshot) *Report {
	r := &Report{Tier: t.Name, Exceeds: []Excess{}, Warnings: []string{}}
	for _, db := range dbs {
		add := func(what, unit string, used, limit int64) {
			if limit > 0 && used > limit {
				r.Exceeds = append(r.Exceeds, Excess{DatabaseID: db.DatabaseID, Database: db.Name, What: what,
					Used: used, Limit: limit, Over: used - limit, Unit: unit})
			}
		}
		add("branches", "", int64(db.Branches), int64(t.Branches))
		add("checkpoints", "", int64(db.Checkpoints), int64(t.Checkpoints))
		for _, m := range policy.Metrics(t, db.Usage) {
			add(m.Name, m.Unit, m.Used, m.Limit)
		}
		window := int64(t.RestoreWindow / time.Second)
		if db.HistoryRetentionSeconds > window {
			r.Warnings = append(r.Warnings, fmt.Sprintf("database %s (%s): restore window shrinks from %s to %s; older history is no longer restorable",
				db.Name, db.DatabaseID, seconds(db.HistoryRetentionSeconds), seconds(window)))
		}
	}
	return r
}

func seconds(s int64) string {
	d := time.Duration(s) * time.Second
	if d%(24*time.Hour) == 0 && d > 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}
