package monitor

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Pacer is a token bucket of N requests a minute with a burst of one: consecutive requests are
// at least a minute/N apart, so no minute (any 60-second window) holds more than N. One Pacer
// serves every org of a process, since Neon's consumption budget is per account.
type Pacer struct {
	clock Clock

	mu     sync.Mutex
	lim    *rate.Limiter
	paused time.Time // no request before this (after a 429)
}

// NewPacer returns a Pacer of perMinute requests a minute (default 30) on clock (default real).
func NewPacer(perMinute int, clock Clock) *Pacer {
	if perMinute <= 0 {
		perMinute = DefaultRequestsPerMinute
	}
	if clock == nil {
		clock = realClock{}
	}
	return &Pacer{clock: clock, lim: rate.NewLimiter(rate.Every(time.Minute/time.Duration(perMinute)), 1)}
}

// Wait blocks until the next request may be sent, or ctx ends.
func (p *Pacer) Wait(ctx context.Context) error {
	p.mu.Lock()
	now := p.clock.Now()
	if now.Before(p.paused) {
		// Take the token when the pause ends, not now, so the spacing counts from there.
		now = p.paused
	}
	r := p.lim.ReserveN(now, 1)
	d := r.DelayFrom(now) + now.Sub(p.clock.Now())
	p.mu.Unlock()
	if err := sleep(ctx, p.clock, d); err != nil {
		p.mu.Lock()
		r.CancelAt(p.clock.Now())
		p.mu.Unlock()
		return err
	}
	return nil
}

// Pause holds every request back for d (Neon answered 429).
func (p *Pacer) Pause(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until := p.clock.Now().Add(d); until.After(p.paused) {
		p.paused = until
	}
}
