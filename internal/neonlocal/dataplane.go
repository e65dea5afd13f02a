package neonlocal

import (
	"context"
	"time"
)

// DataPlane is what the control plane calls when storage or computes must
// change. Every call runs inside an operation, asynchronously, after the
// control-plane state was committed and after Options.OperationDelay; an
// error marks that operation "failed" (and later operations of the same
// request "cancelled"). Implementations must be safe for concurrent use.
//
// The control plane never waits on the data plane while answering a request,
// so a slow data plane only makes operations take longer, as on Neon.
type DataPlane interface {
	// CreateBranch makes the storage of a new branch. ParentID == "" means a
	// new root (the project's first branch).
	CreateBranch(ctx context.Context, spec BranchSpec) error
	// RestoreBranch rewrites BranchID in place from SourceBranchID at
	// Target (zero = head). When BackupBranchID is set, the pre-restore
	// state must be kept under that branch. The branch's endpoints
	// (Endpoints) keep their ports and must be restarted.
	RestoreBranch(ctx context.Context, spec RestoreSpec) error
	// DeleteBranch drops a branch's storage (its endpoints were suspended first).
	DeleteBranch(ctx context.Context, projectID, branchID string) error
	// CreateSnapshot keeps the state of BranchID at At.
	CreateSnapshot(ctx context.Context, spec SnapshotSpec) error
	// RestoreSnapshot creates the storage of the new branch newBranchID from a snapshot.
	RestoreSnapshot(ctx context.Context, spec SnapshotSpec, newBranchID string) error
	// DeleteSnapshot drops a snapshot.
	DeleteSnapshot(ctx context.Context, projectID, snapshotID string) error
	// StartEndpoint starts (or restarts) the compute of an endpoint on its port.
	StartEndpoint(ctx context.Context, spec EndpointSpec) error
	// SuspendEndpoint stops the compute of an endpoint; the port stays reserved.
	SuspendEndpoint(ctx context.Context, spec EndpointSpec) error
	// DeleteProject drops everything of a project. It is called after the
	// project vanished from the API, outside any operation.
	DeleteProject(ctx context.Context, projectID string) error
	// Reconcile is called once at start, before the API serves, with every branch (parents
	// before children) and every endpoint: it remakes what a crash interrupted and makes
	// every endpoint's port accept connections again.
	Reconcile(ctx context.Context, branches []BranchSpec, endpoints []EndpointSpec) error
	// Usage reports what a project's computes consumed since the data plane started
	// (counters that only grow), and each branch's logical size now.
	Usage(ctx context.Context, projectID string) (Usage, error)
	// Restrict refuses new connections to a project's endpoints with reason (quota
	// exceeded), or accepts them again when reason is "". readOnly lists the branches over
	// the logical size quota: their databases refuse writes.
	Restrict(ctx context.Context, projectID, reason string, readOnly []string) error
	// Prune drops history older than before (the project's restore window).
	Prune(ctx context.Context, projectID string, before time.Time) error
	// ApplyConfig makes one change to the roles or databases of a branch's PostgreSQL (Neon's
	// apply_config), starting it for the change when it is not running. A change may be
	// applied again (an operation re-run): applying one already in effect succeeds.
	ApplyConfig(ctx context.Context, change ConfigChange) error
}

// ConfigKind is what a ConfigChange does.
type ConfigKind string

// The changes of a branch's roles and databases.
const (
	CreateRole     ConfigKind = "create_role"     // Role, Password ("" with NoLogin)
	SetPassword    ConfigKind = "set_password"    // Role, Password
	DropRole       ConfigKind = "drop_role"       // Role: what it owns goes to each database's owner
	CreateDatabase ConfigKind = "create_database" // Database, Owner
	AlterDatabase  ConfigKind = "alter_database"  // Database, NewName and/or Owner
	DropDatabase   ConfigKind = "drop_database"   // Database (its sessions are ended)
)

