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
