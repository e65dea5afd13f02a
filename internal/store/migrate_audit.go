package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/pressly/goose/v3"
)

// auditRowidMigration is migration 6: it makes the audit row of every tool call cheaper to
// write by keeping fewer b-trees per row (each is one more WAL frame, or index entry, per
// commit), and orders every listing by id, which is time-ordered (auditIDs).
//
// SQLite: the table is rebuilt with id INTEGER PRIMARY KEY, so the id is the rowid and needs no
// separate unique index, and neither audit_at nor audit_tenant_at is kept: one b-tree a row
// instead of four, about half the CPU of an audit row (docs/benchmarks.md). Every listing
// reads the table newest first and stops at its limit; a tenant's listing skips other
// tenants' rows on the way (cheap for a tenant that made recent calls, a scan for one that
// made none lately; operators with many tenants and long audit trails use the PostgreSQL
// store). The rows are copied with their ids in the migration's transaction, so an
// interrupted upgrade leaves the old table as it was. PostgreSQL: audit_at is dropped and the
// tenant index becomes (tenant_id, id), so a tenant's listing reads it newest first.
//
// The DDL is spelled out here, not shared with the queries, because a migration must keep
// meaning what it meant when it shipped.
func auditRowidMigration(dialect goose.Dialect) *goose.Migration {
	if dialect != goose.DialectSQLite3 {
		return goose.NewGoMigration(6,
			&goose.GoFunc{RunTx: execAll(`DROP INDEX audit_at`, `DROP INDEX audit_tenant_at`,
				`CREATE INDEX audit_tenant_id ON audit (tenant_id, id)`)},
			&goose.GoFunc{RunTx: execAll(`DROP INDEX audit_tenant_id`,
				`CREATE INDEX audit_tenant_at ON audit (tenant_id, at)`, `CREATE INDEX audit_at ON audit (at)`)})
	}
	return goose.NewGoMigration(6,
		&goose.GoFunc{RunTx: rebuildAudit(`id INTEGER PRIMARY KEY`)},
		&goose.GoFunc{RunTx: rebuildAudit(`id BIGINT NOT NULL PRIMARY KEY`,
			`CREATE INDEX audit_tenant_at ON audit (tenant_id, at)`,
			`CREATE INDEX audit_at ON audit (at)`)})
}

// auditColumns are the audit table's columns after id, as 00001 made them.
const auditColumns = `at          BIGINT NOT NULL,
    tenant_id   TEXT   NOT NULL DEFAULT '',
    tool        TEXT   NOT NULL DEFAULT '',
    args        TEXT   NOT NULL DEFAULT '',
    database_id TEXT   NOT NULL DEFAULT '',
    decision    TEXT   NOT NULL DEFAULT '',
    outcome     TEXT   NOT NULL DEFAULT '',
    error       TEXT   NOT NULL DEFAULT '',
    duration_ms BIGINT NOT NULL DEFAULT 0,
    request_id  TEXT   NOT NULL DEFAULT ''`

// rebuildAudit replaces SQLite's audit table by one whose id column is idDef, rows and ids
// kept, then creates indexes. SQLite cannot change a primary key in place, hence the copy
// (its documented way: create, copy, drop, rename).
func rebuildAudit(idDef string, indexes ...string) func(context.Context, *sql.Tx) error {
	const names = `id, at, tenant_id, tool, args, database_id, decision, outcome, error,
duration_ms, request_id`
	return execAll(append([]string{
		`CREATE TABLE audit_rebuild (
    ` + idDef + `,
    ` + auditColumns + `
)`,
		// In id order, so the new b-tree is filled by appends.
		`INSERT INTO audit_rebuild (` + names + `) SELECT ` + names + ` FROM audit ORDER BY id`,
		`DROP TABLE audit`, // and its indexes
		`ALTER TABLE audit_rebuild RENAME TO audit`,
	}, indexes...)...)
}

// execAll runs statements in order in the migration's transaction.
func execAll(stmts ...string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				first, _, _ := strings.Cut(q, "\n")
				return fmt.Errorf("%s: %w", first, err)
			}
		}
		return nil
	}
}
