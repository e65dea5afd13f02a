package controlplane

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// API shapes of Neon's spec (components/schemas). Required fields have no
// omitempty; optional ones do.

type apiOperation struct {
	ID              string `json:"id"`
	ProjectID       string `json:"project_id"`
	BranchID        string `json:"branch_id,omitempty"`
	EndpointID      string `json:"endpoint_id,omitempty"`
	Action          string `json:"action"`
	Status          string `json:"status"`
	Error           string `json:"error,omitempty"`
	FailuresCount   int    `json:"failures_count"`
	CreatedAt       string `json:"created_at"`
	UpdatedAt       string `json:"updated_at"`
	TotalDurationMs int64  `json:"total_duration_ms"`
}

type apiDefaultEndpointSettings struct {
	PgSettings     map[string]string `json:"pg_settings,omitempty"`
	MinCU          float64           `json:"autoscaling_limit_min_cu"`
	MaxCU          float64           `json:"autoscaling_limit_max_cu"`
	SuspendTimeout int64             `json:"suspend_timeout_seconds"`
}

type apiProject struct {
	DataStorageBytesHour        int64                      `json:"data_storage_bytes_hour"`
	DataTransferBytes           int64                      `json:"data_transfer_bytes"`
	WrittenDataBytes            int64                      `json:"written_data_bytes"`
	ComputeTimeSeconds          int64                      `json:"compute_time_seconds"`
	ActiveTimeSeconds           int64                      `json:"active_time_seconds"`
	CPUUsedSec                  int64                      `json:"cpu_used_sec"`
	ID                          string                     `json:"id"`
	PlatformID                  string                     `json:"platform_id"`
	RegionID                    string                     `json:"region_id"`
	Name                        string                     `json:"name"`
	Provisioner                 string                     `json:"provisioner"`
	DefaultEndpointSettings     apiDefaultEndpointSettings `json:"default_endpoint_settings"`
	Settings                    json.RawMessage            `json:"settings"`
	PgVersion                   int                        `json:"pg_version"`
	ProxyHost                   string                     `json:"proxy_host"`
	BranchLogicalSizeLimit      int64                      `json:"branch_logical_size_limit"`
	BranchLogicalSizeLimitBytes int64                      `json:"branch_logical_size_limit_bytes"`
	StorePasswords              bool                       `json:"store_passwords"`
	CreationSource              string                     `json:"creation_source"`
	HistoryRetentionSeconds     int                        `json:"history_retention_seconds"`
	CreatedAt                   string                     `json:"created_at"`
	UpdatedAt                   string                     `json:"updated_at"`
	SyntheticStorageSize        int64                      `json:"synthetic_storage_size"`
	ConsumptionPeriodStart      string                     `json:"consumption_period_start"`
	ConsumptionPeriodEnd        string                     `json:"consumption_period_end"`
	OwnerID                     string                     `json:"owner_id"`
	OrgID                       string                     `json:"org_id"`
	ComputeLastActiveAt         *string                    `json:"compute_last_active_at,omitempty"`
}

type apiProjectListItem struct {
	ID                          string                     `json:"id"`
	PlatformID                  string                     `json:"platform_id"`
	RegionID                    string                     `json:"region_id"`
	Name                        string                     `json:"name"`
	Provisioner                 string                     `json:"provisioner"`
	DefaultEndpointSettings     apiDefaultEndpointSettings `json:"default_endpoint_settings"`
	Settings                    json.RawMessage            `json:"settings"`
	PgVersion                   int                        `json:"pg_version"`
	ProxyHost                   string                     `json:"proxy_host"`
	BranchLogicalSizeLimit      int64                      `json:"branch_logical_size_limit"`
	BranchLogicalSizeLimitBytes int64                      `json:"branch_logical_size_limit_bytes"`
	StorePasswords              bool                       `json:"store_passwords"`
	ActiveTime                  int64                      `json:"active_time"`
	CPUUsedSec                  int64                      `json:"cpu_used_sec"`
	CreationSource              string                     `json:"creation_source"`
	CreatedAt                   string                     `json:"created_at"`
	UpdatedAt                   string                     `json:"updated_at"`
	SyntheticStorageSize        int64                      `json:"synthetic_storage_size"`
	OwnerID                     string                     `json:"owner_id"`
	OrgID                       string                     `json:"org_id"`
	HistoryRetentionSeconds     int                        `json:"history_retention_seconds"`
	ComputeLastActiveAt         *string                    `json:"compute_last_active_at,omitempty"`
}

