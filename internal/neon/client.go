// Package neon is a typed client for the subset of Neon's API v2 that neonguard uses.
//
// The client owns the rules that keep a guard call safe against a flaky upstream:
//   - 423, 429 and 503 mean nothing happened upstream and are always retried, with full-jitter
//     exponential backoff that honours Retry-After within a per-call budget;
//   - GET, PATCH and DELETE are idempotent here and are also retried after transport errors and
//     500/502/504/524;
//   - a POST whose answer was lost (transport error, timeout, 500/502/504/524) is never blindly
//     repeated: the client first looks for its effect and only sends it again when there is none;
//     when it cannot tell, it returns an error wrapping ErrOutcomeUnknown;
//   - every mutating call waits until the operations it started are terminal.
//
// No error string and no log line carries the API key or a password.
package neon

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/truncate"
	"golang.org/x/time/rate"
)

var _ API = (*Client)(nil)

const (
	defaultMaxAttempts      = 6
	defaultMaxElapsed       = 30 * time.Second
	defaultBaseBackoff      = 250 * time.Millisecond
	defaultMaxBackoff       = 5 * time.Second
	defaultOperationPoll    = 25 * time.Millisecond
	maxOperationPoll        = time.Second
	defaultOperationTimeout = 5 * time.Minute
	// Neon's documented limits (neon-api.md §9.3): 700 requests a minute per account, bursts up
	// to 40 a second per route. The bucket holds defaultBurst and refills at
	// (700-defaultBurst)/min, so no minute ever sees more than 700 from one client.
	defaultRequestsPerMinute = 700
	defaultBurst             = 40
	defaultRPS               = float64(defaultRequestsPerMinute-defaultBurst) / 60
	defaultConsumptionRPM    = 30
	defaultRequestTimeout    = 30 * time.Second
	defaultUserAgent         = "neonguard"

	// clockSkew is how much earlier than our own "call started" time a resource may carry as
	// created_at and still count as made by this call: server and local clocks are NTP-synced but
	// not identical. A larger value risks taking an older same-named resource for ours.
	clockSkew = 30 * time.Second

	maxResponseBytes = 16 << 20
)

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	BaseURL    string       // e.g. https://console.neon.tech/api/v2
	APIKey     string       // one key per client (an org key or the personal key)
	HTTPClient *http.Client // default: 30 s per request, over Transport
	// Transport carries the default HTTP client's requests (default: a pooled HTTP transport
	// keeping as many idle connections as the limiter's burst can use at once).
	Transport http.RoundTripper
	// WrapTransport, when set, wraps the HTTP client's transport (metrics count requests there).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	Logger        *slog.Logger // default: discard
	MaxAttempts   int          // per call, default 6
	MaxElapsed    time.Duration
	// BaseBackoff and MaxBackoff bound full-jitter exponential backoff (default 250ms / 5s).
	BaseBackoff, MaxBackoff time.Duration
	// OperationPoll is the first poll interval of an operation whose action this client has
	// not waited for yet, and the least one; it doubles up to OperationPollMax (default 1s:
	// Neon's own clients poll every 1-5 s; a local emulator answers in milliseconds). An action
	// waited for before is polled around how long its last operation took (pollSchedule).
	// OperationTimeout bounds the wait for the operations of one call (default 25ms / 5m).
	OperationPoll, OperationTimeout time.Duration
	OperationPollMax                time.Duration
	// EffectPause is the least time to wait, after a POST's answer was lost, before looking for
	// its effect: a request that timed out on our side may still be running upstream (default 2s).
	EffectPause time.Duration
	// RequestsPerSecond and Burst are the client's token bucket: it refills at
	// RequestsPerSecond and holds Burst. Defaults: 11/s and 40, Neon's documented 700 requests
	// a minute per account with bursts up to 40 (no minute exceeds 700: 40 + 60×11). The bucket
	// is this client's (one API key, one process): replicas sharing a key divide the budget.
	RequestsPerSecond    float64
	Burst                int
	ConsumptionPerMinute int // separate limiter for /consumption_history, default 30
	UserAgent            string

	// Test hooks: tests replace the clock and the sleeper so retry schedules are observed
	// without waiting.
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
}

// Client is a Neon API v2 client bound to one API key. It is safe for concurrent use.
type Client struct {
	base        string // scheme://host/path, no trailing slash
	key         string
	hc          *http.Client
	log         *slog.Logger
	cfg         Config
	limiter     *rate.Limiter
	consumption *rate.Limiter
	sleep       func(ctx context.Context, d time.Duration) error
	now         func() time.Time
	opTimes     opTimes // how long the last operation of each action took (pollSchedule)
}

