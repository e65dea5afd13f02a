// Package neontest is an in-memory Neon for tests: one model of the projects, branches,
// computes, snapshots and operations an organization's API key sees, with Neon's rules, behind
// two doors.
//
//   - As a neon.API (Fake's methods), for code that takes the interface (the guard): every call
//     is logged (Calls), and any call can be made to fail (Fail), before or after its change is
//     applied, so tests can assert which requests a use case made and drive its failure paths.
//   - As Neon's HTTP API v2 (Handler), for the client in package neon: the same model answers
//     real requests, and routes can answer scripted statuses (FailHTTP) or apply a request and
//     drop its connection (LoseHTTP), so lost answers and retries are observable.
//
// The rules modelled are those the guard relies on (see the neonlocal emulator for the full
// set): branch names are unique per project; snapshots are taken only of root branches; an
// in-place restore with preserve_under_name keeps a root branch a root and makes the backup a
// separate root (children move to the backup), while the backup of a non-root branch becomes
// its parent; the default branch and branches with children cannot be deleted; a finalized
// snapshot restore makes a new root branch that takes the target's name, default flag and
// computes, and renames the target "<name> (old)"; times outside the project's history
// retention are refused; optional per-project branch and snapshot limits answer Neon's 422s.
//
// A Fake is safe for concurrent use. Values it returns are copies: changing them does not
// change the model.
package neontest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
)

// DefaultPassword is the role password in connection URIs unless WithPassword sets another. It
// is npg_-shaped, so neon.Redact recognises it wherever it leaks.
const DefaultPassword = "npg_neontestFakePassword"

// defaultRetention is the history retention of a project created without one (Neon's default
// on paid plans).
const defaultRetention = 24 * time.Hour

// Limits are the organization plan's per-project ceilings; 0 means unlimited.
type Limits struct {
	BranchesPerProject  int
	SnapshotsPerProject int
}

// Option configures a Fake.
type Option func(*Fake)

// WithClock makes the model read time from now (created_at, last_reset_at, expiry and
// retention checks) instead of time.Now.
func WithClock(now func() time.Time) Option { return func(f *Fake) { f.now = now } }

// WithPassword sets the role password that connection URIs and created roles carry.
func WithPassword(pw string) Option { return func(f *Fake) { f.password = pw } }

// WithAPIKey makes the HTTP face answer 401 to requests without "Authorization: Bearer key".
func WithAPIKey(key string) Option { return func(f *Fake) { f.apiKey = key } }

// WithIDTag puts tag into every id the Fake makes ("proj-" + tag + "1"), so that two Fakes
// standing for two organizations never hand out the same id.
func WithIDTag(tag string) Option { return func(f *Fake) { f.idTag = tag } }

// WithLimits sets the per-project branch and snapshot limits.
func WithLimits(l Limits) Option { return func(f *Fake) { f.limits = l } }

// Fake is an in-memory Neon. The zero value is not usable; call New.
type Fake struct {
	mu       sync.Mutex
	now      func() time.Time
	password string
	apiKey   string
	limits   Limits
	idTag    string

	seq      int
	projects []*project // in creation order
	ops      map[string]*operation
	opOrder  []string

	// The neon.API face.
	calls  []Call
	faults map[string][]Fault // by method, consumed in order
	always map[string]Fault   // by method, once the queue is empty

	// The HTTP face.
	hits       map[string]int      // by route
	failHTTP   map[string][]int    // route → statuses answered (without applying) first
	loseHTTP   map[string]int      // route → apply, then drop the connection, this many times
	bodies     map[string][]string // route → request bodies
	queries    map[string][]string // route → raw queries
	opPolls    int                 // polls an operation stays running
	opTime     time.Duration       // or how long after its creation (0: polls decide)
	opFinal    string              // its final status
	opErr      string              // its error text when it does not finish
	branchPage int                 // branches per page, 0 = all
}

// project is one project with everything in it. Pointers in the neon values (times, settings)
// are never written through: a change stores a new pointer, so the copies handed out may share
// them.
type project struct {
	neon.Project
	role, database string
	branches       []*neon.Branch // in creation order
	endpoints      []*neon.Endpoint
	snapshots      []*neon.Snapshot  // in creation order
	restoreTargets map[string]string // restored branch awaiting finalization → the branch it replaces
}

type operation struct {
	op    neon.Operation
	polls int       // polls left before it is terminal
	until time.Time // or when it is terminal (zero: polls decide)
}

