package controlplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

const stateVersion = 1

// plan holds the hard limits of an org's plan.
type plan struct {
	Name              string // period_plan in consumption history
	MaxBranches       int
	MaxSnapshots      int
	MinCU, MaxCU      float64
	MaxRetention      int   // history_retention_seconds
	MinSuspend        int64 // smallest positive suspend_timeout_seconds
	AllowNeverSuspend bool  // suspend_timeout_seconds = -1
	LogicalSizeMiB    int64
}

func freePlan() plan {
	return plan{Name: "free_v3", MaxBranches: 10, MaxSnapshots: 1, MinCU: 0.25, MaxCU: 2,
		MaxRetention: 86400, MinSuspend: 300, LogicalSizeMiB: 512}
}

func paidPlan() plan {
	return plan{Name: "scale", MaxBranches: 1000, MaxSnapshots: 10, MinCU: 0.25, MaxCU: 16,
		MaxRetention: 604800, MinSuspend: 60, AllowNeverSuspend: true, LogicalSizeMiB: 1 << 20}
}

// project is the persisted form of a Neon project. The API shape is built by
// render functions so the state file format stays independent of the spec.
type project struct {
	ID                 string            `json:"id"`
	Name               string            `json:"name"`
	OrgID              string            `json:"org_id"`
	RegionID           string            `json:"region_id"`
	PgVersion          int               `json:"pg_version"`
	Provisioner        string            `json:"provisioner"`
	StorePasswords     bool              `json:"store_passwords"`
	HistoryRetention   int               `json:"history_retention_seconds"`
	Settings           json.RawMessage   `json:"settings,omitempty"`
	DefaultEndpoint    endpointDefaults  `json:"default_endpoint_settings"`
	RoleName           string            `json:"role_name"`
	RolePassword       string            `json:"role_password"`
	DatabaseName       string            `json:"database_name"`
	DatabaseID         int64             `json:"database_id"`
	CreationSource     string            `json:"creation_source"`
	CreatedAt          time.Time         `json:"created_at"`
	UpdatedAt          time.Time         `json:"updated_at"`
	ActiveTimeSeconds  int64             `json:"active_time_seconds"`
	ComputeTimeSeconds int64             `json:"compute_time_seconds"`
	WrittenDataBytes   int64             `json:"written_data_bytes"`
	DataTransferBytes  int64             `json:"data_transfer_bytes"`
	StorageBytesHour   int64             `json:"data_storage_bytes_hour"`
	SyntheticStorage   int64             `json:"synthetic_storage_size"`
	Annotations        map[string]string `json:"annotations,omitempty"`
	// PeriodStart is the consumption period the counters above belong to; they restart
	// at zero in a new one. QuotaExceeded names the quota that suspended the project.
	PeriodStart   time.Time `json:"period_start"`
	QuotaExceeded string    `json:"quota_exceeded,omitempty"`
	// ComputeLastActiveAt is the last time any of its computes was seen active (started,
	// suspended, or running when usage was sampled); nil until then, as Neon omits it.
	ComputeLastActiveAt *time.Time `json:"compute_last_active_at,omitempty"`
}

type endpointDefaults struct {
	PgSettings     map[string]string `json:"pg_settings,omitempty"`
	MinCU          float64           `json:"autoscaling_limit_min_cu"`
	MaxCU          float64           `json:"autoscaling_limit_max_cu"`
	SuspendTimeout int64             `json:"suspend_timeout_seconds"`
}

