package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// The schema is embedded so the binary carries it; both engines run the same files.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrate brings db up to the newest schema. It uses a goose Provider (not goose's package
// globals) so concurrent stores, such as parallel tests, share no mutable state. opts add to
// the Provider's options (PostgreSQL: a session locker against concurrent replicas).
func migrate(ctx context.Context, dialect goose.Dialect, db *sql.DB, opts ...goose.ProviderOption) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	p, err := goose.NewProvider(dialect, db, fsys,
		append([]goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}, opts...)...)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	// No p.Close(): it would close db, which the caller owns.
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}
