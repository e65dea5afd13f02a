// Package server builds neonguard's MCP server: the tools and prompts, and the middleware every
// tool call passes through (recovery → principal → trace → drain → audit → access → tenant rate limit
// → timeout → tenant concurrency cap → concurrency cap), in that order, outermost first: a call
// refused by its access, by a limit or ended by the timeout is audited and counted too. http.go
// serves it over Streamable HTTP and SSE.
package server

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/metrics"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/store"
	"github.com/neonguard/neonguard/internal/truncate"
	"github.com/neonguard/neonguard/prompts"
	"github.com/neonguard/neonguard/tools"
)

// Name is the server name announced in initialize.
const Name = "neonguard"

// Options configure the MCP server.
type Options struct {
	Guard   guard.UseCases
	Audit   AuditStore // where every tool call is recorded; nil = no audit
	Logger  *slog.Logger
	Version string
	// DefaultPrincipal is used when the context carries none: the single tenant of stdio and
	// of `neonguard call`. Nil on multi-tenant transports, where a call without one is refused.
	DefaultPrincipal *identity.Principal
	CallTimeout      time.Duration // per tool call; default 60s
	MaxConcurrent    int           // tool calls in flight; default 64
	// MaxConcurrentPerTenant caps one tenant's calls in flight, so one tenant cannot take every
	// place of MaxConcurrent; more wait (within CallTimeout), then get RATE_LIMITED. 0 = none.
	MaxConcurrentPerTenant int
	// TierOf enables per-tenant rate limits (the tier's calls_per_minute); nil = none.
	TierOf  TierOf
	Metrics *metrics.Metrics // nil = none
	// Calls tracks calls in flight so a shutdown can wait for them; nil = untracked.
	Calls *Calls
	// Admin, when set, adds the admin tool set, visible and callable only with the admin scope.
	Admin tools.AdminUseCases
	// ReadOnly caps every principal at reading (serve --read-only, access: read-only): each one
	// sees and calls only what a token with the read scope would (access.go).
	ReadOnly bool
	// ToolGroups are the agent tool groups served (tools.Groups); empty serves them all. The
	// tools of the others are neither listed nor callable. The admin tools are in no group.
	ToolGroups []string
}

const instructions = `neonguard manages PostgreSQL databases on Neon for you, within your tier's limits.
Start with describe_limits; every database_id comes from list_databases. Before a risky change: checkpoint (or note the time for undo_to_time).
Experiment on create_dev_branch. Errors are JSON {"error":{"code","message","hint"}}: follow the hint.`

// New builds the MCP server.
func New(o Options) *mcpserver.MCPServer {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 60 * time.Second
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 64
	}
	deps := tools.Deps{Guard: o.Guard, Admin: o.Admin, Logger: o.Logger, Schemas: tools.NewSchemas()}
	served := inGroups(tools.All(deps), o.ToolGroups)
	if o.Admin != nil {
		served = append(served, tools.AdminTools(deps)...)
	}
	acc := newAccess(served, o.DefaultPrincipal, o.ReadOnly)
	nat := newNative(o)
	opts := []mcpserver.ServerOption{
		mcpserver.WithHooks(acc.hooks()),
		mcpserver.WithToolCapabilities(false),
		mcpserver.WithPromptCapabilities(false),
		// Tools ask the user to confirm destructive statements when the client can be asked.
		mcpserver.WithElicitation(),
		mcpserver.WithInstructions(instructions),
		mcpserver.WithRecovery(),
		mcpserver.WithToolHandlerMiddleware(principal(o.DefaultPrincipal, o.ReadOnly)),
		mcpserver.WithToolHandlerMiddleware(traceCall()),
		mcpserver.WithToolHandlerMiddleware(o.Calls.middleware()),
		mcpserver.WithToolHandlerMiddleware(audit(newAuditLog(o.Audit), o.Logger, o.Metrics)),
		mcpserver.WithToolHandlerMiddleware(acc.middleware()),
		// After a call for a database: the warnings about it the client asked to hear (native.go).
		mcpserver.WithToolHandlerMiddleware(nat.notices),
	}
	opts = append(opts, nat.options()...)
	if o.TierOf != nil {
		opts = append(opts, mcpserver.WithToolHandlerMiddleware(rateLimit(newTenantLimiters(o.TierOf, nil), o.Metrics)))
	}
	opts = append(opts, mcpserver.WithToolHandlerMiddleware(timeout(o.CallTimeout)))
	if o.MaxConcurrentPerTenant > 0 {
		opts = append(opts, mcpserver.WithToolHandlerMiddleware(limitPerTenant(o.MaxConcurrentPerTenant, o.Metrics)))
	}
	opts = append(opts,
		mcpserver.WithToolHandlerMiddleware(limit(o.MaxConcurrent, o.Metrics)),
		// The filter hides the admin tools from other principals and, in mcp-go, also refuses
		// their calls (as an unknown tool).
		mcpserver.WithToolFilter(adminOnly),
	)
	s := mcpserver.NewMCPServer(Name, o.Version, opts...)
	s.AddTools(served...)
	s.AddPrompts(prompts.All()...)
	nat.addResources(s)
	return s
}

