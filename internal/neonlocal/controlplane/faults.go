package controlplane

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Faults injects failures into the API. It is safe for concurrent use and
// can also be driven over HTTP (POST /__neonlocal/faults, see FaultConfig).
type Faults struct {
	mu         sync.Mutex
	rng        *rand.Rand
	rate       float64
	statuses   []int
	latencyMin time.Duration
	latencyMax time.Duration
	drops      map[string]int // "METHOD /route/template" → remaining count
	// retryAfter is the Retry-After (seconds) of injected failures; 0 sends none, so a test
	// can exercise the client's own backoff instead of waiting whole seconds.
	retryAfter int
}

// FaultConfig is the JSON body of POST /__neonlocal/faults. Every field is
// optional; Reset clears all faults before the rest applies.
//
//	{"reset": true, "seed": 42,
//	 "failure_rate": 0.3, "failure_statuses": [423, 429, 503],
//	 "latency_ms": 10, "latency_max_ms": 50, "retry_after_s": 0,
//	 "drop": [{"method": "POST", "route": "/projects", "count": 1}]}
type FaultConfig struct {
	Reset           bool        `json:"reset,omitempty"`
	Seed            *uint64     `json:"seed,omitempty"`
	FailureRate     *float64    `json:"failure_rate,omitempty"`
	FailureStatuses []int       `json:"failure_statuses,omitempty"`
	LatencyMs       *int        `json:"latency_ms,omitempty"`
	LatencyMaxMs    *int        `json:"latency_max_ms,omitempty"`
	RetryAfterS     *int        `json:"retry_after_s,omitempty"`
	Drop            []DropFault `json:"drop,omitempty"`
}

// DropFault arms "drop the response after commit" for Count requests.
type DropFault struct {
	Method string `json:"method"`
	Route  string `json:"route"` // template relative to /api/v2, e.g. "/projects/{project_id}/branches"
	Count  int    `json:"count"`
}

func newFaults(seed int64) *Faults {
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	return &Faults{rng: rand.New(rand.NewPCG(uint64(seed), 0x6e656f6e)), drops: map[string]int{}, retryAfter: 1}
}

// Seed makes the failure and latency draws reproducible.
func (f *Faults) Seed(seed uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rng = rand.New(rand.NewPCG(seed, 0x6e656f6e))
}

// SetFailureRate answers a fraction rate (0..1) of API requests with one of
// statuses (default 503) and Retry-After: 1, before any state change.
func (f *Faults) SetFailureRate(rate float64, statuses ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate = min(max(rate, 0), 1)
	f.statuses = append([]int(nil), statuses...)
}

// SetRetryAfter sets the Retry-After (seconds) sent with injected failures; 0 sends none.
// The default is 1, as Neon's own 423 answers.
func (f *Faults) SetRetryAfter(seconds int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retryAfter = max(seconds, 0)
}

// SetLatency delays every API request by a random duration in [lo, hi]
// (hi <= lo means exactly lo).
func (f *Faults) SetLatency(lo, hi time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latencyMin, f.latencyMax = lo, hi
}

// DropResponses makes the next n successful requests matching method and
// route (template relative to /api/v2, e.g. "/projects") commit their
// change and then close the connection without answering.
func (f *Faults) DropResponses(method, route string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := strings.ToUpper(method) + " " + route
	if n <= 0 {
		delete(f.drops, key)
		return
	}
	f.drops[key] = n
}

// Reset clears every fault.
func (f *Faults) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate, f.statuses, f.latencyMin, f.latencyMax, f.retryAfter = 0, nil, 0, 0, 1
	f.drops = map[string]int{}
}

// Apply applies a FaultConfig.
func (f *Faults) Apply(c FaultConfig) {
	if c.Reset {
		f.Reset()
	}
	if c.Seed != nil {
		f.Seed(*c.Seed)
	}
	if c.FailureRate != nil {
		f.SetFailureRate(*c.FailureRate, c.FailureStatuses...)
	}
	if c.LatencyMs != nil || c.LatencyMaxMs != nil {
		lo := time.Duration(ptrOr(c.LatencyMs, 0)) * time.Millisecond
		hi := time.Duration(ptrOr(c.LatencyMaxMs, 0)) * time.Millisecond
		f.SetLatency(lo, hi)
	}
	if c.RetryAfterS != nil {
		f.SetRetryAfter(*c.RetryAfterS)
	}
	for _, d := range c.Drop {
		f.DropResponses(d.Method, d.Route, d.Count)
	}
}

// Config reports the current faults.
func (f *Faults) Config() FaultConfig {
	f.mu.Lock()
	defer f.mu.Unlock()
	rate := f.rate
	lo, hi := int(f.latencyMin/time.Millisecond), int(f.latencyMax/time.Millisecond)
	ra := f.retryAfter
	c := FaultConfig{FailureRate: &rate, FailureStatuses: append([]int(nil), f.statuses...), LatencyMs: &lo, LatencyMaxMs: &hi, RetryAfterS: &ra}
	for k, n := range f.drops {
		m, r, _ := strings.Cut(k, " ")
		c.Drop = append(c.Drop, DropFault{Method: m, Route: r, Count: n})
	}
	return c
}

func (f *Faults) latency() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.latencyMax <= f.latencyMin {
		return f.latencyMin
	}
	return f.latencyMin + time.Duration(f.rng.Int64N(int64(f.latencyMax-f.latencyMin)+1))
}

// fail decides whether this request gets an injected failure status, and its Retry-After.
func (f *Faults) fail(string) (status, retryAfter int, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rate <= 0 || f.rng.Float64() >= f.rate {
		return 0, 0, false
	}
	if len(f.statuses) == 0 {
		return http.StatusServiceUnavailable, f.retryAfter, true
	}
	return f.statuses[f.rng.IntN(len(f.statuses))], f.retryAfter, true
}

// takeDrop consumes one armed drop for method+route.
func (f *Faults) takeDrop(method, route string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := method + " " + route
	n := f.drops[key]
	if n <= 0 {
		return false
	}
	if n == 1 {
		delete(f.drops, key)
	} else {
		f.drops[key] = n - 1
	}
	return true
}

func (s *Server) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.faults.Config())
}

func (s *Server) setFaults(w http.ResponseWriter, r *http.Request) {
	var c FaultConfig
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		s.writeError(w, r, errf(http.StatusBadRequest, "invalid fault config: %v", err))
		return
	}
	s.faults.Apply(c)
	writeJSON(w, http.StatusOK, s.faults.Config())
}
