package neon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// scripted answers the i-th request (0-based) with steps[i], and the last step ever after.
// A step < 0 drops the connection; 0 is a 200 with a project.
func scripted(t *testing.T, hits *atomic.Int32, steps []int, header http.Header) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(hits.Add(1)) - 1
		st := steps[min(n, len(steps)-1)]
		for k, v := range header {
			w.Header()[k] = v
		}
		switch {
		case st < 0:
			dropConnection(t, w)
		case st == 0 || st == 200:
			writeJSON(w, 200, map[string]any{"project": Project{ID: "proj-1", Name: "n"}, "operations": []Operation{}})
		default:
			writeErr(w, st, "", "scripted "+http.StatusText(st))
		}
	})
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no key", Config{BaseURL: "https://console.neon.tech/api/v2"}},
		{"no url", Config{APIKey: testKey}},
		{"bad scheme", Config{APIKey: testKey, BaseURL: "ftp://x/api/v2"}},
		{"no host", Config{APIKey: testKey, BaseURL: "https:///api/v2"}},
		{"userinfo", Config{APIKey: testKey, BaseURL: "https://u:" + testKey + "@console.neon.tech/api/v2"}},
		{"unparsable", Config{APIKey: testKey, BaseURL: "https://" + testKey + "\x7f/"}},
		{"query", Config{APIKey: testKey, BaseURL: "https://console.neon.tech/api/v2?key=" + testKey}},
		{"key whitespace", Config{APIKey: testKey + "\n", BaseURL: "https://console.neon.tech/api/v2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if noteErr(err) == nil {
				t.Fatal("New accepted a bad config")
			}
			if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("err = %v, want ErrInvalidArgument", err)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
	if _, err := New(Config{APIKey: testKey, BaseURL: "http://127.0.0.1:1/api/v2/"}); err != nil {
		t.Fatal(err)
	}
}

func TestRetriesNothingHappenedStatuses(t *testing.T) {
	for _, status := range []int{423, 429, 503} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			t.Run(fmt.Sprintf("%d %s", status, method), func(t *testing.T) {
				var hits atomic.Int32
				effectCalls := 0
				c, clk := newTestClient(t, scripted(t, &hits, []int{status, status, 200}, nil))
				_, err := c.do(context.Background(), &call{method: method, route: "/x", path: "/x",
					effect: func(context.Context) (bool, error) { effectCalls++; return false, nil }})
				if err != nil {
					t.Fatal(err)
				}
				if hits.Load() != 3 || len(clk.Sleeps()) != 2 {
					t.Errorf("hits = %d, sleeps = %d; want 3 and 2", hits.Load(), len(clk.Sleeps()))
				}
				if effectCalls != 0 {
					t.Errorf("a %d means nothing happened, yet the effect was checked", status)
				}
			})
		}
	}
}

