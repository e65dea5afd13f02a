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
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/neon/neontest"
	"github.com/neonguard/neonguard/internal/policy"
)

func BenchmarkCheckpoint(b *testing.B) {
	for _, op := range []time.Duration{0, time.Second} {
		b.Run(fmt.Sprintf("op-ms=%d", op.Milliseconds()), func(b *testing.B) { benchCheckpoint(b, op) })
	}
}

func benchCheckpoint(b *testing.B, opTime time.Duration) {
	pol := policy.Default()
	const key = "bench-key"
	fake := neontest.New(neontest.WithAPIKey(key), neontest.WithIDTag("f"),
		neontest.WithLimits(neontest.Limits{SnapshotsPerProject: pol.Plans["free"].SnapshotsPerProject}))
	bed := newBenchBed(b, pol, alice, "free", "free", fake, key, nil)
	g, counter := bed.g, bed.counter
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
