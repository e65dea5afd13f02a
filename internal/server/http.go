package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/neonguard/neonguard/internal/auth"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/metrics"
)

// Authenticator turns an Authorization header into a principal. Refused credentials return an
// error wrapping auth.ErrUnauthenticated (401); any other error is a server fault (503).
type Authenticator interface {
	Authenticate(ctx context.Context, authorization string) (identity.Principal, error)
}

// HTTPOptions configure the HTTP transports.
type HTTPOptions struct {
	Auth Authenticator
	// PublicURL is the server's external base URL (https://mcp.example.com), used in the SSE
	// endpoint event and the RFC 9728 metadata. Empty: derived from each request's Host.
	PublicURL      string
	MaxBodyBytes   int64         // per request; default 4 MiB
	SessionIdleTTL time.Duration // Streamable HTTP session state; default 15m
	SSEKeepAlive   time.Duration // ping interval on SSE and GET /mcp streams; default 25s
	// BodyReadTimeout bounds the time to receive a request body (408 and the connection closed
	// beyond it); default 10s.
	BodyReadTimeout time.Duration
	// TenantMaxRequests caps one tenant's POSTs open at once (bodies being received, answers
	// being sent), TenantMaxStreams its open GET streams (/mcp and /sse), TenantMaxSessions its
	// live Streamable HTTP sessions on this replica; beyond each: 429. Defaults 32, 32, 128.
	TenantMaxRequests int
	TenantMaxStreams  int
	TenantMaxSessions int
	// StreamRecheck is how often an open stream's credential is checked again; a revoked or
	// expired credential's streams close within it. Default 30s.
	StreamRecheck time.Duration
	// TierOf and RequestRateFactor limit every request of a tenant to RequestRateFactor times
	// its tier's calls_per_minute and call_burst (429 beyond). Nil or 0: not limited (tool
	// calls still are, by Options.TierOf).
	TierOf            TierOf
	RequestRateFactor int
	// UnreadyDelay is how long, on shutdown, /readyz answers 503 while requests are still
	// served, before the listener closes (a load balancer's probe interval); 0 = none.
	UnreadyDelay time.Duration
	// Ready reports whether the server can take calls (the store answers); nil = always.
	Ready   func(ctx context.Context) error
	Calls   *Calls
	Metrics *metrics.Metrics
	Logger  *slog.Logger
}

// HTTP serves one MCP server over Streamable HTTP (/mcp) and the legacy SSE transport (/sse and
// /message), with /healthz, /readyz, /metrics and the protected-resource metadata beside them.
//
// Every request to the MCP endpoints passes, in order: authentication (401), the tenant's
// request budget (429), then per endpoint the session's tenant binding (404), the tenant's cap
// on open requests or streams (429), and the body read (408, 413); only then does mcp-go see
// it, with the body already in memory.
type HTTP struct {
	o          HTTPOptions
	streamable *mcpserver.StreamableHTTPServer
	sse        *mcpserver.SSEServer
	handler    http.Handler
	sessions   *sessions
	budget     *requestBudget
	requests   tenantGauges // POSTs open, by tenant
	streams    tenantGauges // GET streams open, by tenant
	// sseOwners binds each SSE session to the tenant that opened it, so a POST /message with
	// another tenant's credential cannot inject calls (and read answers) on someone's stream.
	sseOwners sync.Map // session id → tenant id
	// cancels keeps cancelled calls' answers off both transports (cancelled.go).
	cancels *httpCancels
	unready atomic.Bool
}

