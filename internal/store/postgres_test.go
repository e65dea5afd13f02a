package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestPostgresConcurrentOpen: replicas starting together all open the store; the migration
// lock lets exactly one apply the schema.
func TestPostgresConcurrentOpen(t *testing.T) {
	dsn := pg.Server(t).NewDatabase(t)
	const n = 4
	stores := make([]*Postgres, n)
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			start.Wait()
			stores[i], errs[i] = OpenPostgres(t.Context(), dsn)
		})
	}
	start.Done()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	var version, applied int64
	if err := stores[0].r.QueryRowContext(t.Context(),
		"SELECT MAX(version_id), COUNT(*) FROM goose_db_version WHERE version_id > 0").Scan(&version, &applied); err != nil {
		t.Fatal(err)
	}
	if n := migrationCount(t); version != n || applied != n {
		t.Errorf("goose version %d with %d rows, want %d and %d", version, applied, n, n)
	}
}

func TestPostgresReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	dsn := pg.Server(t).NewDatabase(t)
	s, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureTenant(ctx, "t1", "pro"); err != nil {
		t.Fatal(err)
	}
	want := createDB(t, s, "t1", "app", "proj-1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openPostgresDSN(t, dsn)
	if got, err := s.GetDatabase(ctx, "t1", "proj-1"); err != nil || !equalDB(got, want) {
		t.Errorf("database after reopen: %+v, %v; want %+v", got, err, want)
	}
}

// TestPostgresReplicasShareState: two handles on one database behave as one store, including
// ReserveDatabase raced from both and audit ids drawn by both.
func TestPostgresReplicasShareState(t *testing.T) {
	ctx := t.Context()
	dsn := pg.Server(t).NewDatabase(t)
	replicas := []*Postgres{openPostgresDSN(t, dsn), openPostgresDSN(t, dsn)}
	addTenants(t, replicas[0])

	const n = 20
	created := make([]bool, n)
	dbs := make([]Database, n)
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			start.Wait()
			dbs[i], created[i], errs[i] = replicas[i%2].ReserveDatabase(ctx, "t1", "race")
		})
	}
	start.Done()
	wg.Wait()
	var createdCount int
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if created[i] {
			createdCount++
		}
		if !equalDB(dbs[i], dbs[0]) {
			t.Errorf("caller %d got %+v, caller 0 got %+v", i, dbs[i], dbs[0])
		}
	}
	if createdCount != 1 {
		t.Errorf("created=true %d times across replicas, want 1", createdCount)
	}

	for i := range 50 {
		for _, r := range replicas {
			if err := r.AppendAudit(ctx, AuditEntry{TenantID: "t1", Tool: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	all, err := replicas[1].ListAudit(ctx, AuditFilter{Limit: MaxAuditLimit})
	if err != nil || len(all) != 100 {
		t.Fatalf("ListAudit = %d rows, %v; want 100", len(all), err)
	}

	if err := replicas[0].CreateToken(ctx, Token{ID: "tok", TenantID: "t1", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := replicas[1].RevokeToken(ctx, "t1", "tok"); err != nil {
		t.Fatal(err)
	}
	if tok, err := replicas[0].TokenByHash(ctx, "h"); err != nil || tok.RevokedAt == nil {
		t.Errorf("revocation by one replica not seen by the other: %+v, %v", tok, err)
	}
}

// TestPostgresOpenErrorsHidePassword: neither a refused login nor a malformed DSN puts the
// password in the error.
func TestPostgresOpenErrorsHidePassword(t *testing.T) {
	srv := pg.Server(t)
	const secret = "Sup3r-s3cret-pw"
	cases := map[string]string{
		"wrong password": strings.Replace(srv.DSN("postgres"), srv.Password, secret, 1),
		"bad url":        "postgres://u:" + secret + "@127.0.0.1:notaport/db?sslmode=require",
		"bad keywords":   "host=127.0.0.1 port=notaport user=u password=" + secret,
		"quoted keyword": "host=127.0.0.1 port=notaport user=u password='" + secret + "'",
	}
	for name, dsn := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := OpenPostgres(t.Context(), dsn)
			if err == nil {
				_ = s.Close()
				t.Fatal("OpenPostgres succeeded")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), srv.Password) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestPostgresErrorMapping: PostgreSQL's constraint errors become the sentinels, and the
// driver error stays in the chain for logs.
func TestPostgresErrorMapping(t *testing.T) {
	s := openPostgres(t)
	addTenants(t, s)
	if err := s.AddCheckpoint(t.Context(), Checkpoint{ID: "c", DatabaseID: "missing"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddCheckpoint(unknown database) = %v, want ErrNotFound", err)
	}
	createDB(t, s, "t1", "app", "proj-1")
	if err := s.AddCheckpoint(t.Context(), Checkpoint{ID: "c", DatabaseID: "proj-1"}); err != nil {
		t.Fatal(err)
	}
	err := s.AddCheckpoint(t.Context(), Checkpoint{ID: "c", DatabaseID: "proj-1"})
	if !errors.Is(err, ErrConflict) || pgCode(err) != pgUniqueViolation {
		t.Errorf("duplicate AddCheckpoint = %v, want ErrConflict wrapping the unique violation", err)
	}
}

func BenchmarkPostgresAppendAudit(b *testing.B) {
	s := openPostgres(b)
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

func BenchmarkPostgresGetDatabase(b *testing.B) {
	s := openPostgres(b)
	addTenants(b, s)
	for i := range 1000 {
		createDB(b, s, []string{"t1", "t2"}[i%2], fmt.Sprintf("app-%d", i), fmt.Sprintf("proj-%d", i))
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetDatabase(ctx, "t1", "proj-500"); err != nil {
			b.Fatal(err)
		}
	}
}
