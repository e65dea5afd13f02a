package app

import (
	"context"
	"log/slog"
)

// setupLifecycle wires the lifecycle (issue 5) into a; it may append to a.background.
func (a *App) setupLifecycle(ctx context.Context, log *slog.Logger) error {
	_, _ = ctx, log
	return nil
}