// NewHTTP builds the HTTP transports around s.
func NewHTTP(s *mcpserver.MCPServer, o HTTPOptions) *HTTP {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 4 << 20
	}
	if o.SessionIdleTTL <= 0 {
		o.SessionIdleTTL = 15 * time.Minute
	}
	if o.SSEKeepAlive <= 0 {
		o.SSEKeepAlive = 25 * time.Second
	}
	if o.BodyReadTimeout <= 0 {
		o.BodyReadTimeout = 10 * time.Second
	}
	if o.TenantMaxRequests <= 0 {
		o.TenantMaxRequests = 32
	}
	if o.TenantMaxStreams <= 0 {
		o.TenantMaxStreams = 32
	}
	if o.TenantMaxSessions <= 0 {
		o.TenantMaxSessions = 128
	}
	if o.StreamRecheck <= 0 {
		o.StreamRecheck = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &HTTP{o: o,
		sessions: newSessions(o.SessionIdleTTL, o.TenantMaxSessions, nil),
		budget:   newRequestBudget(o.TierOf, o.RequestRateFactor),
		cancels:  newHTTPCancels(),
	}
	fromRequest := func(ctx context.Context, r *http.Request) context.Context {
		if p, ok := identity.FromContext(r.Context()); ok {
			return identity.NewContext(ctx, p)
		}
		return ctx
	}
	h.streamable = mcpserver.NewStreamableHTTPServer(s,
		mcpserver.WithHTTPContextFunc(fromRequest),
		mcpserver.WithSessionIdleTTL(o.SessionIdleTTL),
		mcpserver.WithSessionIdManagerResolver(tenantSessions{reg: h.sessions}),
		// Pings keep proxies from closing an idle GET stream, like SSEKeepAlive on /sse.
		mcpserver.WithHeartbeatInterval(o.SSEKeepAlive),
		// The caller's logger names the component ("http"): a second "component" would repeat the key.
		mcpserver.WithStreamableHTTPLogger(o.Logger.With("transport", "streamable-http")),
		// Hosted behind a reverse proxy on the same host, requests arrive over loopback with
		// the public Host header; authentication, not the Host header, protects this server.
		mcpserver.WithDisableLocalhostProtection(true),
	)
	sseOpts := []mcpserver.SSEOption{
		mcpserver.WithSSEContextFunc(fromRequest),
		mcpserver.WithKeepAliveInterval(o.SSEKeepAlive),
		mcpserver.WithSessionIDGenerator(h.newSSESession),
	}
	if o.PublicURL != "" {
		sseOpts = append(sseOpts, mcpserver.WithBaseURL(strings.TrimRight(o.PublicURL, "/")))
	} else {
		sseOpts = append(sseOpts, mcpserver.WithUseFullURLForMessageEndpoint(false))
	}
	h.sse = mcpserver.NewSSEServer(s, sseOpts...)

	mux := http.NewServeMux()
	guarded := func(next http.HandlerFunc) http.Handler { return h.authenticate(h.limitRequests(next)) }
	mux.Handle("/mcp", guarded(h.serveMCP))
	mux.Handle("/sse", guarded(h.serveSSE))
	mux.Handle("/message", guarded(h.message))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", h.ready)
	mux.Handle("GET /metrics", o.Metrics.Handler())
	mux.HandleFunc(mcpserver.WellKnownProtectedResourcePath+"/", h.resourceMetadata)
	mux.HandleFunc(mcpserver.WellKnownProtectedResourcePath, h.resourceMetadata)
	h.handler = mux
	return h
}

// ServeHTTP implements http.Handler.
func (h *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.handler.ServeHTTP(w, r) }

