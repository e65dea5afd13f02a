package policy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Limits of Neon's API itself, whatever the plan (reference/neon-api.md).
const (
	// MaxSuspendTimeout is the largest suspend_timeout_seconds Neon accepts.
	MaxSuspendTimeout = 7 * 24 * time.Hour
	// MaxHistoryRetention is the largest history_retention_seconds Neon accepts.
	MaxHistoryRetention = 30 * 24 * time.Hour
	// MinCU is the smallest compute size Neon offers.
	MinCU = 0.25
)

// ErrUnknownTier and ErrUnknownPlan are wrapped by Config.Tier and Config.Plan
// so callers can tell a bad name from other failures with errors.Is.
var (
	ErrUnknownTier = errors.New("unknown tier")
	ErrUnknownPlan = errors.New("unknown org plan")
)

// OrgPlan holds Neon's hard ceilings for one organization. Tiers are offers
// inside these ceilings; Config.Validate refuses a tier that exceeds them,
// because Neon would refuse the call later, in front of the agent.
type OrgPlan struct {
	Name                string        `yaml:"-"` // set from the map key
	BranchesPerProject  int           `yaml:"branches_per_project"`
	SnapshotsPerProject int           `yaml:"snapshots_per_project"`
	MinComputeCU        float64       `yaml:"min_compute_cu"`
	MaxComputeCU        float64       `yaml:"max_compute_cu"`
	MaxRestoreWindow    time.Duration `yaml:"max_restore_window"`
	MinSuspendTimeout   time.Duration `yaml:"min_suspend_timeout"`
}

// Quota is the per-project consumption quota of a tier, set on each Neon
// project it creates. Zero means unlimited.
type Quota struct {
	ActiveTimeSeconds  int64 `yaml:"active_time_seconds"`
	ComputeTimeSeconds int64 `yaml:"compute_time_seconds"`
	WrittenDataBytes   int64 `yaml:"written_data_bytes"`
	DataTransferBytes  int64 `yaml:"data_transfer_bytes"`
	LogicalSizeBytes   int64 `yaml:"logical_size_bytes"`
}

// Tier is what a platform offers its users: quotas and limits applied to every
// database of a tenant on that tier, inside the ceilings of the org plan the
// tier's projects live in.
type Tier struct {
	Name           string        `yaml:"-"`   // set from the map key
	Org            string        `yaml:"org"` // key into Config.Plans: "free" or "paid"
	Quota          Quota         `yaml:"quota"`
	MinComputeCU   float64       `yaml:"min_compute_cu"`
	MaxComputeCU   float64       `yaml:"max_compute_cu"`
	SuspendTimeout time.Duration `yaml:"suspend_timeout"`
	// Branches and Checkpoints are per database. Every branch counts: main,
	// dev branches, undo backups and restore leftovers.
	Branches      int           `yaml:"branches"`
	Checkpoints   int           `yaml:"checkpoints"`
	RestoreWindow time.Duration `yaml:"restore_window"`
	// DevBranchTTL is the default lifetime of a dev branch, MaxDevBranchTTL
	// the longest an agent may ask for.
	DevBranchTTL    time.Duration `yaml:"dev_branch_ttl"`
	MaxDevBranchTTL time.Duration `yaml:"max_dev_branch_ttl"`
	// UndoBackupTTL is how long the pre-undo backup branch is kept.
	UndoBackupTTL time.Duration `yaml:"undo_backup_ttl"`
	// MaxDatabases is per tenant; 0 means unlimited.
	MaxDatabases int `yaml:"max_databases"`
	// CallsPerMinute is the tenant's sustained tool-call rate, CallBurst how many calls it may
	// make at once above it (a token bucket); 0 calls per minute means unlimited.
	CallsPerMinute int `yaml:"calls_per_minute"`
	CallBurst      int `yaml:"call_burst"`
	// SQL bounds run_sql; zero values take the defaults (Default* constants).
	SQL SQLLimits `yaml:"sql"`
}

// SQLLimits bound the SQL an agent runs through neonguard.
type SQLLimits struct {
	StatementTimeout time.Duration `yaml:"statement_timeout"` // per statement; 0 = DefaultSQL's
	MaxRows          int           `yaml:"max_rows"`          // rows returned; 0 = DefaultSQL's
	MaxResultBytes   int64         `yaml:"max_result_bytes"`  // result size; 0 = DefaultSQL's
	// ReadOnlyMain refuses writes on a database's main branch (dev branches stay writable).
	ReadOnlyMain bool `yaml:"read_only_main"`
}

