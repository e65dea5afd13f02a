package operator

import (
	"context"
	"errors"
	"time"

	"github.com/neonguard/neonguard/internal/guard"
)

// DatabaseAdmin is what the operator's database operations need from the guard.
type DatabaseAdmin interface {
	DeleteDatabase(ctx context.Context, in guard.DeleteDatabaseInput) (*guard.DeleteDatabaseResult, error)
	InactiveDatabases(ctx context.Context, tenant string, cutoff time.Time) ([]guard.InactiveDatabase, error)
}

var errNoDatabases = errors.New("tenants: database operations are not wired (no guard)")

// DeleteDatabase deletes a tenant's database on Neon and in the record; confirmName must
// repeat the database's name. Deleting it again succeeds with Deleted=false.
func (s *Service) DeleteDatabase(ctx context.Context, tenant, databaseID, confirmName string) (*guard.DeleteDatabaseResult, error) {
	if s.Databases == nil {
		return nil, errNoDatabases
	}
	return s.Databases.DeleteDatabase(ctx, guard.DeleteDatabaseInput{TenantID: tenant, DatabaseID: databaseID, ConfirmName: confirmName})
}

// InactiveDatabases lists the databases of tenant ("" = all) without compute activity for
// the last `days` days, least recently active first.
func (s *Service) InactiveDatabases(ctx context.Context, tenant string, days int, now time.Time) ([]guard.InactiveDatabase, error) {
	if s.Databases == nil {
		return nil, errNoDatabases
	}
	if days < 0 {
		return nil, invalid("days must be 0 or more", "e.g. --days 30")
	}
	return s.Databases.InactiveDatabases(ctx, tenant, now.Add(-time.Duration(days)*24*time.Hour))
}
