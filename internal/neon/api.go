package neon

import "context"

// API is every Neon API v2 call the guard makes. *Client implements it; each Client is bound to
// one API key (an org key or the personal key), so the caller picks the client for the org.
//
// Every mutating method waits until the operations it started are terminal before it returns,
// so the caller may issue the next mutating call at once. Errors are *APIError (an HTTP answer
// from Neon), *OperationError (an operation that failed) or transport errors, all wrapped with
// %w; none of them contains an API key or a password.
type API interface {
	// Projects.
	CreateProject(ctx context.Context, req ProjectCreate) (*CreatedProject, error)
	GetProject(ctx context.Context, projectID string) (*Project, error)
	ListProjects(ctx context.Context, opts ListProjectsOptions) ([]Project, string, error)
	UpdateProject(ctx context.Context, projectID string, req ProjectUpdate) (*Project, error)
	DeleteProject(ctx context.Context, projectID string) error
	ConnectionURI(ctx context.Context, projectID string, opts ConnectionURIOptions) (string, error)
	TransferProjects(ctx context.Context, sourceOrgID, destinationOrgID string, projectIDs []string) error

	// Branches.
	CreateBranch(ctx context.Context, projectID string, req BranchCreate, endpoints []EndpointCreate) (*CreatedBranch, error)
	ListBranches(ctx context.Context, projectID string) ([]Branch, error)
	GetBranch(ctx context.Context, projectID, branchID string) (*Branch, error)
	UpdateBranch(ctx context.Context, projectID, branchID string, req BranchUpdate) (*Branch, error)
	DeleteBranch(ctx context.Context, projectID, branchID string) error
	RestoreBranch(ctx context.Context, projectID, branchID string, req BranchRestore) (*Branch, error)
	ListBranchEndpoints(ctx context.Context, projectID, branchID string) ([]Endpoint, error)

	// Snapshots.
	CreateSnapshot(ctx context.Context, projectID, branchID string, req SnapshotCreate) (*Snapshot, error)
	ListSnapshots(ctx context.Context, projectID string) ([]Snapshot, error)
	DeleteSnapshot(ctx context.Context, projectID, snapshotID string) error
	RestoreSnapshot(ctx context.Context, projectID, snapshotID string, req SnapshotRestore) (*RestoredSnapshot, error)
	FinalizeRestore(ctx context.Context, projectID, branchID, oldBranchName string) error

	// Endpoints and operations.
	ListEndpoints(ctx context.Context, projectID string) ([]Endpoint, error)
	// CreateEndpoint adds a compute to a branch (POST /projects/{id}/endpoints, 201).
	CreateEndpoint(ctx context.Context, projectID, branchID string, req EndpointCreate) (*Endpoint, error)
	GetOperation(ctx context.Context, projectID, operationID string) (*Operation, error)

	// Consumption (GET /consumption_history/projects).
	Consumption(ctx context.Context, opts ConsumptionOptions) (*ConsumptionPage, error)
}
