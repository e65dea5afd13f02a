package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTest(t testing.TB) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "neonguard.db")
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

// addTenants adds tenants "t1" and "t2" to s.
func addTenants(t testing.TB, s Store) {
	t.Helper()
	for _, id := range []string{"t1", "t2"} {
		if _, err := s.EnsureTenant(t.Context(), id, "free"); err != nil {
			t.Fatal(err)
		}
	}
}

// createDB reserves and completes a database and returns the completed row.
func createDB(t testing.TB, s Store, tenant, name, id string) Database {
	t.Helper()
	ctx := t.Context()
	if _, _, err := s.ReserveDatabase(ctx, tenant, name); err != nil {
		t.Fatal(err)
	}
	d := Database{ID: id, TenantID: tenant, Name: name, OrgID: "org-1", RootBranchID: "br-root-" + id,
		RegionID: "aws-us-east-2", PGVersion: 17, RoleName: "neondb_owner", DatabaseName: "neondb"}
	if err := s.CompleteDatabase(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDatabase(ctx, tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestOpenSettingsAndModes(t *testing.T) {
	s, path := openTest(t)
	ctx := t.Context()

	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"synchronous", "1"}, // NORMAL
		{"busy_timeout", "5000"},
	} {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %q, want %q", c.pragma, got, c.want)
		}
	}
	// The read pool must refuse writes.
	if _, err := s.r.ExecContext(ctx, "DELETE FROM tenants"); err == nil {
		t.Error("write through the read pool succeeded")
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("file mode %o, want 600", m)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if m := di.Mode().Perm(); m != 0o700 {
		t.Errorf("dir mode %o, want 700", m)
	}
}

func TestOpenTightensExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("file mode %o, want 600", m)
	}
}

func TestOpenRejectsBadPaths(t *testing.T) {
	for _, p := range []string{"", "a.db?mode=memory", "file:a.db"} {
		if s, err := OpenSQLite(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("OpenSQLite(%q) succeeded", p)
		}
	}
}

// TestPlaceholders pins the finding the shared query strings rely on: modernc.org/sqlite binds
// PostgreSQL-style $n placeholders by ordinal, out of order and repeated.
func TestPlaceholders(t *testing.T) {
	s, _ := openTest(t)
	var got string
	if err := s.r.QueryRowContext(t.Context(), "SELECT $2 || $1 || $2", "a", "b").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "bab" {
		t.Fatalf("got %q, want %q", got, "bab")
	}
	var n int64
	if err := s.r.QueryRowContext(t.Context(), "SELECT $10 - $1", 1, 0, 0, 0, 0, 0, 0, 0, 0, int64(1)<<60).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1<<60-1 {
		t.Fatalf("got %d", n)
	}
}