// New validates cfg and returns a Client. Its errors never contain the API key.
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("neon: APIKey is required: %w", ErrInvalidArgument)
	}
	if strings.ContainsAny(cfg.APIKey, "\r\n\t ") {
		return nil, fmt.Errorf("neon: APIKey contains whitespace: %w", ErrInvalidArgument)
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		// url errors quote the input, which might hold credentials.
		return nil, fmt.Errorf("neon: BaseURL does not parse: %w", ErrInvalidArgument)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("neon: BaseURL scheme must be http or https: %w", ErrInvalidArgument)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("neon: BaseURL has no host: %w", ErrInvalidArgument)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("neon: BaseURL must not carry user info, a query or a fragment: %w", ErrInvalidArgument)
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = defaultMaxAttempts
	}
	if cfg.MaxElapsed <= 0 {
		cfg.MaxElapsed = defaultMaxElapsed
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = defaultBaseBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = defaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.BaseBackoff {
		cfg.MaxBackoff = cfg.BaseBackoff
	}
	if cfg.OperationPollMax <= 0 {
		cfg.OperationPollMax = maxOperationPoll
	}
	if cfg.OperationPoll <= 0 {
		cfg.OperationPoll = defaultOperationPoll
	}
	if cfg.EffectPause <= 0 {
		cfg.EffectPause = 2 * time.Second
	}
	if cfg.OperationTimeout <= 0 {
		cfg.OperationTimeout = defaultOperationTimeout
	}
	if cfg.RequestsPerSecond <= 0 {
		cfg.RequestsPerSecond = defaultRPS
	}
	if cfg.ConsumptionPerMinute <= 0 {
		cfg.ConsumptionPerMinute = defaultConsumptionRPM
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = defaultUserAgent
	}
	if cfg.Burst <= 0 {
		// A rate set without a burst (tests, the local emulator) keeps a second's worth.
		cfg.Burst = max(defaultBurst, int(min(cfg.RequestsPerSecond, 1e9)))
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := cfg.Transport
		if tr == nil {
			pooled := http.DefaultTransport.(*http.Transport).Clone()
			pooled.ResponseHeaderTimeout = defaultRequestTimeout
			// A connection per request the bucket lets through at once: fewer would be closed
			// after a burst and dialled (with TLS) again.
			pooled.MaxIdleConnsPerHost = min(max(16, cfg.Burst), 256)
			pooled.MaxIdleConns = max(pooled.MaxIdleConns, pooled.MaxIdleConnsPerHost) // the cap over all hosts (100) would undo it
			tr = pooled
		}
		hc = &http.Client{Timeout: defaultRequestTimeout, Transport: tr}
	}
	if cfg.WrapTransport != nil {
		wrapped := *hc
		wrapped.Transport = cfg.WrapTransport(hc.Transport)
		hc = &wrapped
	}
	hc = withAttemptCounter(hc) // counts a traced call's attempts (trace.go)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		base:  strings.TrimRight(u.String(), "/"),
		key:   cfg.APIKey,
		hc:    hc,
		log:   logger,
		cfg:   cfg,
		sleep: cfg.sleep,
		now:   cfg.now,
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.limiter = rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), cfg.Burst)
	// Neon's consumption bucket is per account and small; a burst of a few lets a page walk start
	// at once without outrunning the bucket.
	c.consumption = rate.NewLimiter(rate.Limit(float64(cfg.ConsumptionPerMinute)/60), max(1, cfg.ConsumptionPerMinute/6))
	return c, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// call describes one logical API call; do may send it several times.
type call struct {
	method string
	route  string // path template, used in errors and logs
	path   string // escaped path below BaseURL
	query  url.Values
	body   any // JSON-encoded when non-nil
	out    any // decoded from a 2xx answer when non-nil

	consumption bool // also pass the consumption limiter

	// effect is set on POSTs that are not safe to repeat: after an answer was lost it reports
	// whether the request took effect (and records the result for the caller). A nil effect on
	// such a POST makes a lost answer an ErrOutcomeUnknown error.
	effect func(ctx context.Context) (bool, error)
}

// result says how do finished.
type result struct {
	status    int
	recovered bool // the answer was lost but effect found the result; out was not filled
}

type failure int

const (
	failFinal     failure = iota // give up
	failRetry                    // nothing happened upstream: send again
	failAmbiguous                // may have been applied: idempotent requests retry, POSTs look first
)

// transportError is a failure to get a complete answer. It names the route, never the URL,
// whose query may hold names the caller did not mean to log.
type transportError struct {
	method, route string
	err           error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("neon: %s %s: transport: %v", e.method, e.route, e.err)
}
func (e *transportError) Unwrap() error { return e.err }

