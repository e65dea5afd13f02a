package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/neonguard/neonguard/internal/auth"
	"github.com/neonguard/neonguard/internal/identity"
	"github.com/neonguard/neonguard/internal/policy"
)

// JSON-RPC error codes of the HTTP layer's own answers.
const (
	rpcInvalidRequest = -32600 // JSON-RPC 2.0: the message is not a valid request (here: a batch)
	// rpcRateLimited is in the implementation-defined server error range (-32000 to -32099);
	// the answer's HTTP status (429) and Retry-After are what clients act on.
	rpcRateLimited = -32000
)

// tenantGauges counts, per tenant, what is open right now: streams and requests.
type tenantGauges struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire takes one of tenant's max places; release gives it back. max <= 0 means no cap.
func (g *tenantGauges) acquire(tenant string, max int) (release func(), ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == nil {
		g.n = map[string]int{}
	}
	if max > 0 && g.n[tenant] >= max {
		return nil, false
	}
	g.n[tenant]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.n[tenant]--; g.n[tenant] <= 0 {
				delete(g.n, tenant)
			}
		})
	}, true
}

// requestBudget refuses a tenant's HTTP requests beyond factor times its tier's tool-call rate
// and burst. Every authenticated request counts (initialize, tools/list, notifications, pings,
// streams, tool calls), so a tenant that is RATE_LIMITED for tool calls cannot keep the server
// busy with anything else.
type requestBudget struct {
	tierOf TierOf
	factor int
	lim    *tenantLimiters
}

func newRequestBudget(tierOf TierOf, factor int) *requestBudget {
	if tierOf == nil || factor <= 0 {
		return nil
	}
	return &requestBudget{tierOf: tierOf, factor: factor, lim: newTenantLimiters(tierOf, nil)}
}

// allow takes a token from tenant's request bucket, or says how long until one is available.
func (b *requestBudget) allow(ctx context.Context, tenant string) (ok bool, retryAfter time.Duration, t policy.Tier) {
	if b == nil {
		return true, 0, policy.Tier{}
	}
	t, err := b.tierOf(ctx, tenant)
	if err != nil {
		// The tenant exists (it authenticated); a store hiccup must not refuse it. The tool
		// calls' own limit still resolves the tier and reports the failure.
		return true, 0, policy.Tier{}
	}
	scaled := policy.Tier{Name: t.Name, CallsPerMinute: t.CallsPerMinute * b.factor, CallBurst: t.CallBurst * b.factor}
	ok, wait := b.lim.allow(tenant, scaled)
	return ok, wait, scaled
}

// tooMany answers 429 with Retry-After (whole seconds, at least 1) and a JSON-RPC error saying
// what was exceeded.
func tooMany(w http.ResponseWriter, r *http.Request, retryAfter time.Duration, msg string) {
	secs := max(int(math.Ceil(retryAfter.Seconds())), 1)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	dontReadBody(w, r)
	writeRPCError(w, http.StatusTooManyRequests, rpcRateLimited, msg,
		map[string]any{"code": "RATE_LIMITED", "retry_after_seconds": secs})
}

// dontReadBody makes the server close the connection after the answer when the request has a
// body this handler does not read. Otherwise net/http, once the handler returns, reads up to
// 256 KiB of the rest of the body to keep the connection, whether or not it will be closed, and
// a client sending it slowly would hold the connection (and its goroutine) indefinitely: an
// expired read deadline makes that read fail at once.
func dontReadBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
}

// readBody reads r's body within the body read timeout and the size limit, and replaces it by
// the bytes read, so the transports behind never wait on the network. On failure it has
// answered (413, 408 or 400) and returns false; the connection is then closed.
func (h *HTTP) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	rc := http.NewResponseController(w)
	// The deadline covers this read only; it is cleared afterwards, since a streamed answer or
	// a long tool call must not be cut by it.
	deadlineSet := rc.SetReadDeadline(time.Now().Add(h.o.BodyReadTimeout)) == nil
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes))
	if err == nil {
		if deadlineSet {
			_ = rc.SetReadDeadline(time.Time{})
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		return body, true
	}
	// The rest of the body stays unread: close the connection after the answer (see dontReadBody).
	dontReadBody(w, r)
	var tooBig *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooBig):
		writeRPCError(w, http.StatusRequestEntityTooLarge, rpcInvalidRequest,
			fmt.Sprintf("the request body is larger than %d bytes", h.o.MaxBodyBytes), nil)
	case errors.As(err, &ne) && ne.Timeout():
		p, _ := identity.FromContext(r.Context())
		h.o.Logger.WarnContext(r.Context(), "request body not received in time; connection closed",
			"tenant", p.TenantID, "timeout", h.o.BodyReadTimeout, "received_bytes", len(body))
		writeText(w, http.StatusRequestTimeout, fmt.Sprintf("the request body did not arrive within %s", h.o.BodyReadTimeout))
	default: // the client went away or sent a broken body
		writeText(w, http.StatusBadRequest, "the request body could not be read")
	}
	return nil, false
}

// isBatch reports whether a JSON body is an array: a JSON-RPC batch.
func isBatch(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '['
}

// refuseBatch answers a JSON-RPC batch. MCP 2025-03-26 allowed batches; 2025-06-18 removed
// them, and no client this server supports sends them, so one Invalid Request error (id null,
// as JSON-RPC 2.0 answers a request it cannot identify) says so rather than a parse error.
func refuseBatch(w http.ResponseWriter) {
	writeRPCError(w, http.StatusBadRequest, rpcInvalidRequest,
		"JSON-RPC batches are not supported (MCP 2025-06-18 removed batching): send one message per request", nil)
}

// writeRPCError writes a JSON-RPC error object with id null.
func writeRPCError(w http.ResponseWriter, status, code int, msg string, data any) {
	e := map[string]any{"code": code, "message": msg}
	if data != nil {
		e["data"] = data
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": nil, "error": e})
}

// errCredentialEnded ends a stream whose credential was revoked or expired.
var errCredentialEnded = errors.New("credential no longer valid")

// watchCredential checks the credential that opened a stream every StreamRecheck and ends the
// stream (stop) once it is refused or names another tenant: revoking a token or a JWT expiring
// closes its streams, not only its next request. A failure to check (the store is down) keeps
// the stream. Returns when ctx ends.
func (h *HTTP) watchCredential(ctx context.Context, stop context.CancelCauseFunc, authorization string, p identity.Principal) {
	t := time.NewTicker(h.o.StreamRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		q, err := h.o.Auth.Authenticate(ctx, authorization)
		switch {
		case err == nil && q.TenantID == p.TenantID:
		case err == nil || errors.Is(err, auth.ErrUnauthenticated):
			h.o.Logger.InfoContext(ctx, "closing a stream: its credential is no longer valid", "tenant", p.TenantID)
			stop(errCredentialEnded)
			return
		case ctx.Err() != nil:
			return
		default:
			h.o.Logger.WarnContext(ctx, "could not re-check a stream's credential; keeping it", "tenant", p.TenantID, "err", err)
		}
	}
}
