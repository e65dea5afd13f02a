package guard

import (
	"context"
	"fmt"
	"time"

	"github.com/neonguard/neonguard/internal/store"
)

// BackupExpiringSoon is how close to its expiry a backup branch (an undo's or a checkpoint
// restore's) is reported by Notices: after it, the state it holds is gone.
const BackupExpiringSoon = time.Hour

// Notice is a warning about one of the caller's databases that an agent should see without
// asking: a quota threshold crossed this period, a backup branch about to expire. Key is
// stable for the same fact, so that a client is told once.
type Notice struct {
	Key        string
	Level      string // warning, critical or exceeded (the quota's), or warning
	DatabaseID string
	Message    string
}

// Notices reads, from neonguard's own records only (no Neon request), the warnings about the
// caller's database: the quota alerts the usage monitor raised this period (80, 95, 100 %) and
// the backup branches that expire within BackupExpiringSoon. Another tenant's id is not found.
func (g *Guard) Notices(ctx context.Context, databaseID string) ([]Notice, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	db, _, err := g.database(ctx, c, databaseID)
	if err != nil {
		return nil, err
	}
	now := g.now()
	var out []Notice
	alerts, err := g.store.ListAlerts(ctx, db.ID, now)
	if err != nil {
		return nil, err
	}
	for _, a := range alerts {
		out = append(out, Notice{Key: fmt.Sprintf("alert:%s:%s:%d:%s", db.ID, a.Metric, a.Threshold, a.PeriodStart.UTC().Format(time.DateOnly)),
			Level: a.Level, DatabaseID: db.ID,
			Message: fmt.Sprintf("database %s (%s) has used %d %% of its %s quota this period (%d of %d); get_usage shows the details",
				db.ID, db.Name, a.Threshold, a.Metric, a.Used, a.Quota)})
	}
	branches, err := g.store.ListBranches(ctx, db.ID)
	if err != nil {
		return nil, err
	}
	for _, b := range branches {
		if b.Kind != store.BranchBackup || b.ExpiresAt == nil || b.ExpiresAt.Before(now) || b.ExpiresAt.Sub(now) > BackupExpiringSoon {
			continue
		}
		out = append(out, Notice{Key: "backup:" + db.ID + ":" + b.ID, Level: "warning", DatabaseID: db.ID,
			Message: fmt.Sprintf("backup branch %q of database %s expires at %s (in %s) and is then deleted with the state it holds; "+
				"restore from it or copy what you need before then", b.Name, db.ID, b.ExpiresAt.UTC().Format(time.RFC3339),
				b.ExpiresAt.Sub(now).Round(time.Minute))})
	}
	return out, nil
}
