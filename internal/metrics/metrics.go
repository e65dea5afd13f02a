// Package metrics holds neonguard's Prometheus metrics. Each Metrics owns its registry (no
// package-level default registry), so tests and several servers in one process never share
// counters.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the server's instruments. A nil *Metrics is valid and records nothing, so code
// paths without metrics (stdio, `neonguard call`) need no checks.
type Metrics struct {
	reg          *prometheus.Registry
	toolCalls    *prometheus.CounterVec
	toolDuration *prometheus.HistogramVec
	neonRequests *prometheus.CounterVec
	neonDuration *prometheus.HistogramVec
	rateLimited  *prometheus.CounterVec
	authFailures prometheus.Counter
	inFlight     prometheus.Gauge
}

// New registers every instrument, plus the Go runtime and process collectors, on a new registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		toolCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "neonguard_tool_calls_total",
			Help: "Tool calls by tool, outcome (ok, denied, error) and decision code (allow or the policy code).",
		}, []string{"tool", "outcome", "code"}),
		toolDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "neonguard_tool_call_duration_seconds",
			Help: "Tool call latency by tool and outcome.",
			// From sub-millisecond reads to restores that take tens of seconds.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"tool", "outcome"}),
		neonRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "neonguard_neon_api_requests_total",
			Help: "Requests to the Neon API by method and HTTP status (\"error\" when no response arrived).",
		}, []string{"method", "status"}),
		neonDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "neonguard_neon_api_request_duration_seconds",
			Help:    "Neon API request latency by method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "neonguard_rate_limited_total",
			Help: "Tool calls refused with RATE_LIMITED, by reason (tenant: the tenant's token bucket; busy: the global concurrency cap).",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "neonguard_http_unauthenticated_total",
			Help: "HTTP requests refused with 401.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "neonguard_tool_calls_in_flight",
			Help: "Tool calls running now.",
		}),
	}
	m.reg.MustRegister(m.toolCalls, m.toolDuration, m.neonRequests, m.neonDuration, m.rateLimited,
		m.authFailures, m.inFlight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the registry the instruments live in (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ToolCall records one finished tool call.
func (m *Metrics) ToolCall(tool, outcome, code string, d time.Duration) {
	if m == nil {
		return
	}
	m.toolCalls.WithLabelValues(tool, outcome, code).Inc()
	m.toolDuration.WithLabelValues(tool, outcome).Observe(d.Seconds())
}

// CallStarted counts a call in flight; the returned function ends it.
func (m *Metrics) CallStarted() (done func()) {
	if m == nil {
		return func() {}
	}
	m.inFlight.Inc()
	return m.inFlight.Dec
}

// RateLimited counts a call refused by a rate limit.
func (m *Metrics) RateLimited(reason string) {
	if m == nil {
		return
	}
	m.rateLimited.WithLabelValues(reason).Inc()
}

// Unauthenticated counts an HTTP request refused with 401.
func (m *Metrics) Unauthenticated() {
	if m == nil {
		return
	}
	m.authFailures.Inc()
}

// RoundTripper wraps next (http.DefaultTransport when nil) to count Neon API requests. Each
// retry of a call is its own request here, which is what an operator watching 429s wants.
func (m *Metrics) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	if m == nil {
		return next
	}
	return roundTripper{m: m, next: next}
}

type roundTripper struct {
	m    *Metrics
	next http.RoundTripper
}

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := rt.next.RoundTrip(r)
	status := "error"
	if err == nil {
		status = strconv.Itoa(resp.StatusCode)
	}
	rt.m.neonRequests.WithLabelValues(r.Method, status).Inc()
	rt.m.neonDuration.WithLabelValues(r.Method).Observe(time.Since(start).Seconds())
	return resp, err
}
