package store

import (
	"context"
	"fmt"
)

const qGetDatabaseWithDeleted = `SELECT ` + dbColumns + ` FROM databases WHERE tenant_id = $1 AND id = $2`

// GetDatabaseWithDeleted returns the tenant's database with this id, deleted or not; a
// deleted one has DeletedAt set. Another tenant's id is ErrNotFound.
func (s *sqlStore) GetDatabaseWithDeleted(ctx context.Context, tenantID, databaseID string) (Database, error) {
	if databaseID == "" {
		return Database{}, fmt.Errorf("store: database: empty id: %w", ErrNotFound)
	}
	db, err := scanDatabase(s.r.QueryRowContext(ctx, qGetDatabaseWithDeleted, tenantID, databaseID))
	if err != nil {
		return Database{}, fmt.Errorf("store: database %q of tenant %q: %w", databaseID, tenantID, err)
	}
	return db, nil
}