type branch struct {
	ID              string            `json:"id"`
	ProjectID       string            `json:"project_id"`
	ParentID        string            `json:"parent_id,omitempty"`
	ParentTime      *time.Time        `json:"parent_time,omitempty"`
	Name            string            `json:"name"`
	Default         bool              `json:"default"`
	Protected       bool              `json:"protected"`
	InitSource      string            `json:"init_source"`
	CurrentState    string            `json:"current_state"`
	PendingState    string            `json:"pending_state,omitempty"`
	StateChangedAt  time.Time         `json:"state_changed_at"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	ExpiresAt       *time.Time        `json:"expires_at,omitempty"`
	LastResetAt     *time.Time        `json:"last_reset_at,omitempty"`
	RestoreStatus   string            `json:"restore_status,omitempty"`
	RestoredFrom    string            `json:"restored_from,omitempty"`
	RestoredAs      string            `json:"restored_as,omitempty"`
	RestoreTargetID string            `json:"restore_target_id,omitempty"` // snapshot restore: branch to replace on finalize
	BackupOf        string            `json:"backup_of,omitempty"`         // PITR backup: the branch it was made for
	BackupSource    string            `json:"backup_source,omitempty"`     // PITR backup: the restore's source (redone by Reconcile after a crash)
	BackupTarget    *time.Time        `json:"backup_target,omitempty"`     // PITR backup: the restore's target time (nil = the source's head)
	LogicalSize     int64             `json:"logical_size,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	AnnotatedAt     time.Time         `json:"annotated_at"`
	// Roles and Databases are the branch's; null (a state file from before they existed) means
	// the project's one role and database (rolesLocked fills them in).
	Roles     []*pgRole     `json:"roles"`
	Databases []*pgDatabase `json:"databases"`
}

