package policy

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
)

func mustTier(t *testing.T, name string) Tier {
	t.Helper()
	tier, err := Default().Tier(name)
	if err != nil {
		t.Fatal(err)
	}
	return tier
}

// checkDecision compares the verdict and code, and requires every wanted
// fragment to appear in Reason+Hint, so hints stay actionable without
// freezing their exact wording.
func checkDecision(t *testing.T, got Decision, allow bool, code errcode.Code, fragments ...string) {
	t.Helper()
	if got.Allow != allow || got.Code != code {
		t.Fatalf("got allow=%v code=%q, want allow=%v code=%q (%s)", got.Allow, got.Code, allow, code, got)
	}
	if allow {
		if got.Reason != "" || got.Hint != "" {
			t.Fatalf("allowed decision carries text: %s", got)
		}
		return
	}
	if got.Reason == "" || got.Hint == "" {
		t.Fatalf("denial without reason or hint: %s", got)
	}
	text := got.Reason + " | " + got.Hint
	for _, f := range fragments {
		if !strings.Contains(text, f) {
			t.Errorf("decision %q lacks %q", text, f)
		}
	}
}

func TestCodes(t *testing.T) {
	want := []string{"BRANCH_LIMIT", "SNAPSHOT_LIMIT", "RESTORE_WINDOW", "COMPUTE_RANGE", "QUOTA_EXCEEDED",
		"DATABASE_LIMIT", "NOT_FOUND", "INVALID_ARGUMENT", "RATE_LIMITED", "UPSTREAM", "CONFIRMATION_REQUIRED", "FORBIDDEN"}
	var got []string
	for _, c := range errcode.Codes() {
		got = append(got, string(c))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Codes() = %v, want %v", got, want)
	}
	for _, c := range errcode.Codes() {
		d := Deny(c, "r", "h")
		if d.Allow || d.Code != c || d.Reason != "r" || d.Hint != "h" {
			t.Errorf("Deny(%s) = %+v", c, d)
		}
	}
}

