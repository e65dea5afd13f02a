package store

import "strconv"

// SQL shared by every engine. It uses $n placeholders, which PostgreSQL requires and
// modernc.org/sqlite binds by ordinal (TestPlaceholders proves it), and only syntax both engines
// accept (ON CONFLICT … DO NOTHING, COALESCE, NULLIF), so the PostgreSQL twin reuses these
// strings unchanged and differs only in connection setup and error mapping.
const (
	qEnsureTenant = `INSERT INTO tenants (id, tier, created_at) VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING`
	qGetTenant     = `SELECT id, tier, created_at FROM tenants WHERE id = $1`
	qListTenants   = `SELECT id, tier, created_at FROM tenants ORDER BY id`
	qSetTenantTier = `UPDATE tenants SET tier = $2 WHERE id = $1`

	// The conflict target repeats the partial index's predicate so both engines pick it.
	qReserveDatabase = `INSERT INTO databases (tenant_id, name, created_at) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, name) WHERE deleted_at IS NULL DO NOTHING`

	dbColumns = `COALESCE(id, ''), tenant_id, name, org_id, root_branch_id, region_id,
pg_version, role_name, database_name, created_at, deleted_at`

	qGetLiveDatabaseByName = `SELECT ` + dbColumns + ` FROM databases
WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL`
	qGetDatabase = `SELECT ` + dbColumns + ` FROM databases
WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`
	qListDatabases = `SELECT ` + dbColumns + ` FROM databases
WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, name`
	qCountDatabases = `SELECT COUNT(*) FROM databases WHERE tenant_id = $1 AND deleted_at IS NULL`

	// Completing is idempotent: the row may be a reservation (id NULL) or already carry this id.
	// created_at keeps the reservation's time unless the caller supplies one ($10 NULL); the
	// CAST tells PostgreSQL the parameter's type, which it cannot infer from COALESCE alone.
	qCompleteDatabase = `UPDATE databases SET id = $3, org_id = $4, root_branch_id = $5,
region_id = $6, pg_version = $7, role_name = $8, database_name = $9,
created_at = COALESCE(CAST($10 AS BIGINT), created_at)
WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL AND (id IS NULL OR id = $3)`
	qSetRootBranch = `UPDATE databases SET root_branch_id = $2 WHERE id = $1`
	// Deleting twice keeps the first deletion time.
	qMarkDatabaseDeleted = `UPDATE databases SET deleted_at = COALESCE(deleted_at, $2) WHERE id = $1`
	qForgetReservation   = `DELETE FROM databases
WHERE tenant_id = $1 AND name = $2 AND id IS NULL AND deleted_at IS NULL`

	qAddCheckpoint = `INSERT INTO checkpoints (id, database_id, name, branch_id, created_at)
VALUES ($1, $2, $3, $4, $5)`
	qListCheckpoints = `SELECT id, database_id, name, branch_id, created_at FROM checkpoints
WHERE database_id = $1 ORDER BY created_at, id`
	qDeleteCheckpoint = `DELETE FROM checkpoints WHERE database_id = $1 AND id = $2`

	qAddBranch = `INSERT INTO branches (id, database_id, name, kind, expires_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6)`
	qListBranches = `SELECT id, database_id, name, kind, expires_at, created_at FROM branches
WHERE database_id = $1 ORDER BY created_at, id`
	qDeleteBranch = `DELETE FROM branches WHERE database_id = $1 AND id = $2`

	// Counted on the index alone; qBranchNamed is one lookup in 00005's (database_id, name).
	// The guard never records main; a main row would only make the count higher.
	qCountBranches = `SELECT COUNT(*) FROM branches WHERE database_id = $1`
	qBranchNamed   = `SELECT id, database_id, name, kind, expires_at, created_at FROM branches
WHERE database_id = $1 AND name = $2 ORDER BY created_at DESC, id LIMIT 1`

	qAppendAudit = `INSERT INTO audit (id, at, tenant_id, tool, args, database_id, decision,
outcome, error, duration_ms, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
)

// Audit listing limits (AuditFilter.Limit): the default when zero and the cap.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// listAuditQuery builds the audit listing for f, newest first by id. Only the set filters
// become conditions: a catch-all "($1 = empty OR tenant_id = $1)" would keep PostgreSQL's
// planner off the (tenant_id, id) index.
//
// The id is drawn when the row is written (auditIDs), so id order is commit order (within a
// process, whose auditLog writes one group at a time; across replicas up to their clocks'
// skew), and a row's id time is its at plus the call's duration, milliseconds for most calls.
// No listing sorts (migration 6): SQLite reads its only b-tree (the rowid, which is the id)
// backwards and stops at the limit, skipping other tenants' rows for a tenant's listing;
// PostgreSQL reads the primary key or (tenant_id, id) backwards.
func listAuditQuery(f AuditFilter, limit int) (string, []any) {
	q := `SELECT id, at, tenant_id, tool, args, database_id, decision, outcome, error,
duration_ms, request_id FROM audit`
	var args []any
	where := " WHERE "
	if f.TenantID != "" {
		args = append(args, f.TenantID)
		q += where + "tenant_id = $" + strconv.Itoa(len(args))
		where = " AND "
	}
	if f.Tool != "" {
		args = append(args, f.Tool)
		q += where + "tool = $" + strconv.Itoa(len(args))
	}
	args = append(args, limit)
	q += " ORDER BY id DESC LIMIT $" + strconv.Itoa(len(args))
	return q, args
}
