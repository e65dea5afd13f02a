// Package progress carries a progress reporter in a context, so that a long operation's real
// steps (the guard's "creating the branch", the Neon client's "waiting for operation 1/2") reach
// whoever asked to follow them — an MCP client that sent a progressToken — without the layers
// that report them knowing the protocol. Standard library only, so every layer can use it.
//
// A context without a reporter makes every call here a no-op: fast calls and callers that did
// not ask pay nothing.
package progress

import (
	"context"
	"math"
	"sync"
)

// Func receives one update: progress increases with every call; total is 0 when not known.
type Func func(progress, total float64, message string)

type key struct{}

// tracker numbers the updates of one call: Step n is reported as progress n-1 (steps
// finished), a Detail within step n between n-1 and n, so progress always increases.
type tracker struct {
	mu     sync.Mutex
	f      Func
	steps  int     // steps begun
	total  int     // steps planned (0 = unknown)
	last   float64 // the last progress reported
	closed bool
}

// NewContext returns ctx carrying f; the returned stop ends the reports (call it when the
// operation has answered: nothing is reported after it).
func NewContext(ctx context.Context, f Func) (context.Context, func()) {
	t := &tracker{f: f, last: -1}
	return context.WithValue(ctx, key{}, t), func() {
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
	}
}

// Enabled reports whether ctx carries a reporter.
func Enabled(ctx context.Context) bool {
	_, ok := ctx.Value(key{}).(*tracker)
	return ok
}

// Plan sets the number of steps the operation expects (its total).
func Plan(ctx context.Context, steps int) {
	if t, ok := ctx.Value(key{}).(*tracker); ok {
		t.mu.Lock()
		t.total = max(steps, t.steps)
		t.mu.Unlock()
	}
}

// Step reports the start of the operation's next step.
func Step(ctx context.Context, message string) {
	t, ok := ctx.Value(key{}).(*tracker)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.steps++
	if t.total > 0 && t.steps > t.total {
		t.total = t.steps
	}
	t.report(float64(t.steps-1), message)
}

// Detail reports progress within the current step, such as a wait for the upstream API: it
// moves half way from the last report to the end of the step.
func Detail(ctx context.Context, message string) {
	t, ok := ctx.Value(key{}).(*tracker)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	end := float64(max(t.steps, 1))
	from := max(t.last, float64(max(t.steps-1, 0)))
	t.report(from+(end-from)/2, message)
}

func (t *tracker) report(p float64, message string) {
	// Three decimals keep the numbers readable; a detail that cannot move any more is dropped.
	p = math.Round(p*1000) / 1000
	if t.closed || p <= t.last {
		return
	}
	t.last = p
	t.f(p, float64(t.total), message)
}
