package app

import (
	"context"
	"log/slog"
)

// setupJanitor wires the janitor (issue 5) into a; it may append to a.background.
func (a *App) setupJanitor(ctx context.Context, log *slog.Logger) error {
	_, _ = ctx, log
	return nil
}
