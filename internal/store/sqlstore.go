package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// sqlStore implements Store over database/sql for both engines. The SQL in queries.go and
// tokens.go is portable, so the engines differ only in how they connect and migrate
// (OpenSQLite, OpenPostgres) and in the driver errors isUnique and isForeignKey recognise;
// sharing the method bodies keeps their semantics the same by construction.
type sqlStore struct {
	w   *sql.DB // writes; SQLite: its single connection
	r   *sql.DB // reads; SQLite: a read-only pool, PostgreSQL: the same pool as w
	ids auditIDs

	// stmts are the queries on a tool call's or an HTTP request's path, prepared once (SQLite:
	// parsing was a third of a list call's CPU); each on the pool it runs on. nil (PostgreSQL)
	// runs the query string instead: pgx already prepares and caches statements per connection
	// (and a DSN may turn that off for a transaction-mode pooler, which an explicit *sql.Stmt
	// would ignore).
	stmts map[stmtKey]*sql.Stmt
}

// stmtKey names a prepared statement: the pool it was prepared on and its SQL.
type stmtKey struct {
	db *sql.DB
	q  string
}

// hotReads and hotWrites are the queries SQLite prepares: what every tool call, every list
// call and every HTTP request runs. OpenIntents reads from the writer (an intent written a
// moment ago must be seen), so it is prepared there.
var (
	hotReads = []string{qGetTenant, qGetDatabase, qListDatabases, qTokenByHash, qListCheckpoints,
		qListBranches, qListAlerts, qLatestUsageSample}
	hotWrites = []string{qAppendAudit, qOpenIntents, qAllOpenIntent}
)

// prepareHot prepares hotReads on s.r and hotWrites on s.w.
func (s *sqlStore) prepareHot(ctx context.Context) error {
	s.stmts = make(map[stmtKey]*sql.Stmt, len(hotReads)+len(hotWrites))
	for _, set := range []struct {
		db *sql.DB
		qs []string
	}{{s.r, hotReads}, {s.w, hotWrites}} {
		for _, q := range set.qs {
			st, err := set.db.PrepareContext(ctx, q)
			if err != nil {
				return err
			}
			s.stmts[stmtKey{set.db, q}] = st
		}
	}
	return nil
}

// stmt returns q's prepared statement on db, nil if it has none.
func (s *sqlStore) stmt(db *sql.DB, q string) *sql.Stmt { return s.stmts[stmtKey{db, q}] }

