package controlplane

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"golang.org/x/time/rate"
)

// apiPrefix is where Neon serves API v2; clients use http://HOST:PORT/api/v2.
const apiPrefix = "/api/v2"

// Options configure a Server.
type Options struct {
	// DataDir holds the persisted state (DataDir/neonlocal/state.json).
	DataDir string
	// API keys; empty ones are generated once and persisted in DataDir.
	PersonalAPIKey, FreeOrgAPIKey, PaidOrgAPIKey string
	// EndpointHost is the host name of the endpoints in endpoint.host, proxy_host and
	// connection URIs (default 127.0.0.1). It must resolve to 127.0.0.1, where they listen:
	// "localhost" makes Neon's serverless driver send SQL over HTTP to https://localhost/sql.
	EndpointHost string
	// OperationDelay is how long each operation runs before it finishes
	// (default 50ms).
	OperationDelay time.Duration
	Logger         *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// DataPlane receives storage/compute work (nil = neonlocal.NopDataPlane).
	DataPlane neonlocal.DataPlane
	// ConsumptionRatePerMinute sizes the per-key token bucket of the
	// /consumption_history endpoints (default 30).
	ConsumptionRatePerMinute int
	// SweepInterval is how often expired branches and snapshots are deleted
	// (default 1s).
	SweepInterval time.Duration
	// UsageInterval is how often the data plane's usage is added to the projects' counters
	// and their quotas enforced (default 5s).
	UsageInterval time.Duration
	// FaultSeed seeds the fault-injection RNG (0 = time based).
	FaultSeed int64
	// Lock is DataDir's lock when the caller took it (neonlocal.LockDataDir) before starting
	// the data plane, which must not run without it; the caller releases it after Close. Nil:
	// New takes it and Close releases it.
	Lock *neonlocal.DataDirLock
	// DiskBudget caps the disk used under DataDir, the data plane's PostgreSQL data included:
	// a new project or branch that would pass it is refused with 422 DISK_BUDGET_EXCEEDED
	// (0 = no budget). DiskMinFree refuses the same when it would leave less free space than
	// this on DataDir's filesystem (0 = not checked).
	DiskBudget, DiskMinFree int64
	// BranchDiskBytes is the room one new project or branch is expected to take (default
	// 64 MiB, twice a fresh local cluster with its base backup and WAL archive).
	BranchDiskBytes int64
	// DiskCacheTTL is how long a measurement of DataDir is reused (default 5s).
	DiskCacheTTL time.Duration
}

// Credentials are the keys and org ids of the emulated account.
type Credentials struct {
	PersonalAPIKey string
	FreeOrgID      string
	FreeOrgAPIKey  string
	PaidOrgID      string
	PaidOrgAPIKey  string
}

// RequestStats counts the requests received by "METHOD /route/template".
type RequestStats map[string]int

// Server is the emulated Neon control plane. It is an http.Handler.
type Server struct {
	opts   Options
	log    *slog.Logger
	dp     neonlocal.DataPlane
	mux    *http.ServeMux
	faults *Faults
	path   string
	disk   *diskGauge

	ctx    context.Context // canceled by Close; parent of operation goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup

	statsMu sync.Mutex
	stats   map[string]int

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	usageMu sync.Mutex
	usage   map[string]usageMark // by project: the data plane's counters at the last sample

	mu       sync.Mutex // guards st, closed and readOnly
	st       *state
	closed   bool
	readOnly map[string]string // by project: the read-only branch set last applied

	lock     *neonlocal.DataDirLock // held for the Server's life: one emulator per data dir
	ownsLock bool                   // New took lock, so Close releases it
	saved    []byte                 // the state as last written (guarded by mu)
}