func TestDecisionString(t *testing.T) {
	tests := []struct {
		d    Decision
		want string
	}{
		{Allowed(), "allow"},
		{Deny(errcode.NotFound, "no such database", ""), "deny NOT_FOUND: no such database"},
		{Deny(errcode.RateLimited, "slow down", "retry in 1s"), "deny RATE_LIMITED: slow down (hint: retry in 1s)"},
		{Deny(errcode.Upstream, "neon failed", "retry later"), "deny UPSTREAM: neon failed (hint: retry later)"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	if !Allowed().Allow {
		t.Fatal("Allowed() does not allow")
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	wantPlans := map[string]OrgPlan{
		"free": {"free", 10, 1, 0.25, 2, 24 * time.Hour, 5 * time.Minute},
		"paid": {"paid", 1000, 10, 0.25, 16, 168 * time.Hour, time.Minute},
	}
	if len(c.Plans) != len(wantPlans) {
		t.Fatalf("plans = %v", c.Plans)
	}
	for k, want := range wantPlans {
		if got := c.Plans[k]; got != want {
			t.Errorf("plan %s = %+v, want %+v", k, got, want)
		}
	}
	wantTiers := map[string]Tier{
		"free": {Name: "free", Org: "free",
			Quota:        Quota{ActiveTimeSeconds: 360000, LogicalSizeBytes: 512 << 20, DataTransferBytes: 5 << 30},
			MinComputeCU: 0.25, MaxComputeCU: 2, SuspendTimeout: 300 * time.Second,
			Branches: 10, Checkpoints: 1, RestoreWindow: 24 * time.Hour,
			DevBranchTTL: 24 * time.Hour, MaxDevBranchTTL: 7 * 24 * time.Hour, UndoBackupTTL: 24 * time.Hour,
			MaxDatabases: 3, CallsPerMinute: 120, CallBurst: 30},
		"pro": {Name: "pro", Org: "paid",
			Quota:        Quota{ActiveTimeSeconds: 2700000, LogicalSizeBytes: 10 << 30, DataTransferBytes: 50 << 30},
			MinComputeCU: 0.25, MaxComputeCU: 2, SuspendTimeout: 300 * time.Second,
			Branches: 1000, Checkpoints: 10, RestoreWindow: 7 * 24 * time.Hour,
			DevBranchTTL: 7 * 24 * time.Hour, MaxDevBranchTTL: 30 * 24 * time.Hour, UndoBackupTTL: 7 * 24 * time.Hour,
			MaxDatabases: 100, CallsPerMinute: 600, CallBurst: 100},
	}
	if len(c.Tiers) != len(wantTiers) {
		t.Fatalf("tiers = %v", c.Tiers)
	}
	for k, want := range wantTiers {
		if got := c.Tiers[k]; got != want {
			t.Errorf("tier %s = %+v, want %+v", k, got, want)
		}
	}
	// Fresh maps on every call: a caller's edit must not leak into the next.
	c.Tiers["free"] = Tier{}
	if Default().Tiers["free"].Branches != 10 {
		t.Fatal("Default() shares maps between calls")
	}
}

func TestTierAndPlanLookup(t *testing.T) {
	c := Default()
	c.Tiers["anon"] = Tier{Org: "free"} // Name filled from the key
	c.Plans["anon"] = OrgPlan{}
	tests := []struct {
		name     string
		tierErr  bool
		planErr  bool
		wantName string
	}{
		{"free", false, false, "free"},
		{"pro", false, true, "pro"},
		{"paid", true, false, "paid"},
		{"anon", false, false, "anon"},
		{"gold", true, true, ""},
	}
	for _, tt := range tests {
		tier, err := c.Tier(tt.name)
		if tt.tierErr {
			if !errors.Is(err, ErrUnknownTier) || !strings.Contains(err.Error(), "known: anon, free, pro") {
				t.Errorf("Tier(%q) err = %v", tt.name, err)
			}
		} else if err != nil || tier.Name != tt.wantName {
			t.Errorf("Tier(%q) = %+v, %v", tt.name, tier, err)
		}
		plan, err := c.Plan(tt.name)
		if tt.planErr {
			if !errors.Is(err, ErrUnknownPlan) || !strings.Contains(err.Error(), "known: anon, free, paid") {
				t.Errorf("Plan(%q) err = %v", tt.name, err)
			}
		} else if err != nil || plan.Name != tt.wantName {
			t.Errorf("Plan(%q) = %+v, %v", tt.name, plan, err)
		}
	}
	if _, err := (Config{}).Tier("x"); err == nil || !strings.Contains(err.Error(), "known: none") {
		t.Errorf("empty config Tier err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   []string // each must appear; nil means valid
	}{
		{"default", func(*Config) {}, nil},
		{"tier exceeds plan checkpoints", func(c *Config) { setTier(c, "free", func(t *Tier) { t.Checkpoints = 2 }) },
			[]string{"tiers.free.checkpoints: 2 exceeds the free org plan's snapshots_per_project (1)"}},
		{"tier at plan limits", func(c *Config) {
			setTier(c, "pro", func(t *Tier) {
				t.Branches, t.Checkpoints, t.MaxComputeCU = 1000, 10, 16
				t.RestoreWindow, t.SuspendTimeout = 168*time.Hour, time.Minute
			})
		}, nil},
		{"tier exceeds plan branches", func(c *Config) { setTier(c, "free", func(t *Tier) { t.Branches = 11 }) },
			[]string{"tiers.free.branches: 11 exceeds the free org plan's branches_per_project (10)"}},
		{"tier exceeds plan compute", func(c *Config) { setTier(c, "free", func(t *Tier) { t.MaxComputeCU = 4 }) },
			[]string{"tiers.free.max_compute_cu: 4 exceeds the free org plan's max_compute_cu (2)"}},
		{"tier below plan compute", func(c *Config) {
			setPlan(c, "free", func(p *OrgPlan) { p.MinComputeCU = 0.5 })
		}, []string{"tiers.free.min_compute_cu: 0.25 is below the free org plan's min_compute_cu (0.5)"}},
		{"restore window above plan", func(c *Config) { setTier(c, "free", func(t *Tier) { t.RestoreWindow = 48 * time.Hour }) },
			[]string{"tiers.free.restore_window: 48h exceeds the free org plan's max_restore_window (24h)"}},
		{"suspend below plan minimum", func(c *Config) { setTier(c, "free", func(t *Tier) { t.SuspendTimeout = time.Minute }) },
			[]string{"tiers.free.suspend_timeout: 1m is below the free org plan's min_suspend_timeout (5m)"}},
		{"suspend above neon max", func(c *Config) { setTier(c, "pro", func(t *Tier) { t.SuspendTimeout = 8 * 24 * time.Hour }) },
			[]string{"tiers.pro.suspend_timeout: 192h exceeds Neon's maximum (168h)"}},
		{"unknown org", func(c *Config) {
			setTier(c, "pro", func(t *Tier) { t.Org = "enterprise"; t.Checkpoints = -1 })
		}, []string{`tiers.pro.org: unknown org plan "enterprise" (known: free, paid)`,
			"tiers.pro.checkpoints: -1 must not be negative"}},
		{"min above max CU", func(c *Config) { setTier(c, "free", func(t *Tier) { t.MinComputeCU, t.MaxComputeCU = 1, 0.5 }) },
			[]string{"tiers.free.min_compute_cu: 1 exceeds max_compute_cu (0.5)"}},
		{"CU below neon minimum and NaN", func(c *Config) {
			setTier(c, "free", func(t *Tier) { t.MinComputeCU, t.MaxComputeCU = 0, math.NaN() })
		}, []string{"tiers.free.min_compute_cu: 0 must be at least 0.25 CU", "tiers.free.max_compute_cu: NaN must be at least 0.25 CU"}},
		{"negative values", func(c *Config) {
			setTier(c, "free", func(t *Tier) {
				t.Quota = Quota{-1, -2, -3, -4, -5}
				t.MaxDatabases, t.Branches, t.RestoreWindow, t.UndoBackupTTL, t.SuspendTimeout = -1, 0, -time.Hour, 0, -time.Second
			})
		}, []string{
			"tiers.free.quota.active_time_seconds: -1 must not be negative",
			"tiers.free.quota.compute_time_seconds: -2",
			"tiers.free.quota.written_data_bytes: -3",
			"tiers.free.quota.data_transfer_bytes: -4",
			"tiers.free.quota.logical_size_bytes: -5",
			"tiers.free.max_databases: -1 must not be negative",
			"tiers.free.branches: 0 must be at least 1 (the main branch counts)",
			"tiers.free.restore_window: -1h must be positive",
			"tiers.free.undo_backup_ttl: 0s must be positive",
			"tiers.free.suspend_timeout: -1s must be positive",
		}},
		{"rate limit", func(c *Config) {
			setTier(c, "free", func(t *Tier) { t.CallsPerMinute, t.CallBurst = 60, 0 })
			setTier(c, "pro", func(t *Tier) { t.CallsPerMinute = -1 })
		}, []string{
			"tiers.free.call_burst: 0 must be at least 1 when calls_per_minute is set",
			"tiers.pro.calls_per_minute: -1 must not be negative",
		}},
		{"ttl default above max", func(c *Config) { setTier(c, "free", func(t *Tier) { t.DevBranchTTL = 8 * 24 * time.Hour }) },
			[]string{"tiers.free.dev_branch_ttl: 192h exceeds max_dev_branch_ttl (168h)"}},
		{"ttl below minimum", func(c *Config) {
			setTier(c, "free", func(t *Tier) { t.DevBranchTTL, t.MaxDevBranchTTL = 30*time.Second, 0 })
		}, []string{"tiers.free.dev_branch_ttl: 30s must be at least 1m", "tiers.free.max_dev_branch_ttl: 0s must be at least 1m"}},
		{"name mismatch", func(c *Config) {
			setTier(c, "free", func(t *Tier) { t.Name = "gratis" })
			setPlan(c, "paid", func(p *OrgPlan) { p.Name = "pay" })
		}, []string{`tiers.free.name: "gratis" does not match its key "free"`, `plans.paid.name: "pay" does not match its key "paid"`}},
		{"empty names", func(c *Config) {
			c.Tiers[""] = c.Tiers["free"]
			c.Plans[""] = c.Plans["free"]
		}, []string{"tiers: a tier has an empty name", "plans: a plan has an empty name"}},
		{"empty config", func(c *Config) { *c = Config{} }, []string{"plans: no org plans defined", "tiers: no tiers defined"}},
		{"bad plan", func(c *Config) {
			c.Plans["paid"] = OrgPlan{BranchesPerProject: 0, SnapshotsPerProject: -1, MinComputeCU: 4, MaxComputeCU: 2,
				MaxRestoreWindow: -time.Hour, MinSuspendTimeout: -time.Second}
		}, []string{
			"plans.paid.branches_per_project: 0 must be at least 1",
			"plans.paid.snapshots_per_project: -1 must not be negative",
			"plans.paid.min_compute_cu: 4 exceeds max_compute_cu (2)",
			"plans.paid.max_restore_window: -1h must not be negative",
			"plans.paid.min_suspend_timeout: -1s must not be negative",
		}},
		{"plan beyond neon", func(c *Config) {
			setPlan(c, "paid", func(p *OrgPlan) {
				p.MaxRestoreWindow, p.MinSuspendTimeout, p.MinComputeCU = 31*24*time.Hour, 8*24*time.Hour, 0.1
			})
		}, []string{
			"plans.paid.max_restore_window: 744h exceeds Neon's maximum history retention (720h)",
			"plans.paid.min_suspend_timeout: 192h exceeds Neon's maximum suspend timeout (168h)",
			"plans.paid.min_compute_cu: 0.1 must be at least 0.25 CU",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			// All problems are joined, one per line.
			if n := len(strings.Split(err.Error(), "\n")); n < len(tt.want) {
				t.Errorf("got %d problems, want at least %d", n, len(tt.want))
			}
		})
	}
}

func setTier(c *Config, name string, f func(*Tier)) {
	t := c.Tiers[name]
	f(&t)
	c.Tiers[name] = t
}

func setPlan(c *Config, name string, f func(*OrgPlan)) {
	p := c.Plans[name]
	f(&p)
	c.Plans[name] = p
}

func TestCheckDatabaseCount(t *testing.T) {
	limited := mustTier(t, "free") // the default: 3
	unlimited := limited
	unlimited.MaxDatabases = 0
	tests := []struct {
		name     string
		tier     Tier
		existing int
		allow    bool
	}{
		{"unlimited", unlimited, 1000, true},
		{"below", limited, 2, true},
		{"at limit", limited, 3, false},
		{"above (after downgrade)", limited, 5, false},
		{"none", limited, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := CheckDatabaseCount(tt.tier, tt.existing)
			if tt.allow {
				checkDecision(t, d, true, "")
				return
			}
			checkDecision(t, d, false, errcode.DatabaseLimit, "free tier allows 3 databases per tenant", "list_databases")
		})
	}
	one := limited
	one.MaxDatabases = 1
	checkDecision(t, CheckDatabaseCount(one, 1), false, errcode.DatabaseLimit, "allows 1 database per tenant; 1 exists")
}

func branches(kinds ...string) []BranchRef {
	var out []BranchRef
	for i, k := range kinds {
		name := k
		if k != KindMain {
			name = k + "-" + string(rune('a'+i))
		}
		out = append(out, BranchRef{Name: name, Kind: k})
	}
	return out
}

func TestCheckNewBranch(t *testing.T) {
	free := mustTier(t, "free")
	single := free
	single.Branches = 1
	three := free
	three.Branches = 3
	nine := append(branches(KindMain), branches(KindDev, KindDev, KindBackup, KindDev, KindBackup, KindDev, KindDev, KindDev)...)
	tests := []struct {
		name      string
		tier      Tier
		existing  []BranchRef
		allow     bool
		fragments []string
		absent    []string
	}{
		{"empty", free, nil, true, nil, nil},
		{"one below limit", free, nine, true, nil, nil},
		{"at limit lists a few then more", free, append(nine, BranchRef{"feature", KindDev}), false,
			[]string{"free tier allows 10 branches per database", "10 exist", "delete_dev_branch",
				`"dev-a" (dev), "dev-b" (dev), "backup-c" (backup) and 6 more`},
			[]string{`"main"`}},
		{"exactly max listed", three, branches(KindMain, KindDev, KindBackup), false,
			[]string{"3 branches", `"dev-b" (dev), "backup-c" (backup); then retry`}, []string{"more"}},
		{"only main and limit 1", single, branches(KindMain), false,
			[]string{"allows only the main branch (1 branch per database)", "not available on this tier", "undo_to_time"}, nil},
		{"limit 1 with a leftover dev branch", single, []BranchRef{{"dev-x", KindDev}}, false,
			[]string{"1 branch per database", "1 exists", `"dev-x" (dev)`}, nil},
		{"nothing deletable", three, []BranchRef{{"main", KindMain}, {"restored", "other"}, {"x", ""}}, false,
			[]string{"no dev or backup branch", "upgrade"}, []string{`"restored"`}},
		{"over limit after downgrade", three, branches(KindMain, KindDev, KindDev, KindDev, KindDev), false,
			[]string{"5 exist", "and 1 more"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := CheckNewBranch(tt.tier, tt.existing)
			if tt.allow {
				checkDecision(t, d, true, "")
				return
			}
			checkDecision(t, d, false, errcode.BranchLimit, tt.fragments...)
			for _, a := range tt.absent {
				if strings.Contains(d.Hint, a) {
					t.Errorf("hint %q must not contain %q", d.Hint, a)
				}
			}
		})
	}
}

func TestCheckCheckpoint(t *testing.T) {
	free := mustTier(t, "free")
	pro := mustTier(t, "pro")
	none := free
	none.Checkpoints = 0
	three := pro
	three.Checkpoints = 3
	tests := []struct {
		name      string
		tier      Tier
		existing  []string
		replace   bool
		allow     bool
		drop      []string
		fragments []string
	}{
		{"free empty", free, nil, false, true, nil, nil},
		{"free empty replace", free, nil, true, true, nil, nil},
		{"free full", free, []string{"before-auth"}, false, false, nil,
			[]string{`free tier keeps 1 checkpoint: "before-auth" exists; call checkpoint with replace=true`, "1 exists"}},
		{"free full replace", free, []string{"before-auth"}, true, true, []string{"before-auth"}, nil},
		{"pro below", pro, []string{"a", "b"}, false, true, nil, nil},
		{"three full", three, []string{"a", "b", "c"}, false, false, nil,
			[]string{`pro tier keeps 3 checkpoints: "a", "b", "c" exist (oldest first)`, `delete "a"`, "replace=true"}},
		{"three full replace drops oldest", three, []string{"a", "b", "c"}, true, true, []string{"a"}, nil},
		{"over limit after downgrade, replace", three, []string{"a", "b", "c", "d", "e"}, true, true, []string{"a", "b", "c"}, nil},
		{"over limit after downgrade", three, []string{"a", "b", "c", "d", "e"}, false, false, nil,
			[]string{`"a", "b", "c" and 2 more exist`, `delete "a", "b", "c" and`}},
		{"tier without checkpoints", none, nil, false, false, nil,
			[]string{"free tier has no checkpoints", "undo_to_time", "last 1 day"}},
		{"tier without checkpoints, replace", none, []string{"old"}, true, false, nil, []string{"no checkpoints"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, drop := CheckCheckpoint(tt.tier, tt.existing, tt.replace)
			if tt.allow {
				checkDecision(t, d, true, "")
			} else {
				checkDecision(t, d, false, errcode.SnapshotLimit, tt.fragments...)
			}
			if !slices.Equal(drop, tt.drop) {
				t.Errorf("drop = %q, want %q", drop, tt.drop)
			}
		})
	}
}

func TestCheckRestoreTarget(t *testing.T) {
	free := mustTier(t, "free")
	none := free
	none.Checkpoints = 0
	pro := mustTier(t, "pro")
	now := time.Date(2026, 3, 10, 12, 0, 0, 500_000_000, time.UTC)
	tests := []struct {
		name      string
		tier      Tier
		target    time.Time
		code      errcode.Code // "" = allowed
		fragments []string
		absent    string
	}{
		{"now", free, now, "", nil, ""},
		{"an hour ago", free, now.Add(-time.Hour), "", nil, ""},
		{"within skew", free, now.Add(ClockSkew), "", nil, ""},
		{"beyond skew", free, now.Add(ClockSkew + time.Nanosecond), errcode.InvalidArgument,
			[]string{"in the future", "ago="}, ""},
		{"far future", free, now.Add(time.Hour), errcode.InvalidArgument, []string{"2026-03-10T13:00:00Z is in the future"}, ""},
		{"window edge", free, now.Add(-24 * time.Hour), "", nil, ""},
		{"just outside", free, now.Add(-24*time.Hour - time.Nanosecond), errcode.RestoreWindow,
			// earliest is 12:00:00.5 the day before: the hint rounds up to a time inside the window
			[]string{"outside the free tier's 1 day restore window", "earliest allowed time is 2026-03-09T12:00:01Z",
				"list_checkpoints", "restore_checkpoint"}, ""},
		{"outside, no checkpoints on tier", none, now.Add(-48 * time.Hour), errcode.RestoreWindow,
			[]string{"2026-03-09T12:00:01Z"}, "restore_checkpoint"},
		{"pro window", pro, now.Add(-6 * 24 * time.Hour), "", nil, ""},
		{"pro outside", pro, now.Add(-8 * 24 * time.Hour), errcode.RestoreWindow, []string{"7 days restore window"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := CheckRestoreTarget(tt.tier, now, tt.target)
			checkDecision(t, d, tt.code == "", tt.code, tt.fragments...)
			if tt.absent != "" && strings.Contains(d.Hint, tt.absent) {
				t.Errorf("hint %q must not mention %q", d.Hint, tt.absent)
			}
		})
	}
	// A whole-second earliest time is shown as is.
	whole := now.Truncate(time.Second)
	d := CheckRestoreTarget(free, whole, whole.Add(-25*time.Hour))
	checkDecision(t, d, false, errcode.RestoreWindow, "2026-03-09T12:00:00Z")
}

func TestDevBranchTTL(t *testing.T) {
	free := mustTier(t, "free")
	tests := []struct {
		name      string
		requested time.Duration
		want      time.Duration
		allow     bool
	}{
		{"default", 0, 24 * time.Hour, true},
		{"minimum", time.Minute, time.Minute, true},
		{"below minimum", time.Minute - time.Nanosecond, 0, false},
		{"negative", -time.Hour, 0, false},
		{"maximum", 7 * 24 * time.Hour, 7 * 24 * time.Hour, true},
		{"above maximum", 7*24*time.Hour + time.Second, 0, false},
		{"inside", 2 * time.Hour, 2 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, d := DevBranchTTL(free, tt.requested)
			if got != tt.want {
				t.Errorf("ttl = %v, want %v", got, tt.want)
			}
			if tt.allow {
				checkDecision(t, d, true, "")
				return
			}
			checkDecision(t, d, false, errcode.InvalidArgument, "pass ttl between 1m and 168h", "default 24h", "free tier's range")
		})
	}
}

func TestCheckCompute(t *testing.T) {
	free := mustTier(t, "free")
	tests := []struct {
		name     string
		min, max float64
		allow    bool
		fragment string
	}{
		{"tier range", 0.25, 2, true, ""},
		{"fixed size", 1, 1, true, ""},
		{"inside", 0.5, 1, true, ""},
		{"min below", 0.125, 1, false, "0.125–1 CU is outside the free tier's range 0.25–2 CU"},
		{"max above", 0.25, 2.5, false, "outside the free tier's range"},
		{"zero", 0, 0, false, "outside"},
		{"min above max", 2, 1, false, "min compute 2 CU exceeds max compute 1 CU"},
		{"NaN", math.NaN(), 1, false, "not a number"},
		{"infinite", 0.25, math.Inf(1), false, "outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := CheckCompute(free, tt.min, tt.max)
			if tt.allow {
				checkDecision(t, d, true, "")
				return
			}
			checkDecision(t, d, false, errcode.ComputeRange, tt.fragment, "between 0.25 and 2 CU")
		})
	}
}

func TestLevel(t *testing.T) {
	tests := []struct {
		percent float64
		want    string
	}{
		{-1, LevelOK}, {0, LevelOK}, {79.99, LevelOK}, {80, LevelWarning}, {94.99, LevelWarning},
		{95, LevelCritical}, {99.99, LevelCritical}, {100, LevelExceeded}, {250, LevelExceeded},
		{math.NaN(), LevelOK},
	}
	for _, tt := range tests {
		if got := Level(tt.percent); got != tt.want {
			t.Errorf("Level(%v) = %q, want %q", tt.percent, got, tt.want)
		}
	}
}

func TestMetrics(t *testing.T) {
	tier := Tier{Name: "t", Quota: Quota{ActiveTimeSeconds: 10000, LogicalSizeBytes: 1000, DataTransferBytes: 100, WrittenDataBytes: 50}}
	u := Usage{ActiveTimeSeconds: 7999, ComputeTimeSeconds: 123, WrittenDataBytes: 50, DataTransferBytes: 95, LogicalSizeBytes: 800}
	want := []Metric{
		{MetricActiveTime, UnitSeconds, 7999, 10000, 79.99, LevelOK},
		{MetricComputeTime, UnitSeconds, 123, 0, 0, LevelOK},
		{MetricWrittenData, UnitBytes, 50, 50, 100, LevelExceeded},
		{MetricDataTransfer, UnitBytes, 95, 100, 95, LevelCritical},
		{MetricLogicalSize, UnitBytes, 800, 1000, 80, LevelWarning},
	}
	got := Metrics(tier, u)
	if len(got) != len(want) {
		t.Fatalf("got %d metrics, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Unit != w.Unit || g.Used != w.Used || g.Limit != w.Limit || g.Level != w.Level ||
			math.Abs(g.Percent-w.Percent) > 1e-9 {
			t.Errorf("metric %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestCheckQuota(t *testing.T) {
	free := mustTier(t, "free")
	tests := []struct {
		name      string
		usage     Usage
		allow     bool
		fragments []string
		absent    string
	}{
		{"zero", Usage{}, true, nil, ""},
		{"just below every limit", Usage{ActiveTimeSeconds: 359999, LogicalSizeBytes: 512<<20 - 1, DataTransferBytes: 5<<30 - 1,
			ComputeTimeSeconds: 1 << 40, WrittenDataBytes: 1 << 50}, true, nil, ""},
		{"active time at limit", Usage{ActiveTimeSeconds: 360000}, false,
			[]string{"free tier quota exceeded: active_time_seconds 360000 s of 360000 s", "get_usage"}, "logical_size"},
		{"two over", Usage{LogicalSizeBytes: 600 << 20, DataTransferBytes: 6 << 30}, false,
			[]string{"data_transfer_bytes 6 GiB of 5 GiB", "logical_size_bytes 600 MiB of 512 MiB"}, "active_time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := CheckQuota(free, tt.usage)
			if tt.allow {
				checkDecision(t, d, true, "")
				return
			}
			checkDecision(t, d, false, errcode.QuotaExceeded, tt.fragments...)
			if tt.absent != "" && strings.Contains(d.Reason, tt.absent) {
				t.Errorf("reason %q names %q", d.Reason, tt.absent)
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	durations := map[time.Duration]string{
		0: "0s", 24 * time.Hour: "24h", 5 * time.Minute: "5m", 90 * time.Minute: "1h30m",
		time.Hour + 5*time.Second: "1h0m5s", 1500 * time.Millisecond: "1.5s", -time.Hour: "-1h",
	}
	for d, want := range durations {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
	spans := map[time.Duration]string{24 * time.Hour: "1 day", 168 * time.Hour: "7 days", 6 * time.Hour: "6h", 36 * time.Hour: "36h"}
	for d, want := range spans {
		if got := fmtSpan(d); got != want {
			t.Errorf("fmtSpan(%v) = %q, want %q", d, got, want)
		}
	}
	bytes := map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 512 << 20: "512 MiB",
		5 << 30: "5 GiB", 3 << 50: "3 PiB", 1 << 62: "4096 PiB", -2048: "-2 KiB"}
	for n, want := range bytes {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := listNames([]string{"a", "b"}, 3); got != "a, b" {
		t.Errorf("listNames = %q", got)
	}
	if got := plural(2, "branch"); got != "2 branches" {
		t.Errorf("plural = %q", got)
	}
}
