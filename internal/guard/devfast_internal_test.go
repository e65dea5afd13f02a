package guard

import (
	"testing"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/store"
)

// TestPooledURI: the create's connection_uris give the pooled URI only when they are for the
// database's role and database on the one read-write compute; otherwise the guard asks Neon.
func TestPooledURI(t *testing.T) {
	db := store.Database{RoleName: "neondb_owner", DatabaseName: "neondb"}
	const direct = "postgresql://neondb_owner:npg_x@ep-a-1.c-2.aws.neon.tech/neondb?sslmode=require"
	details := func(uri, role, database, host, pooler string) *neon.CreatedBranch {
		return &neon.CreatedBranch{Endpoints: []neon.Endpoint{{Type: neon.EndpointReadWrite}},
			ConnectionURIs: []neon.ConnectionDetails{{ConnectionURI: uri,
				ConnectionParameters: neon.ConnectionParameters{Role: role, Database: database, Host: host, PoolerHost: pooler}}}}
	}
	for _, tc := range []struct {
		name    string
		created *neon.CreatedBranch
		want    string
	}{
		{"pooler host given", details(direct, "neondb_owner", "neondb", "ep-a-1.c-2.aws.neon.tech", "ep-a-1-pooler.c-2.aws.neon.tech"),
			"postgresql://neondb_owner:npg_x@ep-a-1-pooler.c-2.aws.neon.tech/neondb?sslmode=require"},
		{"pooler host derived", details(direct, "neondb_owner", "neondb", "ep-a-1.c-2.aws.neon.tech", ""),
			"postgresql://neondb_owner:npg_x@ep-a-1-pooler.c-2.aws.neon.tech/neondb?sslmode=require"},
		{"with a port (the emulator)", details("postgresql://neondb_owner:pw@127.0.0.1:5433/neondb?sslmode=require", "neondb_owner", "neondb", "127.0.0.1", "127.0.0.1"),
			"postgresql://neondb_owner:pw@127.0.0.1:5433/neondb?sslmode=require"},
		{"another role", details(direct, "other", "neondb", "ep-a-1.c-2.aws.neon.tech", ""), ""},
		{"another database", details(direct, "neondb_owner", "other", "ep-a-1.c-2.aws.neon.tech", ""), ""},
		{"uri not of the host", details(direct, "neondb_owner", "neondb", "ep-b-2.c-2.aws.neon.tech", ""), ""},
		{"uri of another role", details("postgresql://x:npg_x@ep-a-1.c-2.aws.neon.tech/neondb", "neondb_owner", "neondb", "ep-a-1.c-2.aws.neon.tech", ""), ""},
		{"no compute", &neon.CreatedBranch{ConnectionURIs: details(direct, "neondb_owner", "neondb", "ep-a-1.c-2.aws.neon.tech", "").ConnectionURIs}, ""},
		{"no uris", &neon.CreatedBranch{Endpoints: []neon.Endpoint{{Type: neon.EndpointReadWrite}}}, ""},
		{"recovered (nil)", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pooledURI(tc.created, db); got != tc.want {
				t.Errorf("pooledURI = %q, want %q", got, tc.want)
			}
		})
	}
}