type apiBranch struct {
	ID                 string  `json:"id"`
	ProjectID          string  `json:"project_id"`
	ParentID           string  `json:"parent_id,omitempty"`
	ParentLSN          string  `json:"parent_lsn,omitempty"`
	ParentTimestamp    string  `json:"parent_timestamp,omitempty"`
	Name               string  `json:"name"`
	CurrentState       string  `json:"current_state"`
	PendingState       string  `json:"pending_state,omitempty"`
	StateChangedAt     string  `json:"state_changed_at"`
	LogicalSize        int64   `json:"logical_size"`
	CreationSource     string  `json:"creation_source"`
	Primary            bool    `json:"primary"`
	Default            bool    `json:"default"`
	Protected          bool    `json:"protected"`
	CPUUsedSec         int64   `json:"cpu_used_sec"`
	ComputeTimeSeconds int64   `json:"compute_time_seconds"`
	ActiveTimeSeconds  int64   `json:"active_time_seconds"`
	WrittenDataBytes   int64   `json:"written_data_bytes"`
	DataTransferBytes  int64   `json:"data_transfer_bytes"`
	CreatedAt          string  `json:"created_at"`
	UpdatedAt          string  `json:"updated_at"`
	TTLIntervalSeconds *int64  `json:"ttl_interval_seconds,omitempty"`
	ExpiresAt          *string `json:"expires_at,omitempty"`
	LastResetAt        *string `json:"last_reset_at,omitempty"`
	InitSource         string  `json:"init_source,omitempty"`
	RestoreStatus      string  `json:"restore_status,omitempty"`
	RestoredFrom       string  `json:"restored_from,omitempty"`
	RestoredAs         string  `json:"restored_as,omitempty"`
}

type apiEndpointSettings struct {
	PgSettings map[string]string `json:"pg_settings"`
}

type apiEndpoint struct {
	Host           string              `json:"host"`
	ID             string              `json:"id"`
	Name           string              `json:"name,omitempty"`
	ProjectID      string              `json:"project_id"`
	BranchID       string              `json:"branch_id"`
	MinCU          float64             `json:"autoscaling_limit_min_cu"`
	MaxCU          float64             `json:"autoscaling_limit_max_cu"`
	RegionID       string              `json:"region_id"`
	Type           string              `json:"type"`
	CurrentState   string              `json:"current_state"`
	PendingState   string              `json:"pending_state,omitempty"`
	Settings       apiEndpointSettings `json:"settings"`
	PoolerEnabled  bool                `json:"pooler_enabled"`
	PoolerMode     string              `json:"pooler_mode"`
	Disabled       bool                `json:"disabled"`
	Passwordless   bool                `json:"passwordless_access"`
	LastActive     *string             `json:"last_active,omitempty"`
	CreationSource string              `json:"creation_source"`
	CreatedAt      string              `json:"created_at"`
	UpdatedAt      string              `json:"updated_at"`
	StartedAt      *string             `json:"started_at,omitempty"`
	SuspendedAt    *string             `json:"suspended_at,omitempty"`
	ProxyHost      string              `json:"proxy_host"`
	SuspendTimeout int64               `json:"suspend_timeout_seconds"`
	Provisioner    string              `json:"provisioner"`
}