// TestMigrationsPortable keeps SQLite-only syntax out of the migrations Postgres runs too.
func TestMigrationsPortable(t *testing.T) {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil || len(entries) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	banned := regexp.MustCompile(`(?i)\b(AUTOINCREMENT|WITHOUT\s+ROWID|PRAGMA|DATETIME|SERIAL|IDENTITY|INSERT\s+OR|REPLACE\s+INTO|STRICT|BOOLEAN|TIMESTAMP)\b|INTEGER\s+PRIMARY\s+KEY`)
	for _, e := range entries {
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if code, _, _ := strings.Cut(line, "--"); banned.MatchString(code) {
				t.Errorf("%s:%d: not portable: %s", e.Name(), i+1, line)
			}
		}
	}
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "neonguard.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureTenant(ctx, "t1", "pro"); err != nil {
		t.Fatal(err)
	}
	want := createDB(t, s, "t1", "app", "proj-1")
	if err := s.AppendAudit(ctx, AuditEntry{TenantID: "t1", Tool: "create_database"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for range 2 { // reopening twice: the second and third Up find nothing to do
		s, err = OpenSQLite(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		var version, applied int64
		if err := s.r.QueryRowContext(ctx, "SELECT MAX(version_id), COUNT(*) FROM goose_db_version WHERE version_id > 0").Scan(&version, &applied); err != nil {
			t.Fatal(err)
		}
		if n := migrationCount(t); version != n || applied != n {
			t.Errorf("goose version %d with %d rows, want %d and %d", version, applied, n, n)
		}
		tn, err := s.GetTenant(ctx, "t1")
		if err != nil || tn.Tier != "pro" {
			t.Errorf("tenant after reopen: %+v, %v", tn, err)
		}
		got, err := s.GetDatabase(ctx, "t1", "proj-1")
		if err != nil || !equalDB(got, want) {
			t.Errorf("database after reopen: %+v, %v; want %+v", got, err, want)
		}
		if a, err := s.ListAudit(ctx, AuditFilter{}); err != nil || len(a) != 1 {
			t.Errorf("audit after reopen: %d rows, %v", len(a), err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func equalDB(a, b Database) bool {
	if (a.DeletedAt == nil) != (b.DeletedAt == nil) || (a.DeletedAt != nil && !a.DeletedAt.Equal(*b.DeletedAt)) {
		return false
	}
	a.DeletedAt, b.DeletedAt = nil, nil
	return a.CreatedAt.Equal(b.CreatedAt) && func() bool {
		a.CreatedAt, b.CreatedAt = time.Time{}, time.Time{}
		return a == b
	}()
}

func TestTenants(t *testing.T) { forEachStore(t, testTenants) }

func testTenants(t *testing.T, s Store) {
	ctx := t.Context()

	before := time.Now().Add(-time.Second)
	tn, err := s.EnsureTenant(ctx, "b", "free")
	if err != nil {
		t.Fatal(err)
	}
	if tn.ID != "b" || tn.Tier != "free" || tn.CreatedAt.Before(before) || tn.CreatedAt.Location() != time.UTC {
		t.Errorf("EnsureTenant = %+v", tn)
	}
	// An existing tenant keeps its tier.
	again, err := s.EnsureTenant(ctx, "b", "pro")
	if err != nil {
		t.Fatal(err)
	}
	if again != tn {
		t.Errorf("EnsureTenant again = %+v, want %+v", again, tn)
	}
	if _, err := s.EnsureTenant(ctx, "a", "pro"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureTenant(ctx, "", "pro"); err == nil {
		t.Error("EnsureTenant with empty id succeeded")
	}

	if err := s.SetTenantTier(ctx, "b", "pro"); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTenant(ctx, "b")
	if err != nil || got.Tier != "pro" || !got.CreatedAt.Equal(tn.CreatedAt) {
		t.Errorf("GetTenant = %+v, %v", got, err)
	}
	list, err := s.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" || list[1].Tier != "pro" {
		t.Errorf("ListTenants = %+v", list)
	}

	if _, err := s.GetTenant(ctx, "zz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetTenant(missing) = %v, want ErrNotFound", err)
	}
	if err := s.SetTenantTier(ctx, "zz", "pro"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetTenantTier(missing) = %v, want ErrNotFound", err)
	}
}

func TestDatabaseLifecycle(t *testing.T) { forEachStore(t, testDatabaseLifecycle) }

func testDatabaseLifecycle(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()

	res, created, err := s.ReserveDatabase(ctx, "t1", "app")
	if err != nil || !created {
		t.Fatalf("ReserveDatabase = %+v, %v, %v", res, created, err)
	}
	if res.ID != "" || res.TenantID != "t1" || res.Name != "app" || res.CreatedAt.IsZero() || res.DeletedAt != nil {
		t.Errorf("reservation = %+v", res)
	}
	again, created, err := s.ReserveDatabase(ctx, "t1", "app")
	if err != nil || created || !equalDB(again, res) {
		t.Errorf("ReserveDatabase again = %+v, %v, %v", again, created, err)
	}
	// The reservation is visible by name and counts against the quota, but has no id to get.
	if got, err := s.GetDatabaseByName(ctx, "t1", "app"); err != nil || got.ID != "" {
		t.Errorf("GetDatabaseByName(reservation) = %+v, %v", got, err)
	}
	if n, err := s.CountDatabases(ctx, "t1"); err != nil || n != 1 {
		t.Errorf("CountDatabases = %d, %v", n, err)
	}
	if _, err := s.GetDatabase(ctx, "t1", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetDatabase(empty id) = %v", err)
	}

	full := Database{ID: "proj-1", TenantID: "t1", Name: "app", OrgID: "org-free", RootBranchID: "br-1",
		RegionID: "aws-us-east-2", PGVersion: 17, RoleName: "owner", DatabaseName: "neondb"}
	if err := s.CompleteDatabase(ctx, full); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteDatabase(ctx, full); err != nil { // idempotent
		t.Errorf("CompleteDatabase again: %v", err)
	}
	got, err := s.GetDatabase(ctx, "t1", "proj-1")
	if err != nil {
		t.Fatal(err)
	}
	want := full
	want.CreatedAt = res.CreatedAt // the reservation time is kept
	if !equalDB(got, want) {
		t.Errorf("GetDatabase = %+v, want %+v", got, want)
	}
	if byName, err := s.GetDatabaseByName(ctx, "t1", "app"); err != nil || !equalDB(byName, want) {
		t.Errorf("GetDatabaseByName = %+v, %v", byName, err)
	}

	// Tenant isolation.
	if _, err := s.GetDatabase(ctx, "t2", "proj-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetDatabase(other tenant) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetDatabaseByName(ctx, "t2", "app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetDatabaseByName(other tenant) = %v, want ErrNotFound", err)
	}
	if l, err := s.ListDatabases(ctx, "t2"); err != nil || len(l) != 0 {
		t.Errorf("ListDatabases(t2) = %+v, %v", l, err)
	}
	if n, err := s.CountDatabases(ctx, "t2"); err != nil || n != 0 {
		t.Errorf("CountDatabases(t2) = %d, %v", n, err)
	}
	// The same name in another tenant is a different database.
	if _, created, err := s.ReserveDatabase(ctx, "t2", "app"); err != nil || !created {
		t.Errorf("ReserveDatabase(t2, app) = %v, %v", created, err)
	}

	createDB(t, s, "t1", "second", "proj-2")
	list, err := s.ListDatabases(ctx, "t1")
	if err != nil || len(list) != 2 || list[0].ID != "proj-1" || list[1].ID != "proj-2" {
		t.Errorf("ListDatabases = %+v, %v", list, err)
	}

	if err := s.SetRootBranch(ctx, "proj-1", "br-9"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetDatabase(ctx, "t1", "proj-1"); got.RootBranchID != "br-9" {
		t.Errorf("RootBranchID = %q", got.RootBranchID)
	}
	if err := s.SetRootBranch(ctx, "nope", "br-9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetRootBranch(missing) = %v", err)
	}

	// Deletion hides the database everywhere and frees its name.
	delAt := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.MarkDatabaseDeleted(ctx, "proj-1", delAt); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDatabaseDeleted(ctx, "proj-1", delAt.Add(time.Hour)); err != nil {
		t.Errorf("MarkDatabaseDeleted again: %v", err)
	}
	if err := s.MarkDatabaseDeleted(ctx, "nope", delAt); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkDatabaseDeleted(missing) = %v", err)
	}
	if _, err := s.GetDatabase(ctx, "t1", "proj-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetDatabase(deleted) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetDatabaseByName(ctx, "t1", "app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetDatabaseByName(deleted) = %v, want ErrNotFound", err)
	}
	if l, _ := s.ListDatabases(ctx, "t1"); len(l) != 1 || l[0].ID != "proj-2" {
		t.Errorf("ListDatabases after delete = %+v", l)
	}
	if n, _ := s.CountDatabases(ctx, "t1"); n != 1 {
		t.Errorf("CountDatabases after delete = %d", n)
	}
	var deletedAt int64
	if err := rawDB(s).QueryRowContext(ctx, "SELECT deleted_at FROM databases WHERE id = $1", "proj-1").Scan(&deletedAt); err != nil {
		t.Fatal(err)
	}
	if !fromMicros(deletedAt).Equal(delAt) {
		t.Errorf("deleted_at = %v, want the first deletion %v", fromMicros(deletedAt), delAt)
	}
	if re, created, err := s.ReserveDatabase(ctx, "t1", "app"); err != nil || !created || re.ID != "" {
		t.Errorf("ReserveDatabase after delete = %+v, %v, %v", re, created, err)
	}
}

func TestReserveUnknownTenant(t *testing.T) { forEachStore(t, testReserveUnknownTenant) }

func testReserveUnknownTenant(t *testing.T, s Store) {
	if _, _, err := s.ReserveDatabase(t.Context(), "ghost", "app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReserveDatabase(unknown tenant) = %v, want ErrNotFound", err)
	}
	if _, _, err := s.ReserveDatabase(t.Context(), "ghost", ""); err == nil {
		t.Error("ReserveDatabase with empty name succeeded")
	}
}

func TestCompleteDatabaseErrors(t *testing.T) { forEachStore(t, testCompleteDatabaseErrors) }

func testCompleteDatabaseErrors(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	if err := s.CompleteDatabase(ctx, Database{ID: "p", TenantID: "t1", Name: "none"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("CompleteDatabase(no reservation) = %v, want ErrNotFound", err)
	}
	if err := s.CompleteDatabase(ctx, Database{TenantID: "t1", Name: "none"}); err == nil {
		t.Error("CompleteDatabase with empty id succeeded")
	}
	createDB(t, s, "t1", "a", "proj-a")
	if err := s.CompleteDatabase(ctx, Database{ID: "proj-other", TenantID: "t1", Name: "a"}); !errors.Is(err, ErrConflict) {
		t.Errorf("CompleteDatabase(other id) = %v, want ErrConflict", err)
	}
	if _, _, err := s.ReserveDatabase(ctx, "t2", "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteDatabase(ctx, Database{ID: "proj-a", TenantID: "t2", Name: "b"}); !errors.Is(err, ErrConflict) {
		t.Errorf("CompleteDatabase(project id in use) = %v, want ErrConflict", err)
	}
	// An explicit CreatedAt replaces the reservation time.
	at := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	if err := s.CompleteDatabase(ctx, Database{ID: "proj-b", TenantID: "t2", Name: "b", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetDatabase(ctx, "t2", "proj-b"); err != nil || !got.CreatedAt.Equal(at) {
		t.Errorf("CreatedAt = %v, %v; want %v", got.CreatedAt, err, at)
	}
}

func TestForgetReservation(t *testing.T) { forEachStore(t, testForgetReservation) }

func testForgetReservation(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	if _, _, err := s.ReserveDatabase(ctx, "t1", "pending"); err != nil {
		t.Fatal(err)
	}
	createDB(t, s, "t1", "done", "proj-done")

	if err := s.ForgetReservation(ctx, "t2", "pending"); err != nil { // other tenant: no-op
		t.Fatal(err)
	}
	if _, err := s.GetDatabaseByName(ctx, "t1", "pending"); err != nil {
		t.Errorf("another tenant forgot t1's reservation: %v", err)
	}
	if err := s.ForgetReservation(ctx, "t1", "pending"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDatabaseByName(ctx, "t1", "pending"); !errors.Is(err, ErrNotFound) {
		t.Errorf("reservation still there: %v", err)
	}
	// A completed database is never forgotten.
	if err := s.ForgetReservation(ctx, "t1", "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDatabase(ctx, "t1", "proj-done"); err != nil {
		t.Errorf("ForgetReservation dropped a completed database: %v", err)
	}
	if err := s.ForgetReservation(ctx, "t1", "never"); err != nil {
		t.Errorf("ForgetReservation(nothing) = %v", err)
	}
}

func TestReserveDatabaseConcurrent(t *testing.T) { forEachStore(t, testReserveDatabaseConcurrent) }

func testReserveDatabaseConcurrent(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	const n = 20
	type result struct {
		db      Database
		created bool
		err     error
	}
	for _, name := range []string{"race-1", "race-2"} { // two names, each raced by n goroutines
		results := make([]result, n)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range n {
			wg.Go(func() {
				start.Wait()
				db, created, err := s.ReserveDatabase(ctx, "t1", name)
				results[i] = result{db, created, err}
			})
		}
		start.Done()
		wg.Wait()
		var createdCount int
		for i, r := range results {
			if r.err != nil {
				t.Fatalf("goroutine %d: %v", i, r.err)
			}
			if r.created {
				createdCount++
			}
			if !equalDB(r.db, results[0].db) {
				t.Errorf("goroutine %d got %+v, goroutine 0 got %+v", i, r.db, results[0].db)
			}
		}
		if createdCount != 1 {
			t.Errorf("%s: created=true %d times, want exactly 1", name, createdCount)
		}
	}
	if c, _ := s.CountDatabases(ctx, "t1"); c != 2 {
		t.Errorf("CountDatabases = %d, want 2", c)
	}
}

func TestCheckpoints(t *testing.T) { forEachStore(t, testCheckpoints) }

func testCheckpoints(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	createDB(t, s, "t1", "app", "proj-1")
	createDB(t, s, "t1", "other", "proj-2")

	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []Checkpoint{ // inserted out of order on purpose
		{ID: "snap-2", DatabaseID: "proj-1", Name: "second", BranchID: "br-1", CreatedAt: base.Add(2 * time.Minute)},
		{ID: "snap-1", DatabaseID: "proj-1", Name: "first", BranchID: "br-1", CreatedAt: base.Add(time.Minute)},
		{ID: "snap-3", DatabaseID: "proj-1", Name: "third", BranchID: "br-1", CreatedAt: base.Add(3 * time.Minute)},
		{ID: "snap-x", DatabaseID: "proj-2", Name: "x"},
	} {
		if err := s.AddCheckpoint(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListCheckpoints(ctx, "proj-1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "first,second,third" {
		t.Errorf("ListCheckpoints order = %v, want oldest first", names)
	}
	if list[0].ID != "snap-1" || list[0].BranchID != "br-1" || list[0].DatabaseID != "proj-1" || !list[0].CreatedAt.Equal(base.Add(time.Minute)) {
		t.Errorf("checkpoint = %+v", list[0])
	}
	if x, _ := s.ListCheckpoints(ctx, "proj-2"); len(x) != 1 || x[0].CreatedAt.IsZero() {
		t.Errorf("ListCheckpoints(proj-2) = %+v", x)
	}

	if err := s.AddCheckpoint(ctx, Checkpoint{ID: "snap-1", DatabaseID: "proj-1"}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate AddCheckpoint = %v, want ErrConflict", err)
	}
	if err := s.AddCheckpoint(ctx, Checkpoint{ID: "snap-9", DatabaseID: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddCheckpoint(unknown database) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteCheckpoint(ctx, "proj-2", "snap-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteCheckpoint(wrong database) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteCheckpoint(ctx, "proj-1", "snap-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCheckpoint(ctx, "proj-1", "snap-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteCheckpoint twice = %v, want ErrNotFound", err)
	}
	if l, _ := s.ListCheckpoints(ctx, "proj-1"); len(l) != 2 {
		t.Errorf("after delete: %d checkpoints", len(l))
	}
	if l, err := s.ListCheckpoints(ctx, "nope"); err != nil || len(l) != 0 {
		t.Errorf("ListCheckpoints(unknown) = %v, %v", l, err)
	}
}

func TestBranches(t *testing.T) { forEachStore(t, testBranches) }

func testBranches(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	createDB(t, s, "t1", "app", "proj-1")

	exp := time.Date(2025, 7, 1, 0, 0, 0, 123000, time.UTC)
	base := exp.Add(-24 * time.Hour)
	for _, b := range []Branch{
		{ID: "br-dev", DatabaseID: "proj-1", Name: "feature", Kind: BranchDev, ExpiresAt: &exp, CreatedAt: base.Add(time.Second)},
		{ID: "br-main", DatabaseID: "proj-1", Name: "main", Kind: BranchMain, CreatedAt: base},
		{ID: "br-bak", DatabaseID: "proj-1", Name: "backup-1", Kind: BranchBackup, CreatedAt: base.Add(2 * time.Second)},
	} {
		if err := s.AddBranch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListBranches(ctx, "proj-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != "br-main" || list[1].ID != "br-dev" || list[2].ID != "br-bak" {
		t.Fatalf("ListBranches = %+v", list)
	}
	if list[0].ExpiresAt != nil || list[1].ExpiresAt == nil || !list[1].ExpiresAt.Equal(exp) || list[1].Kind != BranchDev || list[1].Name != "feature" {
		t.Errorf("branches = %+v / %+v", list[0], list[1])
	}

	if err := s.AddBranch(ctx, Branch{ID: "br-x", DatabaseID: "proj-1", Kind: "weird"}); err == nil {
		t.Error("AddBranch with unknown kind succeeded")
	}
	if err := s.AddBranch(ctx, Branch{ID: "br-dev", DatabaseID: "proj-1", Kind: BranchDev}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate AddBranch = %v, want ErrConflict", err)
	}
	if err := s.AddBranch(ctx, Branch{ID: "br-y", DatabaseID: "nope", Kind: BranchDev}); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddBranch(unknown database) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteBranch(ctx, "proj-1", "br-dev"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBranch(ctx, "proj-1", "br-dev"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteBranch twice = %v, want ErrNotFound", err)
	}
	if l, _ := s.ListBranches(ctx, "proj-1"); len(l) != 2 {
		t.Errorf("after delete: %d branches", len(l))
	}
}

func TestAudit(t *testing.T) { forEachStore(t, testAudit) }

func testAudit(t *testing.T, s Store) {
	ctx := t.Context()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var entries []AuditEntry
	for i := range 30 {
		tenant := []string{"t1", "t2"}[i%2]
		tool := []string{"create_database", "checkpoint", "undo"}[i%3]
		e := AuditEntry{At: base.Add(time.Duration(i) * time.Second), TenantID: tenant, Tool: tool,
			Args: fmt.Sprintf(`{"i":%d}`, i), DatabaseID: "proj-1", Decision: "allow", Outcome: "ok",
			Error: "", DurationMS: int64(i), RequestID: fmt.Sprintf("req-%d", i), ID: 999}
		entries = append(entries, e)
	}
	// One by one, then in groups (one transaction each): the rows are the same either way.
	for _, e := range entries[:10] {
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, group := range [][]AuditEntry{entries[10:29], entries[29:], nil} {
		if err := s.AppendAudits(ctx, group); err != nil {
			t.Fatal(err)
		}
	}

	all, err := s.ListAudit(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 30 {
		t.Fatalf("ListAudit = %d rows", len(all))
	}
	ids := map[int64]bool{}
	for i, e := range all {
		if i > 0 && !e.At.Before(all[i-1].At) {
			t.Errorf("row %d not newest first: %v after %v", i, e.At, all[i-1].At)
		}
		if e.ID == 0 || e.ID == 999 || ids[e.ID] {
			t.Errorf("row %d: bad or duplicate id %d", i, e.ID)
		}
		ids[e.ID] = true
	}
	newest := all[0]
	want := AuditEntry{ID: newest.ID, At: base.Add(29 * time.Second), TenantID: "t2", Tool: "undo",
		Args: `{"i":29}`, DatabaseID: "proj-1", Decision: "allow", Outcome: "ok", DurationMS: 29, RequestID: "req-29"}
	if newest != want {
		t.Errorf("newest = %+v, want %+v", newest, want)
	}

	for _, c := range []struct {
		f    AuditFilter
		want int
	}{
		{AuditFilter{TenantID: "t1"}, 15},
		{AuditFilter{Tool: "undo"}, 10},
		{AuditFilter{TenantID: "t1", Tool: "undo"}, 5},
		{AuditFilter{TenantID: "t1", Limit: 4}, 4},
		{AuditFilter{TenantID: "nobody"}, 0},
	} {
		got, err := s.ListAudit(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != c.want {
			t.Errorf("ListAudit(%+v) = %d rows, want %d", c.f, len(got), c.want)
		}
		for _, e := range got {
			if (c.f.TenantID != "" && e.TenantID != c.f.TenantID) || (c.f.Tool != "" && e.Tool != c.f.Tool) {
				t.Errorf("ListAudit(%+v) returned %+v", c.f, e)
			}
		}
		if c.f.Limit == 4 && !got[0].At.Equal(base.Add(28*time.Second)) {
			t.Errorf("limited list does not start with the newest: %v", got[0].At)
		}
	}

	// Zero At means now.
	if err := s.AppendAudit(ctx, AuditEntry{TenantID: "t3"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListAudit(ctx, AuditFilter{TenantID: "t3"}); len(got) != 1 || time.Since(got[0].At) > time.Minute {
		t.Errorf("zero At stored as %+v", got)
	}
}

func TestAuditDefaultLimit(t *testing.T) { forEachStore(t, testAuditDefaultLimit) }

func testAuditDefaultLimit(t *testing.T, s Store) {
	ctx := t.Context()
	for range DefaultAuditLimit + 5 {
		if err := s.AppendAudit(ctx, AuditEntry{TenantID: "t1", Tool: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{0, -1} {
		if got, err := s.ListAudit(ctx, AuditFilter{Limit: limit}); err != nil || len(got) != DefaultAuditLimit {
			t.Errorf("Limit %d: %d rows, %v; want %d", limit, len(got), err, DefaultAuditLimit)
		}
	}
	if got, _ := s.ListAudit(ctx, AuditFilter{Limit: 5000}); len(got) != DefaultAuditLimit+5 {
		t.Errorf("Limit 5000: %d rows", len(got))
	}
	for in, want := range map[int]int{0: 100, -5: 100, 1: 1, 1000: 1000, 1001: 1000, 1 << 40: 1000} {
		if got := auditLimit(in); got != want {
			t.Errorf("auditLimit(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestAuditIDs(t *testing.T) {
	var g auditIDs
	now := time.Now()
	prev := int64(0)
	for range 10000 { // same instant: still strictly increasing
		id := g.next(now)
		if id <= prev {
			t.Fatalf("id %d after %d", id, prev)
		}
		prev = id
	}
	if later := g.next(now.Add(time.Second)); later>>auditSeqBits != now.Add(time.Second).UnixMicro() {
		t.Errorf("id %d does not carry its time", later)
	}

	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			local := make([]int64, 0, 1000)
			for range 1000 {
				local = append(local, g.next(time.Now()))
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if seen[id] {
					t.Errorf("duplicate id %d", id)
				}
				seen[id] = true
			}
		})
	}
	wg.Wait()
}

// TestTimesRoundTrip: every time comes back in UTC, equal to the input at microsecond precision.
func TestTimesRoundTrip(t *testing.T) { forEachStore(t, testTimesRoundTrip) }

func testTimesRoundTrip(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	in := time.Date(2025, 2, 3, 4, 5, 6, 789123456, zone) // nanoseconds are dropped
	want := in.Truncate(time.Microsecond)
	check := func(what string, got time.Time) {
		t.Helper()
		if got.Location() != time.UTC {
			t.Errorf("%s: location %v, want UTC", what, got.Location())
		}
		if !got.Equal(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}

	if _, _, err := s.ReserveDatabase(ctx, "t1", "app"); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteDatabase(ctx, Database{ID: "proj-1", TenantID: "t1", Name: "app", CreatedAt: in}); err != nil {
		t.Fatal(err)
	}
	db, err := s.GetDatabase(ctx, "t1", "proj-1")
	if err != nil {
		t.Fatal(err)
	}
	check("database created_at", db.CreatedAt)

	if err := s.AddCheckpoint(ctx, Checkpoint{ID: "s1", DatabaseID: "proj-1", CreatedAt: in}); err != nil {
		t.Fatal(err)
	}
	cps, _ := s.ListCheckpoints(ctx, "proj-1")
	check("checkpoint created_at", cps[0].CreatedAt)

	if err := s.AddBranch(ctx, Branch{ID: "b1", DatabaseID: "proj-1", Kind: BranchDev, ExpiresAt: &in, CreatedAt: in}); err != nil {
		t.Fatal(err)
	}
	brs, _ := s.ListBranches(ctx, "proj-1")
	check("branch created_at", brs[0].CreatedAt)
	check("branch expires_at", *brs[0].ExpiresAt)

	if err := s.AppendAudit(ctx, AuditEntry{At: in, TenantID: "t1"}); err != nil {
		t.Fatal(err)
	}
	aud, _ := s.ListAudit(ctx, AuditFilter{TenantID: "t1"})
	check("audit at", aud[0].At)

	if err := s.MarkDatabaseDeleted(ctx, "proj-1", in); err != nil {
		t.Fatal(err)
	}
	var deleted int64
	if err := rawDB(s).QueryRowContext(ctx, "SELECT deleted_at FROM databases WHERE id = $1", "proj-1").Scan(&deleted); err != nil {
		t.Fatal(err)
	}
	check("database deleted_at", fromMicros(deleted))
	if deleted != want.UnixMicro() {
		t.Errorf("stored %d, want unix microseconds %d", deleted, want.UnixMicro())
	}
	if tn, _ := s.GetTenant(ctx, "t1"); tn.CreatedAt.Location() != time.UTC {
		t.Errorf("tenant created_at location %v", tn.CreatedAt.Location())
	}
}

// TestConcurrentUse runs the guard's hot path from many goroutines; -race checks the rest.
func TestConcurrentUse(t *testing.T) { forEachStore(t, testConcurrentUse) }

func testConcurrentUse(t *testing.T, s Store) {
	addTenants(t, s)
	ctx := t.Context()
	createDB(t, s, "t1", "app", "proj-1")
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				if err := s.AppendAudit(ctx, AuditEntry{TenantID: "t1", Tool: "get"}); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.GetDatabase(ctx, "t1", "proj-1"); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.ListAudit(ctx, AuditFilter{TenantID: "t1", Limit: 10}); err != nil {
					t.Error(err)
					return
				}
				if err := s.AddCheckpoint(ctx, Checkpoint{ID: fmt.Sprintf("s-%d-%d", g, i), DatabaseID: "proj-1"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, _ := s.ListAudit(ctx, AuditFilter{Limit: 1000}); len(got) != 16*20 {
		t.Errorf("%d audit rows, want %d", len(got), 16*20)
	}
	if got, _ := s.ListCheckpoints(ctx, "proj-1"); len(got) != 16*20 {
		t.Errorf("%d checkpoints, want %d", len(got), 16*20)
	}
}

func TestCanceledContext(t *testing.T) { forEachStore(t, testCanceledContext) }

func testCanceledContext(t *testing.T, s Store) {
	addTenants(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.GetTenant(ctx, "t1"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetTenant(canceled) = %v", err)
	}
	if _, _, err := s.ReserveDatabase(ctx, "t1", "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("ReserveDatabase(canceled) = %v", err)
	}
	if err := s.AppendAudit(ctx, AuditEntry{TenantID: "t1"}); !errors.Is(err, context.Canceled) {
		t.Errorf("AppendAudit(canceled) = %v", err)
	}
	// The single writer connection is still usable afterwards.
	if _, created, err := s.ReserveDatabase(t.Context(), "t1", "x"); err != nil || !created {
		t.Errorf("ReserveDatabase after cancel = %v, %v", created, err)
	}
}

func BenchmarkAppendAudit(b *testing.B) {
	s, _ := openTest(b)
	ctx := b.Context()
	e := AuditEntry{TenantID: "t1", Tool: "create_database", Args: `{"name":"app"}`, DatabaseID: "proj-1",
		Decision: "allow", Outcome: "ok", DurationMS: 12, RequestID: "req-1"}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.AppendAudit(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendAuditParallel(b *testing.B) {
	s, _ := openTest(b)
	ctx := b.Context()
	e := AuditEntry{TenantID: "t1", Tool: "create_database", Args: `{"name":"app"}`, DatabaseID: "proj-1",
		Decision: "allow", Outcome: "ok", DurationMS: 12, RequestID: "req-1"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.AppendAudit(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchDB(b *testing.B) *SQLite {
	s, _ := openTest(b)
	addTenants(b, s)
	for i := range 1000 { // a realistically sized table, not a single row
		createDB(b, s, []string{"t1", "t2"}[i%2], fmt.Sprintf("app-%d", i), fmt.Sprintf("proj-%d", i))
	}
	return s
}

func BenchmarkGetDatabase(b *testing.B) {
	s := benchDB(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetDatabase(ctx, "t1", "proj-500"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetDatabaseParallel(b *testing.B) {
	s := benchDB(b)
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetDatabase(ctx, "t1", "proj-500"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