func TestRetryAfterDeltaSeconds(t *testing.T) {
	var hits atomic.Int32
	c, clk := newTestClient(t, scripted(t, &hits, []int{429, 200}, http.Header{"Retry-After": {"3"}}))
	if _, err := c.GetProject(context.Background(), "proj-1"); err != nil {
		t.Fatal(err)
	}
	if s := clk.Sleeps(); len(s) != 1 || s[0] != 3*time.Second {
		t.Errorf("sleeps = %v, want [3s]", s)
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	var hits atomic.Int32
	start := time.Now().Truncate(time.Second)
	date := start.Add(7 * time.Second).UTC().Format(http.TimeFormat)
	c, clk := newTestClient(t, scripted(t, &hits, []int{503, 200}, http.Header{"Retry-After": {date}}))
	clk.t = start
	if _, err := c.GetProject(context.Background(), "proj-1"); err != nil {
		t.Fatal(err)
	}
	if s := clk.Sleeps(); len(s) != 1 || s[0] != 7*time.Second {
		t.Errorf("sleeps = %v, want [7s]", s)
	}
}

func TestRetryAfterBeyondBudgetGivesUp(t *testing.T) {
	var hits atomic.Int32
	c, clk := newTestClient(t, scripted(t, &hits, []int{429}, http.Header{"Retry-After": {"120"}}))
	_, err := c.GetProject(context.Background(), "proj-1")
	noteErr(err)
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
	if hits.Load() != 1 || len(clk.Sleeps()) != 0 {
		t.Errorf("hits = %d sleeps = %v; want one attempt and no sleep", hits.Load(), clk.Sleeps())
	}
	if !strings.Contains(err.Error(), "gave up after 1 attempts") {
		t.Errorf("error does not count attempts: %v", err)
	}
}

func TestMaxElapsedBoundsRetries(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestClient(t, scripted(t, &hits, []int{503}, http.Header{"Retry-After": {"1"}}),
		func(cfg *Config) { cfg.MaxElapsed = 2500 * time.Millisecond; cfg.MaxAttempts = 100 })
	_, err := c.GetProject(context.Background(), "proj-1")
	noteErr(err)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	// t=0 fail, sleep 1; t=1 fail, sleep 1; t=2 fail, 1s > 0.5s left: give up.
	if hits.Load() != 3 {
		t.Errorf("hits = %d, want 3", hits.Load())
	}
}

func TestMaxAttemptsAndFinalError(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestClient(t, scripted(t, &hits, []int{503}, nil))
	_, err := c.GetProject(context.Background(), "proj-1")
	noteErr(err)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 503 {
		t.Fatalf("err = %v, want a wrapped 503 *APIError", err)
	}
	if hits.Load() != 6 || !strings.Contains(err.Error(), "after 6 attempts") {
		t.Errorf("hits = %d, err = %v; want 6 attempts, counted in the error", hits.Load(), err)
	}
	if ae.Route != "/projects/{project_id}" {
		t.Errorf("route = %q", ae.Route)
	}
}

func TestBackoffIsFullJitterWithinBounds(t *testing.T) {
	var hits atomic.Int32
	base, maxB := 100*time.Millisecond, 400*time.Millisecond
	c, clk := newTestClient(t, scripted(t, &hits, []int{503}, nil), func(cfg *Config) {
		cfg.BaseBackoff, cfg.MaxBackoff, cfg.MaxAttempts = base, maxB, 8
	})
	_, _ = c.GetProject(context.Background(), "proj-1")
	s := clk.Sleeps()
	if len(s) != 7 {
		t.Fatalf("sleeps = %v", s)
	}
	for i, d := range s {
		bound := min(maxB, base<<i)
		if d < 0 || d > bound {
			t.Errorf("sleep %d = %s, want within [0, %s]", i, d, bound)
		}
	}
}

func TestContextCancelStopsRetrying(t *testing.T) {
	var hits atomic.Int32
	c, clk := newTestClient(t, scripted(t, &hits, []int{423}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	clk.onWait = func(time.Duration) { cancel() }
	_, err := c.GetProject(ctx, "proj-1")
	noteErr(err)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want context.Canceled wrapping the 423", err)
	}
	if hits.Load() != 1 {
		t.Errorf("hits = %d", hits.Load())
	}
}

func TestIdempotentRetriedOnTransportAnd5xx(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPatch, http.MethodDelete} {
		t.Run(method, func(t *testing.T) {
			var hits atomic.Int32
			c, _ := newTestClient(t, scripted(t, &hits, []int{-1, 500, 502, 504, 524, 200}, nil))
			if _, err := c.do(context.Background(), &call{method: method, route: "/x", path: "/x"}); err != nil {
				t.Fatal(err)
			}
			if hits.Load() != 6 {
				t.Errorf("hits = %d, want 6", hits.Load())
			}
		})
	}
}

func TestFinalStatusesNotRetried(t *testing.T) {
	for _, st := range []int{400, 401, 403, 404, 409, 422} {
		var hits atomic.Int32
		c, _ := newTestClient(t, scripted(t, &hits, []int{st}, nil))
		_, err := c.GetProject(context.Background(), "proj-1")
		noteErr(err)
		if err == nil || hits.Load() != 1 {
			t.Errorf("%d: hits = %d err = %v; want one attempt and an error", st, hits.Load(), err)
		}
	}
}

func TestBranchNotReadyRetried(t *testing.T) {
	var hits atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			writeErr(w, 422, "", "branch not ready yet")
			return
		}
		writeJSON(w, 201, CreatedBranch{Branch: Branch{ID: "br-1", Name: "dev"}})
	})
	c, _ := newTestClient(t, h)
	if _, err := c.CreateBranch(context.Background(), "proj-1", BranchCreate{Name: "dev"}, nil); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 2 {
		t.Errorf("hits = %d", hits.Load())
	}
}

