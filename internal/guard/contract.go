package guard

import (
	"context"
	"time"
)

// Inputs and results of the use cases. The json and jsonschema tags are the tool contract of
// DESIGN.md §3: tools/ reflects its output schemas from these types. Every field without
// omitempty is required in the output schema, so the guard never returns nil slices or null
// values for them (the TypeScript MCP client rejects a structuredContent that does not match).

// CreateDatabaseInput is create_database's input.
type CreateDatabaseInput struct {
	Name      string
	Region    string // empty = configured default
	PGVersion int    // 0 = configured default
}

// Database describes one of the tenant's databases.
type Database struct {
	DatabaseID   string    `json:"database_id" jsonschema_description:"Neon project id; pass it to every other tool"`
	Name         string    `json:"name"`
	Region       string    `json:"region"`
	PGVersion    int       `json:"pg_version"`
	MainBranchID string    `json:"main_branch_id"`
	CreatedAt    time.Time `json:"created_at"`
}

// CreateDatabaseResult is create_database's result.
type CreateDatabaseResult struct {
	Database
	Created          bool   `json:"created" jsonschema_description:"false when a database with this name already existed"`
	Tier             string `json:"tier"`
	ConnectionString string `json:"connection_string" jsonschema_description:"pooled PostgreSQL URI of the main branch"`
}

// ListDatabasesResult is list_databases' result.
type ListDatabasesResult struct {
	Tier      string     `json:"tier"`
	Databases []Database `json:"databases"`
	Limit     int        `json:"limit" jsonschema_description:"max databases for the tier; 0 = unlimited"`
}

// DatabaseInput names one of the caller's databases: the input of the use cases that read one
// (list_checkpoints, list_branches; get_usage, where empty means every database).
type DatabaseInput struct {
	DatabaseID string
}

// RestoreCheckpointInput is restore_checkpoint's input.
type RestoreCheckpointInput struct {
	DatabaseID string
	Checkpoint string // name or id
}

// DeleteBranchInput is delete_dev_branch's input.
type DeleteBranchInput struct {
	DatabaseID string
	Branch     string // name or id
}

// CheckpointInput is checkpoint's input.
type CheckpointInput struct {
	DatabaseID string
	Name       string
	Replace    bool
}

// Checkpoint is one named snapshot of the main branch.
type Checkpoint struct {
	CheckpointID string    `json:"checkpoint_id"`
	Name         string    `json:"name"`
	CreatedAt    time.Time `json:"created_at"`
}

// CheckpointResult is checkpoint's result.
type CheckpointResult struct {
	DatabaseID string `json:"database_id"`
	Checkpoint
	Replaced []string `json:"replaced" jsonschema_description:"names of checkpoints deleted to make room (replace=true)"`
}

// ListCheckpointsResult is list_checkpoints' result.
type ListCheckpointsResult struct {
	DatabaseID  string       `json:"database_id"`
	Checkpoints []Checkpoint `json:"checkpoints"`
	Limit       int          `json:"limit"`
}

// RestoreCheckpointResult is restore_checkpoint's result.
type RestoreCheckpointResult struct {
	DatabaseID     string    `json:"database_id"`
	Checkpoint     string    `json:"checkpoint"`
	CheckpointID   string    `json:"checkpoint_id"`
	MainBranchID   string    `json:"main_branch_id" jsonschema_description:"the main branch's new id (a checkpoint restore replaces the branch; the connection string is unchanged)"`
	PreviousBranch BranchRef `json:"previous_branch" jsonschema_description:"the replaced branch, kept as a backup; delete it with delete_dev_branch when no longer needed"`
}

// UndoInput is undo_to_time's input: exactly one of Timestamp and Ago is set.
type UndoInput struct {
	DatabaseID string
	Timestamp  *time.Time
	Ago        time.Duration
	Branch     string // name or id; empty = main
}