type apiSnapshot struct {
	ID             string  `json:"id"`
	Name           string  `json:"name"`
	LSN            string  `json:"lsn"`
	Timestamp      string  `json:"timestamp"`
	SourceBranchID string  `json:"source_branch_id"`
	CreatedAt      string  `json:"created_at"`
	ExpiresAt      *string `json:"expires_at,omitempty"`
	Manual         bool    `json:"manual"`
}

type apiRole struct {
	BranchID  string `json:"branch_id"`
	Name      string `json:"name"`
	Password  string `json:"password,omitempty"`
	Protected bool   `json:"protected"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

type apiDatabase struct {
	ID        int64  `json:"id"`
	BranchID  string `json:"branch_id"`
	Name      string `json:"name"`
	OwnerName string `json:"owner_name"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

type apiConnectionDetails struct {
	ConnectionURI        string                  `json:"connection_uri"`
	ConnectionParameters apiConnectionParameters `json:"connection_parameters"`
}

type apiConnectionParameters struct {
	Database   string `json:"database"`
	Password   string `json:"password"`
	Role       string `json:"role"`
	Host       string `json:"host"`
	PoolerHost string `json:"pooler_host"`
}

type apiAnnotation struct {
	Object    apiAnnotationObject `json:"object"`
	Value     map[string]string   `json:"value"`
	CreatedAt string              `json:"created_at,omitempty"`
	UpdatedAt string              `json:"updated_at,omitempty"`
}

type apiAnnotationObject struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// host is the host name of every endpoint (Options.EndpointHost): the endpoints listen on
// 127.0.0.1, which the name must resolve to.
func (s *Server) host() string { return s.opts.EndpointHost }

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func tsPtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	v := ts(*t)
	return &v
}

// lsnAt is the emulated LSN of a point in time: microseconds since the Unix
// epoch written as Postgres writes LSNs ("X/Y" hex). It lets LSNs be mapped
// back to time for the restore-window checks until a data plane exists.
func lsnAt(t time.Time) string {
	v := uint64(t.UnixMicro())
	return fmt.Sprintf("%X/%X", v>>32, v&0xffffffff)
}

// lsnTime parses an emulated LSN back to its time.
func lsnTime(lsn string) (time.Time, error) {
	var hi, lo uint64
	if _, err := fmt.Sscanf(lsn, "%X/%X", &hi, &lo); err != nil {
		return time.Time{}, errf(400, "invalid lsn %q", lsn)
	}
	return time.UnixMicro(int64(hi<<32 | lo)).UTC(), nil
}

// monthBounds is the calendar month (UTC) holding t: the consumption period.
func monthBounds(t time.Time) (time.Time, time.Time) {
	t = t.UTC()
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, 0)
}

func renderOp(o *operation) apiOperation {
	return apiOperation{
		ID: o.ID, ProjectID: o.ProjectID, BranchID: o.BranchID, EndpointID: o.EndpointID,
		Action: o.Action, Status: o.Status, Error: o.Error, FailuresCount: o.FailuresCount,
		CreatedAt: ts(o.CreatedAt), UpdatedAt: ts(o.UpdatedAt), TotalDurationMs: o.TotalDurationMs,
	}
}

func renderDefaults(d endpointDefaults) apiDefaultEndpointSettings {
	return apiDefaultEndpointSettings{PgSettings: copyMap(d.PgSettings), MinCU: d.MinCU, MaxCU: d.MaxCU, SuspendTimeout: d.SuspendTimeout}
}

