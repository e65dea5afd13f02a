// Package pgtest holds what tests on real PostgreSQL share: finding it (skip without it, or
// fail when NEONGUARD_REQUIRE_POSTGRES=1, as CI sets) and a data dir its user can reach.
package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
)

// Require returns the PostgreSQL server binaries, skipping the test without them unless
// NEONGUARD_REQUIRE_POSTGRES=1 makes that a failure.
func Require(tb testing.TB) pgctl.Binaries {
	tb.Helper()
	bin, err := pgctl.FindBinaries(context.Background(), os.Getenv("NEONGUARD_LOCAL_PG_BIN_DIR"))
	if err != nil {
		if os.Getenv("NEONGUARD_REQUIRE_POSTGRES") == "1" {
			tb.Fatalf("PostgreSQL is required: %v", err)
		}
		tb.Skipf("PostgreSQL not installed: %v", err)
	}
	return bin
}

// ReachableDir is a temporary data dir that PostgreSQL's unprivileged user can reach when the
// tests run as root (t.TempDir's parents are private).
func ReachableDir(tb testing.TB) string {
	tb.Helper()
	d := tb.TempDir()
	for _, p := range []string{filepath.Dir(d), d} {
		if err := os.Chmod(p, 0o711); err != nil {
			tb.Fatal(err)
		}
	}
	return d
}
