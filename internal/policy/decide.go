package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
)

const (
	// ClockSkew is how far in the future a restore target may lie and still
	// count as "now": the agent's clock and ours are not the same clock.
	ClockSkew = 5 * time.Second
	// MinDevBranchTTL is the shortest lifetime a dev branch may be given;
	// anything shorter would expire before the agent could use it.
	MinDevBranchTTL = time.Minute
	// maxListed is how many names a hint lists before "and N more".
	maxListed = 3
)

// Branch kinds, as recorded by the guard and shown by list_branches.
const (
	KindMain   = "main"
	KindDev    = "dev"
	KindBackup = "backup"
)

// BranchRef is one existing branch of a database, as counted against the
// branch limit.
type BranchRef struct {
	Name string
	Kind string // KindMain, KindDev or KindBackup; anything else is counted but not offered for deletion
}

// CheckDatabaseCount decides whether a tenant that already has existing
// databases may create one more. MaxDatabases 0 means unlimited.
func CheckDatabaseCount(t Tier, existing int) Decision {
	if t.MaxDatabases <= 0 || existing < t.MaxDatabases {
		return Allowed()
	}
	return Deny(errcode.DatabaseLimit,
		fmt.Sprintf("%s tier allows %s per tenant; %s", t.Name, plural(t.MaxDatabases, "database"), exist(existing)),
		"reuse an existing database (call list_databases; create_database with an existing name returns it), "+
			"or ask the platform to delete one or upgrade the tier")
}

// CheckNewBranch decides whether one more branch may be created in a database
// whose branches are existing. Every branch counts, so the hint offers the dev
// and backup branches that delete_dev_branch can remove, in the order given.
func CheckNewBranch(t Tier, existing []BranchRef) Decision {
	if len(existing) < t.Branches {
		return Allowed()
	}
	var deletable []string
	for _, b := range existing {
		if b.Kind == KindDev || b.Kind == KindBackup {
			deletable = append(deletable, fmt.Sprintf("%q (%s)", b.Name, b.Kind))
		}
	}
	if t.Branches <= 1 && len(deletable) == 0 {
		return Deny(errcode.BranchLimit,
			fmt.Sprintf("%s tier allows only the main branch (1 branch per database)", t.Name),
			"dev branches are not available on this tier: work on main and use checkpoint or undo_to_time to go back, "+
				"or ask the platform to upgrade the tier")
	}
	reason := fmt.Sprintf("%s tier allows %s per database (main, dev and undo backup branches all count); %s",
		t.Name, plural(t.Branches, "branch"), exist(len(existing)))
	if len(deletable) == 0 {
		return Deny(errcode.BranchLimit, reason,
			"no dev or backup branch exists that delete_dev_branch could remove; ask the platform to upgrade the tier")
	}
	return Deny(errcode.BranchLimit, reason,
		"free a slot by calling delete_dev_branch with one of: "+listNames(deletable, maxListed)+"; then retry")
}

// CheckCheckpoint decides whether a checkpoint may be added to a database
// whose checkpoints are existing (names, oldest first). With replace, it
// allows the call and returns the checkpoints to delete first, oldest first,
// so that the new one fits.
func CheckCheckpoint(t Tier, existing []string, replace bool) (Decision, []string) {
	if t.Checkpoints <= 0 {
		return Deny(errcode.SnapshotLimit,
			fmt.Sprintf("%s tier has no checkpoints", t.Name),
			fmt.Sprintf("use undo_to_time to go back to any time in the last %s, or ask the platform to upgrade the tier",
				fmtSpan(t.RestoreWindow))), nil
	}
	if len(existing) < t.Checkpoints {
		return Allowed(), nil
	}
	// Delete enough to leave room for one more; more than one when the tier
	// shrank (e.g. after a downgrade) and the database still has too many.
	drop := existing[:len(existing)-t.Checkpoints+1]
	if replace {
		return Allowed(), drop
	}
	quoted := make([]string, len(existing))
	for i, n := range existing {
		quoted[i] = strconv.Quote(n)
	}
	verb := "exists"
	if len(existing) > 1 {
		verb = "exist (oldest first)"
	}
	dropQ := make([]string, len(drop))
	copy(dropQ, quoted)
	return Deny(errcode.SnapshotLimit,
		fmt.Sprintf("%s tier keeps %s per database; %s", t.Name, plural(t.Checkpoints, "checkpoint"), exist(len(existing))),
		fmt.Sprintf("%s tier keeps %s: %s %s; call checkpoint with replace=true to delete %s and save the new one",
			t.Name, plural(t.Checkpoints, "checkpoint"), listNames(quoted, maxListed), verb,
			listNames(dropQ, maxListed))), nil
}