// The SQL limits of a tier that sets none.
const (
	DefaultStatementTimeout = 30 * time.Second
	DefaultMaxRows          = 500
	DefaultMaxResultBytes   = mib
)

// WithDefaults fills the zero limits with the defaults.
func (l SQLLimits) WithDefaults() SQLLimits {
	if l.StatementTimeout == 0 {
		l.StatementTimeout = DefaultStatementTimeout
	}
	if l.MaxRows == 0 {
		l.MaxRows = DefaultMaxRows
	}
	if l.MaxResultBytes == 0 {
		l.MaxResultBytes = DefaultMaxResultBytes
	}
	return l
}

// Config is the set of org plans and tiers in force.
type Config struct {
	Plans map[string]OrgPlan `yaml:"plans"`
	Tiers map[string]Tier    `yaml:"tiers"`
}

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
	day = 24 * time.Hour
)

// Default returns the plans and tiers of DESIGN.md §4. Each call returns
// fresh maps, so callers may modify the result.
func Default() Config {
	return Config{
		Plans: map[string]OrgPlan{
			"free": {
				Name: "free", BranchesPerProject: 10, SnapshotsPerProject: 1,
				MinComputeCU: 0.25, MaxComputeCU: 2,
				MaxRestoreWindow: day, MinSuspendTimeout: 5 * time.Minute,
			},
			"paid": {
				Name: "paid", BranchesPerProject: 1000, SnapshotsPerProject: 10,
				MinComputeCU: 0.25, MaxComputeCU: 16,
				MaxRestoreWindow: 7 * day, MinSuspendTimeout: time.Minute,
			},
		},
		Tiers: map[string]Tier{
			"free": {
				Name: "free", Org: "free",
				Quota: Quota{
					ActiveTimeSeconds: 360000,
					LogicalSizeBytes:  512 * mib,
					DataTransferBytes: 5 * gib,
				},
				MinComputeCU: 0.25, MaxComputeCU: 2, SuspendTimeout: 300 * time.Second,
				Branches: 10, Checkpoints: 1, RestoreWindow: day,
				DevBranchTTL: day, MaxDevBranchTTL: 7 * day, UndoBackupTTL: day,
				// Each database is a Neon project (locally, ~150 MB of PostgreSQL): without a
				// limit one free tenant could fill the org or the disk.
				MaxDatabases:   3,
				CallsPerMinute: 120, CallBurst: 30,
			},
			"pro": {
				Name: "pro", Org: "paid",
				Quota: Quota{
					ActiveTimeSeconds: 2700000,
					LogicalSizeBytes:  10 * gib,
					DataTransferBytes: 50 * gib,
				},
				MinComputeCU: 0.25, MaxComputeCU: 2, SuspendTimeout: 300 * time.Second,
				Branches: 1000, Checkpoints: 10, RestoreWindow: 7 * day,
				DevBranchTTL: 7 * day, MaxDevBranchTTL: 30 * day, UndoBackupTTL: 7 * day,
				// Large but finite: one tenant cannot take the paid org's whole project allowance.
				MaxDatabases:   100,
				CallsPerMinute: 600, CallBurst: 100,
			},
		},
	}
}

// Tier returns the named tier. The error wraps ErrUnknownTier and lists the
// known tiers.
func (c Config) Tier(name string) (Tier, error) {
	t, ok := c.Tiers[name]
	if !ok {
		return Tier{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownTier, name, knownKeys(c.Tiers))
	}
	if t.Name == "" {
		t.Name = name
	}
	return t, nil
}

// Plan returns the named org plan. The error wraps ErrUnknownPlan and lists
// the known plans.
func (c Config) Plan(name string) (OrgPlan, error) {
	p, ok := c.Plans[name]
	if !ok {
		return OrgPlan{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownPlan, name, knownKeys(c.Plans))
	}
	if p.Name == "" {
		p.Name = name
	}
	return p, nil
}