// limitRequests takes a token from the tenant's request budget for every request.
func (h *HTTP) limitRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := identity.FromContext(r.Context())
		if ok, wait, t := h.budget.allow(r.Context(), p.TenantID); !ok {
			h.o.Metrics.RateLimited("requests")
			tooMany(w, r, wait, fmt.Sprintf("rate limited: the %s tier allows %d requests a minute (bursts of %d)",
				t.Name, t.CallsPerMinute, t.CallBurst))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveMCP is /mcp: mcp-go's Streamable HTTP server behind the tenant binding of sessions on
// every method, the caps, and the body read.
func (h *HTTP) serveMCP(w http.ResponseWriter, r *http.Request) {
	p, _ := identity.FromContext(r.Context())
	sid := r.Header.Get(mcpserver.HeaderKeySessionID)
	// 2026-07-28 has no sessions: mcp-go refuses its GET and DELETE (405) itself.
	modern := mcp.IsModernProtocol(r.Header.Get(mcp.HeaderProtocolVersion))
	if sid != "" {
		switch adm, wait := h.sessions.admit(p.TenantID, sid); adm {
		case unknownSession:
			// The answer mcp-go gives a POST on an unknown session (Streamable HTTP: 404, so
			// the client starts a new session), for every method and whoever the id belongs to.
			dontReadBody(w, r)
			writeText(w, http.StatusNotFound, "Invalid session ID")
			return
		case tooManySessions:
			h.o.Metrics.RateLimited("sessions")
			tooMany(w, r, wait, fmt.Sprintf("too many sessions: at most %d per tenant", h.o.TenantMaxSessions))
			return
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodDelete:
		if sid == "" && !modern {
			// Streamable HTTP: a server that issues session ids answers a request without one
			// (other than initialize) with 400.
			writeText(w, http.StatusBadRequest, "Mcp-Session-Id header required")
			return
		}
		if r.Method == http.MethodGet && !modern {
			h.serveStream(w, r, p, sid, h.streamable)
			return
		}
		h.streamable.ServeHTTP(w, r)
	case http.MethodPost:
		body, release, ok := h.admitPost(w, r, p)
		if !ok {
			return
		}
		defer release()
		msg := parseHead(r.Header, body)
		if msg.method == string(mcp.MethodInitialize) && !msg.modern {
			// The session is made here, under the tenant's cap; mcp-go's Generate returns it.
			id, wait, ok := h.sessions.create(p.TenantID)
			if !ok {
				h.o.Metrics.RateLimited("sessions")
				tooMany(w, r, wait, fmt.Sprintf("too many sessions: at most %d per tenant (end unused ones with DELETE)", h.o.TenantMaxSessions))
				return
			}
			h.streamable.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), newSessionKey{}, id)))
			if w.Header().Get(mcpserver.HeaderKeySessionID) != id {
				h.sessions.forget(id) // the initialize was refused before a session was made
			}
			return
		}
		if msg.modern && msg.method == methodCancelled {
			// 2026-07-28 has no session to scope a cancellation to: mcp-go would cancel every
			// client's call with that id, other tenants' included. Its clients cancel a call by
			// closing the call's POST, which ends the call's context.
			w.WriteHeader(http.StatusAccepted)
			return
		}
		// A cancelled call's answer is left out of its POST's response (cancelled.go).
		if sid != "" && !msg.modern && h.cancels.incoming(sid, msg.kind, msg.id) {
			cw := &cancelWriter{ResponseWriter: w, c: h.cancels, sid: sid}
			defer h.cancels.answer(sid, msg.id) // the request is over, whatever became of its answer
			defer cw.finish()
			w = cw
		}
		// 2026-07-28's subscriptions/listen could hold its answer open like a stream, but this
		// server offers no subscription and mcp-go answers it at once: an ordinary POST.
		h.streamable.ServeHTTP(w, r)
	default:
		h.streamable.ServeHTTP(w, r)
	}
}

// rpcHead is what the front handler needs of a JSON-RPC message: its method, whether it
// belongs to protocol 2026-07-28 or later (which has no sessions), decided as mcp-go decides it
// (the Mcp-Protocol-Version header or the message's _meta), and what it is as far as
// cancellation goes (classify's kind and id, from the same decoding).
type rpcHead struct {
	method string
	modern bool
	kind   msgKind
	id     string
}

func parseHead(header http.Header, body []byte) rpcHead {
	var m rpcFields
	_ = json.Unmarshal(body, &m) // not JSON: mcp-go answers the parse error
	head := rpcHead{modern: mcp.IsModernProtocol(header.Get(mcp.HeaderProtocolVersion))}
	if !head.modern && len(m.Params.Meta) > 0 {
		// Only a message the header does not already call modern needs its _meta decoded
		// (2026-07-28 clients put their capabilities and identity there, on every request).
		var meta *mcp.Meta
		_ = json.Unmarshal(m.Params.Meta, &meta)
		head.modern = mcp.IsModernProtocol(meta.ProtocolVersion())
	}
	if m.Method != nil {
		head.method = *m.Method
	}
	head.kind, head.id = m.kind()
	return head
}

// serveSSE is GET /sse: a stream, under the tenant's stream cap and credential re-check.
func (h *HTTP) serveSSE(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		h.sse.ServeHTTP(w, r)
		return
	}
	p, _ := identity.FromContext(r.Context())
	// The stream carries the session's answers; newSSESession names its session.
	cw := &cancelWriter{ResponseWriter: w, c: h.cancels}
	h.serveStream(cw, r.WithContext(context.WithValue(r.Context(), sseStreamKey{}, cw)), p, "", h.sse)
}

