package store

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
)

// migrationEngine opens one engine's database without the store, so a test can move its schema
// to any version, and then as a Store on the newest schema.
type migrationEngine struct {
	name    string
	dialect goose.Dialect
	// raw opens a new, empty database and returns it with a function that opens a Store on it.
	raw func(t *testing.T) (*sql.DB, func(t *testing.T) Store)
	// auditIndexes lists the indexes on the audit table, sorted.
	auditIndexes string
}

var migrationEngines = []migrationEngine{
	{
		name:    "sqlite",
		dialect: goose.DialectSQLite3,
		raw: func(t *testing.T) (*sql.DB, func(t *testing.T) Store) {
			path := filepath.Join(t.TempDir(), "neonguard.db")
			db, err := sql.Open("sqlite", path+"?_journal_mode=WAL&_busy_timeout=5000")
			if err != nil {
				t.Fatal(err)
			}
			db.SetMaxOpenConns(1)
			t.Cleanup(func() { _ = db.Close() })
			return db, func(t *testing.T) Store {
				s, err := OpenSQLite(t.Context(), path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
		},
		auditIndexes: `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit' ORDER BY name`,
	},
	{
		name:    "postgres",
		dialect: goose.DialectPostgres,
		raw: func(t *testing.T) (*sql.DB, func(t *testing.T) Store) {
			dsn := pg.Server(t).NewDatabase(t)
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db, func(t *testing.T) Store { return openPostgresDSN(t, dsn) }
		},
		auditIndexes: `SELECT indexname FROM pg_indexes WHERE tablename = 'audit' ORDER BY indexname`,
	},
}

// TestAuditMigrationKeepsRows: a store at version 5 holding audit rows upgrades to migration 6
// with every row and id; Down restores the old shape with the rows, and Up works again.
func TestAuditMigrationKeepsRows(t *testing.T) {
	for _, eng := range migrationEngines {
		t.Run(eng.name, func(t *testing.T) {
			ctx := t.Context()
			db, open := eng.raw(t)
			p, err := newProvider(eng.dialect, db)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, 5); err != nil {
				t.Fatal(err)
			}
			want := fillOldAudit(t, db)
			oldIndexes := map[goose.Dialect][]string{
				goose.DialectSQLite3:  {"audit_at", "audit_tenant_at", "sqlite_autoindex_audit_1"},
				goose.DialectPostgres: {"audit_at", "audit_pkey", "audit_tenant_at"},
			}[eng.dialect]
			newIndexes := map[goose.Dialect][]string{
				goose.DialectSQLite3:  nil,
				goose.DialectPostgres: {"audit_pkey", "audit_tenant_id"},
			}[eng.dialect]
			checkIndexes(t, db, eng.auditIndexes, oldIndexes)

			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			checkIndexes(t, db, eng.auditIndexes, newIndexes)
			if eng.dialect == goose.DialectSQLite3 {
				checkIDIsRowid(t, db, true)
			}
			checkAuditRows(t, db, want)

			// The store reads them back and appends after them.
			s := open(t)
			got, err := s.ListAudit(ctx, AuditFilter{Limit: MaxAuditLimit})
			if err != nil || len(got) != len(want) {
				t.Fatalf("ListAudit after upgrade: %d rows, %v; want %d", len(got), err, len(want))
			}
			if err := s.AppendAudit(ctx, AuditEntry{TenantID: "t1", Tool: "after"}); err != nil {
				t.Fatal(err)
			}
			if got, err := s.ListAudit(ctx, AuditFilter{Limit: 1}); err != nil || len(got) != 1 || got[0].Tool != "after" {
				t.Fatalf("newest after upgrade: %+v, %v", got, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			want = readAuditRows(t, db)

			if _, err := p.DownTo(ctx, 5); err != nil {
				t.Fatalf("down: %v", err)
			}
			checkIndexes(t, db, eng.auditIndexes, oldIndexes)
			if eng.dialect == goose.DialectSQLite3 {
				checkIDIsRowid(t, db, false)
			}
			checkAuditRows(t, db, want)

			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
			checkIndexes(t, db, eng.auditIndexes, newIndexes)
			checkAuditRows(t, db, want)
		})
	}
}

// fillOldAudit writes audit rows the way the store did at version 5 (ids drawn by auditIDs) and
// returns them by id.
func fillOldAudit(t *testing.T, db *sql.DB) map[int64]AuditEntry {
	t.Helper()
	var ids auditIDs
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := map[int64]AuditEntry{}
	add := func(id int64, e AuditEntry) {
		e.ID = id
		if _, err := db.ExecContext(t.Context(), qAppendAudit, id, micros(e.At), e.TenantID, e.Tool,
			e.Args, e.DatabaseID, e.Decision, e.Outcome, e.Error, e.DurationMS, e.RequestID); err != nil {
			t.Fatal(err)
		}
		want[id] = e
	}
	for i := range 300 {
		at := base.Add(time.Duration(i) * time.Millisecond)
		add(ids.next(at), AuditEntry{At: at, TenantID: fmt.Sprintf("t%d", i%3), Tool: "list_databases",
			Args: fmt.Sprintf(`{"i":%d}`, i), DatabaseID: "proj-1", Decision: "allow", Outcome: "ok",
			Error: strings.Repeat("e", i%5), DurationMS: int64(i), RequestID: fmt.Sprintf("req-%d", i)})
	}
	// Another process's id from before, with every bit of the random part set.
	old := base.Add(-time.Hour)
	add(old.UnixMicro()<<auditSeqBits|(1<<auditSeqBits-1), AuditEntry{At: old, TenantID: "t1", Tool: "other"})
	return want
}

func readAuditRows(t *testing.T, db *sql.DB) map[int64]AuditEntry {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT id, at, tenant_id, tool, args, database_id,
decision, outcome, error, duration_ms, request_id FROM audit`)
	if err != nil {
		t.Fatal(err)
	}
	list, err := collect(rows, scanAudit)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]AuditEntry{}
	for _, e := range list {
		got[e.ID] = e
	}
	return got
}

func checkAuditRows(t *testing.T, db *sql.DB, want map[int64]AuditEntry) {
	t.Helper()
	got := readAuditRows(t, db)
	if len(got) != len(want) {
		t.Errorf("%d audit rows, want %d", len(got), len(want))
	}
	for id, w := range want {
		if g, ok := got[id]; !ok || !g.At.Equal(w.At) || func() bool { g.At, w.At = time.Time{}, time.Time{}; return g != w }() {
			t.Errorf("row %d = %+v (found %v), want %+v", id, got[id], ok, w)
		}
	}
}

func checkIndexes(t *testing.T, db *sql.DB, q string, want []string) {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(rows, func(r scanner) (string, error) {
		var s string
		return s, r.Scan(&s)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit indexes %q, want %q", got, want)
	}
}

// checkIDIsRowid checks whether SQLite's audit.id is the rowid (INTEGER PRIMARY KEY).
func checkIDIsRowid(t *testing.T, db *sql.DB, want bool) {
	t.Helper()
	var ddl string
	if err := db.QueryRowContext(t.Context(),
		`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit'`).Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	if got := strings.Contains(ddl, "id INTEGER PRIMARY KEY"); got != want {
		t.Errorf("audit.id is the rowid: %v, want %v; table: %s", got, want, ddl)
	}
}

// TestAuditListingPlans: with one b-tree left, every listing reads the rowid b-tree backwards
// (stopping at the limit) instead of sorting the table.
func TestAuditListingPlans(t *testing.T) {
	s, _ := openTest(t)
	for _, c := range []struct {
		f        AuditFilter
		want     string // in the plan
		wantScan bool   // a full scan is expected (read backwards, stopping at the limit)
	}{
		{AuditFilter{}, "SCAN audit", true},
		{AuditFilter{Tool: "undo"}, "SCAN audit", true},
		{AuditFilter{TenantID: "t1"}, "SCAN audit", true},
		{AuditFilter{TenantID: "t1", Tool: "undo"}, "SCAN audit", true},
	} {
		q, args := listAuditQuery(c.f, DefaultAuditLimit)
		rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		details, err := collect(rows, func(r scanner) (string, error) {
			var id, parent, unused int
			var detail string
			return detail, r.Scan(&id, &parent, &unused, &detail)
		})
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(details, "; ")
		if !strings.Contains(plan, c.want) || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%+v: plan %q, want %q and no temp b-tree", c.f, plan, c.want)
		}
	}
}

// TestAuditListingPlansPostgres: the same on PostgreSQL, on a table large enough for the planner
// to prefer the indexes (a tenant with 0.5 % of the rows, more than the limit, which reading the
// primary key backwards would find only after ~20,000 rows): no Sort node.
func TestAuditListingPlansPostgres(t *testing.T) {
	s := openPostgres(t)
	ctx := t.Context()
	if _, err := s.w.ExecContext(ctx, `INSERT INTO audit (id, at, tenant_id, tool)
SELECT i, i, 't' || CAST(i % 200 AS TEXT), 'list_databases' FROM generate_series(1, 100000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `ANALYZE audit`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    AuditFilter
		want string
	}{
		{AuditFilter{}, "Index Scan Backward using audit_pkey"},
		{AuditFilter{TenantID: "t1"}, "Index Scan Backward using audit_tenant_id"},
	} {
		q, args := listAuditQuery(c.f, DefaultAuditLimit)
		rows, err := s.r.QueryContext(ctx, "EXPLAIN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := collect(rows, func(r scanner) (string, error) {
			var l string
			return l, r.Scan(&l)
		})
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		sorts := strings.Count(plan, "Sort  (") - strings.Count(plan, "Incremental Sort  (")
		if !strings.Contains(plan, c.want) || sorts > 0 {
			t.Errorf("%+v: plan\n%s\nwant %q and no Sort", c.f, plan, c.want)
		}
	}
}