// Validate checks every plan and tier and returns all problems at once
// (errors.Join), each naming the field by its YAML path, e.g.
//
//	tiers.free.checkpoints: 2 exceeds the free org plan's snapshots_per_project (1)
//
// Startup calls it so a tier that Neon would refuse is caught before any
// agent sees it.
func (c Config) Validate() error {
	var v validator
	if len(c.Plans) == 0 {
		v.add("plans", "no org plans defined")
	}
	if len(c.Tiers) == 0 {
		v.add("tiers", "no tiers defined")
	}
	for _, name := range sortedKeys(c.Plans) {
		validatePlan(&v, name, c.Plans[name])
	}
	for _, name := range sortedKeys(c.Tiers) {
		c.validateTier(&v, name, c.Tiers[name])
	}
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func validatePlan(v *validator, name string, p OrgPlan) {
	f := func(field string) string { return "plans." + name + "." + field }
	if name == "" {
		v.add("plans", "a plan has an empty name")
	}
	if p.Name != "" && p.Name != name {
		v.add(f("name"), "%q does not match its key %q", p.Name, name)
	}
	if p.BranchesPerProject < 1 {
		v.add(f("branches_per_project"), "%d must be at least 1 (the main branch counts)", p.BranchesPerProject)
	}
	if p.SnapshotsPerProject < 0 {
		v.add(f("snapshots_per_project"), "%d must not be negative", p.SnapshotsPerProject)
	}
	cuOK := true
	for _, cu := range []struct {
		field string
		val   float64
	}{{"min_compute_cu", p.MinComputeCU}, {"max_compute_cu", p.MaxComputeCU}} {
		if !validCU(cu.val) {
			v.add(f(cu.field), "%s must be at least %s CU", fmtCU(cu.val), fmtCU(MinCU))
			cuOK = false
		}
	}
	if cuOK && p.MinComputeCU > p.MaxComputeCU {
		v.add(f("min_compute_cu"), "%s exceeds max_compute_cu (%s)", fmtCU(p.MinComputeCU), fmtCU(p.MaxComputeCU))
	}
	switch {
	case p.MaxRestoreWindow < 0:
		v.add(f("max_restore_window"), "%s must not be negative", fmtDuration(p.MaxRestoreWindow))
	case p.MaxRestoreWindow > MaxHistoryRetention:
		v.add(f("max_restore_window"), "%s exceeds Neon's maximum history retention (%s)",
			fmtDuration(p.MaxRestoreWindow), fmtDuration(MaxHistoryRetention))
	}
	switch {
	case p.MinSuspendTimeout < 0:
		v.add(f("min_suspend_timeout"), "%s must not be negative", fmtDuration(p.MinSuspendTimeout))
	case p.MinSuspendTimeout > MaxSuspendTimeout:
		v.add(f("min_suspend_timeout"), "%s exceeds Neon's maximum suspend timeout (%s)",
			fmtDuration(p.MinSuspendTimeout), fmtDuration(MaxSuspendTimeout))
	}
}

func (c Config) validateTier(v *validator, name string, t Tier) {
	f := func(field string) string { return "tiers." + name + "." + field }
	if name == "" {
		v.add("tiers", "a tier has an empty name")
	}
	if t.Name != "" && t.Name != name {
		v.add(f("name"), "%q does not match its key %q", t.Name, name)
	}

	// Checks that need no plan come first, so an unknown org still reports
	// every other problem of the tier.
	for _, q := range []struct {
		field string
		val   int64
	}{
		{"quota.active_time_seconds", t.Quota.ActiveTimeSeconds},
		{"quota.compute_time_seconds", t.Quota.ComputeTimeSeconds},
		{"quota.written_data_bytes", t.Quota.WrittenDataBytes},
		{"quota.data_transfer_bytes", t.Quota.DataTransferBytes},
		{"quota.logical_size_bytes", t.Quota.LogicalSizeBytes},
	} {
		if q.val < 0 {
			v.add(f(q.field), "%d must not be negative (0 means unlimited)", q.val)
		}
	}
	cuOK := true
	for _, cu := range []struct {
		field string
		val   float64
	}{{"min_compute_cu", t.MinComputeCU}, {"max_compute_cu", t.MaxComputeCU}} {
		if !validCU(cu.val) {
			v.add(f(cu.field), "%s must be at least %s CU", fmtCU(cu.val), fmtCU(MinCU))
			cuOK = false
		}
	}
	if cuOK && t.MinComputeCU > t.MaxComputeCU {
		v.add(f("min_compute_cu"), "%s exceeds max_compute_cu (%s)", fmtCU(t.MinComputeCU), fmtCU(t.MaxComputeCU))
	}
	switch {
	case t.SuspendTimeout <= 0:
		v.add(f("suspend_timeout"), "%s must be positive", fmtDuration(t.SuspendTimeout))
	case t.SuspendTimeout > MaxSuspendTimeout:
		v.add(f("suspend_timeout"), "%s exceeds Neon's maximum (%s)", fmtDuration(t.SuspendTimeout), fmtDuration(MaxSuspendTimeout))
	}
	if t.Branches < 1 {
		v.add(f("branches"), "%d must be at least 1 (the main branch counts)", t.Branches)
	}
	if t.Checkpoints < 0 {
		v.add(f("checkpoints"), "%d must not be negative", t.Checkpoints)
	}
	if t.RestoreWindow <= 0 {
		v.add(f("restore_window"), "%s must be positive", fmtDuration(t.RestoreWindow))
	}
	ttlOK := true
	if t.DevBranchTTL < MinDevBranchTTL {
		v.add(f("dev_branch_ttl"), "%s must be at least %s", fmtDuration(t.DevBranchTTL), fmtDuration(MinDevBranchTTL))
		ttlOK = false
	}
	if t.MaxDevBranchTTL < MinDevBranchTTL {
		v.add(f("max_dev_branch_ttl"), "%s must be at least %s", fmtDuration(t.MaxDevBranchTTL), fmtDuration(MinDevBranchTTL))
		ttlOK = false
	}
	if ttlOK && t.DevBranchTTL > t.MaxDevBranchTTL {
		v.add(f("dev_branch_ttl"), "%s exceeds max_dev_branch_ttl (%s)", fmtDuration(t.DevBranchTTL), fmtDuration(t.MaxDevBranchTTL))
	}
	if t.UndoBackupTTL <= 0 {
		v.add(f("undo_backup_ttl"), "%s must be positive", fmtDuration(t.UndoBackupTTL))
	}
	if t.CallsPerMinute < 0 {
		v.add(f("calls_per_minute"), "%d must not be negative (0 means unlimited)", t.CallsPerMinute)
	}
	if t.CallsPerMinute > 0 && t.CallBurst < 1 {
		v.add(f("call_burst"), "%d must be at least 1 when calls_per_minute is set", t.CallBurst)
	}
	if t.MaxDatabases < 0 {
		v.add(f("max_databases"), "%d must not be negative (0 means unlimited)", t.MaxDatabases)
	}
	if t.SQL.StatementTimeout < 0 || t.SQL.MaxRows < 0 || t.SQL.MaxResultBytes < 0 {
		v.add(f("sql"), "statement_timeout, max_rows and max_result_bytes must not be negative (0 means the default)")
	}

	p, ok := c.Plans[t.Org]
	if !ok {
		v.add(f("org"), "unknown org plan %q (known: %s)", t.Org, knownKeys(c.Plans))
		return
	}
	exceeds := func(field, val, planField, planVal string) {
		v.add(f(field), "%s exceeds the %s org plan's %s (%s)", val, t.Org, planField, planVal)
	}
	if t.Branches > p.BranchesPerProject {
		exceeds("branches", fmt.Sprint(t.Branches), "branches_per_project", fmt.Sprint(p.BranchesPerProject))
	}
	if t.Checkpoints > p.SnapshotsPerProject {
		exceeds("checkpoints", fmt.Sprint(t.Checkpoints), "snapshots_per_project", fmt.Sprint(p.SnapshotsPerProject))
	}
	if validCU(t.MinComputeCU) && validCU(p.MinComputeCU) && t.MinComputeCU < p.MinComputeCU {
		v.add(f("min_compute_cu"), "%s is below the %s org plan's min_compute_cu (%s)", fmtCU(t.MinComputeCU), t.Org, fmtCU(p.MinComputeCU))
	}
	if validCU(t.MaxComputeCU) && validCU(p.MaxComputeCU) && t.MaxComputeCU > p.MaxComputeCU {
		exceeds("max_compute_cu", fmtCU(t.MaxComputeCU), "max_compute_cu", fmtCU(p.MaxComputeCU))
	}
	if t.SuspendTimeout > 0 && t.SuspendTimeout < p.MinSuspendTimeout {
		v.add(f("suspend_timeout"), "%s is below the %s org plan's min_suspend_timeout (%s)",
			fmtDuration(t.SuspendTimeout), t.Org, fmtDuration(p.MinSuspendTimeout))
	}
	if t.RestoreWindow > p.MaxRestoreWindow {
		exceeds("restore_window", fmtDuration(t.RestoreWindow), "max_restore_window", fmtDuration(p.MaxRestoreWindow))
	}
}

// validCU rejects NaN, infinities and sizes below Neon's smallest compute.
func validCU(cu float64) bool {
	return !math.IsNaN(cu) && !math.IsInf(cu, 0) && cu >= MinCU
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func knownKeys[V any](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(sortedKeys(m), ", ")
}