// pgRole is a role of a branch. Since is when it came to be in the branch's lineage (its
// creation on an ancestor): a branch or restore at an earlier point in time leaves it out.
type pgRole struct {
	Name     string    `json:"name"`
	Password string    `json:"password,omitempty"`
	NoLogin  bool      `json:"no_login,omitempty"`
	Since    time.Time `json:"since"`
	// PasswordAt is when the password was last reset (zero: since the role was made); a branch
	// or restore at an earlier point sets it again on the copy, whose data has the older one.
	PasswordAt time.Time `json:"password_at,omitzero"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// pgDatabase is a database of a branch (Since as pgRole's).
type pgDatabase struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Owner     string    `json:"owner"`
	Since     time.Time `json:"since"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type endpoint struct {
	ID             string            `json:"id"`
	ProjectID      string            `json:"project_id"`
	BranchID       string            `json:"branch_id"`
	Name           string            `json:"name,omitempty"`
	Type           string            `json:"type"`
	MinCU          float64           `json:"autoscaling_limit_min_cu"`
	MaxCU          float64           `json:"autoscaling_limit_max_cu"`
	SuspendTimeout int64             `json:"suspend_timeout_seconds"`
	PgSettings     map[string]string `json:"pg_settings,omitempty"`
	Disabled       bool              `json:"disabled"`
	Port           int               `json:"port"`
	CurrentState   string            `json:"current_state"`
	PendingState   string            `json:"pending_state,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	StartedAt      *time.Time        `json:"started_at,omitempty"`
	SuspendedAt    *time.Time        `json:"suspended_at,omitempty"`
}

type snapshot struct {
	ID             string     `json:"id"`
	ProjectID      string     `json:"project_id"`
	Name           string     `json:"name"`
	SourceBranchID string     `json:"source_branch_id"`
	At             time.Time  `json:"at"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	// The source branch's roles and databases at At (null: the project's one of each).
	Roles     []*pgRole     `json:"roles,omitempty"`
	Databases []*pgDatabase `json:"databases,omitempty"`
}

type operation struct {
	ID              string    `json:"id"`
	ProjectID       string    `json:"project_id"`
	BranchID        string    `json:"branch_id,omitempty"`
	EndpointID      string    `json:"endpoint_id,omitempty"`
	Action          string    `json:"action"`
	Status          string    `json:"status"`
	Error           string    `json:"error,omitempty"`
	FailuresCount   int       `json:"failures_count"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	TotalDurationMs int64     `json:"total_duration_ms"`
}

func (o *operation) terminal() bool {
	switch o.Status {
	case "finished", "failed", "error", "cancelled", "skipped":
		return true
	}
	return false
}

// state is everything the emulator persists. It is guarded by Server.mu.
type state struct {
	Version        int    `json:"version"`
	PersonalAPIKey string `json:"personal_api_key"`
	FreeOrgID      string `json:"free_org_id"`
	FreeOrgAPIKey  string `json:"free_org_api_key"`
	PaidOrgID      string `json:"paid_org_id"`
	PaidOrgAPIKey  string `json:"paid_org_api_key"`
	// The account's user (the personal key's owner) and their membership of each org.
	UserID           string    `json:"user_id,omitempty"`
	FreeOrgMemberID  string    `json:"free_org_member_id,omitempty"`
	PaidOrgMemberID  string    `json:"paid_org_member_id,omitempty"`
	AccountCreatedAt time.Time `json:"account_created_at"`
	// APIKeys are the organization API keys made through the API (project-scoped or not).
	APIKeys        []*apiKey               `json:"api_keys,omitempty"`
	NextAPIKeyID   int64                   `json:"next_api_key_id,omitempty"`
	NextDatabaseID int64                   `json:"next_database_id"`
	Projects       map[string]*project     `json:"projects"`
	Branches       map[string]*branch      `json:"branches"`
	Endpoints      map[string]*endpoint    `json:"endpoints"`
	Snapshots      map[string]*snapshot    `json:"snapshots"`
	Operations     map[string][]*operation `json:"operations"` // by project id, oldest first
}

func newState() *state {
	return &state{
		Version:        stateVersion,
		NextDatabaseID: 1000,
		Projects:       map[string]*project{},
		Branches:       map[string]*branch{},
		Endpoints:      map[string]*endpoint{},
		Snapshots:      map[string]*snapshot{},
		Operations:     map[string][]*operation{},
	}
}

func statePath(dataDir string) string {
	return filepath.Join(dataDir, "neonlocal", "state.json")
}

// loadState reads the state file; a missing file yields an empty state.
func loadState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	st := newState()
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("decode state %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state %s: unsupported version %d", path, st.Version)
	}
	// Maps may be null in a hand-edited file.
	if st.Projects == nil {
		st.Projects = map[string]*project{}
	}
	if st.Branches == nil {
		st.Branches = map[string]*branch{}
	}
	if st.Endpoints == nil {
		st.Endpoints = map[string]*endpoint{}
	}
	if st.Snapshots == nil {
		st.Snapshots = map[string]*snapshot{}
	}
	if st.Operations == nil {
		st.Operations = map[string][]*operation{}
	}
	return st, nil
}

// writeFileAtomic writes via temp file + fsync + rename + directory fsync so a
// crash leaves either the old or the new state, never a torn file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".state-*.json")
	if err != nil {
		return fmt.Errorf("create temp state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write temp state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync temp state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close temp state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open state dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state dir: %w", err)
	}
	return nil
}

// saveLocked persists the state; callers hold s.mu.
func (s *Server) saveLocked() error {
	b, err := json.MarshalIndent(s.st, "", " ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	// Nothing changed (the usage loop and start-up save often): skip the fsyncs.
	if bytes.Equal(b, s.saved) {
		return nil
	}
	if err := writeFileAtomic(s.path, b); err != nil {
		return err
	}
	s.saved = b
	return nil
}

// recoverLocked brings a freshly loaded state to rest: operations that were
// running when the previous process stopped are finished (their data-plane
// work cannot be resumed), and transient branch/endpoint states settle.
func (s *Server) recoverLocked(now time.Time) {
	for _, ops := range s.st.Operations {
		for _, op := range ops {
			if !op.terminal() {
				op.Status = "finished"
				op.UpdatedAt = now
			}
		}
	}
	for _, b := range s.st.Branches {
		if b.PendingState != "" {
			b.CurrentState, b.PendingState = b.PendingState, ""
			b.StateChangedAt = now
		}
	}
	for _, e := range s.st.Endpoints {
		if e.PendingState != "" {
			e.CurrentState, e.PendingState = e.PendingState, ""
		}
	}
}

func (s *Server) planOf(orgID string) plan {
	if orgID == s.st.PaidOrgID {
		return paidPlan()
	}
	return freePlan()
}
