package app

import (
	"context"
	"log/slog"
)

// setupMonitor wires the monitor (issue 5) into a; it may append to a.background.
func (a *App) setupMonitor(ctx context.Context, log *slog.Logger) error {
	_, _ = ctx, log
	return nil
}
