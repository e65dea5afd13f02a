package guard_test

// BenchmarkCheckpoint measures checkpoint with replace=true on the free tier (Neon keeps one
// snapshot, so each call deletes the previous one and then takes the new one: two operations,
// one after the other) on the Neon backend's path: the guard, its SQLite store and the real
// Neon client with its production defaults (operation polls from 25 ms up to 1 s, Neon's
// request limits) against neontest served over httptest, whose operations stay running for
// op-ms after they were started (Neon's take about a second). It reports per call the median
// latency and the upstream requests, polls included.
//
//	go test -run '^$' -bench Checkpoint -benchtime 8x ./internal/guard

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/neon/neontest"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

func BenchmarkCheckpoint(b *testing.B) {
	for _, op := range []time.Duration{0, time.Second} {
		b.Run(fmt.Sprintf("op-ms=%d", op.Milliseconds()), func(b *testing.B) { benchCheckpoint(b, op) })
	}
}

func benchCheckpoint(b *testing.B, opTime time.Duration) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "neonguard.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	if _, err := st.EnsureTenant(ctx, alice, "free"); err != nil {
		b.Fatal(err)
	}
	pol := policy.Default()
	const key = "bench-key"
	fake := neontest.New(neontest.WithAPIKey(key), neontest.WithIDTag("f"),
		neontest.WithLimits(neontest.Limits{SnapshotsPerProject: pol.Plans["free"].SnapshotsPerProject}))
	hs := httptest.NewServer(fake.Handler())
	b.Cleanup(hs.Close)
	counter := &countingTransport{}
	client, err := neon.New(neon.Config{BaseURL: hs.URL + "/api/v2", APIKey: key,
		WrapTransport: func(next http.RoundTripper) http.RoundTripper { counter.next = next; return counter }})
	if err != nil {
		b.Fatal(err)
	}
	other := neontest.New(neontest.WithIDTag("p")) // the paid org: unused
	g, err := guard.New(guard.Deps{Store: st, Locker: store.NewMemLocker(), Policy: pol,
		Orgs: []guard.Org{{Plan: "free", ID: "org-free", API: client}, {Plan: "paid", ID: "org-paid", API: other}}})
	if err != nil {
		b.Fatal(err)
	}
	db, err := g.CreateDatabase(as(alice), guard.CreateDatabaseInput{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	fake.ScriptOperationTime(opTime)
	in := guard.CheckpointInput{DatabaseID: db.DatabaseID, Name: "cp", Replace: true}
	// The first call makes the checkpoint the others replace; it is also the client's first
	// wait for these operations.
	if _, err := g.Checkpoint(as(alice), in); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	req0 := counter.n.Load()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res, err := g.Checkpoint(as(alice), in)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Replaced) != 1 {
			b.Fatalf("replaced %v, want the previous checkpoint", res.Replaced)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(counter.n.Load()-req0)/float64(b.N), "requests/op")
}
