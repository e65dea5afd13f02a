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

// migrate brings db up to the newest schema. opts add to the Provider's options (PostgreSQL: a
// session locker against concurrent replicas).
func migrate(ctx context.Context, dialect goose.Dialect, db *sql.DB, opts ...goose.ProviderOption) error {
	p, err := newProvider(dialect, db, opts...)
	if err != nil {
		return err
	}
	// No p.Close(): it would close db, which the caller owns.
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// newProvider is the migration provider for db: the SQL files of migrations/ and the Go
// migrations (goMigrations) in one sequence of versions; goose refuses a version that both
// define. It uses a goose Provider (not goose's package globals) so concurrent stores, such as
// parallel tests, share no mutable state.
func newProvider(dialect goose.Dialect, db *sql.DB, opts ...goose.ProviderOption) (*goose.Provider, error) {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	p, err := goose.NewProvider(dialect, db, fsys,
		append([]goose.ProviderOption{
			goose.WithDisableGlobalRegistry(true),
			goose.WithGoMigrations(goMigrations(dialect)...),
		}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	return p, nil
}

// goMigrations are the schema changes whose DDL differs between the engines, which a goose SQL
// file cannot express (it has no per-dialect sections). Their versions continue the files'
// numbering: the next SQL file after them is 00007.
func goMigrations(dialect goose.Dialect) []*goose.Migration {
	return []*goose.Migration{auditRowidMigration(dialect)}
}