// query, queryRow and exec run q on db, through its prepared statement when it has one.
func (s *sqlStore) query(ctx context.Context, db *sql.DB, q string, args ...any) (*sql.Rows, error) {
	if st := s.stmt(db, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.QueryContext(ctx, q, args...)
}

func (s *sqlStore) queryRow(ctx context.Context, db *sql.DB, q string, args ...any) *sql.Row {
	if st := s.stmt(db, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.QueryRowContext(ctx, q, args...)
}

func (s *sqlStore) exec(ctx context.Context, db *sql.DB, q string, args ...any) (sql.Result, error) {
	if st := s.stmt(db, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return db.ExecContext(ctx, q, args...)
}

// close closes the statements and the pools.
func (s *sqlStore) close() error {
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	return errors.Join(errs...)
}

// Ping implements Store: a read of a real table, so a missing or locked file, a failed
// migration or a lost connection shows.
func (s *sqlStore) Ping(ctx context.Context) error {
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM tenants LIMIT 1`).Scan(&one)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// --- tenants ---

func (s *sqlStore) EnsureTenant(ctx context.Context, id, tier string) (Tenant, error) {
	if id == "" {
		return Tenant{}, errors.New("store: ensure tenant: empty id")
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Tenant{}, fmt.Errorf("store: ensure tenant %q: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, qEnsureTenant, id, tier, micros(time.Now())); err != nil {
		return Tenant{}, fmt.Errorf("store: ensure tenant %q: %w", id, err)
	}
	t, err := scanTenant(tx.QueryRowContext(ctx, qGetTenant, id))
	if err != nil {
		return Tenant{}, fmt.Errorf("store: ensure tenant %q: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return Tenant{}, fmt.Errorf("store: ensure tenant %q: %w", id, err)
	}
	return t, nil
}

func (s *sqlStore) GetTenant(ctx context.Context, id string) (Tenant, error) {
	t, err := scanTenant(s.queryRow(ctx, s.r, qGetTenant, id))
	if err != nil {
		return Tenant{}, fmt.Errorf("store: tenant %q: %w", id, err)
	}
	return t, nil
}

func (s *sqlStore) ListTenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.r.QueryContext(ctx, qListTenants)
	if err != nil {
		return nil, fmt.Errorf("store: list tenants: %w", err)
	}
	out, err := collect(rows, scanTenant)
	if err != nil {
		return nil, fmt.Errorf("store: list tenants: %w", err)
	}
	return out, nil
}

func (s *sqlStore) SetTenantTier(ctx context.Context, id, tier string) error {
	res, err := s.w.ExecContext(ctx, qSetTenantTier, id, tier)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: set tier of tenant %q: %w", id, err)
	}
	return nil
}

// --- databases ---

func (s *sqlStore) ReserveDatabase(ctx context.Context, tenantID, name string) (Database, bool, error) {
	if tenantID == "" || name == "" {
		return Database{}, false, errors.New("store: reserve database: empty tenant id or name")
	}
	wrap := func(err error) error {
		return fmt.Errorf("store: reserve database %q of tenant %q: %w", name, tenantID, err)
	}
	// Insert-if-absent and read back in one transaction, so of any number of concurrent callers
	// exactly one inserts and all read the same row. SQLite: the transaction runs on the single
	// writer. PostgreSQL (READ COMMITTED, any number of replicas): a concurrent INSERT … ON
	// CONFLICT DO NOTHING waits for the inserting transaction and then does nothing, and the
	// SELECT that follows takes a fresh snapshot, which includes the committed row.
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return Database{}, false, wrap(err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, qReserveDatabase, tenantID, name, micros(time.Now()))
	if err != nil {
		if isForeignKey(err) {
			return Database{}, false, wrap(fmt.Errorf("tenant: %w", ErrNotFound))
		}
		return Database{}, false, wrap(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Database{}, false, wrap(err)
	}
	db, err := scanDatabase(tx.QueryRowContext(ctx, qGetLiveDatabaseByName, tenantID, name))
	if err != nil {
		return Database{}, false, wrap(err)
	}
	if err := tx.Commit(); err != nil {
		return Database{}, false, wrap(err)
	}
	return db, n == 1, nil
}

func (s *sqlStore) CompleteDatabase(ctx context.Context, db Database) error {
	if db.ID == "" || db.TenantID == "" || db.Name == "" {
		return errors.New("store: complete database: empty id, tenant id or name")
	}
	wrap := func(err error) error {
		return fmt.Errorf("store: complete database %q (%s) of tenant %q: %w", db.Name, db.ID, db.TenantID, err)
	}
	var created any // NULL keeps the reservation time
	if !db.CreatedAt.IsZero() {
		created = micros(db.CreatedAt)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, qCompleteDatabase, db.TenantID, db.Name, db.ID, db.OrgID,
		db.RootBranchID, db.RegionID, db.PGVersion, db.RoleName, db.DatabaseName, created)
	if err != nil {
		if isUnique(err) {
			return wrap(fmt.Errorf("project id in use: %w", ErrConflict))
		}
		return wrap(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap(err)
	} else if n == 0 {
		// Either nothing is reserved under this name, or it was completed with another id.
		if _, err := scanDatabase(tx.QueryRowContext(ctx, qGetLiveDatabaseByName, db.TenantID, db.Name)); err == nil {
			return wrap(fmt.Errorf("completed with another project id: %w", ErrConflict))
		}
		return wrap(fmt.Errorf("no reservation: %w", ErrNotFound))
	}
	if err := tx.Commit(); err != nil {
		return wrap(err)
	}
	return nil
}

func (s *sqlStore) GetDatabase(ctx context.Context, tenantID, databaseID string) (Database, error) {
	if databaseID == "" { // a reservation has no id; never match it
		return Database{}, fmt.Errorf("store: database: empty id: %w", ErrNotFound)
	}
	db, err := scanDatabase(s.queryRow(ctx, s.r, qGetDatabase, tenantID, databaseID))
	if err != nil {
		return Database{}, fmt.Errorf("store: database %q of tenant %q: %w", databaseID, tenantID, err)
	}
	return db, nil
}

// GetDatabaseByName returns the live row named name, including a reservation (empty ID).
func (s *sqlStore) GetDatabaseByName(ctx context.Context, tenantID, name string) (Database, error) {
	db, err := scanDatabase(s.r.QueryRowContext(ctx, qGetLiveDatabaseByName, tenantID, name))
	if err != nil {
		return Database{}, fmt.Errorf("store: database %q of tenant %q: %w", name, tenantID, err)
	}
	return db, nil
}

// ListDatabases returns the tenant's live rows, reservations included, oldest first.
func (s *sqlStore) ListDatabases(ctx context.Context, tenantID string) ([]Database, error) {
	rows, err := s.query(ctx, s.r, qListDatabases, tenantID)
	if err != nil {
		return nil, fmt.Errorf("store: list databases of tenant %q: %w", tenantID, err)
	}
	out, err := collect(rows, scanDatabase)
	if err != nil {
		return nil, fmt.Errorf("store: list databases of tenant %q: %w", tenantID, err)
	}
	return out, nil
}

// CountDatabases counts live rows, reservations included, so quota checks see creates in flight.
func (s *sqlStore) CountDatabases(ctx context.Context, tenantID string) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, qCountDatabases, tenantID).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count databases of tenant %q: %w", tenantID, err)
	}
	return n, nil
}

func (s *sqlStore) SetRootBranch(ctx context.Context, databaseID, branchID string) error {
	res, err := s.w.ExecContext(ctx, qSetRootBranch, databaseID, branchID)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: set root branch of database %q: %w", databaseID, err)
	}
	return nil
}

// MarkDatabaseDeleted is idempotent: a second call keeps the first deletion time.
func (s *sqlStore) MarkDatabaseDeleted(ctx context.Context, databaseID string, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	res, err := s.w.ExecContext(ctx, qMarkDatabaseDeleted, databaseID, micros(at))
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: mark database %q deleted: %w", databaseID, err)
	}
	return nil
}

// ForgetReservation is idempotent: it is a no-op when no reservation (row without a project
// id) exists under the name, in particular when the create already completed.
func (s *sqlStore) ForgetReservation(ctx context.Context, tenantID, name string) error {
	if _, err := s.w.ExecContext(ctx, qForgetReservation, tenantID, name); err != nil {
		return fmt.Errorf("store: forget reservation %q of tenant %q: %w", name, tenantID, err)
	}
	return nil
}

// --- checkpoints ---

func (s *sqlStore) AddCheckpoint(ctx context.Context, c Checkpoint) error {
	if c.ID == "" || c.DatabaseID == "" {
		return errors.New("store: add checkpoint: empty id or database id")
	}
	_, err := s.w.ExecContext(ctx, qAddCheckpoint, c.ID, c.DatabaseID, c.Name, c.BranchID,
		micros(orNow(c.CreatedAt)))
	if err != nil {
		return fmt.Errorf("store: add checkpoint %q to database %q: %w", c.ID, c.DatabaseID, mapWriteErr(err))
	}
	return nil
}

func (s *sqlStore) ListCheckpoints(ctx context.Context, databaseID string) ([]Checkpoint, error) {
	rows, err := s.query(ctx, s.r, qListCheckpoints, databaseID)
	if err != nil {
		return nil, fmt.Errorf("store: list checkpoints of database %q: %w", databaseID, err)
	}
	out, err := collect(rows, scanCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("store: list checkpoints of database %q: %w", databaseID, err)
	}
	return out, nil
}

func (s *sqlStore) DeleteCheckpoint(ctx context.Context, databaseID, checkpointID string) error {
	res, err := s.w.ExecContext(ctx, qDeleteCheckpoint, databaseID, checkpointID)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: delete checkpoint %q of database %q: %w", checkpointID, databaseID, err)
	}
	return nil
}

// --- branches ---

func (s *sqlStore) AddBranch(ctx context.Context, b Branch) error {
	if b.ID == "" || b.DatabaseID == "" {
		return errors.New("store: add branch: empty id or database id")
	}
	switch b.Kind {
	case BranchMain, BranchDev, BranchBackup:
	default:
		return fmt.Errorf("store: add branch %q: unknown kind %q", b.ID, b.Kind)
	}
	_, err := s.w.ExecContext(ctx, qAddBranch, b.ID, b.DatabaseID, b.Name, b.Kind,
		nullMicros(b.ExpiresAt), micros(orNow(b.CreatedAt)))
	if err != nil {
		return fmt.Errorf("store: add branch %q to database %q: %w", b.ID, b.DatabaseID, mapWriteErr(err))
	}
	return nil
}

func (s *sqlStore) ListBranches(ctx context.Context, databaseID string) ([]Branch, error) {
	rows, err := s.query(ctx, s.r, qListBranches, databaseID)
	if err != nil {
		return nil, fmt.Errorf("store: list branches of database %q: %w", databaseID, err)
	}
	out, err := collect(rows, scanBranch)
	if err != nil {
		return nil, fmt.Errorf("store: list branches of database %q: %w", databaseID, err)
	}
	return out, nil
}

func (s *sqlStore) DeleteBranch(ctx context.Context, databaseID, branchID string) error {
	res, err := s.w.ExecContext(ctx, qDeleteBranch, databaseID, branchID)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: delete branch %q of database %q: %w", branchID, databaseID, err)
	}
	return nil
}

func (s *sqlStore) TallyBranches(ctx context.Context, databaseID, name string) (BranchTally, error) {
	var t BranchTally
	if err := s.r.QueryRowContext(ctx, qCountBranches, databaseID).Scan(&t.Count); err != nil {
		return BranchTally{}, fmt.Errorf("store: count branches of database %q: %w", databaseID, err)
	}
	if name == "" {
		return t, nil
	}
	b, err := scanBranch(s.r.QueryRowContext(ctx, qBranchNamed, databaseID, name))
	switch {
	case err == nil:
		t.Named = &b
	case !errors.Is(err, ErrNotFound):
		return BranchTally{}, fmt.Errorf("store: branch %q of database %q: %w", name, databaseID, err)
	}
	return t, nil
}

// --- audit ---

// AppendAudit stores e with a fresh id (e.ID is ignored); a zero At means now.
func (s *sqlStore) AppendAudit(ctx context.Context, e AuditEntry) error {
	at := micros(orNow(e.At))
	var err error
	// Another process writing the same store (a second SQLite process, another PostgreSQL
	// replica) could, very rarely, draw the same id; the primary key refuses it, so draw again.
	for range 3 {
		_, err = s.exec(ctx, s.w, qAppendAudit, s.ids.next(time.Now()), at, e.TenantID, e.Tool,
			e.Args, e.DatabaseID, e.Decision, e.Outcome, e.Error, e.DurationMS, e.RequestID)
		if err == nil || !isUnique(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("store: append audit (%s, %s): %w", e.TenantID, e.Tool, err)
	}
	return nil
}

// AppendAudits stores several entries in one transaction: a busy server groups the audit rows
// of concurrent calls, so the single SQLite writer commits once per group instead of once per
// call. If the group fails on an id clash (another writer drew the same id), each entry is
// appended on its own, which draws again.
func (s *sqlStore) AppendAudits(ctx context.Context, es []AuditEntry) error {
	switch len(es) {
	case 0:
		return nil
	case 1:
		return s.AppendAudit(ctx, es[0])
	}
	err := s.appendAuditTx(ctx, es)
	if err != nil && isUnique(err) {
		for _, e := range es {
			if err := s.AppendAudit(ctx, e); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: append %d audit entries: %w", len(es), err)
	}
	return nil
}

func (s *sqlStore) appendAuditTx(ctx context.Context, es []AuditEntry) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var stmt *sql.Stmt
	if st := s.stmt(s.w, qAppendAudit); st != nil {
		stmt = tx.StmtContext(ctx, st)
	} else if stmt, err = tx.PrepareContext(ctx, qAppendAudit); err != nil {
		return err
	}
	defer stmt.Close()
	now := time.Now()
	for _, e := range es {
		if _, err = stmt.ExecContext(ctx, s.ids.next(now), micros(orNow(e.At)), e.TenantID, e.Tool,
			e.Args, e.DatabaseID, e.Decision, e.Outcome, e.Error, e.DurationMS, e.RequestID); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// ListAudit returns matching entries newest first by id (commit order, listAuditQuery); Limit
// defaults to 100 and is capped at 1000.
func (s *sqlStore) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	q, args := listAuditQuery(f, auditLimit(f.Limit))
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	out, err := collect(rows, scanAudit)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	return out, nil
}

// auditLimit applies AuditFilter.Limit's default and cap.
func auditLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultAuditLimit
	case n > MaxAuditLimit:
		return MaxAuditLimit
	}
	return n
}

// auditIDs hands out audit ids: unix microseconds in the high bits, a random draw in the low
// auditSeqBits, and never less than the previous id + 1. So ids are unique and increasing
// within a process, roughly time-ordered across processes, and (unlike an engine-generated
// sequence) the same on SQLite and PostgreSQL. 63-auditSeqBits bits of microseconds last
// until the year 2112.
//
// Across PostgreSQL replicas uniqueness is the primary key's job: two replicas draw the same id
// only in the same microsecond with the same 11-bit draw, and then the insert fails and
// AppendAudit draws again. An identity column would give dense ids but needs engine-specific
// DDL (see the audit table's comment in the migration); nothing relies on density. Listings
// order by id (listAuditQuery), which is why it is drawn at insert time.
type auditIDs struct{ last atomic.Int64 }

const auditSeqBits = 11

func (g *auditIDs) next(now time.Time) int64 {
	cand := now.UnixMicro()<<auditSeqBits | rand.Int64N(1<<auditSeqBits)
	for {
		last := g.last.Load()
		id := max(cand, last+1)
		if g.last.CompareAndSwap(last, id) {
			return id
		}
	}
}

// --- helpers ---

// micros is the stored form of a time: BIGINT unix microseconds, UTC by definition.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return micros(*t)
}

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

type scanner interface{ Scan(dest ...any) error }

// notFound turns sql.ErrNoRows into ErrNotFound, so callers need to know only the sentinels.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

func scanTenant(r scanner) (Tenant, error) {
	var t Tenant
	var created int64
	if err := r.Scan(&t.ID, &t.Tier, &created); err != nil {
		return Tenant{}, notFound(err)
	}
	t.CreatedAt = fromMicros(created)
	return t, nil
}

func scanDatabase(r scanner) (Database, error) {
	var d Database
	var created int64
	var deleted sql.NullInt64
	if err := r.Scan(&d.ID, &d.TenantID, &d.Name, &d.OrgID, &d.RootBranchID, &d.RegionID,
		&d.PGVersion, &d.RoleName, &d.DatabaseName, &created, &deleted); err != nil {
		return Database{}, notFound(err)
	}
	d.CreatedAt = fromMicros(created)
	d.DeletedAt = fromNullMicros(deleted)
	return d, nil
}

func scanCheckpoint(r scanner) (Checkpoint, error) {
	var c Checkpoint
	var created int64
	if err := r.Scan(&c.ID, &c.DatabaseID, &c.Name, &c.BranchID, &created); err != nil {
		return Checkpoint{}, notFound(err)
	}
	c.CreatedAt = fromMicros(created)
	return c, nil
}

func scanBranch(r scanner) (Branch, error) {
	var b Branch
	var created int64
	var expires sql.NullInt64
	if err := r.Scan(&b.ID, &b.DatabaseID, &b.Name, &b.Kind, &expires, &created); err != nil {
		return Branch{}, notFound(err)
	}
	b.ExpiresAt = fromNullMicros(expires)
	b.CreatedAt = fromMicros(created)
	return b, nil
}

func scanAudit(r scanner) (AuditEntry, error) {
	var e AuditEntry
	var at int64
	if err := r.Scan(&e.ID, &at, &e.TenantID, &e.Tool, &e.Args, &e.DatabaseID, &e.Decision,
		&e.Outcome, &e.Error, &e.DurationMS, &e.RequestID); err != nil {
		return AuditEntry{}, notFound(err)
	}
	e.At = fromMicros(at)
	return e, nil
}

func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer func() { _ = rows.Close() }()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// affectedOne turns "no row matched" into ErrNotFound.
func affectedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// mapWriteErr maps constraint violations to the sentinels: a duplicate key is ErrConflict, a
// missing parent row (the database) ErrNotFound.
func mapWriteErr(err error) error {
	switch {
	case isUnique(err):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case isForeignKey(err):
		return fmt.Errorf("database: %w", ErrNotFound)
	}
	return err
}

// isUnique reports a unique or primary key violation of either engine.
func isUnique(err error) bool { return sqliteUnique(err) || pgCode(err) == pgUniqueViolation }

// isForeignKey reports a foreign key violation of either engine.
func isForeignKey(err error) bool {
	return sqliteForeignKey(err) || pgCode(err) == pgForeignKeyViolation
}