// New loads (or initialises) the state under opts.DataDir and returns a
// ready Server. ctx bounds background work together with Close.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("neonlocal: Options.DataDir is required")
	}
	if opts.EndpointHost == "" {
		opts.EndpointHost = "127.0.0.1"
	}
	if opts.OperationDelay <= 0 {
		opts.OperationDelay = 50 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DataPlane == nil {
		opts.DataPlane = neonlocal.NopDataPlane{}
	}
	if opts.ConsumptionRatePerMinute <= 0 {
		opts.ConsumptionRatePerMinute = 30
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = time.Second
	}
	if opts.UsageInterval <= 0 {
		opts.UsageInterval = 5 * time.Second
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		dp:       opts.DataPlane,
		mux:      http.NewServeMux(),
		faults:   newFaults(opts.FaultSeed),
		path:     statePath(opts.DataDir),
		disk:     newDiskGauge(opts),
		stats:    map[string]int{},
		limiters: map[string]*rate.Limiter{},
		usage:    map[string]usageMark{},
	}
	s.lock = opts.Lock
	if s.lock == nil {
		lock, err := neonlocal.LockDataDir(opts.DataDir)
		if err != nil {
			return nil, fmt.Errorf("neonlocal: %w", err)
		}
		s.lock, s.ownsLock = lock, true
	}
	unlock := func() {
		if s.ownsLock {
			_ = s.lock.Close()
		}
	}
	st, err := loadState(s.path)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("neonlocal: %w", err)
	}
	s.st = st
	if b, err := os.ReadFile(s.path); err == nil {
		s.saved = b // unchanged after a clean start: no need to write it again
	}
	s.initCredentials()
	s.initAccount(s.now())
	s.recoverLocked(s.now())
	if err := s.saveLocked(); err != nil {
		unlock()
		return nil, fmt.Errorf("neonlocal: %w", err)
	}
	branches, endpoints := s.reconcileSpecsLocked()
	if err := s.dp.Reconcile(ctx, branches, endpoints); err != nil {
		unlock()
		return nil, fmt.Errorf("neonlocal: data plane: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.routes()
	s.wg.Add(1)
	go s.sweepLoop(ctx)
	s.wg.Add(1)
	go s.usageLoop(ctx)
	return s, nil
}

func (s *Server) initCredentials() {
	st := s.st
	set := func(dst *string, given string, gen func() string) {
		switch {
		case given != "":
			*dst = given
		case *dst == "":
			*dst = gen()
		}
	}
	set(&st.PersonalAPIKey, s.opts.PersonalAPIKey, newAPIKey)
	set(&st.FreeOrgAPIKey, s.opts.FreeOrgAPIKey, newAPIKey)
	set(&st.PaidOrgAPIKey, s.opts.PaidOrgAPIKey, newAPIKey)
	set(&st.FreeOrgID, "", func() string { return newOrgID("free") })
	set(&st.PaidOrgID, "", func() string { return newOrgID("paid") })
}

// Credentials returns the keys and org ids.
func (s *Server) Credentials() Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Credentials{
		PersonalAPIKey: s.st.PersonalAPIKey,
		FreeOrgID:      s.st.FreeOrgID,
		FreeOrgAPIKey:  s.st.FreeOrgAPIKey,
		PaidOrgID:      s.st.PaidOrgID,
		PaidOrgAPIKey:  s.st.PaidOrgAPIKey,
	}
}

// Faults returns the fault injector.
func (s *Server) Faults() *Faults { return s.faults }

// Requests returns a copy of the request counters.
func (s *Server) Requests() RequestStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	out := make(RequestStats, len(s.stats))
	for k, v := range s.stats {
		out[k] = v
	}
	return out
}

// Close stops background work and flushes the state. Operations still
// running are finished on the next New.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.saveLocked()
	if s.ownsLock {
		err = errors.Join(err, s.lock.Close())
	}
	return err
}

// reconcileSpecsLocked lists every branch (parents before children) and endpoint for the
// data plane's start-up reconciliation.
func (s *Server) reconcileSpecsLocked() ([]neonlocal.BranchSpec, []neonlocal.EndpointSpec) {
	bs := make([]*branch, 0, len(s.st.Branches))
	for _, b := range s.st.Branches {
		bs = append(bs, b)
	}
	slices.SortFunc(bs, func(a, b *branch) int { return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID)) })
	branches := make([]neonlocal.BranchSpec, 0, len(bs))
	for _, b := range bs {
		branches = append(branches, s.branchSpecLocked(b, b.ParentTime))
	}
	eps := s.endpointsWhereLocked(func(*endpoint) bool { return true })
	endpoints := make([]neonlocal.EndpointSpec, 0, len(eps))
	for _, e := range eps {
		endpoints = append(endpoints, s.endpointSpecLocked(e))
	}
	return branches, endpoints
}

func (s *Server) now() time.Time { return s.opts.Now().UTC() }

// ServeHTTP serves /api/v2/... and /__neonlocal/....
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := r.Header.Get("X-Request-ID")
	if rid == "" {
		rid = newRequestID()
	}
	w.Header().Set("X-Request-ID", rid)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, rid))
	s.mux.ServeHTTP(w, r)
}

type requestIDKey struct{}

func requestID(r *http.Request) string {
	v, _ := r.Context().Value(requestIDKey{}).(string)
	return v
}

// principal is the caller behind an API key.
type principal struct {
	key       string
	personal  bool
	orgID     string // "" for the personal key
	projectID string // a project-scoped org key's project
}

