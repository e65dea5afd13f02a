package guard_test

import (
	"testing"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/guard"
	"github.com/neonguard/neonguard/internal/identity"
)

// A principal that may only read cannot make run_sql write, whatever the server in front let
// through: refused before the database is even looked up.
func TestRunSQLWriteNeedsWriteAccess(t *testing.T) {
	e := newEnv(t)
	db := e.createDB(alice, "app")
	write := guard.RunSQLInput{DatabaseID: db.DatabaseID, SQL: "INSERT INTO t VALUES (1)"}
	for _, p := range []identity.Principal{
		{TenantID: alice, Scopes: []string{identity.ScopeRead}},
		{TenantID: alice, Scopes: []string{identity.ScopeAdmin}, ReadOnly: true},
	} {
		_, err := e.g.RunSQL(identity.NewContext(as(alice), p), write)
		ge := wantCode(t, err, errcode.Forbidden, "read_only=false")
		wantHint(t, ge, "read_only")
	}
	// A write principal gets past the access check: on a database that does not exist it is
	// NOT_FOUND, so the refusals above are the access check's.
	missing := write
	missing.DatabaseID = "no-such-db"
	_, err := e.g.RunSQL(identity.NewContext(as(alice), identity.Principal{TenantID: alice, Scopes: []string{identity.ScopeWrite}}), missing)
	wantCode(t, err, errcode.NotFound)
}
