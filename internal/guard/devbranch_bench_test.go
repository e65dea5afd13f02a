package guard_test

// BenchmarkCreateDevBranch measures create_dev_branch on the Neon backend's path: the guard, its
// SQLite store and the real Neon client (retries, limiter, JSON, HTTP) against a fast loopback
// fake of Neon's API (neontest served over httptest, operations terminal at once). It counts
// the upstream requests of every call and reports, per call: the median latency, the requests
// and the process CPU (guard, store, client and the fake's handlers: they share the process).
//
//	go test -run '^$' -bench CreateDevBranch -benchtime 200x ./internal/guard
//
// Sub-benchmarks: 1, 100 and 1000 branches already in the database; limiter=neon is the
// client's default limiter (Neon's documented limits: a burst of 40, 700 a minute), limiter=10rps
// the limiter before issue 13 (10/s, burst 10), limiter=off one that never waits, which shows
// the server's own latency. Back-to-back calls exhaust any limiter's burst: past it, a call
// waits for its requests' tokens (at 700/min, about 86 ms a request).

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neon/neontest"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// countingTransport counts the requests sent upstream (retries included).
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// benchBed is a guard on a fresh SQLite store whose org plan is fake, served over httptest
// through the real Neon client (adjust changes its config); its requests are counted. The
// other org is an unused fake. The tenant is on tier.
type benchBed struct {
	st      store.Store
	g       *guard.Guard
	counter *countingTransport
}

func newBenchBed(b *testing.B, pol policy.Config, tenant, tier, plan string, fake *neontest.Fake, key string, adjust func(*neon.Config)) benchBed {
	b.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "neonguard.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	if _, err := st.EnsureTenant(ctx, tenant, tier); err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(fake.Handler())
	b.Cleanup(hs.Close)
	counter := &countingTransport{}
	cfg := neon.Config{BaseURL: hs.URL + "/api/v2", APIKey: key,
		WrapTransport: func(next http.RoundTripper) http.RoundTripper { counter.next = next; return counter }}
	if adjust != nil {
		adjust(&cfg)
	}
	client, err := neon.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	orgs := []guard.Org{{Plan: "free", ID: "org-free", API: neontest.New(neontest.WithIDTag("f"))},
		{Plan: "paid", ID: "org-paid", API: neontest.New(neontest.WithIDTag("p"))}}
	for i := range orgs {
		if orgs[i].Plan == plan {
			orgs[i].API = client
		}
	}
	g, err := guard.New(guard.Deps{Store: st, Locker: store.NewMemLocker(), Policy: pol, Orgs: orgs})
	if err != nil {
		b.Fatal(err)
	}
	return benchBed{st: st, g: g, counter: counter}
}

func BenchmarkCreateDevBranch(b *testing.B) {
	for _, limiter := range []string{"10rps", "neon", "off"} {
		for _, existing := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("limiter=%s/branches=%d", limiter, existing), func(b *testing.B) {
				benchDevBranch(b, existing, limiter)
			})
		}
	}
}

func benchDevBranch(b *testing.B, existing int, limiter string) {
	ctx := context.Background()
	// Room for every branch the benchmark makes, far from the limit (near it, every call counts
	// on Neon): the pro tier and the paid plan raised.
	pol := policy.Default()
	room := 2*(existing+b.N) + 100
	plan := pol.Plans["paid"]
	plan.BranchesPerProject = max(plan.BranchesPerProject, room)
	pol.Plans["paid"] = plan
	tier := pol.Tiers["pro"]
	tier.Branches = max(tier.Branches, room)
	pol.Tiers["pro"] = tier

	const key = "bench-key"
	fake := neontest.New(neontest.WithAPIKey(key), neontest.WithIDTag("p"))
	bed := newBenchBed(b, pol, bob, "pro", "paid", fake, key, func(cfg *neon.Config) {
		cfg.OperationPoll = time.Millisecond
		switch limiter {
		case "10rps":
			cfg.RequestsPerSecond, cfg.Burst = 10, 10
		case "off":
			cfg.RequestsPerSecond = 1e9
		}
	})
	st, g, counter := bed.st, bed.g, bed.counter
	db, err := g.CreateDatabase(as(bob), guard.CreateDatabaseInput{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	// The existing branches: main and existing-1 dev branches, on Neon and in the store.
	expires := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	for i := 1; i < existing; i++ {
		nb, err := fake.AddBranch(db.DatabaseID, fmt.Sprintf("seed-%04d", i), db.MainBranchID)
		if err != nil {
			b.Fatal(err)
		}
		if err := fake.EditBranch(db.DatabaseID, nb.ID, func(x *neon.Branch) { x.ExpiresAt = &expires }); err != nil {
			b.Fatal(err)
		}
		if err := st.AddBranch(ctx, store.Branch{ID: nb.ID, DatabaseID: db.DatabaseID, Name: nb.Name, Kind: store.BranchDev,
			ExpiresAt: &expires, CreatedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	// One call outside the measurement: connections and caches warm, as on a running server.
	if _, err := g.CreateDevBranch(as(bob), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: "warm"}); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	req0 := counter.n.Load()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		res, err := g.CreateDevBranch(as(bob), guard.DevBranchInput{DatabaseID: db.DatabaseID, Name: fmt.Sprintf("dev-%06d", i)})
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if res.ConnectionString == "" {
			b.Fatal("no connection string")
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	reqs := counter.n.Load() - req0
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(reqs)/float64(b.N), "requests/op")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
