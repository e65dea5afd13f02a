package neon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Secrets the whole suite hands to the client or has the server echo back. TestMain fails the
// run if any of them shows up in a log line or a noted error.
const (
	testKey      = "tk-Secret-0a1b2c3d4e5f" // deliberately not napi_-shaped: only Client.scrub can hide it
	testPassword = "pw-Sup3rS3cret-7781"
	npgPassword  = "npg_AbCdEf123456"
)

var testSecrets = []string{testKey, testPassword, npgPassword}

// lockedBuffer collects every log line and noted error of the run.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	suiteLogs   lockedBuffer
	suiteErrors lockedBuffer
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, where := range []struct {
		name string
		text string
	}{{"log", suiteLogs.String()}, {"error", suiteErrors.String()}} {
		for _, s := range testSecrets {
			if strings.Contains(where.text, s) {
				fmt.Fprintf(os.Stderr, "FAIL: a secret leaked into a %s line\n", where.name)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// noteErr records err for the suite-wide secrets scan and returns it.
func noteErr(err error) error {
	if err != nil {
		fmt.Fprintln(&suiteErrors, err.Error())
	}
	return err
}

// fakeClock replaces time for the retry logic: sleeping advances it at once.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
	onWait func(d time.Duration) // optional, runs inside sleep
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.sleeps = append(c.sleeps, d)
	hook := c.onWait
	c.mu.Unlock()
	if hook != nil {
		hook(d)
	}
	return ctx.Err()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// newTestClient starts h and returns a client for it whose sleeps are instant.
func newTestClient(t testing.TB, h http.Handler, mods ...func(*Config)) (*Client, *fakeClock) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	clk := &fakeClock{t: time.Now()}
	cfg := Config{
		BaseURL: srv.URL + "/api/v2",
		APIKey:  testKey,
		// No keep-alive: Go's transport silently replays a GET on a reused connection that
		// dropped, which would blur the attempt counts the tests assert.
		HTTPClient:           &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		Logger:               slog.New(slog.NewTextHandler(&suiteLogs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RequestsPerSecond:    1e6,
		ConsumptionPerMinute: 1e6,
		sleep:                clk.sleep,
		now:                  clk.now,
	}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "message": msg, "request_id": "req-" + strconv.Itoa(status)})
}

// dropConnection closes the connection without an answer: a lost response.
func dropConnection(t testing.TB, w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		t.Error("response writer cannot hijack")
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	conn.Close()
}

// fakeNeon is a small stateful Neon: enough of the API for effect checks and operation waits.
type fakeNeon struct {
	t  testing.TB
	mu sync.Mutex

	projects  []*Project
	branches  map[string][]*Branch   // by project
	endpoints map[string][]Endpoint  // by branch
	snapshots map[string][]*Snapshot // by project
	ops       map[string]*fakeOp
	opOrder   []string
	seq       int

	hits     map[string]int      // by route pattern
	lose     map[string]int      // pattern → apply, then drop the connection, this many times
	fail     map[string][]int    // pattern → statuses answered (without applying) first
	bodies   map[string][]string // pattern → request bodies
	queries  map[string][]string // pattern → raw queries
	opPolls  int                 // polls an operation stays running
	opFinal  string              // final status, default finished
	opErr    string
	branchPg int // branch page size, 0 = all
}

type fakeOp struct {
	op    Operation
	polls int
}

func newFakeNeon(t testing.TB) *fakeNeon {
	f := &fakeNeon{
		t:         t,
		branches:  map[string][]*Branch{},
		endpoints: map[string][]Endpoint{},
		snapshots: map[string][]*Snapshot{},
		ops:       map[string]*fakeOp{},
		hits:      map[string]int{},
		lose:      map[string]int{},
		fail:      map[string][]int{},
		bodies:    map[string][]string{},
		queries:   map[string][]string{},
		opFinal:   OpFinished,
	}
	return f
}

func (f *fakeNeon) Hits(pattern string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[pattern]
}

func (f *fakeNeon) id(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s%d", prefix, f.seq)
}

// newOp must be called with f.mu held.
func (f *fakeNeon) newOp(projectID, branchID, action string) Operation {
	op := Operation{ID: f.id("op-"), ProjectID: projectID, BranchID: branchID, Action: action, Status: OpRunning, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if f.opPolls == 0 {
		op.Status = f.opFinal
		if op.Status != OpFinished {
			op.Error = f.opErr
		}
	}
	f.ops[op.ID] = &fakeOp{op: op, polls: f.opPolls}
	f.opOrder = append(f.opOrder, op.ID)
	return op
}

// allOpsTerminal reports whether no operation is still running.
func (f *fakeNeon) allOpsTerminal() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.ops {
		if !o.op.Terminal() {
			return false
		}
	}
	return true
}

func (f *fakeNeon) findProject(id string) *Project {
	for _, p := range f.projects {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func (f *fakeNeon) findBranch(pid, bid string) *Branch {
	for _, b := range f.branches[pid] {
		if b.ID == bid {
			return b
		}
	}
	return nil
}

func (f *fakeNeon) addBranch(pid, name string, def bool) *Branch {
	b := &Branch{ID: f.id("br-"), ProjectID: pid, Name: name, Default: def, CurrentState: BranchStateReady, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	f.branches[pid] = append(f.branches[pid], b)
	return b
}

func (f *fakeNeon) addProject(name, org string) (*Project, *Branch, Endpoint) {
	pr := &Project{ID: f.id("proj-"), Name: name, OrgID: org, RegionID: "aws-us-east-2", PGVersion: 17, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	f.projects = append(f.projects, pr)
	b := f.addBranch(pr.ID, "main", true)
	ep := Endpoint{ID: f.id("ep-"), ProjectID: pr.ID, BranchID: b.ID, Type: EndpointReadWrite, CreatedAt: time.Now()}
	f.endpoints[b.ID] = append(f.endpoints[b.ID], ep)
	return pr, b, ep
}

func (f *fakeNeon) uri() string {
	return "postgresql://neondb_owner:" + testPassword + "@ep-x.example.neon.tech/neondb?sslmode=require"
}

func (f *fakeNeon) Handler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(pattern, f.wrap(pattern, fn))
	}
	const base = "/api/v2"
	h("POST "+base+"/projects", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Project ProjectCreate }
		_ = json.NewDecoder(r.Body).Decode(&req)
		pr, b, ep := f.addProject(req.Project.Name, req.Project.OrgID)
		ops := []Operation{f.newOp(pr.ID, b.ID, "create_timeline"), f.newOp(pr.ID, b.ID, "start_compute")}
		writeJSON(w, 201, CreatedProject{
			Project: *pr, Branch: *b, Endpoints: []Endpoint{ep}, Operations: ops,
			ConnectionURIs: []ConnectionDetails{{ConnectionURI: f.uri(), ConnectionParameters: ConnectionParameters{Password: testPassword}}},
			Roles:          []Role{{BranchID: b.ID, Name: "neondb_owner", Password: testPassword}},
		})
	})
	h("GET "+base+"/projects", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit == 0 {
			limit = 10
		}
		var list []Project
		after := q.Get("cursor") == ""
		for _, p := range f.projects {
			if !after {
				after = p.ID == q.Get("cursor")
				continue
			}
			if s := q.Get("search"); s != "" && !strings.Contains(p.Name, s) {
				continue
			}
			if o := q.Get("org_id"); o != "" && p.OrgID != o {
				continue
			}
			if len(list) == limit {
				break
			}
			list = append(list, *p)
		}
		cursor := ""
		if len(list) > 0 {
			cursor = list[len(list)-1].ID
		}
		writeJSON(w, 200, map[string]any{"projects": list, "pagination": map[string]string{"cursor": cursor}})
	})
	h("GET "+base+"/projects/{pid}", func(w http.ResponseWriter, r *http.Request) {
		if pr := f.findProject(r.PathValue("pid")); pr != nil {
			writeJSON(w, 200, map[string]any{"project": pr})
			return
		}
		writeErr(w, 404, "", "project not found")
	})
	h("DELETE "+base+"/projects/{pid}", func(w http.ResponseWriter, r *http.Request) {
		for i, pr := range f.projects {
			if pr.ID == r.PathValue("pid") {
				f.projects = append(f.projects[:i], f.projects[i+1:]...)
				writeJSON(w, 200, map[string]any{"project": pr})
				return
			}
		}
		writeErr(w, 404, "", "project not found")
	})
	h("PATCH "+base+"/projects/{pid}", func(w http.ResponseWriter, r *http.Request) {
		pr := f.findProject(r.PathValue("pid"))
		if pr == nil {
			writeErr(w, 404, "", "project not found")
			return
		}
		writeJSON(w, 200, map[string]any{"project": pr, "operations": []Operation{f.newOp(pr.ID, "", "apply_storage_config")}})
	})
	h("GET "+base+"/projects/{pid}/branches", func(w http.ResponseWriter, r *http.Request) {
		all := f.branches[r.PathValue("pid")]
		start, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		end := len(all)
		if f.branchPg > 0 {
			end = min(start+f.branchPg, len(all))
		}
		out := map[string]any{"branches": all[start:end], "annotations": map[string]any{}}
		if end < len(all) {
			out["pagination"] = map[string]string{"next": strconv.Itoa(end), "sort_by": "updated_at", "sort_order": "desc"}
		}
		writeJSON(w, 200, out)
	})
	h("POST "+base+"/projects/{pid}/branches", func(w http.ResponseWriter, r *http.Request) {
		pid := r.PathValue("pid")
		var req struct {
			Branch    BranchCreate
			Endpoints []EndpointCreate
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		for _, b := range f.branches[pid] {
			if b.Name == req.Branch.Name {
				writeErr(w, 409, "", "branch already exists")
				return
			}
		}
		b := f.addBranch(pid, req.Branch.Name, false)
		ops := []Operation{f.newOp(pid, b.ID, "create_branch")}
		var eps []Endpoint
		for _, e := range req.Endpoints {
			ep := Endpoint{ID: f.id("ep-"), ProjectID: pid, BranchID: b.ID, Type: e.Type, CreatedAt: time.Now()}
			f.endpoints[b.ID] = append(f.endpoints[b.ID], ep)
			eps = append(eps, ep)
			ops = append(ops, f.newOp(pid, b.ID, "start_compute"))
		}
		writeJSON(w, 201, CreatedBranch{Branch: *b, Endpoints: eps, Operations: ops})
	})
	h("GET "+base+"/projects/{pid}/branches/{bid}", func(w http.ResponseWriter, r *http.Request) {
		if b := f.findBranch(r.PathValue("pid"), r.PathValue("bid")); b != nil {
			writeJSON(w, 200, map[string]any{"branch": b})
			return
		}
		writeErr(w, 404, "", "branch not found")
	})
	h("PATCH "+base+"/projects/{pid}/branches/{bid}", func(w http.ResponseWriter, r *http.Request) {
		b := f.findBranch(r.PathValue("pid"), r.PathValue("bid"))
		if b == nil {
			writeErr(w, 404, "", "branch not found")
			return
		}
		writeJSON(w, 200, map[string]any{"branch": b, "operations": []Operation{}})
	})
	h("DELETE "+base+"/projects/{pid}/branches/{bid}", func(w http.ResponseWriter, r *http.Request) {
		pid := r.PathValue("pid")
		for i, b := range f.branches[pid] {
			if b.ID == r.PathValue("bid") {
				f.branches[pid] = append(f.branches[pid][:i], f.branches[pid][i+1:]...)
				writeJSON(w, 200, map[string]any{"branch": b, "operations": []Operation{f.newOp(pid, b.ID, "delete_timeline")}})
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	h("POST "+base+"/projects/{pid}/branches/{bid}/restore", func(w http.ResponseWriter, r *http.Request) {
		pid := r.PathValue("pid")
		b := f.findBranch(pid, r.PathValue("bid"))
		if b == nil {
			writeErr(w, 404, "", "branch not found")
			return
		}
		var req BranchRestore
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.PreserveUnderName != "" {
			backup := f.addBranch(pid, req.PreserveUnderName, false)
			b.ParentID = backup.ID
		}
		now := time.Now()
		b.LastResetAt = &now
		writeJSON(w, 200, map[string]any{"branch": b, "operations": []Operation{f.newOp(pid, b.ID, "create_branch")}})
	})
	h("GET "+base+"/projects/{pid}/branches/{bid}/endpoints", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"endpoints": f.endpoints[r.PathValue("bid")]})
	})
	h("GET "+base+"/projects/{pid}/branches/{bid}/roles", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"roles": []Role{{BranchID: r.PathValue("bid"), Name: "neondb_owner"}}})
	})
	h("GET "+base+"/projects/{pid}/branches/{bid}/databases", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"databases": []Database{{ID: 1, BranchID: r.PathValue("bid"), Name: "neondb", OwnerName: "neondb_owner"}}})
	})
	h("GET "+base+"/projects/{pid}/endpoints", func(w http.ResponseWriter, r *http.Request) {
		var all []Endpoint
		for _, b := range f.branches[r.PathValue("pid")] {
			all = append(all, f.endpoints[b.ID]...)
		}
		writeJSON(w, 200, map[string]any{"endpoints": all})
	})
	h("POST "+base+"/projects/{pid}/endpoints", func(w http.ResponseWriter, r *http.Request) {
		pid := r.PathValue("pid")
		var req struct {
			Endpoint struct {
				BranchID string `json:"branch_id"`
				Type     string `json:"type"`
			} `json:"endpoint"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		for _, e := range f.endpoints[req.Endpoint.BranchID] {
			if e.Type == EndpointReadWrite && req.Endpoint.Type == EndpointReadWrite {
				writeErr(w, 409, "", "read-write endpoint already exists")
				return
			}
		}
		ep := Endpoint{ID: f.id("ep-"), ProjectID: pid, BranchID: req.Endpoint.BranchID, Type: req.Endpoint.Type, CreatedAt: time.Now()}
		f.endpoints[ep.BranchID] = append(f.endpoints[ep.BranchID], ep)
		writeJSON(w, 201, map[string]any{"endpoint": ep, "operations": []Operation{f.newOp(pid, ep.BranchID, "start_compute")}})
	})
	h("POST "+base+"/projects/{pid}/branches/{bid}/snapshot", func(w http.ResponseWriter, r *http.Request) {
		pid := r.PathValue("pid")
		s := &Snapshot{ID: f.id("snap-"), Name: r.URL.Query().Get("name"), SourceBranchID: r.PathValue("bid"), CreatedAt: time.Now(), Manual: true}
		f.snapshots[pid] = append(f.snapshots[pid], s)
		writeJSON(w, 200, map[string]any{"snapshot": s, "operations": []Operation{f.newOp(pid, s.SourceBranchID, "create_branch")}})
	})
	h("GET "+base+"/projects/{pid}/snapshots", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"snapshots": f.snapshots[r.PathValue("pid")]})
	})
	h("DELETE "+base+"/projects/{pid}/snapshots/{sid}", func(w http.ResponseWriter, r *http.Request) {
		pid := r.PathValue("pid")
		for i, s := range f.snapshots[pid] {
			if s.ID == r.PathValue("sid") {
				f.snapshots[pid] = append(f.snapshots[pid][:i], f.snapshots[pid][i+1:]...)
				writeJSON(w, 202, map[string]any{"operations": []Operation{f.newOp(pid, "", "delete_timeline")}})
				return
			}
		}
		writeErr(w, 404, "", "snapshot not found")
	})
	h("POST "+base+"/projects/{pid}/snapshots/{sid}/restore", func(w http.ResponseWriter, r *http.Request) {
		pid := r.PathValue("pid")
		var req SnapshotRestore
		_ = json.NewDecoder(r.Body).Decode(&req)
		b := f.addBranch(pid, req.Name, false)
		b.RestoredFrom = r.PathValue("sid")
		b.RestoreStatus = "restored"
		if req.FinalizeRestore {
			b.RestoreStatus = "finalized"
		}
		writeJSON(w, 200, map[string]any{"branch": b, "operations": []Operation{f.newOp(pid, b.ID, "create_branch")}})
	})
	h("POST "+base+"/projects/{pid}/branches/{bid}/finalize_restore", func(w http.ResponseWriter, r *http.Request) {
		pid := r.PathValue("pid")
		b := f.findBranch(pid, r.PathValue("bid"))
		if b == nil {
			writeErr(w, 404, "", "branch not found")
			return
		}
		b.RestoreStatus = "finalized"
		writeJSON(w, 200, map[string]any{"operations": []Operation{f.newOp(pid, b.ID, "suspend_compute")}})
	})
	h("POST "+base+"/organizations/{org}/projects/transfer", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			DestinationOrgID string   `json:"destination_org_id"`
			ProjectIDs       []string `json:"project_ids"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		for _, id := range req.ProjectIDs {
			if pr := f.findProject(id); pr != nil {
				pr.OrgID = req.DestinationOrgID
			}
		}
		writeJSON(w, 200, map[string]any{})
	})
	h("GET "+base+"/projects/{pid}/operations/{opid}", func(w http.ResponseWriter, r *http.Request) {
		o := f.ops[r.PathValue("opid")]
		if o == nil {
			writeErr(w, 404, "", "operation not found")
			return
		}
		if !o.op.Terminal() {
			if o.polls > 0 {
				o.polls--
			}
			if o.polls == 0 {
				o.op.Status = f.opFinal
				if f.opFinal != OpFinished {
					o.op.Error = f.opErr
				}
			}
		}
		writeJSON(w, 200, map[string]any{"operation": o.op})
	})
	h("GET "+base+"/projects/{pid}/operations", func(w http.ResponseWriter, r *http.Request) {
		var list []Operation
		for _, id := range f.opOrder {
			if o := f.ops[id]; o.op.ProjectID == r.PathValue("pid") {
				list = append(list, o.op)
			}
		}
		writeJSON(w, 200, map[string]any{"operations": list})
	})
	h("GET "+base+"/projects/{pid}/connection_uri", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"uri": f.uri()})
	})
	return mux
}

// wrap checks the key, counts, answers scripted failures and drops scripted connections.
func (f *fakeNeon) wrap(pattern string, fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testKey {
			writeErr(w, 401, "", "bad key "+r.Header.Get("Authorization"))
			return
		}
		body := new(bytes.Buffer)
		_, _ = body.ReadFrom(r.Body)
		r.Body.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.hits[pattern]++
		f.bodies[pattern] = append(f.bodies[pattern], body.String())
		f.queries[pattern] = append(f.queries[pattern], r.URL.RawQuery)
		if s := f.fail[pattern]; len(s) > 0 {
			f.fail[pattern] = s[1:]
			writeErr(w, s[0], "", "scripted failure")
			return
		}
		r.Body = readCloser{bytes.NewReader(body.Bytes())}
		if f.lose[pattern] > 0 {
			f.lose[pattern]--
			fn(httptest.NewRecorder(), r) // applied …
			dropConnection(f.t, w)        // … but the answer is lost
			return
		}
		fn(w, r)
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func newTeeLogger(a, b *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.MultiWriter(a, b), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (f *fakeNeon) count(what func(f *fakeNeon) int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return what(f)
}