// New returns an empty Fake.
func New(opts ...Option) *Fake {
	f := &Fake{
		now:      time.Now,
		password: DefaultPassword,
		ops:      map[string]*operation{},
		faults:   map[string][]Fault{},
		always:   map[string]Fault{},
		hits:     map[string]int{},
		failHTTP: map[string][]int{},
		loseHTTP: map[string]int{},
		bodies:   map[string][]string{},
		queries:  map[string][]string{},
		opFinal:  neon.OpFinished,
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

var _ neon.API = (*Fake)(nil)

// Call is one neon.API call the Fake received, failed or not.
type Call struct {
	Method     string // the neon.API method, e.g. "CreateSnapshot"
	ProjectID  string
	BranchID   string // the branch the call is about (for CreateSnapshot, the source branch)
	SnapshotID string
	Name       string // the name the call gives: a new project, branch, snapshot or backup name
	Err        error  // what the call returned
}

// mutating lists the neon.API methods that change Neon.
var mutating = map[string]bool{
	"CreateProject": true, "UpdateProject": true, "DeleteProject": true, "TransferProjects": true,
	"CreateBranch": true, "UpdateBranch": true, "DeleteBranch": true, "RestoreBranch": true,
	"CreateSnapshot": true, "DeleteSnapshot": true, "RestoreSnapshot": true, "FinalizeRestore": true,
	"CreateEndpoint": true,
}

// Mutating reports whether the call asks Neon for a change.
func (c Call) Mutating() bool { return mutating[c.Method] }

// String renders the call for test failures, e.g. "CreateSnapshot br-2 name=cp".
func (c Call) String() string {
	parts := []string{c.Method}
	for _, s := range []string{c.BranchID, c.SnapshotID} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if c.Name != "" {
		parts = append(parts, "name="+c.Name)
	}
	if c.Err != nil {
		parts = append(parts, "err="+c.Err.Error())
	}
	return strings.Join(parts, " ")
}

// Calls returns the neon.API calls received so far, oldest first.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Mutations returns the calls that asked for a change, oldest first.
func (f *Fake) Mutations() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if c.Mutating() {
			out = append(out, c)
		}
	}
	return out
}

// Count returns how many calls of method were received.
func (f *Fake) Count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.Method == method {
			n++
		}
	}
	return n
}

// ResetCalls forgets the calls received so far (e.g. after a test's setup).
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// Methods lists the methods of calls, in order: the shape of a sequence of requests.
func Methods(calls []Call) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.Method
	}
	return out
}

// Fault is an injected failure of one neon.API call.
type Fault struct {
	// Err is what the call returns; nil lets the call through (a placeholder in a queue).
	Err error
	// Apply makes the change before Err is returned: Neon did it, but its answer never came.
	Apply bool
	// Before, when set, runs while the request is in flight: after the call is made, before
	// Neon answers, outside the Fake's lock, with the context the call was made with. Tests
	// use it to act at that moment (cancel the caller, lose a lock); a call whose context is
	// done by then is not applied.
	Before func(ctx context.Context)
}

// Fail queues faults for the next calls of method (a neon.API method name): each call takes
// the next one. Fault{} lets a call through, so Fail(m, Fault{}, LostAnswer()) fails the
// second call.
func (f *Fake) Fail(method string, faults ...Fault) {
	mustBeMethod(method)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[method] = append(f.faults[method], faults...)
}

// FailAlways makes every call of method fail with fault once its queue is empty, until Heal.
func (f *Fake) FailAlways(method string, fault Fault) {
	mustBeMethod(method)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.always[method] = fault
}

// Heal drops every queued and permanent fault of the neon.API face.
func (f *Fake) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.faults)
	clear(f.always)
}

// Refuse is Neon answering status (with Neon's error code, "" for none) without doing anything.
func Refuse(status int, code, message string) Fault {
	return Fault{Err: &neon.APIError{StatusCode: status, Code: code, Message: message, RequestID: "neontest"}}
}

// LostAnswer is a request Neon applied whose answer was lost, as the client reports it when
// it cannot find out what happened.
func LostAnswer() Fault {
	return Fault{Err: fmt.Errorf("neontest: the answer was lost: %w", neon.ErrOutcomeUnknown), Apply: true}
}

// LostRequest is a request whose outcome the client could not find out, and which Neon never
// applied.
func LostRequest() Fault {
	return Fault{Err: fmt.Errorf("neontest: the request was lost: %w", neon.ErrOutcomeUnknown)}
}

// FailedOperation is a request Neon accepted whose operation then failed; the change is not
// applied (set Apply for one that left its effect).
func FailedOperation(action string) Fault {
	return Fault{Err: &neon.OperationError{OperationID: "op-failed", Action: action, Status: neon.OpFailed,
		Message: "neontest: scripted operation failure"}}
}

