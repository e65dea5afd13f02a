package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
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
	SSEKeepAlive   time.Duration // ping interval on SSE streams; default 25s
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
type HTTP struct {
	o          HTTPOptions
	streamable *mcpserver.StreamableHTTPServer
	sse        *mcpserver.SSEServer
	handler    http.Handler
	// sseOwners binds each SSE session to the tenant that opened it, so a POST /message with
	// another tenant's credential cannot inject calls (and read answers) on someone's stream.
	sseOwners sync.Map // session id → tenant id
	unready   atomic.Bool
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &HTTP{o: o}
	fromRequest := func(ctx context.Context, r *http.Request) context.Context {
		if p, ok := identity.FromContext(r.Context()); ok {
			return identity.NewContext(ctx, p)
		}
		return ctx
	}
	h.streamable = mcpserver.NewStreamableHTTPServer(s,
		mcpserver.WithHTTPContextFunc(fromRequest),
		mcpserver.WithSessionIdleTTL(o.SessionIdleTTL),
		mcpserver.WithSessionIdManagerResolver(tenantSessions{}),
		mcpserver.WithStreamableHTTPLogger(o.Logger.With("component", "streamable-http")),
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
	authed := func(next http.Handler) http.Handler { return h.authenticate(next) }
	limited := func(next http.Handler) http.Handler { return http.MaxBytesHandler(next, o.MaxBodyBytes) }
	mux.Handle("/mcp", authed(limited(h.streamable)))
	mux.Handle("/sse", authed(h.sse))
	mux.Handle("/message", authed(limited(http.HandlerFunc(h.message))))
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
	// The stream's request context ends when the client goes away: forget the owner then.
	context.AfterFunc(r.Context(), func() { h.sseOwners.Delete(id) })
	return id, nil
}

// tenantSessions binds Streamable HTTP session ids to the tenant that created them, without
// shared state, so any replica can check them: an id is random || hash(tenant, random), and a
// request may use it only if its own tenant produces the same hash. Another tenant that learns
// an id can neither post to that session, listen on it, nor delete it. No secret is needed:
// the tenant comes from the credential, which the requester cannot choose.
type tenantSessions struct{}

func (tenantSessions) ResolveSessionIdManager(r *http.Request) mcpserver.SessionIdManager {
	if r == nil { // the server itself, closing sessions at shutdown
		return tenantSessionIDs{server: true}
	}
	p, _ := identity.FromContext(r.Context())
	return tenantSessionIDs{tenant: p.TenantID}
}

type tenantSessionIDs struct {
	tenant string
	server bool // no request: accept any well-formed id
}

const sessionPrefix = "ngs-"

func (m tenantSessionIDs) mac(random string) string {
	sum := sha256.Sum256([]byte(m.tenant + "\x00" + random))
	return hex.EncodeToString(sum[:12])
}

func (m tenantSessionIDs) Generate() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	random := hex.EncodeToString(b)
	return sessionPrefix + random + "-" + m.mac(random)
}

func (m tenantSessionIDs) Validate(id string) (isTerminated bool, err error) {
	rest, ok := strings.CutPrefix(id, sessionPrefix)
	random, mac, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 || len(random) != 32 {
		return false, errors.New("invalid session id")
	}
	if m.server {
		return false, nil
	}
	if m.tenant == "" || subtle.ConstantTimeCompare([]byte(mac), []byte(m.mac(random))) != 1 {
		return false, errors.New("invalid session id")
	}
	return false, nil
}

// Terminate checks the id like Validate; like mcp-go's default manager it keeps no list of
// ended sessions (so any replica accepts a live one).
func (m tenantSessionIDs) Terminate(id string) (isNotAllowed bool, err error) {
	_, err = m.Validate(id)
	return false, err
}

// message is POST /message: only the tenant that opened the stream may post to it. Another
// tenant gets the same 404 as for an unknown session.
func (h *HTTP) message(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("sessionId")
	p, _ := identity.FromContext(r.Context())
	if owner, ok := h.sseOwners.Load(id); !ok || owner != p.TenantID {
		writeJSONRPCError(w, http.StatusNotFound, "Invalid session ID")
		return
	}
	h.sse.MessageHandler().ServeHTTP(w, r)
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
		ScopesSupported:        []string{identity.ScopeAdmin},
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

func writeJSONRPCError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": nil,
		"error": map[string]any{"code": -32602, "message": msg}})
}