// adminOnly removes the admin tool set unless the caller has the admin scope.
func adminOnly(ctx context.Context, ts []mcp.Tool) []mcp.Tool {
	if p, ok := identity.FromContext(ctx); ok && p.HasScope(identity.ScopeAdmin) {
		return ts
	}
	out := ts[:0:0]
	for _, t := range ts {
		if !tools.IsAdmin(t.Name) {
			out = append(out, t)
		}
	}
	return out
}

// errorResult is the tools' error shape, for refusals made before a tool's handler runs.
func errorResult(code errcode.Code, message, hint string) *mcp.CallToolResult {
	return tools.ErrorResult(code, message, hint)
}

// principal puts the caller in the context for everything below: the transport's, else the
// default one; on a read-only server capped at reading.
func principal(def *identity.Principal, readOnly bool) mcpserver.ToolHandlerMiddleware {
	return func(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			p, ok := identity.FromContext(ctx)
			if !ok {
				if def == nil {
					return errorResult(errcode.Unauthenticated, "no credentials", "connect with a bearer token"), nil
				}
				p = *def
			}
			if !ok || (readOnly && !p.ReadOnly) {
				p.ReadOnly = p.ReadOnly || readOnly
				ctx = identity.NewContext(ctx, p)
			}
			return next(ctx, req)
		}
	}
}

// timeout bounds every call: SSE handlers are never cancelled by the client (mcp-go detaches
// them), so without it a stuck upstream would hold a call forever.
func timeout(d time.Duration) mcpserver.ToolHandlerMiddleware {
	return func(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next(ctx, req)
		}
	}
}

// limitPerTenant lets at most n calls of one tenant run at once, so one tenant cannot take
// every place of the global cap (limit, after it) from the others. A call beyond it waits for
// one of its tenant's calls to end, within the call timeout (before it), then is refused.
func limitPerTenant(n int, m *metrics.Metrics) mcpserver.ToolHandlerMiddleware {
	slots := &tenantSlots{n: n, m: map[string]*tenantSem{}}
	return func(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			p, _ := identity.FromContext(ctx)
			release, err := slots.acquire(ctx, p.TenantID)
			if err != nil {
				m.RateLimited("tenant_busy")
				return errorResult(errcode.RateLimited, fmt.Sprintf("%d of your calls are already running", n),
					"retry once one of them has finished"), nil
			}
			defer release()
			return next(ctx, req)
		}
	}
}

// tenantSlots is a semaphore of n places per tenant; a tenant's entry lives while some call of
// it holds or waits for a place.
type tenantSlots struct {
	n  int
	mu sync.Mutex
	m  map[string]*tenantSem
}

type tenantSem struct {
	places chan struct{}
	users  int // calls holding or waiting for a place
}

func (s *tenantSlots) acquire(ctx context.Context, tenant string) (release func(), err error) {
	s.mu.Lock()
	ts := s.m[tenant]
	if ts == nil {
		ts = &tenantSem{places: make(chan struct{}, s.n)}
		s.m[tenant] = ts
	}
	ts.users++
	s.mu.Unlock()
	leave := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if ts.users--; ts.users == 0 {
			delete(s.m, tenant)
		}
	}
	select {
	case ts.places <- struct{}{}:
		return func() { <-ts.places; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, context.Cause(ctx)
	}
}

func limit(n int, m *metrics.Metrics) mcpserver.ToolHandlerMiddleware {
	sem := make(chan struct{}, n)
	return func(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				m.RateLimited("busy")
				return errorResult(errcode.RateLimited, "the server is busy with other calls", "retry after 5 s"), nil
			}
			defer func() { <-sem }()
			defer m.CallStarted()()
			return next(ctx, req)
		}
	}
}

