package guard_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// Notices: this period's quota alerts, and a backup branch once it is within the hour of its
// expiry; another tenant's database is not found.
func TestNotices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.createDB(alice, "a")
	ctx := context.Background()
	if ns, err := e.g.Notices(as(alice), a.DatabaseID); err != nil || len(ns) != 0 {
		t.Fatalf("a new database: %v %v", ns, err)
	}
	p, _ := e.free.Project(a.DatabaseID)
	for _, th := range []struct {
		pct   int
		level string
	}{{80, policy.LevelWarning}, {95, policy.LevelCritical}} {
		if _, err := e.st.RaiseAlert(ctx, store.Alert{ID: "al-" + th.level, DatabaseID: a.DatabaseID, TenantID: alice,
			Metric: policy.MetricActiveTime, Threshold: th.pct, Level: th.level, Used: int64(th.pct) * 3600, Quota: 360000,
			PeriodStart: p.ConsumptionPeriodStart, PeriodEnd: p.ConsumptionPeriodEnd, RaisedAt: e.clock.Now()}, nil); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(2 * time.Second)
	undo, err := e.g.UndoToTime(as(alice), guard.UndoInput{DatabaseID: a.DatabaseID, Ago: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := e.g.Notices(as(alice), a.DatabaseID)
	if err != nil || len(ns) != 2 || ns[0].Level != policy.LevelWarning || ns[1].Level != policy.LevelCritical ||
		!strings.Contains(ns[1].Message, "95 %") || ns[0].Key == ns[1].Key {
		t.Fatalf("with two alerts and a fresh backup: %+v %v", ns, err)
	}
	// The free tier keeps an undo's backup a day: an hour before its end it is told.
	e.clock.Advance(undo.BackupBranch.ExpiresAt.Sub(e.clock.Now()) - 50*time.Minute)
	ns, err = e.g.Notices(as(alice), a.DatabaseID)
	if err != nil || len(ns) != 3 || !strings.HasPrefix(ns[2].Key, "backup:") || !strings.Contains(ns[2].Message, undo.BackupBranch.Name) ||
		!strings.Contains(ns[2].Message, "in 50m") {
		t.Fatalf("an hour before the backup expires: %+v %v", ns, err)
	}
	for _, n := range ns {
		if strings.Contains(n.Message, "postgres") || strings.Contains(n.Message, "npg_") {
			t.Errorf("a notice carries a secret: %q", n.Message)
		}
	}
	_, err = e.g.Notices(as(bob), a.DatabaseID)
	if ge := errcode.As(err); ge == nil || ge.Code != errcode.NotFound {
		t.Fatalf("bob asks about alice's database: %v", err)
	}
	_, missing := e.g.Notices(as(bob), "no-such-db")
	if errcode.As(missing) == nil || errcode.As(missing).Message != errcode.As(err).Message {
		t.Errorf("another tenant's id %q, a missing one %q", err, missing)
	}
}
