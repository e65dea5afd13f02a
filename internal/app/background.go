package app

import (
	"context"
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
func (a *App) RunBackground(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for _, b := range a.background {
		wg.Go(func() { b.run(ctx) })
	}
	return wg.Wait
}
