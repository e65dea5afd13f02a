package app

import (
	"context"
	"log/slog"
	"sync"
)

// background is a loop serve runs beside the transports (usage monitor, janitor, jobs); it
// returns when ctx ends.
type background struct {
	name string
	run  func(ctx context.Context)
}

// RunBackground starts the background loops and returns a function that waits for them after
// ctx ended. `neonguard call` does not run them; `serve` does, on both transports.
// Each loop's start and end is logged under its name, so an operator sees which ones run.
func (a *App) RunBackground(ctx context.Context, log *slog.Logger) (wait func()) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	for _, b := range a.background {
		wg.Go(func() {
			log.Info("background loop started", "loop", b.name)
			b.run(ctx)
			log.Info("background loop stopped", "loop", b.name)
		})
	}
	return wg.Wait
}
