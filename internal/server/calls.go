package server

import (
	"context"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/neonguard/neonguard/internal/errcode"
)

// Calls tracks the tool calls in flight so a graceful shutdown can stop taking new calls and
// wait for the running ones. Over SSE a call runs detached from its HTTP request, so the HTTP
// server's own Shutdown cannot see it; this can.
type Calls struct {
	mu       sync.Mutex
	draining bool
	running  int
	idle     chan struct{} // closed when draining and nothing runs
}

// NewCalls returns an empty tracker. A nil *Calls tracks nothing (and drains at once).
func NewCalls() *Calls { return &Calls{} }

func (c *Calls) start() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return false
	}
	c.running++
	return true
}

func (c *Calls) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running--
	if c.draining && c.running == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// Drain refuses new calls from now on and waits until the running ones finish or ctx ends.
func (c *Calls) Drain(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.draining = true
	if c.running == 0 {
		c.mu.Unlock()
		return nil
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Running is the number of calls in flight.
func (c *Calls) Running() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// Draining reports whether Drain was called (readiness turns false).
func (c *Calls) Draining() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

func (c *Calls) middleware() mcpserver.ToolHandlerMiddleware {
	return func(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
		if c == nil {
			return next
		}
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if !c.start() {
				return errorResult(errcode.Unavailable, "the server is shutting down", "retry in a few seconds; another replica or the restarted server will take the call"), nil
			}
			defer c.done()
			return next(ctx, req)
		}
	}
}
