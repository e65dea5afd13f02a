package neon

import "time"

// Wire types for the subset of Neon API v2 that neonguard uses. Field names follow
// ../shared/reference/neon-openapi-v2.json exactly; optional fields are pointers or omitempty.

// Quota is ProjectQuota: every value is >= 0, and 0 means unlimited.
type Quota struct {
	ActiveTimeSeconds  int64 `json:"active_time_seconds,omitempty"`
	ComputeTimeSeconds int64 `json:"compute_time_seconds,omitempty"`
	WrittenDataBytes   int64 `json:"written_data_bytes,omitempty"`
	DataTransferBytes  int64 `json:"data_transfer_bytes,omitempty"`
	LogicalSizeBytes   int64 `json:"logical_size_bytes,omitempty"`
}

// ProjectSettings is ProjectSettingsData (only the fields neonguard sets).
type ProjectSettings struct {
	Quota *Quota `json:"quota,omitempty"`
}

// DefaultEndpointSettings applies to computes created in the project.
type DefaultEndpointSettings struct {
	AutoscalingLimitMinCU float64 `json:"autoscaling_limit_min_cu,omitempty"`
	AutoscalingLimitMaxCU float64 `json:"autoscaling_limit_max_cu,omitempty"`
	SuspendTimeoutSeconds int64   `json:"suspend_timeout_seconds,omitempty"`
}

// ProjectCreate is the "project" object of ProjectCreateRequest.
type ProjectCreate struct {
	Name                    string                   `json:"name,omitempty"`
	RegionID                string                   `json:"region_id,omitempty"`
	PGVersion               int                      `json:"pg_version,omitempty"`
	OrgID                   string                   `json:"org_id,omitempty"`
	HistoryRetentionSeconds *int64                   `json:"history_retention_seconds,omitempty"`
	DefaultEndpointSettings *DefaultEndpointSettings `json:"default_endpoint_settings,omitempty"`
	Settings                *ProjectSettings         `json:"settings,omitempty"`
	Branch                  *ProjectCreateBranch     `json:"branch,omitempty"`
}

// ProjectCreateBranch names the default branch of a new project.
type ProjectCreateBranch struct {
	Name         string `json:"name,omitempty"`
	RoleName     string `json:"role_name,omitempty"`
	DatabaseName string `json:"database_name,omitempty"`
}

// ProjectUpdate is the "project" object of ProjectUpdateRequest.
type ProjectUpdate struct {
	Name                    string                   `json:"name,omitempty"`
	HistoryRetentionSeconds *int64                   `json:"history_retention_seconds,omitempty"`
	DefaultEndpointSettings *DefaultEndpointSettings `json:"default_endpoint_settings,omitempty"`
	Settings                *ProjectSettings         `json:"settings,omitempty"`
}

// Project is Neon's Project (and the subset of ProjectListItem neonguard reads).
type Project struct {
	ID                      string                   `json:"id"`
	Name                    string                   `json:"name"`
	RegionID                string                   `json:"region_id"`
	PGVersion               int                      `json:"pg_version"`
	OrgID                   string                   `json:"org_id,omitempty"`
	OwnerID                 string                   `json:"owner_id,omitempty"`
	HistoryRetentionSeconds int64                    `json:"history_retention_seconds"`
	CreatedAt               time.Time                `json:"created_at"`
	UpdatedAt               time.Time                `json:"updated_at"`
	DefaultEndpointSettings *DefaultEndpointSettings `json:"default_endpoint_settings,omitempty"`
	Settings                *ProjectSettings         `json:"settings,omitempty"`
	ConsumptionPeriodStart  time.Time                `json:"consumption_period_start"`
	ConsumptionPeriodEnd    time.Time                `json:"consumption_period_end"`
	ActiveTimeSeconds       int64                    `json:"active_time_seconds"`
	ComputeTimeSeconds      int64                    `json:"compute_time_seconds"`
	WrittenDataBytes        int64                    `json:"written_data_bytes"`
	DataTransferBytes       int64                    `json:"data_transfer_bytes"`
	DataStorageBytesHour    int64                    `json:"data_storage_bytes_hour"`
	SyntheticStorageSize    int64                    `json:"synthetic_storage_size,omitempty"`
	ComputeLastActiveAt     *time.Time               `json:"compute_last_active_at,omitempty"`
}

// ConnectionParameters are the parts of a connection URI.
type ConnectionParameters struct {
	Database   string `json:"database"`
	Password   string `json:"password"`
	Role       string `json:"role"`
	Host       string `json:"host"`
	PoolerHost string `json:"pooler_host"`
}

// ConnectionDetails is one entry of connection_uris.
type ConnectionDetails struct {
	ConnectionURI        string               `json:"connection_uri"`
	ConnectionParameters ConnectionParameters `json:"connection_parameters"`
}

// Role is a Postgres role on a branch.
type Role struct {
	BranchID  string `json:"branch_id"`
	Name      string `json:"name"`
	Password  string `json:"password,omitempty"`
	Protected bool   `json:"protected,omitempty"`
}