// AuditStore is where the audit middleware writes: one transaction per group of rows.
type AuditStore interface {
	AppendAudits(ctx context.Context, es []store.AuditEntry) error
}

func newAuditLog(st AuditStore) *auditLog {
	if st == nil {
		return nil
	}
	return &auditLog{st: st}
}

// audit records every call with redacted arguments, the decision and the outcome.
func audit(st *auditLog, log *slog.Logger, m *metrics.Metrics) mcpserver.ToolHandlerMiddleware {
	return func(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
			start := time.Now()
			// A panic is recorded too (as an error), then passed on to the recovery middleware.
			defer func() {
				if v := recover(); v != nil {
					record(ctx, st, log, m, req, start, nil, fmt.Errorf("panic: %v", v))
					panic(v)
				}
			}()
			res, err = next(ctx, req)
			record(ctx, st, log, m, req, start, res, err)
			return res, err
		}
	}
}

// record writes one tool call's audit row and log line.
func record(ctx context.Context, st *auditLog, log *slog.Logger, m *metrics.Metrics, req mcp.CallToolRequest, start time.Time, res *mcp.CallToolResult, err error) {
	p, _ := identity.FromContext(ctx)
	e := store.AuditEntry{At: start.UTC(), TenantID: p.TenantID, Tool: req.Params.Name,
		Args: redactArgs(req.GetArguments()), Decision: "allow", Outcome: "ok",
		DurationMS: time.Since(start).Milliseconds()}
	if id, ok := req.GetArguments()["database_id"].(string); ok {
		e.DatabaseID = truncate.UTF8(neon.Redact(id), 80)
	}
	metricCode := e.Decision // a failed call's error code instead, INTERNAL when it has none
	switch {
	case err != nil:
		e.Outcome, e.Error = "error", neon.Redact(err.Error())
		metricCode = string(errcode.Internal)
	case res != nil && res.NeedsInput():
		// Not run yet: the user is being asked (the answer comes as a second, audited call).
		e.Outcome = "asked_user"
	case res != nil && res.IsError:
		code, msg := errorCode(res)
		e.Outcome, e.Error = "error", msg
		if errcode.Code(code).Denial() {
			e.Decision, e.Outcome = code, "denied"
		}
		metricCode = cmp.Or(code, string(errcode.Internal))
	}
	m.ToolCall(e.Tool, e.Outcome, metricCode, time.Since(start))
	level := slog.LevelInfo
	if e.Outcome == "error" {
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "tool call", "tool", e.Tool, "tenant", e.TenantID, "database_id", e.DatabaseID,
		"decision", e.Decision, "outcome", e.Outcome, "duration_ms", e.DurationMS)
	if st != nil {
		// The audit row must not be lost because the call's own context ended.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
		if aerr := st.append(actx, e); aerr != nil {
			log.ErrorContext(ctx, "audit write failed", "tool", e.Tool, "err", aerr)
		}
		cancel()
	}
}

func errorCode(res *mcp.CallToolResult) (code, message string) {
	for _, c := range res.Content {
		tc, ok := c.(mcp.TextContent)
		if !ok {
			continue
		}
		var body struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(tc.Text), &body) == nil && body.Error.Code != "" {
			return body.Error.Code, body.Error.Message
		}
		return "", truncate.UTF8(tc.Text, 500)
	}
	return "", ""
}

// redactArgs keeps the audit useful without storing anything secret or huge: the whole
// argument object is redacted (connection URIs, tokens, at any depth) and truncated.
func redactArgs(args map[string]any) string {
	clean := make(map[string]any, len(args))
	for k, v := range args {
		lk := strings.ToLower(k)
		switch {
		case strings.Contains(lk, "password") || strings.Contains(lk, "token") || strings.Contains(lk, "secret"):
			v = "[redacted]"
		case lk == "params":
			// run_sql's parameter values are data (often personal): the audit keeps the
			// statement, never the values.
			v = "[not logged]"
		case lk == "sql":
			if sqlText, ok := v.(string); ok {
				v = truncate.UTF8(sqlText, 500)
			}
		}
		clean[k] = v
	}
	b, err := json.Marshal(clean)
	if err != nil {
		return "{}"
	}
	return truncate.UTF8(neon.Redact(string(b)), 2000)
}