// sseStreamKey carries a GET /sse stream's cancelWriter to newSSESession.
type sseStreamKey struct{}

// serveStream serves a long-lived GET stream: it takes one of the tenant's stream places, ties
// the stream to its Streamable HTTP session (if any) so deleting the session closes it, and
// closes it once its credential is no longer valid.
func (h *HTTP) serveStream(w http.ResponseWriter, r *http.Request, p identity.Principal, sid string, next http.Handler) {
	release, ok := h.streams.acquire(p.TenantID, h.o.TenantMaxStreams)
	if !ok {
		h.o.Metrics.RateLimited("streams")
		// When a place frees is up to the tenant's own streams; a few seconds is a fair guess.
		tooMany(w, r, 5*time.Second, fmt.Sprintf("too many open streams: at most %d per tenant", h.o.TenantMaxStreams))
		return
	}
	defer release()
	ctx, stop := context.WithCancelCause(r.Context())
	defer stop(nil)
	if sid != "" {
		defer h.sessions.attach(sid, stop)()
	}
	go h.watchCredential(ctx, stop, r.Header.Get("Authorization"), p)
	next.ServeHTTP(w, r.WithContext(ctx))
}

// newSSESession issues a random session id and records its owner (the request passed the auth
// middleware, so it carries a principal).
func (h *HTTP) newSSESession(_ context.Context, r *http.Request) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b)
	p, _ := identity.FromContext(r.Context())
	h.sseOwners.Store(id, p.TenantID)
	if cw, ok := r.Context().Value(sseStreamKey{}).(*cancelWriter); ok {
		cw.sid = id
	}
	// The stream's request context ends when the client goes away: forget the session then.
	context.AfterFunc(r.Context(), func() {
		h.sseOwners.Delete(id)
		h.cancels.forget(id)
	})
	return id, nil
}

// message is POST /message: only the tenant that opened the stream may post to it. Another
// tenant gets the same 404 as for an unknown session.
func (h *HTTP) message(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("sessionId")
	p, _ := identity.FromContext(r.Context())
	if owner, ok := h.sseOwners.Load(id); !ok || owner != p.TenantID {
		dontReadBody(w, r)
		writeRPCError(w, http.StatusNotFound, mcp.INVALID_PARAMS, "Invalid session ID", nil)
		return
	}
	if r.Method != http.MethodPost {
		h.sse.MessageHandler().ServeHTTP(w, r)
		return
	}
	body, release, ok := h.admitPost(w, r, p)
	if !ok {
		return
	}
	defer release()
	// The answer goes out on the stream, where a cancelled call's is left out (cancelled.go).
	kind, rid := classify(body)
	h.cancels.incoming(id, kind, rid)
	h.sse.MessageHandler().ServeHTTP(w, r)
	if _, live := h.sseOwners.Load(id); !live {
		h.cancels.forget(id) // the stream ended meanwhile: its answers will never go out
	}
}

// authenticate lets a request through with its principal in the context, or answers 401 with a
// WWW-Authenticate challenge pointing at the protected-resource metadata (RFC 9728 §5.1).
func (h *HTTP) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authz := r.Header.Get("Authorization")
		if authz == "" {
			h.unauthorized(w, r, "")
			return
		}
		p, err := h.o.Auth.Authenticate(r.Context(), authz)
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(identity.NewContext(r.Context(), p)))
		case errors.Is(err, auth.ErrUnauthenticated):
			h.unauthorized(w, r, "invalid_token")
		default:
			h.o.Logger.ErrorContext(r.Context(), "authentication failed", "err", err)
			w.Header().Set("Retry-After", "5")
			writeText(w, http.StatusServiceUnavailable, "authentication is unavailable; retry shortly")
		}
	})
}

