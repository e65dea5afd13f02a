package store

import (
	"database/sql"
	"os"
	"testing"

	"github.com/neonguard/neonguard/internal/pgtest"
)

// pg is the package's PostgreSQL server, started by the first test that needs it; each test
// gets a database of its own on it.
var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// openPostgres opens a Postgres store on a fresh database; it skips without PostgreSQL unless
// NEONGUARD_REQUIRE_POSTGRES=1.
func openPostgres(t testing.TB) *Postgres {
	t.Helper()
	return openPostgresDSN(t, pg.Server(t).NewDatabase(t))
}

// openPostgresDSN opens one more handle on dsn (another replica, as far as the store knows).
func openPostgresDSN(t testing.TB, dsn string) *Postgres {
	t.Helper()
	p, err := OpenPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// engines are the Store implementations every conformance test runs against.
var engines = []struct {
	name string
	open func(t testing.TB) Store
}{
	{"sqlite", func(t testing.TB) Store { s, _ := openTest(t); return s }},
	{"postgres", func(t testing.TB) Store { return openPostgres(t) }},
}

// forEachStore runs f as a subtest per engine, each on a new, empty store. Tests about the
// Store contract use it; tests of one engine's files or connection settings do not.
func forEachStore(t *testing.T, f func(t *testing.T, s Store)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { f(t, e.open(t)) })
	}
}

// rawDB is the engine's pool, for the few checks of what is stored.
func rawDB(s Store) *sql.DB {
	switch s := s.(type) {
	case *SQLite:
		return s.r
	case *Postgres:
		return s.r
	}
	panic("rawDB: unknown engine")
}

func TestPing(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping on an empty store: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(t.Context()); err == nil {
			t.Fatal("Ping on a closed store succeeded")
		}
	})
}