// CheckRestoreTarget decides whether a branch may be restored to target at
// time now: not in the future (beyond ClockSkew) and not older than the
// tier's restore window. A target exactly at the window's edge is allowed.
func CheckRestoreTarget(t Tier, now, target time.Time) Decision {
	if target.After(now.Add(ClockSkew)) {
		return Deny(errcode.InvalidArgument,
			fmt.Sprintf("restore target %s is in the future (now is %s)",
				target.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)),
			`pass a past timestamp (RFC 3339) or ago, e.g. ago="15m"`)
	}
	earliest := now.Add(-t.RestoreWindow)
	if !target.Before(earliest) {
		return Allowed()
	}
	// Round up: a hint truncated to whole seconds would name a time just
	// outside the window.
	shown := earliest.Truncate(time.Second)
	if shown.Before(earliest) {
		shown = shown.Add(time.Second)
	}
	hint := fmt.Sprintf("the earliest allowed time is %s and moves forward with the clock; pick a later timestamp",
		shown.UTC().Format(time.RFC3339))
	if t.Checkpoints > 0 {
		hint += ", or if a checkpoint was saved before the time you want, call list_checkpoints and restore_checkpoint"
	}
	return Deny(errcode.RestoreWindow,
		fmt.Sprintf("restore target %s is outside the %s tier's %s restore window",
			target.UTC().Format(time.RFC3339), t.Name, fmtSpan(t.RestoreWindow)),
		hint)
}

// DevBranchTTL resolves the lifetime of a new dev branch: 0 means the tier's
// default; anything else must lie in [MinDevBranchTTL, t.MaxDevBranchTTL].
func DevBranchTTL(t Tier, requested time.Duration) (time.Duration, Decision) {
	if requested == 0 {
		return t.DevBranchTTL, Allowed()
	}
	if requested >= MinDevBranchTTL && requested <= t.MaxDevBranchTTL {
		return requested, Allowed()
	}
	return 0, Deny(errcode.InvalidArgument,
		fmt.Sprintf("ttl %s is outside the %s tier's range %s to %s", fmtDuration(requested), t.Name,
			fmtDuration(MinDevBranchTTL), fmtDuration(t.MaxDevBranchTTL)),
		fmt.Sprintf("pass ttl between %s and %s, or omit it for the default %s", fmtDuration(MinDevBranchTTL),
			fmtDuration(t.MaxDevBranchTTL), fmtDuration(t.DevBranchTTL)))
}

// CheckCompute decides whether an autoscaling range [minCU, maxCU] fits the
// tier.
func CheckCompute(t Tier, minCU, maxCU float64) Decision {
	var reason string
	switch {
	case math.IsNaN(minCU) || math.IsNaN(maxCU):
		reason = "compute size is not a number"
	case minCU > maxCU:
		reason = fmt.Sprintf("min compute %s CU exceeds max compute %s CU", fmtCU(minCU), fmtCU(maxCU))
	case minCU < t.MinComputeCU || maxCU > t.MaxComputeCU:
		reason = fmt.Sprintf("compute %s–%s CU is outside the %s tier's range %s–%s CU",
			fmtCU(minCU), fmtCU(maxCU), t.Name, fmtCU(t.MinComputeCU), fmtCU(t.MaxComputeCU))
	default:
		return Allowed()
	}
	return Deny(errcode.ComputeRange, reason,
		fmt.Sprintf("use sizes between %s and %s CU with min ≤ max, or omit them for the tier's range",
			fmtCU(t.MinComputeCU), fmtCU(t.MaxComputeCU)))
}

// listNames renders up to max items, then "and N more".
func listNames(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:max], ", "), len(items)-max)
}

// exist renders "1 exists" or "n exist".
func exist(n int) string {
	if n == 1 {
		return "1 exists"
	}
	return fmt.Sprintf("%d exist", n)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "ch") {
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func fmtCU(cu float64) string { return strconv.FormatFloat(cu, 'g', -1, 64) }

// fmtDuration renders d as Go duration syntax without trailing zero units
// ("24h", not "24h0m0s"), so an agent or operator can paste it back.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// fmtSpan renders d for prose: whole days as "1 day"/"7 days", anything else
// as fmtDuration.
func fmtSpan(d time.Duration) string {
	if d >= day && d%day == 0 {
		return plural(int(d/day), "day")
	}
	return fmtDuration(d)
}