func (h *HTTP) unauthorized(w http.ResponseWriter, r *http.Request, errCode string) {
	h.o.Metrics.Unauthenticated()
	challenge := fmt.Sprintf(`Bearer realm="neonguard", resource_metadata=%q`, h.metadataURL(r))
	if errCode != "" {
		challenge += fmt.Sprintf(`, error=%q, error_description="the bearer token is not valid"`, errCode)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeText(w, http.StatusUnauthorized, "a valid bearer token is required (Authorization: Bearer <token>)")
}

// baseURL is the configured public URL, or the one the request was made to.
func (h *HTTP) baseURL(r *http.Request) string {
	if h.o.PublicURL != "" {
		return strings.TrimRight(h.o.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// resource is the protected resource's identifier: the Streamable HTTP endpoint.
func (h *HTTP) resource(r *http.Request) string { return h.baseURL(r) + "/mcp" }

func (h *HTTP) metadataURL(r *http.Request) string {
	return h.baseURL(r) + mcpserver.ProtectedResourceMetadataPath(h.resource(r))
}

func (h *HTTP) resourceMetadata(w http.ResponseWriter, r *http.Request) {
	mcpserver.NewProtectedResourceMetadataHandler(mcpserver.ProtectedResourceMetadataConfig{
		Resource:               h.resource(r),
		ScopesSupported:        identity.Scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "neonguard",
	}).ServeHTTP(w, r)
}

func (h *HTTP) ready(w http.ResponseWriter, r *http.Request) {
	if h.unready.Load() || h.o.Calls.Draining() {
		writeText(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	if h.o.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := h.o.Ready(ctx); err != nil {
			h.o.Logger.WarnContext(r.Context(), "not ready", "err", err)
			writeText(w, http.StatusServiceUnavailable, "not ready")
			return
		}
	}
	writeText(w, http.StatusOK, "ready")
}

// sseFlushPause is how long a shutdown waits, once no call runs, for answers already queued to
// SSE streams to be written.
const sseFlushPause = 500 * time.Millisecond

// Serve runs the HTTP server on ln until ctx ends, then shuts down gracefully: readiness turns
// false, new tool calls are refused, calls in flight get up to grace to finish (over both
// transports), and only then are the SSE streams and connections closed.
func (h *HTTP) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: it would cut SSE streams and long tool calls.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(h.o.Logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if h.o.UnreadyDelay > 0 {
		// Fail readiness first and keep serving, so load balancers stop sending new requests
		// before the listener closes.
		h.unready.Store(true)
		h.o.Logger.Info("shutting down: not ready; still serving", "for", h.o.UnreadyDelay)
		select {
		case <-time.After(h.o.UnreadyDelay):
		case err := <-errc:
			return err
		}
	}
	h.o.Logger.Info("shutting down: finishing calls in flight", "running", h.o.Calls.Running(), "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	// Stop accepting connections first; Shutdown then waits for the SSE streams, which only
	// end once CloseSessions runs below.
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- srv.Shutdown(sctx) }()
	drainErr := h.o.Calls.Drain(sctx)
	if drainErr != nil {
		h.o.Logger.Warn("shutdown: calls still running at the end of the grace period", "running", h.o.Calls.Running())
	}
	// Over SSE a finished call's answer is queued to its stream by another goroutine and then
	// written; mcp-go offers no way to wait for the queues to empty, so give them a moment
	// before closing the streams (without it an answer finished at the end of the drain was lost).
	if drainErr == nil {
		select {
		case <-time.After(sseFlushPause):
		case <-sctx.Done():
		}
	}
	h.sse.CloseSessions()
	serr := h.streamable.Shutdown(sctx)
	err := <-shutdownDone
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	return errors.Join(err, serr)
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}

// admitPost is the front of every POST on both transports: a place among the tenant's open
// requests (429 beyond the cap), the body read within the time limit (408, 413), and a JSON-RPC
// batch refused (mcp-go would answer /mcp with a misleading text, and on /message accept it and
// then send a parse error with no id down the stream). The caller defers release when ok.
func (h *HTTP) admitPost(w http.ResponseWriter, r *http.Request, p identity.Principal) (body []byte, release func(), ok bool) {
	release, ok = h.requests.acquire(p.TenantID, h.o.TenantMaxRequests)
	if !ok {
		h.o.Metrics.RateLimited("open_requests")
		tooMany(w, r, time.Second, fmt.Sprintf("too many requests open at once: at most %d per tenant", h.o.TenantMaxRequests))
		return nil, nil, false
	}
	body, ok = h.readBody(w, r)
	if ok && isBatch(body) {
		refuseBatch(w)
		ok = false
	}
	if !ok {
		release()
		return nil, nil, false
	}
	return body, release, true
}