func classify(err error) failure {
	var te *transportError
	if errors.As(err, &te) {
		return failAmbiguous
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		return failFinal
	}
	switch ae.StatusCode {
	case http.StatusLocked, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return failRetry
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout, 524:
		return failAmbiguous
	case http.StatusUnprocessableEntity:
		// Neon answers 422 "branch not ready yet" while a parent is still being created; its
		// own test harness retries it. Nothing was scheduled.
		if strings.Contains(strings.ToLower(ae.Message), "not ready yet") {
			return failRetry
		}
	}
	return failFinal
}

// do sends c with the retry and effect-check rules of the package doc, in one span (trace.go).
func (c *Client) do(ctx context.Context, r *call) (result, error) {
	ctx, ct := c.traceCall(ctx, r)
	res, err := c.send(ctx, r)
	ct.end(res, err)
	return res, err
}

// send is do without the span.
func (c *Client) send(ctx context.Context, r *call) (result, error) {
	start := c.now()
	var body []byte
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return result{}, fmt.Errorf("neon: %s %s: encode request: %w", r.method, r.route, err)
		}
		body = b
	}
	idempotent := r.method != http.MethodPost
	ambiguousSeen := false
	var lastErr error
	for attempt := 1; ; attempt++ {
		if err := c.wait(ctx, r); err != nil {
			return result{}, withAttempts(r, lastErr, attempt-1, err)
		}
		status, err := c.attempt(ctx, r, body, attempt)
		if err == nil {
			return result{status: status}, nil
		}
		kind := classify(err)
		if ctx.Err() != nil {
			if kind == failAmbiguous && !idempotent {
				// Cancelled in flight: it may have been applied and there is no time left to look.
				return result{}, fmt.Errorf("neon: %s %s: %w: cancelled while in flight: %w", r.method, r.route, ErrOutcomeUnknown, err)
			}
			return result{}, withAttempts(r, err, attempt, ctx.Err())
		}
		lastErr = err
		if kind == failFinal {
			// A 409 after a lost answer is most likely our own earlier attempt (e.g. the
			// branch name is now taken by the branch we created).
			if ambiguousSeen && r.effect != nil && errors.Is(err, ErrConflict) {
				res, cerr := c.checkEffect(ctx, r, err)
				if cerr != nil || res.recovered {
					return res, cerr
				}
			}
			return result{}, err
		}
		delay := c.backoff(attempt)
		var ae *APIError
		if errors.As(err, &ae) && ae.hasRetryAfter {
			delay = ae.retryAfter
		}
		remaining := c.cfg.MaxElapsed - c.now().Sub(start)

		if kind == failAmbiguous && !idempotent {
			// The request may have been applied: never send it again before looking.
			ambiguousSeen = true
			if r.effect == nil {
				return result{}, fmt.Errorf("neon: %s %s: %w: the request may have been applied: %w", r.method, r.route, ErrOutcomeUnknown, err)
			}
			// Pause first on purpose: a request that timed out on our side may still be
			// running upstream, so look for its effect only after a while.
			delay = max(delay, c.cfg.EffectPause)
			c.log.LogAttrs(ctx, slog.LevelWarn, "neon lost answer: checking for its effect",
				slog.String("method", r.method), slog.String("route", r.route),
				slog.Int("attempt", attempt), slog.Duration("delay", min(delay, max(remaining, 0))), slog.String("error", err.Error()))
			if serr := c.sleep(ctx, min(delay, max(remaining, 0))); serr != nil {
				return result{}, fmt.Errorf("neon: %s %s: %w: the request may have been applied (%w): %w", r.method, r.route, ErrOutcomeUnknown, err, serr)
			}
			res, cerr := c.checkEffect(ctx, r, err)
			if cerr != nil || res.recovered {
				return res, cerr
			}
			if attempt >= c.cfg.MaxAttempts || c.now().Sub(start) >= c.cfg.MaxElapsed {
				return result{}, fmt.Errorf("%w (gave up after %d attempts; the request was not applied)", err, attempt)
			}
			continue
		}

		if attempt >= c.cfg.MaxAttempts {
			return result{}, fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		if delay > remaining {
			return result{}, fmt.Errorf("%w (gave up after %d attempts: next retry in %s exceeds the remaining budget of %s)",
				err, attempt, delay.Round(time.Millisecond), max(remaining, 0).Round(time.Millisecond))
		}
		c.log.LogAttrs(ctx, slog.LevelWarn, "neon retry",
			slog.String("method", r.method), slog.String("route", r.route),
			slog.Int("attempt", attempt), slog.Duration("delay", delay), slog.String("error", err.Error()))
		if serr := c.sleep(ctx, delay); serr != nil {
			return result{}, withAttempts(r, err, attempt, serr)
		}
	}
}

