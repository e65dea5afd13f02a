package operator

import (
	"strings"
	"testing"

	"github.com/neonguard/neonguard/internal/policy"
)

func TestCompare(t *testing.T) {
	free, err := policy.Default().Tier("free")
	if err != nil {
		t.Fatal(err)
	}
	r := Compare(free, []DatabaseSnapshot{
		{DatabaseID: "p1", Name: "app", Branches: 12, Checkpoints: 1, HistoryRetentionSeconds: 7 * 86400,
			Usage: policy.Usage{ActiveTimeSeconds: free.Quota.ActiveTimeSeconds + 100}},
		{DatabaseID: "p2", Name: "ok", Branches: 1, HistoryRetentionSeconds: 86400},
	})
	want := []Excess{
		{DatabaseID: "p1", Database: "app", What: "branches", Used: 12, Limit: 10, Over: 2},
		{DatabaseID: "p1", Database: "app", What: policy.MetricActiveTime, Used: free.Quota.ActiveTimeSeconds + 100,
			Limit: free.Quota.ActiveTimeSeconds, Over: 100, Unit: policy.UnitSeconds},
	}
	if len(r.Exceeds) != len(want) {
		t.Fatalf("exceeds = %+v", r.Exceeds)
	}
	for i := range want {
		if r.Exceeds[i] != want[i] {
			t.Errorf("exceeds[%d] = %+v, want %+v", i, r.Exceeds[i], want[i])
		}
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "from 7d to 1d") {
		t.Errorf("warnings = %q", r.Warnings)
	}
	if s := r.String(); !strings.Contains(s, "database app (p1): branches 12, tier allows 10 (2 over)") {
		t.Errorf("String() = %q", s)
	}
}