// ConfigChange is one change of a branch's roles or databases.
type ConfigChange struct {
	ProjectID string
	BranchID  string
	Kind      ConfigKind
	Role      string
	Password  string
	NoLogin   bool
	Database  string
	NewName   string // AlterDatabase: the new name ("" = unchanged)
	Owner     string // CreateDatabase: the owner; AlterDatabase: the new owner ("" = unchanged)
}

// PGVersioner is implemented by a data plane that serves only some PostgreSQL majors (the
// ones installed on the host). The emulator then refuses a project of another major with 400,
// rather than report one major and run another, and a project that names none gets the newest
// it serves instead of Neon's default.
type PGVersioner interface {
	// PGVersions lists the majors served, newest first.
	PGVersions() []int
}

// Usage is a project's consumption as the data plane measures it.
type Usage struct {
	ActiveTime    time.Duration    // time its computes were up
	CPUTime       time.Duration    // CPU time of its PostgreSQL processes
	WrittenBytes  int64            // WAL written
	TransferBytes int64            // bytes sent to clients through the endpoints
	LogicalSize   map[string]int64 // per branch: size of the project's database
}

// BranchSpec describes a branch to create.
type BranchSpec struct {
	ProjectID  string
	BranchID   string
	ParentID   string    // "" for a root branch
	ParentTime time.Time // point of the parent's history; zero = head
	// FromSnapshotID is set for a branch made by a snapshot restore (Reconcile remakes it
	// from the snapshot).
	FromSnapshotID string
	PgVersion      int
	RoleName       string
	RolePassword   string
	DatabaseName   string

	// RestoreOf is set for the backup branch of an in-place restore (its BackupBranchID).
	// Such a branch has no data at Reconcile only when a crash came before the restore's
	// swap: Reconcile then does the restore again.
	RestoreOf *RestoreSpec
}

// RestoreSpec describes an in-place (PITR) restore.
type RestoreSpec struct {
	ProjectID      string
	BranchID       string
	SourceBranchID string
	Target         time.Time // zero = head of the source
	BackupBranchID string    // "" when no backup is kept
	Endpoints      []EndpointSpec
}

// SnapshotSpec describes a snapshot.
type SnapshotSpec struct {
	ProjectID  string
	SnapshotID string
	BranchID   string // source branch
	At         time.Time
}

// EndpointSpec describes a compute endpoint.
type EndpointSpec struct {
	ProjectID  string
	BranchID   string
	EndpointID string
	Port       int
	ReadOnly   bool
	// SuspendTimeout is how long the compute stays up without connections: 0 = the
	// default, negative = never.
	SuspendTimeout time.Duration
	PgVersion      int
	PgSettings     map[string]string
	RoleName       string
	RolePassword   string
	DatabaseName   string
}

// NopDataPlane does nothing; it is used until the real data plane exists.
type NopDataPlane struct{}

var _ DataPlane = NopDataPlane{}

func (NopDataPlane) CreateBranch(context.Context, BranchSpec) error              { return nil }
func (NopDataPlane) RestoreBranch(context.Context, RestoreSpec) error            { return nil }
func (NopDataPlane) DeleteBranch(context.Context, string, string) error          { return nil }
func (NopDataPlane) CreateSnapshot(context.Context, SnapshotSpec) error          { return nil }
func (NopDataPlane) RestoreSnapshot(context.Context, SnapshotSpec, string) error { return nil }
func (NopDataPlane) DeleteSnapshot(context.Context, string, string) error        { return nil }
func (NopDataPlane) StartEndpoint(context.Context, EndpointSpec) error           { return nil }
func (NopDataPlane) SuspendEndpoint(context.Context, EndpointSpec) error         { return nil }
func (NopDataPlane) DeleteProject(context.Context, string) error                 { return nil }
func (NopDataPlane) Reconcile(context.Context, []BranchSpec, []EndpointSpec) error {
	return nil
}
func (NopDataPlane) Usage(context.Context, string) (Usage, error)             { return Usage{}, nil }
func (NopDataPlane) Restrict(context.Context, string, string, []string) error { return nil }
func (NopDataPlane) Prune(context.Context, string, time.Time) error           { return nil }
func (NopDataPlane) ApplyConfig(context.Context, ConfigChange) error          { return nil }