// Database is a Postgres database on a branch.
type Database struct {
	ID        int64  `json:"id"`
	BranchID  string `json:"branch_id"`
	Name      string `json:"name"`
	OwnerName string `json:"owner_name"`
}

// Branch states.
const (
	BranchStateInit      = "init"
	BranchStateResetting = "resetting"
	BranchStateReady     = "ready"
	BranchStateArchived  = "archived"
)

// Branch is Neon's Branch.
type Branch struct {
	ID              string     `json:"id"`
	ProjectID       string     `json:"project_id"`
	ParentID        string     `json:"parent_id,omitempty"`
	ParentLSN       string     `json:"parent_lsn,omitempty"`
	ParentTimestamp *time.Time `json:"parent_timestamp,omitempty"`
	Name            string     `json:"name"`
	CurrentState    string     `json:"current_state"`
	PendingState    string     `json:"pending_state,omitempty"`
	Default         bool       `json:"default"`
	Protected       bool       `json:"protected"`
	LogicalSize     int64      `json:"logical_size,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	LastResetAt     *time.Time `json:"last_reset_at,omitempty"`
	InitSource      string     `json:"init_source,omitempty"`
	RestoreStatus   string     `json:"restore_status,omitempty"`
	RestoredFrom    string     `json:"restored_from,omitempty"`
	RestoredAs      string     `json:"restored_as,omitempty"`
}

// BranchCreate is the "branch" object of BranchCreateRequest.
type BranchCreate struct {
	ParentID        string     `json:"parent_id,omitempty"`
	Name            string     `json:"name,omitempty"`
	ParentLSN       string     `json:"parent_lsn,omitempty"`
	ParentTimestamp *time.Time `json:"parent_timestamp,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
}

// EndpointCreate is one entry of BranchCreateRequest.endpoints.
type EndpointCreate struct {
	Type                  string  `json:"type"`
	AutoscalingLimitMinCU float64 `json:"autoscaling_limit_min_cu,omitempty"`
	AutoscalingLimitMaxCU float64 `json:"autoscaling_limit_max_cu,omitempty"`
	SuspendTimeoutSeconds int64   `json:"suspend_timeout_seconds,omitempty"`
}

// BranchUpdate is the "branch" object of BranchUpdateRequest. A nil ExpiresAt leaves the TTL
// alone; ClearExpiry sends an explicit null.
type BranchUpdate struct {
	Name        string
	ExpiresAt   *time.Time
	ClearExpiry bool
}

// BranchRestore is BranchRestoreRequest.
type BranchRestore struct {
	SourceBranchID    string     `json:"source_branch_id"`
	SourceLSN         string     `json:"source_lsn,omitempty"`
	SourceTimestamp   *time.Time `json:"source_timestamp,omitempty"`
	PreserveUnderName string     `json:"preserve_under_name,omitempty"`
}

// Endpoint types and states.
const (
	EndpointReadWrite = "read_write"
	EndpointReadOnly  = "read_only"

	EndpointStateInit   = "init"
	EndpointStateActive = "active"
	EndpointStateIdle   = "idle"
)

// Endpoint is Neon's Endpoint (a compute).
type Endpoint struct {
	ID                    string     `json:"id"`
	Host                  string     `json:"host"`
	ProjectID             string     `json:"project_id"`
	BranchID              string     `json:"branch_id"`
	RegionID              string     `json:"region_id"`
	Type                  string     `json:"type"`
	CurrentState          string     `json:"current_state"`
	PendingState          string     `json:"pending_state,omitempty"`
	AutoscalingLimitMinCU float64    `json:"autoscaling_limit_min_cu"`
	AutoscalingLimitMaxCU float64    `json:"autoscaling_limit_max_cu"`
	SuspendTimeoutSeconds int64      `json:"suspend_timeout_seconds"`
	Disabled              bool       `json:"disabled"`
	CreatedAt             time.Time  `json:"created_at"`
	UpdatedAt             time.Time  `json:"updated_at"`
	LastActive            *time.Time `json:"last_active,omitempty"`
	SuspendedAt           *time.Time `json:"suspended_at,omitempty"`
}

// Operation statuses.
const (
	OpScheduling = "scheduling"
	OpRunning    = "running"
	OpFinished   = "finished"
	OpFailed     = "failed"
	OpError      = "error"
	OpCancelling = "cancelling"
	OpCancelled  = "cancelled"
	OpSkipped    = "skipped"
)

