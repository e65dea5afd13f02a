package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

var _ Store = (*Postgres)(nil)

// Postgres is the hosted Store: several neonguard replicas share one PostgreSQL database. It
// runs the same migrations and the same SQL as SQLite (the methods are sqlStore's), through
// pgx's database/sql driver, so goose migrates it with the same *sql.DB.
//
// The DSN must reach PostgreSQL itself or a session-mode pooler: Locker's advisory locks belong
// to a session, which a transaction-mode pooler does not keep.
type Postgres struct {
	sqlStore // the Store methods, shared with SQLite
	locker   *pgLocker
}

// Pool sizes per replica. The store's queries are short; lock connections are counted apart
// (see pgLocker), so a replica uses at most pgMaxConns plus one per database being worked on.
const (
	pgMaxConns        = 16
	pgConnMaxIdleTime = 5 * time.Minute
	// Connections are renewed now and then so a failover or DNS change is followed.
	pgConnMaxLifetime = 30 * time.Minute
)

// OpenPostgres connects to the database dsn names (a postgres:// URL or key=value DSN, as pgx
// and libpq accept) and migrates it to the newest schema. Replicas starting together are safe:
// migrations run under a PostgreSQL advisory lock (goose's session locker), so one applies them
// and the others wait and then find nothing to do. Errors never contain the password.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	// pgx redacts the password from the DSN it quotes in a parse error.
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	// pgx's connection errors name host, user and database, never the password; so do ours.
	where := fmt.Sprintf("host=%s port=%d user=%s database=%s", cfg.Host, cfg.Port, cfg.User, cfg.Database)

	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(pgMaxConns)
	db.SetMaxIdleConns(pgMaxConns)
	db.SetConnMaxIdleTime(pgConnMaxIdleTime)
	db.SetConnMaxLifetime(pgConnMaxLifetime)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}

	// Retry the migration lock every second (goose's default is 5s) for up to 5 minutes.
	ml, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	if err := migrate(ctx, goose.DialectPostgres, db, goose.WithSessionLocker(ml)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open postgres (%s): %w", where, err)
	}

	p := &Postgres{locker: newPGLocker(cfg)}
	p.w, p.r = db, db // one pool: PostgreSQL has no single-writer constraint to work around
	return p, nil
}

// Close releases every lock still held through Locker, then closes the pools.
func (p *Postgres) Close() error {
	return errors.Join(p.locker.close(), p.close())
}

// PostgreSQL SQLSTATEs that map to the sentinels (see mapWriteErr).
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
)

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