// call logs one neon.API call, applies it unless a fault says otherwise, and returns its error.
// invalid is the client's own refusal of the arguments (nothing is sent then, so no fault
// applies). apply runs with f.mu held.
func (f *Fake) call(ctx context.Context, c Call, invalid error, apply func() error) error {
	var fault Fault
	if invalid == nil {
		f.mu.Lock()
		fault = f.takeFaultLocked(c.Method)
		f.mu.Unlock()
		if fault.Before != nil {
			fault.Before(ctx)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := invalid
	if err == nil {
		err = f.answerLocked(ctx, c, fault, apply)
	}
	c.Err = err
	f.calls = append(f.calls, c)
	return err
}

func (f *Fake) answerLocked(ctx context.Context, c Call, fault Fault, apply func() error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("neontest: %s: %w", c.Method, err)
	}
	if fault.Err == nil {
		return apply()
	}
	if fault.Apply {
		_ = apply() // whatever Neon said, the caller only sees the fault
	}
	return withRoute(fault.Err, c.Method)
}

// takeFaultLocked returns the fault for the next call of method: the queue's next one, else
// the permanent one, else none (the zero Fault).
func (f *Fake) takeFaultLocked(method string) Fault {
	if q := f.faults[method]; len(q) > 0 {
		f.faults[method] = q[1:]
		return q[0]
	}
	return f.always[method]
}

// withRoute fills a scripted *neon.APIError's method and route, as the client would, in a copy
// (a permanent fault hands the same error to every call).
func withRoute(err error, method string) error {
	var ae *neon.APIError
	if !errors.As(err, &ae) || ae.Route != "" || err != error(ae) {
		return err
	}
	cp := *ae
	cp.Method, cp.Route = routeOf(method)
	return &cp
}

// routes are the HTTP method and path template of each neon.API method, for its errors.
var routes = map[string][2]string{
	"CreateProject":       {"POST", "/projects"},
	"GetProject":          {"GET", "/projects/{project_id}"},
	"ListProjects":        {"GET", "/projects"},
	"UpdateProject":       {"PATCH", "/projects/{project_id}"},
	"DeleteProject":       {"DELETE", "/projects/{project_id}"},
	"ConnectionURI":       {"GET", "/projects/{project_id}/connection_uri"},
	"TransferProjects":    {"POST", "/organizations/{source_org_id}/projects/transfer"},
	"CreateBranch":        {"POST", "/projects/{project_id}/branches"},
	"ListBranches":        {"GET", "/projects/{project_id}/branches"},
	"GetBranch":           {"GET", "/projects/{project_id}/branches/{branch_id}"},
	"UpdateBranch":        {"PATCH", "/projects/{project_id}/branches/{branch_id}"},
	"DeleteBranch":        {"DELETE", "/projects/{project_id}/branches/{branch_id}"},
	"RestoreBranch":       {"POST", "/projects/{project_id}/branches/{branch_id}/restore"},
	"ListBranchEndpoints": {"GET", "/projects/{project_id}/branches/{branch_id}/endpoints"},
	"CreateSnapshot":      {"POST", "/projects/{project_id}/branches/{branch_id}/snapshot"},
	"ListSnapshots":       {"GET", "/projects/{project_id}/snapshots"},
	"DeleteSnapshot":      {"DELETE", "/projects/{project_id}/snapshots/{snapshot_id}"},
	"RestoreSnapshot":     {"POST", "/projects/{project_id}/snapshots/{snapshot_id}/restore"},
	"FinalizeRestore":     {"POST", "/projects/{project_id}/branches/{branch_id}/finalize_restore"},
	"ListEndpoints":       {"GET", "/projects/{project_id}/endpoints"},
	"CreateEndpoint":      {"POST", "/projects/{project_id}/endpoints"},
	"GetOperation":        {"GET", "/projects/{project_id}/operations/{operation_id}"},
	"Consumption":         {"GET", "/consumption_history/projects"},
}

// mustBeMethod panics on a name that is not a neon.API method: a misspelt fault would
// otherwise never fire, and the test would pass without testing anything.
func mustBeMethod(method string) {
	if _, ok := routes[method]; !ok {
		panic(fmt.Sprintf("neontest: %q is not a neon.API method", method))
	}
}

func routeOf(method string) (string, string) {
	r := routes[method]
	return r[0], r[1]
}

// apiError is Neon's error answer to the neon.API method.
func apiError(method string, status int, code, format string, args ...any) *neon.APIError {
	m, r := routeOf(method)
	return &neon.APIError{StatusCode: status, Code: code, Message: fmt.Sprintf(format, args...),
		RequestID: "neontest", Method: m, Route: r}
}

// needIDs is the client's refusal of an empty id, before anything is sent: what and value
// pairs.
func needIDs(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return fmt.Errorf("neon: %s is required: %w", pairs[i], neon.ErrInvalidArgument)
		}
	}
	return nil
}