// sees reports whether the caller may see resources of orgID.
func (p principal) sees(orgID string) bool { return p.personal || p.orgID == orgID }

// seesProject reports whether the caller may see prj: a project-scoped key sees its project
// only while the project is in the key's org (a transfer out ends it, as on Neon).
func (p principal) seesProject(prj *project) bool {
	return p.sees(prj.OrgID) && (p.projectID == "" || p.projectID == prj.ID)
}

// apiError is an error answered with Neon's GeneralError body.
type apiError struct {
	status     int
	code       string
	msg        string
	retryAfter int
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func errf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

func errCode(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

type generalError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// handler is an API handler: it returns a status and a body to encode as
// JSON (nil body = no content), or an error.
type handler func(r *http.Request, p principal) (int, any, error)

// handle registers an API route. pattern is "METHOD /path" relative to
// /api/v2, which is also the key used by Requests and fault injection.
func (s *Server) handle(pattern string, h handler) {
	method, path, _ := strings.Cut(pattern, " ")
	route := method + " " + path
	s.mux.HandleFunc(method+" "+apiPrefix+path, func(w http.ResponseWriter, r *http.Request) {
		s.serveAPI(w, r, route, h)
	})
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, route string, h handler) {
	s.statsMu.Lock()
	s.stats[route]++
	s.statsMu.Unlock()

	if d := s.faults.latency(); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if status, retryAfter, ok := s.faults.fail(route); ok {
		s.writeError(w, r, &apiError{status: status, msg: "injected fault", retryAfter: retryAfter})
		return
	}
	p, ok := s.authenticate(r)
	if !ok {
		s.writeError(w, r, errf(http.StatusUnauthorized, "authorization failed: missing or invalid API key"))
		return
	}
	status, body, err := h(r, p)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			s.log.ErrorContext(r.Context(), "neonlocal: request failed", "route", route, "err", err)
			ae = errf(http.StatusInternalServerError, "internal error: %v", err)
		}
		s.writeError(w, r, ae)
		return
	}
	if s.faults.takeDrop(r.Method, strings.TrimPrefix(route, r.Method+" ")) {
		// The change is committed; the client must see a broken connection.
		if conn, _, herr := http.NewResponseController(w).Hijack(); herr == nil {
			conn.Close()
			return
		}
		// Not hijackable (HTTP/2, recorder): abort the response instead.
		panic(http.ErrAbortHandler)
	}
	writeJSON(w, status, body)
}

