package guard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/sqlguard"
	"github.com/neonguard/neonguard/internal/store"
	"github.com/neonguard/neonguard/internal/truncate"
)

// The migration ledger lives in the database itself, so it travels with every branch, restore
// and undo: a branch's ledger always describes that branch's schema.
const (
	ledgerSchema = `CREATE SCHEMA IF NOT EXISTS neonguard;
CREATE TABLE IF NOT EXISTS neonguard.migrations (
    version            bigint      PRIMARY KEY,
    name               text        NOT NULL UNIQUE,
    checksum           text        NOT NULL,
    statements         integer     NOT NULL,
    applied_at         timestamptz NOT NULL DEFAULT now(),
    restore_point_time timestamptz NOT NULL,
    restore_point_lsn  text        NOT NULL
)`
	// ledgerLock serializes migrations of one database (a transaction-level advisory lock).
	ledgerLock  = `SELECT pg_advisory_xact_lock(hashtext('neonguard.migrations'))`
	ledgerList  = `SELECT version, name, checksum, statements, applied_at, restore_point_time, restore_point_lsn FROM neonguard.migrations ORDER BY version`
	ledgerByKey = `SELECT version, name, checksum, statements, applied_at, restore_point_time, restore_point_lsn FROM neonguard.migrations WHERE name = $1`
	ledgerAdd   = `INSERT INTO neonguard.migrations (version, name, checksum, statements, restore_point_time, restore_point_lsn)
SELECT coalesce(max(version), 0) + 1, $1, $2, $3, $4, $5 FROM neonguard.migrations
RETURNING version, applied_at`
	ledgerExists = `SELECT to_regclass('neonguard.migrations') IS NOT NULL`
)

// ApplyMigrationInput is apply_migration's input.
type ApplyMigrationInput struct {
	DatabaseID string
	Name       string
	SQL        string
	Branch     string // name or id; empty = main
	Confirm    bool   // runs destructive statements on main
	DryRun     bool   // rehearses it on a temporary branch of Branch, deleted afterwards
}

// Migration is one entry of a branch's migration ledger.
type Migration struct {
	Version      int64        `json:"version"`
	Name         string       `json:"name"`
	Checksum     string       `json:"checksum" jsonschema_description:"SHA-256 of the migration's SQL"`
	Statements   int          `json:"statements"`
	AppliedAt    time.Time    `json:"applied_at"`
	RestorePoint RestorePoint `json:"restore_point" jsonschema_description:"the database just before the migration: undo_to_time with its time reverts it"`
}

// ApplyMigrationResult is apply_migration's result.
type ApplyMigrationResult struct {
	DatabaseID    string   `json:"database_id"`
	Branch        string   `json:"branch"`
	Applied       bool     `json:"applied" jsonschema_description:"false when a migration of this name and SQL was applied before (nothing ran)"`
	Destructive   []string `json:"destructive" jsonschema_description:"the destructive statements it ran"`
	SchemaChanges []string `json:"schema_changes"`
	DryRun        bool     `json:"dry_run,omitempty" jsonschema_description:"ran on a temporary copy, since deleted: nothing was changed or recorded"`
	Migration
}

// ListMigrationsResult is list_migrations' result.
type ListMigrationsResult struct {
	DatabaseID string      `json:"database_id"`
	Branch     string      `json:"branch"`
	Migrations []Migration `json:"migrations" jsonschema_description:"oldest first"`
}

// ApplyMigration runs a migration on a branch in one transaction and records it in the
// branch's ledger, with the restore point taken just before it. The same name with the same SQL
// is applied once; the same name with other SQL is refused.
func (g *Guard) ApplyMigration(ctx context.Context, in ApplyMigrationInput) (*ApplyMigrationResult, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkName("name", in.Name); err != nil {
		return nil, err
	}
	analysis, err := analyzeSQL(in.SQL)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(in.SQL))
	checksum := hex.EncodeToString(sum[:])
	if in.DryRun {
		return g.dryRunMigration(ctx, c, in, analysis, checksum)
	}
	t, err := g.sqlTarget(ctx, c, in.DatabaseID, in.Branch)
	if err != nil {
		return nil, err
	}
	if err := checkWrite(c, t, analysis, in.Confirm); err != nil {
		return nil, err
	}
	out := newMigrationResult(t.db.ID, t.branch, analysis)
	if err := g.migrate(ctx, t, c.tier.SQL.WithDefaults(), in, analysis, checksum, true, out); err != nil {
		return nil, err
	}
	return out, nil
}