// Operation is Neon's Operation.
type Operation struct {
	ID            string    `json:"id"`
	ProjectID     string    `json:"project_id"`
	BranchID      string    `json:"branch_id,omitempty"`
	EndpointID    string    `json:"endpoint_id,omitempty"`
	Action        string    `json:"action"`
	Status        string    `json:"status"`
	Error         string    `json:"error,omitempty"`
	FailuresCount int       `json:"failures_count"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Terminal reports whether the operation will not change again.
func (o Operation) Terminal() bool {
	switch o.Status {
	case OpFinished, OpSkipped, OpFailed, OpError, OpCancelled:
		return true
	}
	return false
}

// Succeeded reports whether the operation ended well.
func (o Operation) Succeeded() bool { return o.Status == OpFinished || o.Status == OpSkipped }

// Snapshot is Neon's Snapshot (beta).
type Snapshot struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	LSN            string     `json:"lsn,omitempty"`
	Timestamp      *time.Time `json:"timestamp,omitempty"`
	SourceBranchID string     `json:"source_branch_id,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	Manual         bool       `json:"manual,omitempty"`
	FullSize       int64      `json:"full_size,omitempty"`
}

// SnapshotCreate holds createSnapshot's query parameters.
type SnapshotCreate struct {
	Name      string
	Timestamp *time.Time
	LSN       string
	ExpiresAt *time.Time
}

// SnapshotRestore is the body of restoreSnapshot.
type SnapshotRestore struct {
	Name            string `json:"name,omitempty"`
	TargetBranchID  string `json:"target_branch_id,omitempty"`
	FinalizeRestore bool   `json:"finalize_restore"`
}

// CreatedProject is the 201 answer of POST /projects.
type CreatedProject struct {
	Project        Project             `json:"project"`
	ConnectionURIs []ConnectionDetails `json:"connection_uris"`
	Roles          []Role              `json:"roles"`
	Databases      []Database          `json:"databases"`
	Operations     []Operation         `json:"operations"`
	Branch         Branch              `json:"branch"`
	Endpoints      []Endpoint          `json:"endpoints"`
}

// CreatedBranch is the 201 answer of POST /projects/{id}/branches.
type CreatedBranch struct {
	Branch         Branch              `json:"branch"`
	Endpoints      []Endpoint          `json:"endpoints"`
	Operations     []Operation         `json:"operations"`
	Roles          []Role              `json:"roles"`
	Databases      []Database          `json:"databases"`
	ConnectionURIs []ConnectionDetails `json:"connection_uris,omitempty"`
}

// RestoredSnapshot is the answer of POST /projects/{id}/snapshots/{sid}/restore.
type RestoredSnapshot struct {
	Branch     Branch      `json:"branch"`
	Endpoints  []Endpoint  `json:"endpoints,omitempty"`
	Operations []Operation `json:"operations"`
}

// ListProjectsOptions are listProjects' query parameters.
type ListProjectsOptions struct {
	Search string
	OrgID  string
	Limit  int
	Cursor string
}

// ConnectionURIOptions are getConnectionURI's query parameters.
type ConnectionURIOptions struct {
	BranchID     string
	EndpointID   string
	DatabaseName string
	RoleName     string
	Pooled       bool
}

// ConsumptionOptions are the query parameters of GET /consumption_history/projects.
type ConsumptionOptions struct {
	OrgID       string
	ProjectIDs  []string // at most 100
	From, To    time.Time
	Granularity string // hourly | daily | monthly
	Metrics     []string
	Limit       int
	Cursor      string
}

// ConsumptionPoint is one timeframe of ConsumptionHistoryPerPeriod.
type ConsumptionPoint struct {
	TimeframeStart            time.Time `json:"timeframe_start"`
	TimeframeEnd              time.Time `json:"timeframe_end"`
	ActiveTimeSeconds         int64     `json:"active_time_seconds"`
	ComputeTimeSeconds        int64     `json:"compute_time_seconds"`
	WrittenDataBytes          int64     `json:"written_data_bytes"`
	SyntheticStorageSizeBytes int64     `json:"synthetic_storage_size_bytes"`
	DataStorageBytesHour      int64     `json:"data_storage_bytes_hour,omitempty"`
	LogicalSizeBytes          int64     `json:"logical_size_bytes,omitempty"`
}

// ConsumptionPeriod is ConsumptionHistoryPerPeriod.
type ConsumptionPeriod struct {
	PeriodID    string             `json:"period_id"`
	PeriodPlan  string             `json:"period_plan"`
	PeriodStart time.Time          `json:"period_start"`
	PeriodEnd   *time.Time         `json:"period_end,omitempty"`
	Consumption []ConsumptionPoint `json:"consumption"`
}

// ProjectConsumption is one project's history.
type ProjectConsumption struct {
	ProjectID string              `json:"project_id"`
	Periods   []ConsumptionPeriod `json:"periods"`
}

// ConsumptionPage is one page of GET /consumption_history/projects.
type ConsumptionPage struct {
	Projects   []ProjectConsumption `json:"projects"`
	NextCursor string               `json:"-"`
}

// TransferLimit is one entry of the 406 LimitsUnsatisfiedResponse of a project transfer.
type TransferLimit struct {
	Name     string `json:"name"`
	Expected string `json:"expected"`
	Actual   string `json:"actual"`
}