func (s *Server) renderProject(p *project) apiProject {
	pl := s.planOf(p.OrgID)
	start, end := monthBounds(s.now())
	return apiProject{
		DataStorageBytesHour: p.StorageBytesHour, DataTransferBytes: p.DataTransferBytes,
		WrittenDataBytes: p.WrittenDataBytes, ComputeTimeSeconds: p.ComputeTimeSeconds,
		ActiveTimeSeconds: p.ActiveTimeSeconds, CPUUsedSec: p.ComputeTimeSeconds,
		ID: p.ID, PlatformID: "aws", RegionID: p.RegionID, Name: p.Name, Provisioner: p.Provisioner,
		DefaultEndpointSettings: renderDefaults(p.DefaultEndpoint), Settings: projectSettings(p),
		PgVersion: p.PgVersion, ProxyHost: s.host(),
		BranchLogicalSizeLimit: pl.LogicalSizeMiB, BranchLogicalSizeLimitBytes: pl.LogicalSizeMiB << 20,
		StorePasswords: p.StorePasswords, CreationSource: p.CreationSource,
		HistoryRetentionSeconds: p.HistoryRetention, CreatedAt: ts(p.CreatedAt), UpdatedAt: ts(p.UpdatedAt),
		SyntheticStorageSize: p.SyntheticStorage, ConsumptionPeriodStart: ts(start), ConsumptionPeriodEnd: ts(end),
		OwnerID: p.OrgID, OrgID: p.OrgID, ComputeLastActiveAt: tsPtr(p.ComputeLastActiveAt),
	}
}

func (s *Server) renderProjectListItem(p *project) apiProjectListItem {
	pl := s.planOf(p.OrgID)
	return apiProjectListItem{
		ID: p.ID, PlatformID: "aws", RegionID: p.RegionID, Name: p.Name, Provisioner: p.Provisioner,
		DefaultEndpointSettings: renderDefaults(p.DefaultEndpoint), Settings: projectSettings(p),
		PgVersion: p.PgVersion, ProxyHost: s.host(),
		BranchLogicalSizeLimit: pl.LogicalSizeMiB, BranchLogicalSizeLimitBytes: pl.LogicalSizeMiB << 20,
		StorePasswords: p.StorePasswords, ActiveTime: p.ActiveTimeSeconds, CPUUsedSec: p.ComputeTimeSeconds,
		CreationSource: p.CreationSource, CreatedAt: ts(p.CreatedAt), UpdatedAt: ts(p.UpdatedAt),
		SyntheticStorageSize: p.SyntheticStorage, OwnerID: p.OrgID, OrgID: p.OrgID,
		HistoryRetentionSeconds: p.HistoryRetention, ComputeLastActiveAt: tsPtr(p.ComputeLastActiveAt),
	}
}

// projectSettings always carries a quota object (zeros = unlimited).
func projectSettings(p *project) json.RawMessage {
	if len(p.Settings) > 0 {
		return p.Settings
	}
	return json.RawMessage(`{"quota":{}}`)
}

func (s *Server) renderBranch(b *branch) apiBranch {
	out := apiBranch{
		ID: b.ID, ProjectID: b.ProjectID, ParentID: b.ParentID, Name: b.Name,
		CurrentState: b.CurrentState, PendingState: b.PendingState, StateChangedAt: ts(b.StateChangedAt),
		CreationSource: "console", Primary: b.Default, Default: b.Default, Protected: b.Protected,
		CreatedAt: ts(b.CreatedAt), UpdatedAt: ts(b.UpdatedAt), ExpiresAt: tsPtr(b.ExpiresAt),
		LastResetAt: tsPtr(b.LastResetAt), InitSource: b.InitSource, RestoreStatus: b.RestoreStatus,
		RestoredFrom: b.RestoredFrom, RestoredAs: b.RestoredAs, LogicalSize: b.LogicalSize,
	}
	if b.ParentTime != nil {
		out.ParentTimestamp = ts(*b.ParentTime)
		out.ParentLSN = lsnAt(*b.ParentTime)
	}
	if b.ExpiresAt != nil {
		ttl := int64(b.ExpiresAt.Sub(b.CreatedAt).Seconds())
		out.TTLIntervalSeconds = &ttl
	}
	return out
}