func (s *Server) authenticate(r *http.Request) (principal, bool) {
	auth := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || key == "" {
		return principal{}, false
	}
	key = strings.TrimSpace(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch key {
	case s.st.PersonalAPIKey:
		return principal{key: key, personal: true}, true
	case s.st.FreeOrgAPIKey:
		return principal{key: key, orgID: s.st.FreeOrgID}, true
	case s.st.PaidOrgAPIKey:
		return principal{key: key, orgID: s.st.PaidOrgID}, true
	}
	for _, k := range s.st.APIKeys {
		if k.Key == key {
			return principal{key: key, orgID: k.OrgID, projectID: k.ProjectID}, true
		}
	}
	return principal{}, false
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	if body == nil {
		w.WriteHeader(status)
		return
	}
	b, err := json.Marshal(body)
	if err != nil {
		http.Error(w, `{"code":"","message":"encode response"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeJSON(w, e.status, generalError{Code: e.code, Message: e.msg, RequestID: requestID(r)})
}

// decodeBody decodes an optional JSON body into v; an empty body is fine.
func decodeBody(r *http.Request, v any) error {
	if r.Body == nil {
		return nil
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return errf(http.StatusBadRequest, "invalid request body: %v", err)
	}
	return nil
}

func (s *Server) routes() {
	// Projects.
	s.handle("POST /projects", s.createProject)
	s.handle("GET /projects", s.listProjects)
	s.handle("GET /projects/shared", s.listSharedProjects)
	s.handle("GET /projects/{project_id}", s.getProject)
	s.handle("PATCH /projects/{project_id}", s.updateProject)
	s.handle("DELETE /projects/{project_id}", s.deleteProject)
	s.handle("GET /projects/{project_id}/connection_uri", s.connectionURI)
	// Branches.
	s.handle("POST /projects/{project_id}/branches", s.createBranch)
	s.handle("GET /projects/{project_id}/branches", s.listBranches)
	s.handle("GET /projects/{project_id}/branches/{branch_id}", s.getBranch)
	s.handle("PATCH /projects/{project_id}/branches/{branch_id}", s.updateBranch)
	s.handle("DELETE /projects/{project_id}/branches/{branch_id}", s.deleteBranch)
	s.handle("POST /projects/{project_id}/branches/{branch_id}/restore", s.restoreBranch)
	s.handle("POST /projects/{project_id}/branches/{branch_id}/set_as_default", s.setDefaultBranch)
	s.handle("GET /projects/{project_id}/branches/{branch_id}/endpoints", s.listBranchEndpoints)
	// Roles and databases.
	s.handle("POST /projects/{project_id}/branches/{branch_id}/roles", s.createRole)
	s.handle("GET /projects/{project_id}/branches/{branch_id}/roles", s.listRoles)
	s.handle("GET /projects/{project_id}/branches/{branch_id}/roles/{role_name}", s.getRole)
	s.handle("DELETE /projects/{project_id}/branches/{branch_id}/roles/{role_name}", s.deleteRole)
	s.handle("GET /projects/{project_id}/branches/{branch_id}/roles/{role_name}/reveal_password", s.revealPassword)
	s.handle("POST /projects/{project_id}/branches/{branch_id}/roles/{role_name}/reset_password", s.resetPassword)
	s.handle("POST /projects/{project_id}/branches/{branch_id}/databases", s.createDatabase)
	s.handle("GET /projects/{project_id}/branches/{branch_id}/databases", s.listDatabases)
	s.handle("GET /projects/{project_id}/branches/{branch_id}/databases/{database_name}", s.getDatabase)
	s.handle("PATCH /projects/{project_id}/branches/{branch_id}/databases/{database_name}", s.updateDatabase)
	s.handle("DELETE /projects/{project_id}/branches/{branch_id}/databases/{database_name}", s.deleteDatabase)
	// Snapshots.
	s.handle("POST /projects/{project_id}/branches/{branch_id}/snapshot", s.createSnapshot)
	s.handle("GET /projects/{project_id}/snapshots", s.listSnapshots)
	s.handle("PATCH /projects/{project_id}/snapshots/{snapshot_id}", s.updateSnapshot)
	s.handle("DELETE /projects/{project_id}/snapshots/{snapshot_id}", s.deleteSnapshot)
	s.handle("POST /projects/{project_id}/snapshots/{snapshot_id}/restore", s.restoreSnapshot)
	s.handle("POST /projects/{project_id}/branches/{branch_id}/finalize_restore", s.finalizeRestore)
	// Endpoints.
	s.handle("POST /projects/{project_id}/endpoints", s.createEndpoint)
	s.handle("GET /projects/{project_id}/endpoints", s.listEndpoints)
	s.handle("GET /projects/{project_id}/endpoints/{endpoint_id}", s.getEndpoint)
	s.handle("PATCH /projects/{project_id}/endpoints/{endpoint_id}", s.updateEndpoint)
	s.handle("DELETE /projects/{project_id}/endpoints/{endpoint_id}", s.deleteEndpoint)
	s.handle("POST /projects/{project_id}/endpoints/{endpoint_id}/start", s.startEndpoint)
	s.handle("POST /projects/{project_id}/endpoints/{endpoint_id}/suspend", s.suspendEndpoint)
	// Operations.
	s.handle("GET /projects/{project_id}/operations", s.listOperations)
	s.handle("GET /projects/{project_id}/operations/{operation_id}", s.getOperation)
	// Account: the key's identity, the user and their organizations.
	s.handle("GET /auth", s.getAuth)
	s.handle("GET /users/me", s.getCurrentUser)
	s.handle("GET /users/me/organizations", s.listCurrentUserOrgs)
	s.handle("GET /organizations/{org_id}", s.getOrganization)
	s.handle("GET /organizations/{org_id}/members", s.listOrgMembers)
	s.handle("POST /organizations/{org_id}/api_keys", s.createOrgAPIKey)
	s.handle("GET /organizations/{org_id}/api_keys", s.listOrgAPIKeys)
	s.handle("DELETE /organizations/{org_id}/api_keys/{key_id}", s.revokeOrgAPIKey)
	// Organizations and consumption.
	s.handle("POST /organizations/{source_org_id}/projects/transfer", s.transferProjects)
	s.handle("GET /consumption_history/projects", s.consumptionProjects)

	// Emulator control, outside Neon's API (no auth: the emulator listens on loopback).
	s.mux.HandleFunc("GET /__neonlocal/faults", s.getFaults)
	s.mux.HandleFunc("POST /__neonlocal/faults", s.setFaults)

	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errf(http.StatusNotFound, "not found: %s %s", r.Method, r.URL.Path))
	})
}

// sweepLoop deletes expired branches and snapshots, as Neon does.
func (s *Server) sweepLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.sweep()
		}
	}
}
