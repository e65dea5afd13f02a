package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/neonguard/neonguard/internal/errcode"
)

// Usage levels, by percent of a quota: ok < 80 ≤ warning < 95 ≤ critical <
// 100 ≤ exceeded. The 80 % and 95 % steps are Neon's recommended alert points.
const (
	LevelOK       = "ok"
	LevelWarning  = "warning"
	LevelCritical = "critical"
	LevelExceeded = "exceeded"
)

// Metric names (Neon's consumption and quota field names) and units.
const (
	MetricActiveTime   = "active_time_seconds"
	MetricComputeTime  = "compute_time_seconds"
	MetricWrittenData  = "written_data_bytes"
	MetricDataTransfer = "data_transfer_bytes"
	MetricLogicalSize  = "logical_size_bytes"

	UnitSeconds = "seconds"
	UnitBytes   = "bytes"
)

// Usage is a database's (or tenant's) consumption in the current period.
type Usage struct {
	ActiveTimeSeconds  int64
	ComputeTimeSeconds int64
	WrittenDataBytes   int64
	DataTransferBytes  int64
	LogicalSizeBytes   int64
}

// Metric is one consumption figure against its quota. Limit 0 means
// unlimited, with Percent 0 and Level "ok".
type Metric struct {
	Name    string
	Unit    string
	Used    int64
	Limit   int64
	Percent float64 // unrounded; Level is computed from it
	Level   string
}

// Level classifies a percentage of a quota.
func Level(percent float64) string {
	switch {
	case percent >= 100:
		return LevelExceeded
	case percent >= 95:
		return LevelCritical
	case percent >= 80:
		return LevelWarning
	default:
		return LevelOK
	}
}

// Metrics returns every quota metric, in a fixed order, with usage against
// the tier's limits. Unlimited metrics are included (Limit 0) so the agent
// still sees what it used.
func Metrics(t Tier, u Usage) []Metric {
	rows := []struct {
		name, unit  string
		used, limit int64
	}{
		{MetricActiveTime, UnitSeconds, u.ActiveTimeSeconds, t.Quota.ActiveTimeSeconds},
		{MetricComputeTime, UnitSeconds, u.ComputeTimeSeconds, t.Quota.ComputeTimeSeconds},
		{MetricWrittenData, UnitBytes, u.WrittenDataBytes, t.Quota.WrittenDataBytes},
		{MetricDataTransfer, UnitBytes, u.DataTransferBytes, t.Quota.DataTransferBytes},
		{MetricLogicalSize, UnitBytes, u.LogicalSizeBytes, t.Quota.LogicalSizeBytes},
	}
	out := make([]Metric, 0, len(rows))
	for _, r := range rows {
		m := Metric{Name: r.name, Unit: r.unit, Used: r.used, Limit: r.limit, Level: LevelOK}
		if r.limit > 0 {
			m.Percent = float64(r.used) / float64(r.limit) * 100
			m.Level = Level(m.Percent)
		}
		out = append(out, m)
	}
	return out
}

// CheckQuota denies with QUOTA_EXCEEDED when any limited metric is at or over
// 100 % of its quota, naming each such metric.
func CheckQuota(t Tier, u Usage) Decision {
	var over []string
	for _, m := range Metrics(t, u) {
		if m.Limit > 0 && m.Used >= m.Limit {
			over = append(over, fmt.Sprintf("%s %s of %s", m.Name, fmtAmount(m.Used, m.Unit), fmtAmount(m.Limit, m.Unit)))
		}
	}
	if len(over) == 0 {
		return Allowed()
	}
	return Deny(errcode.QuotaExceeded,
		fmt.Sprintf("%s tier quota exceeded: %s", t.Name, strings.Join(over, "; ")),
		"the quota resets at the start of the next billing period; call get_usage for details, "+
			"or ask the platform to upgrade the tier")
}

func fmtAmount(n int64, unit string) string {
	if unit == UnitBytes {
		return fmtBytes(n)
	}
	return strconv.FormatInt(n, 10) + " s"
}

// fmtBytes renders n in IEC units with at most two decimals ("512 MiB",
// "1.5 GiB").
func fmtBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v, i := float64(n), 0
	for (v >= 1024 || v <= -1024) && i < len(units)-1 {
		v /= 1024
		i++
	}
	return trimFloat(v) + " " + units[i]
}

func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