func newMigrationResult(databaseID, branch string, analysis sqlguard.Analysis) *ApplyMigrationResult {
	out := &ApplyMigrationResult{DatabaseID: databaseID, Branch: branch, Destructive: []string{}, SchemaChanges: []string{}}
	for _, s := range analysis.Destructive() {
		out.Destructive = append(out.Destructive, truncate.UTF8(s.Text, 200))
	}
	return out
}

// migrate takes a restore point on t's branch and runs the migration there in one transaction
// with its ledger entry, filling out. Without commit (a dry run) the transaction is rolled
// back: out says what it did and would record.
func (g *Guard) migrate(ctx context.Context, t sqlTarget, limits policy.SQLLimits, in ApplyMigrationInput, analysis sqlguard.Analysis,
	checksum string, commit bool, out *ApplyMigrationResult) error {
	var rp *RestorePoint
	first := func(conn *pgx.Conn) (err error) {
		if rp, err = takeRestorePoint(ctx, conn); err != nil {
			return sqlError(err, false)
		}
		return nil
	}
	return g.withSQL(ctx, t, limits, false, nil, first, func(conn *pgx.Conn) error {
		return migrateTx(ctx, conn, rp, in, analysis, checksum, commit, out)
	})
}

// migrateTx is migrate's transaction, after the restore point rp.
func migrateTx(ctx context.Context, conn *pgx.Conn, rp *RestorePoint, in ApplyMigrationInput, analysis sqlguard.Analysis,
	checksum string, commit bool, out *ApplyMigrationResult) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return sqlError(err, false)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for _, q := range []string{ledgerLock, ledgerSchema} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return sqlError(err, false)
		}
	}
	prev, err := scanMigration(tx.QueryRow(ctx, ledgerByKey, in.Name))
	switch {
	case err == nil && prev.Checksum == checksum:
		out.Migration, out.Applied = prev, false
		return nil
	case err == nil:
		return invalid(fmt.Sprintf("migration %q was applied as version %d with other SQL", in.Name, prev.Version),
			"give a changed migration a new name; list_migrations shows the ledger")
	case !errors.Is(err, pgx.ErrNoRows):
		return sqlError(err, false)
	}
	before, err := schemaOf(ctx, tx)
	if err != nil {
		return sqlError(err, false)
	}
	if _, err := tx.Exec(ctx, in.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return sqlError(err, false)
	}
	after, err := schemaOf(ctx, tx)
	if err != nil {
		return sqlError(err, false)
	}
	out.SchemaChanges = diffSchema(before, after)
	m := Migration{Name: in.Name, Checksum: checksum, Statements: len(analysis.Statements), RestorePoint: *rp}
	if err := tx.QueryRow(ctx, ledgerAdd, m.Name, m.Checksum, m.Statements, rp.Time, rp.LSN).Scan(&m.Version, &m.AppliedAt); err != nil {
		return sqlError(err, false)
	}
	if commit {
		if err := tx.Commit(ctx); err != nil {
			return sqlError(err, false)
		}
	}
	m.AppliedAt = m.AppliedAt.UTC()
	out.Migration, out.Applied = m, true
	return nil
}