func TestPOSTWithoutEffectCheckIsOutcomeUnknown(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestClient(t, scripted(t, &hits, []int{502}, nil))
	_, err := c.do(context.Background(), &call{method: http.MethodPost, route: "/x", path: "/x"})
	noteErr(err)
	if !errors.Is(err, ErrOutcomeUnknown) || hits.Load() != 1 {
		t.Fatalf("hits = %d err = %v; want one attempt and ErrOutcomeUnknown", hits.Load(), err)
	}
}

func TestRateLimiterSeparateForConsumption(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v2/consumption_history") {
			writeJSON(w, 200, map[string]any{"projects": []any{}})
			return
		}
		writeJSON(w, 200, map[string]any{"project": Project{ID: "proj-1"}})
	})
	c, _ := newTestClient(t, h, func(cfg *Config) { cfg.ConsumptionPerMinute = 1 })
	opts := ConsumptionOptions{From: time.Now().Add(-time.Hour), To: time.Now(), Granularity: "hourly"}
	if _, err := c.Consumption(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// The consumption bucket is empty for a minute: the limiter refuses at once because the
	// wait would outlast ctx, while ordinary calls are not held back.
	_, err := c.Consumption(ctx, opts)
	if noteErr(err) == nil {
		t.Fatal("second consumption call passed a 1/min limiter")
	}
	if _, err := c.GetProject(ctx, "proj-1"); err != nil {
		t.Fatalf("an ordinary call was held by the consumption limiter: %v", err)
	}
}

// TestRateLimiterFollowsNeonsLimits: by default the bucket holds 40 (Neon's burst) and refills
// so that no minute passes 700 requests (Neon's per-account limit); both are configurable, and
// a rate set without a burst keeps a second's worth.
func TestRateLimiterFollowsNeonsLimits(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]any{}) })
	for _, tc := range []struct {
		name      string
		rps       float64
		burst     int
		wantRPS   float64
		wantBurst int
	}{
		{"default", 0, 0, 11, 40},
		{"configured", 5, 20, 5, 20},
		{"rate only", 5000, 0, 5000, 5000},
		{"slow rate only", 2, 0, 2, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newTestClient(t, h, func(cfg *Config) { cfg.RequestsPerSecond, cfg.Burst = tc.rps, tc.burst })
			if got := float64(c.limiter.Limit()); got != tc.wantRPS {
				t.Errorf("rate = %v/s, want %v", got, tc.wantRPS)
			}
			if got := c.limiter.Burst(); got != tc.wantBurst {
				t.Errorf("burst = %d, want %d", got, tc.wantBurst)
			}
			if tc.name == "default" {
				if perMinute := float64(c.limiter.Burst()) + 60*float64(c.limiter.Limit()); perMinute > 700 {
					t.Errorf("a minute may see %v requests, over Neon's 700", perMinute)
				}
			}
		})
	}
	// Within the burst, sequential calls never wait.
	c, _ := newTestClient(t, h, func(cfg *Config) { cfg.RequestsPerSecond, cfg.Burst = 0, 0 })
	start := time.Now()
	for range 40 {
		if err := c.wait(context.Background(), &call{}); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("40 requests within the burst took %s", d)
	}
}
