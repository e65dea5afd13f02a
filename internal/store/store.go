// Package store keeps neonguard's own metadata: tenants, tokens, the databases the guard created,
// checkpoints, branches it made, and the audit trail. SQLite is the embedded default;
// PostgreSQL (OpenPostgres) lets several replicas share one store, with the same migrations,
// the same SQL and the same semantics, so nothing above this package knows which one runs.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors; implementations wrap them with %w.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// Tenant is one customer of the platform (one agent user / app owner).
type Tenant struct {
	ID        string
	Tier      string
	CreatedAt time.Time
}

// Token is a bearer credential of a tenant. Only the hash of its secret is stored: Hash is the
// lowercase hex SHA-256 of the secret (internal/auth makes both).
type Token struct {
	ID         string
	TenantID   string
	Hash       string
	Scopes     []string
	CreatedAt  time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
}

// Database is a Neon project the guard created for a tenant. (TenantID, Name) is unique.
type Database struct {
	ID           string // the Neon project id; empty while a create is in flight
	TenantID     string
	Name         string
	OrgID        string
	RootBranchID string
	RegionID     string
	PGVersion    int
	RoleName     string
	DatabaseName string
	CreatedAt    time.Time
	DeletedAt    *time.Time
}

// Checkpoint is a snapshot the guard took.
type Checkpoint struct {
	ID         string // the Neon snapshot id
	DatabaseID string
	Name       string
	BranchID   string // the root branch it was taken of
	CreatedAt  time.Time
}

// Branch kinds.
const (
	BranchMain   = "main"
	BranchDev    = "dev"
	BranchBackup = "backup"
)

// Branch is a branch the guard made (dev branches and undo backups).
type Branch struct {
	ID         string // the Neon branch id
	DatabaseID string
	Name       string
	Kind       string
	ExpiresAt  *time.Time
	CreatedAt  time.Time
}

// BranchTally is TallyBranches' answer.
type BranchTally struct {
	Count int     // recorded branches of the database (dev and backup)
	Named *Branch // the recorded branch of the name asked about, or nil
}

// AuditEntry is one tool call.
type AuditEntry struct {
	ID         int64
	At         time.Time
	TenantID   string
	Tool       string
	Args       string // JSON, redacted
	DatabaseID string
	Decision   string // "allow" or a policy code
	Outcome    string // "ok", "denied", "error"
	Error      string
	DurationMS int64
	RequestID  string
}

// AuditFilter selects audit rows; zero fields match everything.
type AuditFilter struct {
	TenantID string
	Tool     string
	Limit    int
}

// Store is the metadata persistence.
type Store interface {
	JobStore    // durable jobs (tier changes): jobs.go
	UsageStore  // usage samples, alerts and the webhook outbox: usage.go
	IntentStore // the guard's multi-step operations, for crash recovery: intents.go

	// Tenants.
	EnsureTenant(ctx context.Context, id, tier string) (Tenant, error) // creates if missing; keeps the existing tier
	GetTenant(ctx context.Context, id string) (Tenant, error)
	ListTenants(ctx context.Context) ([]Tenant, error)
	SetTenantTier(ctx context.Context, id, tier string) error

	// Tokens. TokenByHash returns revoked tokens too (the caller refuses them); RevokeToken and
	// TouchToken report ErrNotFound for unknown ids, and RevokeToken also for another tenant's.
	CreateToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, hash string) (Token, error)
	RevokeToken(ctx context.Context, tenantID, id string) error       // revoking twice keeps the first time
	ListTokens(ctx context.Context, tenantID string) ([]Token, error) // oldest first, revoked included
	TouchToken(ctx context.Context, id string, at time.Time) error    // records the last use

	// Databases. ReserveDatabase records the intent to create (TenantID, Name) before Neon is
	// called: it returns the existing row (created=false) when one exists, so a crash between the
	// Neon call and the store write is recovered on the next call.
	ReserveDatabase(ctx context.Context, tenantID, name string) (db Database, created bool, err error)
	CompleteDatabase(ctx context.Context, db Database) error                        // fills ID and the rest of a reserved row
	GetDatabase(ctx context.Context, tenantID, databaseID string) (Database, error) // ErrNotFound also for other tenants' ids
	// GetDatabaseWithDeleted is GetDatabase that also returns a deleted row (DeletedAt set).
	GetDatabaseWithDeleted(ctx context.Context, tenantID, databaseID string) (Database, error)
	GetDatabaseByName(ctx context.Context, tenantID, name string) (Database, error)
	ListDatabases(ctx context.Context, tenantID string) ([]Database, error) // excludes deleted
	CountDatabases(ctx context.Context, tenantID string) (int, error)
	SetRootBranch(ctx context.Context, databaseID, branchID string) error
	MarkDatabaseDeleted(ctx context.Context, databaseID string, at time.Time) error
	ForgetReservation(ctx context.Context, tenantID, name string) error // drops a reserved row with no ID

	// Checkpoints.
	AddCheckpoint(ctx context.Context, c Checkpoint) error
	ListCheckpoints(ctx context.Context, databaseID string) ([]Checkpoint, error) // oldest first
	DeleteCheckpoint(ctx context.Context, databaseID, checkpointID string) error

	// Branches made by the guard.
	AddBranch(ctx context.Context, b Branch) error
	ListBranches(ctx context.Context, databaseID string) ([]Branch, error)
	DeleteBranch(ctx context.Context, databaseID, branchID string) error
	// TallyBranches counts a database's recorded branches and finds the one named name
	// (Named nil when none is) without listing them: two indexed queries, whatever their number.
	TallyBranches(ctx context.Context, databaseID, name string) (BranchTally, error)

	// Audit.
	AppendAudit(ctx context.Context, e AuditEntry) error
	AppendAudits(ctx context.Context, es []AuditEntry) error            // one transaction; same as AppendAudit each
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) // newest first

	// Ping reads from the store (readiness checks).
	Ping(ctx context.Context) error

	Close() error
}