// ListMigrations lists a branch's migration ledger, oldest first.
func (g *Guard) ListMigrations(ctx context.Context, in DatabaseBranchInput) (*ListMigrationsResult, error) {
	var list []Migration
	t, err := g.readBranch(ctx, in.DatabaseID, in.Branch, func(conn *pgx.Conn) error {
		list = []Migration{}
		var exists bool
		if err := conn.QueryRow(ctx, ledgerExists).Scan(&exists); err != nil {
			return sqlError(err, true)
		}
		if !exists {
			return nil
		}
		rows, err := conn.Query(ctx, ledgerList)
		if err != nil {
			return sqlError(err, true)
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMigration(rows)
			if err != nil {
				return sqlError(err, true)
			}
			list = append(list, m)
		}
		if err := rows.Err(); err != nil {
			return sqlError(err, true)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ListMigrationsResult{DatabaseID: t.db.ID, Branch: t.branch, Migrations: list}, nil
}

// DatabaseBranchInput names a branch of one of the caller's databases.
type DatabaseBranchInput struct {
	DatabaseID string
	Branch     string // name or id; empty = main
}

func scanMigration(row pgx.Row) (Migration, error) {
	var m Migration
	err := row.Scan(&m.Version, &m.Name, &m.Checksum, &m.Statements, &m.AppliedAt, &m.RestorePoint.Time, &m.RestorePoint.LSN)
	m.AppliedAt, m.RestorePoint.Time = m.AppliedAt.UTC(), m.RestorePoint.Time.UTC()
	return m, err
}

// analyzeSQL parses SQL for a write: syntax errors and transaction control are refused.
func analyzeSQL(sql string) (sqlguard.Analysis, error) {
	analysis, err := sqlguard.Analyze(sql)
	var syntax *sqlguard.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return analysis, invalid("syntax error: "+syntax.Error(), "fix the SQL; PostgreSQL's parser reads it")
	case errors.Is(err, sqlguard.ErrEmpty):
		return analysis, invalid("sql has no statement", "pass one or more SQL statements")
	case err != nil:
		return analysis, err
	}
	for _, s := range analysis.Statements {
		if s.Command == "TRANSACTION" {
			return analysis, invalid("transaction control (BEGIN, COMMIT, ROLLBACK, …) is not allowed",
				"leave it out: all statements run in one transaction, all or nothing")
		}
	}
	return analysis, nil
}

// sqlTarget is the branch SQL runs on, with its compute up and its connection URI.
type sqlTarget struct {
	db       store.Database
	branch   string // name
	branchID string
	onMain   bool
	uri      string
}

func (g *Guard) sqlTarget(ctx context.Context, c caller, databaseID, branch string) (sqlTarget, error) {
	db, org, err := g.database(ctx, c, databaseID)
	if err != nil {
		return sqlTarget{}, err
	}
	st, err := g.state(ctx, org, db)
	if err != nil {
		return sqlTarget{}, err
	}
	b, err := st.resolve(branch)
	if err != nil {
		return sqlTarget{}, err
	}
	if err := g.ensureCompute(ctx, c, org, db, b.ID); err != nil {
		return sqlTarget{}, err
	}
	uri, err := g.connectionURI(ctx, org, db, b.ID, false)
	if err != nil {
		return sqlTarget{}, err
	}
	return sqlTarget{db: db, branch: b.Name, branchID: b.ID, onMain: b.ID == st.main.ID, uri: uri}, nil
}

// readBranch resolves the caller's branch and runs read on a read-only connection to it, within
// the tier's statement timeout. read is the guard's own catalog reading, which changes nothing:
// should a kept connection turn out dead (the compute restarted), it runs again on a new one.
func (g *Guard) readBranch(ctx context.Context, databaseID, branch string, read func(*pgx.Conn) error) (sqlTarget, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return sqlTarget{}, err
	}
	t, err := g.sqlTarget(ctx, c, databaseID, branch)
	if err != nil {
		return sqlTarget{}, err
	}
	if err := g.withSQL(ctx, t, c.tier.SQL.WithDefaults(), true, nil, read, nil); err != nil {
		return sqlTarget{}, err
	}
	return t, nil
}

// schemaOf is the user schema as "kind name → description" (tables, views, columns with their
// types, indexes, constraints), outside PostgreSQL's own schemas and neonguard's ledger.
func schemaOf(ctx context.Context, tx pgx.Tx) (map[string]string, error) {
	const q = `
SELECT 'table ' || n.nspname || '.' || c.relname, CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'neonguard') AND n.nspname NOT LIKE 'pg_toast%'
UNION ALL
SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'neonguard') AND n.nspname NOT LIKE 'pg_toast%'
UNION ALL
SELECT 'index ' || n.nspname || '.' || c.relname, pg_get_indexdef(c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'i' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'neonguard') AND n.nspname NOT LIKE 'pg_toast%'
UNION ALL
SELECT 'constraint ' || n.nspname || '.' || r.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'neonguard')`
	rows, err := tx.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// diffSchema says what changed between two schemaOf snapshots, sorted.
func diffSchema(before, after map[string]string) []string {
	out := []string{}
	for k, v := range after {
		switch old, ok := before[k]; {
		case !ok:
			out = append(out, k+" added ("+v+")")
		case old != v:
			out = append(out, k+" changed ("+old+" → "+v+")")
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, k+" removed")
		}
	}
	slices.Sort(out)
	return out
}

// UndoMigrationInput is undo_migration's input.
type UndoMigrationInput struct {
	DatabaseID string
	Version    int64
	Branch     string // name or id; empty = main
	Confirm    bool   // also undoes the migrations applied after it
}

// UndoMigrationResult is undo_migration's result.
type UndoMigrationResult struct {
	Migration Migration  `json:"migration" jsonschema_description:"the migration undone"`
	Undone    []string   `json:"undone" jsonschema_description:"every migration undone: this one and those after it"`
	Undo      UndoResult `json:"undo" jsonschema_description:"the in-place restore that undid it (backup branch kept, connection string unchanged)"`
}

// UndoMigration restores the branch in place to the migration's restore point, through the same
// path as undo_to_time. Migrations applied after it are undone too, so they need confirm.
func (g *Guard) UndoMigration(ctx context.Context, in UndoMigrationInput) (*UndoMigrationResult, error) {
	list, err := g.ListMigrations(ctx, DatabaseBranchInput{DatabaseID: in.DatabaseID, Branch: in.Branch})
	if err != nil {
		return nil, err
	}
	var target *Migration
	var undone, later []string
	for i, m := range list.Migrations {
		switch {
		case m.Version == in.Version:
			target = &list.Migrations[i]
			undone = append(undone, m.Name)
		case target != nil:
			later = append(later, fmt.Sprintf("%d %s", m.Version, m.Name))
			undone = append(undone, m.Name)
		}
	}
	if target == nil {
		return nil, errcode.New(errcode.NotFound, fmt.Sprintf("no migration version %d on branch %s", in.Version, list.Branch),
			"call list_migrations to see the versions")
	}
	if len(later) > 0 && !in.Confirm {
		return nil, errcode.New(errcode.ConfirmationRequired,
			fmt.Sprintf("undoing migration %d also undoes the migrations applied after it: %s", in.Version, strings.Join(later, ", ")),
			"call undo_migration again with confirm=true to undo them all, or undo the latest first")
	}
	at := target.RestorePoint.Time
	res, err := g.UndoToTime(ctx, UndoInput{DatabaseID: in.DatabaseID, Timestamp: &at, Branch: in.Branch})
	if ge := errcode.As(err); ge != nil && ge.Code == errcode.RestoreWindow {
		ge.Message = fmt.Sprintf("migration %d (%s) was applied at %s, outside the restore window: %s", target.Version, target.Name,
			at.Format(time.RFC3339), ge.Message)
		if cp := g.checkpointBefore(ctx, in.DatabaseID, at); cp != "" {
			ge.Hint = fmt.Sprintf("checkpoint %q was taken before it: restore_checkpoint goes back to it (later changes are lost)", cp)
		}
		return nil, ge
	}
	if err != nil {
		return nil, err
	}
	return &UndoMigrationResult{Migration: *target, Undone: undone, Undo: *res}, nil
}

// checkpointBefore names the newest checkpoint taken before t, or "".
func (g *Guard) checkpointBefore(ctx context.Context, databaseID string, t time.Time) string {
	list, err := g.ListCheckpoints(ctx, DatabaseInput{DatabaseID: databaseID})
	if err != nil {
		return ""
	}
	name := ""
	for _, cp := range list.Checkpoints { // oldest first
		if cp.CreatedAt.Before(t) {
			name = cp.Name
		}
	}
	return name
}