func (s *Server) renderEndpoint(e *endpoint) apiEndpoint {
	region := ""
	if p := s.st.Projects[e.ProjectID]; p != nil {
		region = p.RegionID
	}
	pg := copyMap(e.PgSettings)
	if pg == nil {
		pg = map[string]string{}
	}
	state := e.CurrentState
	// A data plane suspends idle computes on its own (scale to zero): report what runs.
	if live, ok := s.dp.(interface{ EndpointActive(string) (bool, bool) }); ok && e.PendingState == "" &&
		(state == "active" || state == "idle") {
		if active, known := live.EndpointActive(e.ID); known {
			state = "idle"
			if active {
				state = "active"
			}
		}
	}
	return apiEndpoint{
		// host:port, so clients that build URIs from endpoint.host (neonctl does) reach the
		// endpoint's own port.
		Host: net.JoinHostPort(s.host(), strconv.Itoa(e.Port)), ID: e.ID, Name: e.Name, ProjectID: e.ProjectID, BranchID: e.BranchID,
		MinCU: e.MinCU, MaxCU: e.MaxCU, RegionID: region, Type: e.Type,
		CurrentState: state, PendingState: e.PendingState,
		Settings: apiEndpointSettings{PgSettings: pg}, PoolerMode: "transaction", Disabled: e.Disabled,
		CreationSource: "console", CreatedAt: ts(e.CreatedAt), UpdatedAt: ts(e.UpdatedAt),
		StartedAt: tsPtr(e.StartedAt), SuspendedAt: tsPtr(e.SuspendedAt), LastActive: tsPtr(e.StartedAt),
		ProxyHost: s.host(), SuspendTimeout: e.SuspendTimeout, Provisioner: "k8s-neonvm",
	}
}

func renderSnapshot(sn *snapshot) apiSnapshot {
	return apiSnapshot{
		ID: sn.ID, Name: sn.Name, LSN: lsnAt(sn.At), Timestamp: ts(sn.At), SourceBranchID: sn.SourceBranchID,
		CreatedAt: ts(sn.CreatedAt), ExpiresAt: tsPtr(sn.ExpiresAt), Manual: true,
	}
}

func renderAnnotation(b *branch) apiAnnotation {
	v := copyMap(b.Annotations)
	if v == nil {
		v = map[string]string{}
	}
	a := apiAnnotation{Object: apiAnnotationObject{Type: "console/branch", ID: b.ID}, Value: v}
	if !b.AnnotatedAt.IsZero() {
		a.CreatedAt, a.UpdatedAt = ts(b.AnnotatedAt), ts(b.AnnotatedAt)
	}
	return a
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// uriOf builds the URI of a role/database on an endpoint's port.
func (s *Server) uriOf(role *pgRole, db string, e *endpoint) string {
	u := url.URL{Scheme: "postgresql", User: url.UserPassword(role.Name, role.Password),
		Host: net.JoinHostPort(s.host(), strconv.Itoa(e.Port)), Path: "/" + db, RawQuery: "sslmode=require"}
	return u.String()
}

func (s *Server) connectionDetails(role *pgRole, db string, e *endpoint) apiConnectionDetails {
	return apiConnectionDetails{
		ConnectionURI: s.uriOf(role, db, e),
		ConnectionParameters: apiConnectionParameters{
			Database: db, Password: role.Password, Role: role.Name,
			Host: s.host(), PoolerHost: s.host(),
		},
	}
}

// rolesAndDatabases renders a branch's roles (with their passwords when the project stores
// them: the answer of a project or branch create) and databases.
func (s *Server) rolesAndDatabases(p *project, b *branch) ([]apiRole, []apiDatabase) {
	roles, dbs := s.listsLocked(b)
	outR := make([]apiRole, 0, len(roles))
	for _, r := range roles {
		outR = append(outR, renderRole(b, r, p.StorePasswords))
	}
	outD := make([]apiDatabase, 0, len(dbs))
	for _, d := range dbs {
		outD = append(outD, renderDatabase(b, d))
	}
	return outR, outD
}

// withCursor adds Neon's PaginationResponse when there is a cursor to give
// (the spec requires a non-empty one).
func withCursor(body map[string]any, cursor string) map[string]any {
	if cursor != "" {
		body["pagination"] = map[string]string{"cursor": cursor}
	}
	return body
}
