package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// hotCalls runs every Store method whose query is prepared (hotReads, hotWrites), checking what
// it returns, so the same calls prove the prepared path (SQLite) and the query-string path
// (PostgreSQL) agree.
func hotCalls(t *testing.T, s Store) map[string]func() error {
	ctx := t.Context()
	return map[string]func() error{
		qGetTenant: func() error { _, err := s.GetTenant(ctx, "t1"); return err },
		qGetDatabase: func() error {
			d, err := s.GetDatabase(ctx, "t1", "proj-1")
			if err == nil && d.Name != "app" {
				t.Errorf("GetDatabase = %+v", d)
			}
			return err
		},
		qListDatabases: func() error {
			ds, err := s.ListDatabases(ctx, "t1")
			if err == nil && len(ds) != 1 {
				t.Errorf("ListDatabases = %+v", ds)
			}
			return err
		},
		qTokenByHash: func() error {
			tok, err := s.TokenByHash(ctx, strings.Repeat("ab", 32))
			if err == nil && tok.ID != "tok-1" {
				t.Errorf("TokenByHash = %+v", tok)
			}
			return err
		},
		qListCheckpoints: func() error {
			cs, err := s.ListCheckpoints(ctx, "proj-1")
			if err == nil && len(cs) != 1 {
				t.Errorf("ListCheckpoints = %+v", cs)
			}
			return err
		},
		qListBranches: func() error {
			bs, err := s.ListBranches(ctx, "proj-1")
			if err == nil && len(bs) != 1 {
				t.Errorf("ListBranches = %+v", bs)
			}
			return err
		},
		qListAlerts: func() error { _, err := s.ListAlerts(ctx, "proj-1", time.Now()); return err },
		qLatestUsageSample: func() error {
			// No sample was seeded: not found is its answer.
			if _, err := s.LatestUsageSample(ctx, "proj-1"); !errors.Is(err, ErrNotFound) {
				return err
			}
			return nil
		},
		qAppendAudit: func() error {
			return s.AppendAudit(ctx, AuditEntry{TenantID: "t1", Tool: "list_databases", Args: "{}"})
		},
		qOpenIntents: func() error {
			ins, err := s.OpenIntents(ctx, "proj-1")
			if err == nil && len(ins) != 1 {
				t.Errorf("OpenIntents(proj-1) = %+v", ins)
			}
			return err
		},
		qAllOpenIntent: func() error {
			ins, err := s.OpenIntents(ctx, "")
			if err == nil && len(ins) != 1 {
				t.Errorf("OpenIntents() = %+v", ins)
			}
			return err
		},
	}
}

func seedHot(t *testing.T, s Store) {
	ctx := t.Context()
	addTenants(t, s)
	createDB(t, s, "t1", "app", "proj-1")
	if err := s.CreateToken(ctx, Token{ID: "tok-1", TenantID: "t1", Hash: strings.Repeat("ab", 32), Scopes: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCheckpoint(ctx, Checkpoint{ID: "snap-1", DatabaseID: "proj-1", Name: "cp", BranchID: "br-root-proj-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddBranch(ctx, Branch{ID: "br-dev", DatabaseID: "proj-1", Name: "dev", Kind: BranchDev}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddIntent(ctx, Intent{ID: "in-1", TenantID: "t1", DatabaseID: "proj-1", Kind: "k", Payload: "{}"}); err != nil {
		t.Fatal(err)
	}
}

// TestHotQueries: every hot query answers the same on both engines, repeatedly (a prepared
// statement is reused, on SQLite by concurrent callers too).
func TestHotQueries(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		seedHot(t, s)
		calls := hotCalls(t, s)
		if len(calls) != len(hotReads)+len(hotWrites) {
			t.Fatalf("hotCalls covers %d queries, hotReads and hotWrites hold %d", len(calls), len(hotReads)+len(hotWrites))
		}
		for q, call := range calls {
			for range 3 {
				if err := call(); err != nil {
					t.Errorf("%.40s…: %v", q, err)
				}
			}
		}
		done := make(chan error)
		for range 8 {
			go func() {
				for _, call := range calls {
					if err := call(); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
		}
		for range 8 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})
}

// TestHotQueriesUsePreparedStatements: on SQLite every hot query runs through its prepared
// statement, on the pool it must use (OpenIntents on the writer). Closing a statement makes
// the method that uses it fail, which proves the path.
func TestHotQueriesUsePreparedStatements(t *testing.T) {
	s, _ := openTest(t)
	seedHot(t, s)
	for _, q := range hotReads {
		if s.stmt(s.r, q) == nil {
			t.Errorf("not prepared on the read pool: %.60s", q)
		}
	}
	for _, q := range hotWrites {
		if s.stmt(s.w, q) == nil {
			t.Errorf("not prepared on the writer: %.60s", q)
		}
	}
	for q, call := range hotCalls(t, s) {
		db := s.r
		if s.stmt(db, q) == nil {
			db = s.w
		}
		st := s.stmt(db, q)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if err := call(); err == nil || !strings.Contains(err.Error(), "statement is closed") {
			t.Errorf("%.40s…: with its statement closed: %v, want the closed statement's error", q, err)
		}
	}
}