// BranchRef names a branch.
type BranchRef struct {
	BranchID  string     `json:"branch_id"`
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// UndoResult is undo_to_time's result.
type UndoResult struct {
	DatabaseID   string    `json:"database_id"`
	Branch       BranchRef `json:"branch" jsonschema_description:"the restored branch: same id and connection string"`
	RestoredTo   time.Time `json:"restored_to"`
	BackupBranch BranchRef `json:"backup_branch" jsonschema_description:"holds the state from just before the undo; expires automatically"`
}

// DevBranchInput is create_dev_branch's input.
type DevBranchInput struct {
	DatabaseID string
	Name       string
	From       string        // "main" (default), a checkpoint name, or an RFC 3339 time
	TTL        time.Duration // 0 = tier default
}

// DevBranchResult is create_dev_branch's result.
type DevBranchResult struct {
	DatabaseID       string    `json:"database_id"`
	BranchID         string    `json:"branch_id"`
	Name             string    `json:"name"`
	From             string    `json:"from"`
	ExpiresAt        time.Time `json:"expires_at"`
	ConnectionString string    `json:"connection_string" jsonschema_description:"pooled PostgreSQL URI of the new branch"`
}

// Branch is one branch of a database.
type Branch struct {
	BranchID      string     `json:"branch_id"`
	Name          string     `json:"name"`
	Kind          string     `json:"kind" jsonschema:"enum=main,enum=dev,enum=backup"`
	ParentID      string     `json:"parent_id,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	EndpointState string     `json:"endpoint_state" jsonschema:"enum=active,enum=idle,enum=init,enum=none" jsonschema_description:"compute state; none = no compute"`
}

// ListBranchesResult is list_branches' result.
type ListBranchesResult struct {
	DatabaseID string   `json:"database_id"`
	Branches   []Branch `json:"branches"`
	Limit      int      `json:"limit" jsonschema_description:"max branches for the tier; every branch counts"`
}

// DeleteBranchResult is delete_dev_branch's result.
type DeleteBranchResult struct {
	DatabaseID string `json:"database_id"`
	BranchID   string `json:"branch_id"`
	Name       string `json:"name"`
	Deleted    bool   `json:"deleted" jsonschema_description:"false when it was already gone"`
}

// ConnectionInput is get_connection_string's input.
type ConnectionInput struct {
	DatabaseID string
	Branch     string // name or id; empty = main
	Pooled     bool
}

// ConnectionResult is get_connection_string's result.
type ConnectionResult struct {
	DatabaseID       string `json:"database_id"`
	BranchID         string `json:"branch_id"`
	Branch           string `json:"branch"`
	Pooled           bool   `json:"pooled"`
	ConnectionString string `json:"connection_string"`
}

// Metric is one quota metric.
type Metric struct {
	Name    string  `json:"name"`
	Unit    string  `json:"unit"`
	Used    int64   `json:"used"`
	Limit   int64   `json:"limit" jsonschema_description:"0 = unlimited"`
	Percent float64 `json:"percent"`
	Level   string  `json:"level" jsonschema:"enum=ok,enum=warning,enum=critical,enum=exceeded"`
}

// Count is a used/limit pair.
type Count struct {
	Used  int `json:"used"`
	Limit int `json:"limit"`
}

// DatabaseUsage is one database's consumption in the current period.
type DatabaseUsage struct {
	DatabaseID           string    `json:"database_id"`
	Name                 string    `json:"name"`
	PeriodStart          time.Time `json:"period_start"`
	PeriodEnd            time.Time `json:"period_end"`
	Metrics              []Metric  `json:"metrics"`
	Branches             Count     `json:"branches"`
	Checkpoints          Count     `json:"checkpoints"`
	RestoreWindowSeconds int64     `json:"restore_window_seconds"`
	// Alerts are raised by the usage monitor that serve runs (empty when it is off).
	Alerts []UsageAlert `json:"alerts" jsonschema_description:"quota thresholds (80, 95, 100 %) this database crossed this period, oldest first"`
}

// UsageAlert is a quota threshold a database crossed this billing period.
type UsageAlert struct {
	Metric    string    `json:"metric"`
	Threshold int       `json:"threshold" jsonschema_description:"percent of the quota: 80, 95 or 100"`
	Level     string    `json:"level" jsonschema:"enum=warning,enum=critical,enum=exceeded"`
	RaisedAt  time.Time `json:"raised_at"`
	Delivered bool      `json:"delivered" jsonschema_description:"the platform's alert webhook accepted it"`
}

// UsageResult is get_usage's result.
type UsageResult struct {
	Tier      string          `json:"tier"`
	Databases []DatabaseUsage `json:"databases"`
}

// Limits is describe_limits' result.
type Limits struct {
	Tier                   string        `json:"tier"`
	Org                    string        `json:"org"`
	MaxDatabases           int           `json:"max_databases" jsonschema_description:"0 = unlimited"`
	BranchesPerDatabase    int           `json:"branches_per_database" jsonschema_description:"every branch counts: main, dev, undo backups"`
	CheckpointsPerDatabase int           `json:"checkpoints_per_database"`
	RestoreWindowSeconds   int64         `json:"restore_window_seconds"`
	Compute                ComputeLimits `json:"compute"`
	DevBranchTTL           TTLLimits     `json:"dev_branch_ttl"`
	UndoBackupTTLSeconds   int64         `json:"undo_backup_ttl_seconds"`
	Quota                  []Metric      `json:"quota" jsonschema_description:"per-database quotas this billing period (used is 0 here: see get_usage)"`
}

// ComputeLimits is the tier's compute range.
type ComputeLimits struct {
	MinCU                 float64 `json:"min_cu"`
	MaxCU                 float64 `json:"max_cu"`
	SuspendTimeoutSeconds int64   `json:"suspend_timeout_seconds"`
}

// TTLLimits is a default and maximum TTL.
type TTLLimits struct {
	DefaultSeconds int64 `json:"default_seconds"`
	MaxSeconds     int64 `json:"max_seconds"`
}

// UseCases is the guard's surface, as tools/ sees it. Every method reads the caller's tenant
// from ctx (ContextWithPrincipal) and returns *errcode.Error for anything the agent can act on.
type UseCases interface {
	CreateDatabase(ctx context.Context, in CreateDatabaseInput) (*CreateDatabaseResult, error)
	ListDatabases(ctx context.Context) (*ListDatabasesResult, error)
	Checkpoint(ctx context.Context, in CheckpointInput) (*CheckpointResult, error)
	ListCheckpoints(ctx context.Context, in DatabaseInput) (*ListCheckpointsResult, error)
	RestoreCheckpoint(ctx context.Context, in RestoreCheckpointInput) (*RestoreCheckpointResult, error)
	UndoToTime(ctx context.Context, in UndoInput) (*UndoResult, error)
	CreateDevBranch(ctx context.Context, in DevBranchInput) (*DevBranchResult, error)
	ListBranches(ctx context.Context, in DatabaseInput) (*ListBranchesResult, error)
	DeleteDevBranch(ctx context.Context, in DeleteBranchInput) (*DeleteBranchResult, error)
	GetConnectionString(ctx context.Context, in ConnectionInput) (*ConnectionResult, error)
	GetUsage(ctx context.Context, in DatabaseInput) (*UsageResult, error)
	DescribeLimits(ctx context.Context) (*Limits, error)
	RunSQL(ctx context.Context, in RunSQLInput) (*RunSQLResult, error)
	ApplyMigration(ctx context.Context, in ApplyMigrationInput) (*ApplyMigrationResult, error)
	ListMigrations(ctx context.Context, in DatabaseBranchInput) (*ListMigrationsResult, error)
	UndoMigration(ctx context.Context, in UndoMigrationInput) (*UndoMigrationResult, error)
	DescribeSchema(ctx context.Context, in DescribeSchemaInput) (*DescribeSchemaResult, error)
	CompareSchema(ctx context.Context, in CompareSchemaInput) (*CompareSchemaResult, error)
}