// checkEffect runs r.effect after the answer to r was lost (cause).
func (c *Client) checkEffect(ctx context.Context, r *call, cause error) (result, error) {
	found, err := r.effect(ctx)
	if err != nil {
		return result{}, fmt.Errorf("neon: %s %s: %w: the request may have been applied (%w) and checking for its effect failed: %w",
			r.method, r.route, ErrOutcomeUnknown, cause, err)
	}
	if found {
		c.log.LogAttrs(ctx, slog.LevelInfo, "neon lost answer: effect found",
			slog.String("method", r.method), slog.String("route", r.route))
		return result{recovered: true}, nil
	}
	return result{}, nil
}

func withAttempts(r *call, last error, attempts int, cause error) error {
	if last == nil {
		return fmt.Errorf("neon: %s %s: %w", r.method, r.route, cause)
	}
	return fmt.Errorf("%w (after %d attempts): %w", last, attempts, cause)
}

func (c *Client) wait(ctx context.Context, r *call) error {
	if r.consumption {
		if err := c.consumption.Wait(ctx); err != nil {
			return fmt.Errorf("consumption rate limiter: %w", err)
		}
	}
	if err := c.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("rate limiter: %w", err)
	}
	return nil
}

// backoff is full jitter: uniform in [0, min(max, base*2^(n-1))] for the n-th retry.
func (c *Client) backoff(n int) time.Duration {
	ceil := c.cfg.MaxBackoff
	if n-1 < 30 {
		if d := c.cfg.BaseBackoff << (n - 1); d > 0 && d < ceil {
			ceil = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// attempt sends r once and returns the status of a 2xx answer, or an error: *transportError,
// *APIError (possibly wrapped) or a final decode error.
func (c *Client) attempt(ctx context.Context, r *call, body []byte, n int) (int, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return 0, fmt.Errorf("neon: %s %s: build request: %w", r.method, r.route, ErrInvalidArgument)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	reqID := newRequestID()
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("X-Request-ID", reqID)

	began := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.logAttempt(ctx, r, n, 0, time.Since(began), reqID, err)
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL
		}
		return 0, &transportError{method: r.method, route: r.route, err: scrubErr(c, err)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		reqID = c.scrub(truncate.UTF8(id, 128))
	}
	if err != nil {
		c.logAttempt(ctx, r, n, resp.StatusCode, time.Since(began), reqID, err)
		return 0, &transportError{method: r.method, route: r.route, err: fmt.Errorf("read %d answer: %w", resp.StatusCode, scrubErr(c, err))}
	}
	if len(data) > maxResponseBytes {
		c.logAttempt(ctx, r, n, resp.StatusCode, time.Since(began), reqID, nil)
		return 0, fmt.Errorf("neon: %s %s: %d answer larger than %d bytes", r.method, r.route, resp.StatusCode, maxResponseBytes)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		c.logAttempt(ctx, r, n, resp.StatusCode, time.Since(began), reqID, nil)
		if r.out != nil && resp.StatusCode != http.StatusNoContent && len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, r.out); err != nil {
				// json errors name types and offsets, never values.
				return 0, fmt.Errorf("neon: %s %s: decode %d answer: %w", r.method, r.route, resp.StatusCode, err)
			}
		}
		return resp.StatusCode, nil
	}
	apiErr := decodeAPIError(r.method, r.route, resp.StatusCode, data, c.scrub)
	var ae *APIError
	if errors.As(apiErr, &ae) {
		ae.retryAfter, ae.hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
		if ae.RequestID != "" {
			reqID = ae.RequestID
		}
	}
	c.logAttempt(ctx, r, n, resp.StatusCode, time.Since(began), reqID, nil)
	return 0, apiErr
}

func (c *Client) logAttempt(ctx context.Context, r *call, n, status int, d time.Duration, reqID string, err error) {
	if !c.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", r.method), slog.String("route", r.route), slog.Int("status", status),
		slog.Int("attempt", n), slog.Duration("duration", d), slog.String("request_id", reqID),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", c.scrub(err.Error())))
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "neon request", attrs...)
}

// parseRetryAfter reads delta-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func newRequestID() string {
	var b [8]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return "ng-" + hex.EncodeToString(b[:])
}

// scrub removes the client's key and anything that looks like a secret.
func (c *Client) scrub(s string) string {
	if len(c.key) >= 4 {
		s = strings.ReplaceAll(s, c.key, redacted)
	}
	return Redact(s)
}

// scrubbedError keeps the chain of err (for errors.Is on timeouts and the like) while its text
// is scrubbed.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func scrubErr(c *Client, err error) error {
	msg := err.Error()
	if s := c.scrub(msg); s != msg {
		return &scrubbedError{msg: s, err: err}
	}
	return err
}

// escaped path helpers.

func needID(name, v string) error {
	if v == "" {
		return fmt.Errorf("neon: %s is required: %w", name, ErrInvalidArgument)
	}
	return nil
}

func p(s string) string { return url.PathEscape(s) }

func notBefore(t, start time.Time) bool {
	return !t.Before(start.Add(-clockSkew))
}
