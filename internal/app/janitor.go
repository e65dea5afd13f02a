package app

import (
	"context"
	"log/slog"
	"time"
)

// setupJanitor adds the janitor loop when janitor.interval > 0: every interval it deletes the
// expired dev and backup branches a backend left behind and forgets branches Neon no longer
// has (guard.SweepExpired holds the logic).
func (a *App) setupJanitor(_ context.Context, log *slog.Logger) error {
	// At start, whatever the janitor's interval: what a crash interrupted is finished or rolled
	// back (the next call for a database would do it too, but not for databases no one calls).
	a.background = append(a.background, background{name: "recovery", run: func(ctx context.Context) {
		if err := a.Guard.Recover(ctx); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "recovery at start incomplete; the janitor and the next calls retry it", "err", err)
		}
	}})
	every := a.Config.Janitor.Interval
	if every <= 0 {
		return nil
	}
	log = log.With("component", "janitor")
	a.background = append(a.background, background{name: "janitor", run: func(ctx context.Context) {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rep, err := a.Guard.SweepExpired(ctx, time.Now())
			switch {
			case err != nil && ctx.Err() == nil:
				log.ErrorContext(ctx, "janitor pass failed", "err", err)
			case len(rep.Deleted)+len(rep.Pruned)+rep.Failed > 0:
				log.InfoContext(ctx, "janitor pass", "deleted", len(rep.Deleted), "forgotten", len(rep.Pruned), "databases_failed", rep.Failed)
			}
		}
	}})
	return nil
}
