package server

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"golang.org/x/time/rate"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/metrics"
	"github.com/neonguard/neonguard/internal/policy"
)

// TierOf returns the tier a tenant is on now.
type TierOf func(ctx context.Context, tenantID string) (policy.Tier, error)

// tenantLimiters holds one token bucket per tenant, sized from the tenant's tier. A tier change
// (a new rate or burst) replaces the bucket; buckets idle for longer than a full refill are
// dropped, since a fresh bucket is identical to them.
type tenantLimiters struct {
	tierOf TierOf
	now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim      *rate.Limiter
	perMin   int
	burst    int
	lastUsed time.Time
}

func newTenantLimiters(tierOf TierOf, now func() time.Time) *tenantLimiters {
	if now == nil {
		now = time.Now
	}
	return &tenantLimiters{tierOf: tierOf, now: now, buckets: make(map[string]*bucket)}
}

// allow takes a token from the tenant's bucket. When none is left it returns how long until one
// is, without taking it, so a refused call costs the tenant nothing.
func (l *tenantLimiters) allow(tenant string, t policy.Tier) (ok bool, retryAfter time.Duration) {
	if t.CallsPerMinute <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[tenant]
	if b == nil || b.perMin != t.CallsPerMinute || b.burst != t.CallBurst {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(t.CallsPerMinute)/60), t.CallBurst),
			perMin: t.CallsPerMinute, burst: t.CallBurst}
		l.buckets[tenant] = b
	}
	b.lastUsed = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Minute
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops idle buckets at most once a minute, so the map does not grow with every tenant
// ever seen. Called with mu held.
func (l *tenantLimiters) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		refill := time.Duration(float64(b.burst) / float64(b.perMin) * float64(time.Minute))
		if now.Sub(b.lastUsed) > refill {
			delete(l.buckets, k)
		}
	}
}

// rateLimit refuses a tenant's calls beyond its tier's rate with RATE_LIMITED, saying when to
// retry. It runs inside the audit middleware, so refusals are recorded.
func rateLimit(l *tenantLimiters, m *metrics.Metrics) mcpserver.ToolHandlerMiddleware {
	return func(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			p, _ := identity.FromContext(ctx)
			t, err := l.tierOf(ctx, p.TenantID)
			if err != nil {
				// The guard resolves the tenant again and reports the failure properly.
				return next(ctx, req)
			}
			if ok, wait := l.allow(p.TenantID, t); !ok {
				m.RateLimited("tenant")
				secs := int(math.Ceil(wait.Seconds()))
				return errorResult(errcode.RateLimited,
					fmt.Sprintf("%s tier allows %d tool calls a minute (bursts of %d)", t.Name, t.CallsPerMinute, t.CallBurst),
					fmt.Sprintf("retry after %d s", max(secs, 1))), nil
			}
			return next(ctx, req)
		}
	}
}
