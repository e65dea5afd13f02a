package neontest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
)

// Routes of the HTTP face (method and mux pattern under /api/v2): the keys of Hits, Bodies,
// Queries, FailHTTP and LoseHTTP.
const (
	RoutePostProjects    = "POST /api/v2/projects"
	RouteGetProjects     = "GET /api/v2/projects"
	RouteGetProject      = "GET /api/v2/projects/{pid}"
	RoutePatchProject    = "PATCH /api/v2/projects/{pid}"
	RouteDeleteProject   = "DELETE /api/v2/projects/{pid}"
	RouteConnectionURI   = "GET /api/v2/projects/{pid}/connection_uri"
	RouteTransfer        = "POST /api/v2/organizations/{org}/projects/transfer"
	RoutePostBranches    = "POST /api/v2/projects/{pid}/branches"
	RouteGetBranches     = "GET /api/v2/projects/{pid}/branches"
	RouteGetBranch       = "GET /api/v2/projects/{pid}/branches/{bid}"
	RoutePatchBranch     = "PATCH /api/v2/projects/{pid}/branches/{bid}"
	RouteDeleteBranch    = "DELETE /api/v2/projects/{pid}/branches/{bid}"
	RouteRestoreBranch   = "POST /api/v2/projects/{pid}/branches/{bid}/restore"
	RouteBranchEndpoints = "GET /api/v2/projects/{pid}/branches/{bid}/endpoints"
	RouteBranchRoles     = "GET /api/v2/projects/{pid}/branches/{bid}/roles"
	RouteBranchDatabases = "GET /api/v2/projects/{pid}/branches/{bid}/databases"
	RoutePostSnapshot    = "POST /api/v2/projects/{pid}/branches/{bid}/snapshot"
	RouteGetSnapshots    = "GET /api/v2/projects/{pid}/snapshots"
	RouteDeleteSnapshot  = "DELETE /api/v2/projects/{pid}/snapshots/{sid}"
	RouteRestoreSnapshot = "POST /api/v2/projects/{pid}/snapshots/{sid}/restore"
	RouteFinalizeRestore = "POST /api/v2/projects/{pid}/branches/{bid}/finalize_restore"
	RouteGetEndpoints    = "GET /api/v2/projects/{pid}/endpoints"
	RoutePostEndpoints   = "POST /api/v2/projects/{pid}/endpoints"
	RouteGetOperation    = "GET /api/v2/projects/{pid}/operations/{opid}"
	RouteGetOperations   = "GET /api/v2/projects/{pid}/operations"
)

// defaultProjectsPerPage is Neon's page size for GET /projects without a limit.
const defaultProjectsPerPage = 10

// FailHTTP makes route answer statuses, one per request, before it applies anything again.
func (f *Fake) FailHTTP(route string, statuses ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failHTTP[route] = append(f.failHTTP[route], statuses...)
}

// LoseHTTP makes the next n requests to route take effect and then lose their answer (the
// connection drops).
func (f *Fake) LoseHTTP(route string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loseHTTP[route] = n
}

// ScriptOperations sets how the operations created from now on behave on the HTTP face: they
// stay running for polls polls of GET .../operations/{id}, then end in final (with errText
// unless final is finished). The neon.API face returns once operations are terminal, as
// neon.API promises, whatever is scripted here.
func (f *Fake) ScriptOperations(polls int, final, errText string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opPolls, f.opFinal, f.opErr = polls, final, errText
}

// ScriptOperationTime makes the operations created from now on stay running on the HTTP face
// until d after their creation (by the Fake's clock), as Neon's take about a second, then end
// as ScriptOperations set (finished by default); 0 goes back to counting polls.
func (f *Fake) ScriptOperationTime(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opTime = d
}

// SetBranchPageSize makes GET .../branches answer n branches per page (0 = all).
func (f *Fake) SetBranchPageSize(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.branchPage = n
}

// Hits returns how many requests route received.
func (f *Fake) Hits(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[route]
}

// Bodies returns the request bodies route received, in order.
func (f *Fake) Bodies(route string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.bodies[route])
}

// Queries returns the raw query strings route received, in order.
func (f *Fake) Queries(route string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.queries[route])
}

// OperationsTerminal reports whether no operation is still running.
func (f *Fake) OperationsTerminal() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.ops {
		if !o.op.Terminal() {
			return false
		}
	}
	return true
}

// Handler serves the model as Neon's HTTP API under /api/v2 (e.g. with httptest.NewServer,
// and neon.Config.BaseURL set to its URL plus "/api/v2").
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	h := func(route string, fn func(w http.ResponseWriter, r *http.Request) error) {
		mux.HandleFunc(route, f.wrap(route, fn))
	}
	h(RoutePostProjects, func(w http.ResponseWriter, r *http.Request) error {
		var req struct{ Project neon.ProjectCreate }
		decode(r, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, http.StatusCreated, f.createProjectLocked(req.Project))
		return nil
	})
	h(RouteGetProjects, func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit <= 0 {
			limit = defaultProjectsPerPage
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		list := f.listProjectsLocked(q.Get("search"), q.Get("org_id"), q.Get("cursor"), limit)
		cursor := "" // Neon always answers a cursor: the last id of the page
		if len(list) > 0 {
			cursor = list[len(list)-1].ID
		}
		writeJSON(w, http.StatusOK, map[string]any{"projects": list, "pagination": map[string]string{"cursor": cursor}})
		return nil
	})
	h(RouteGetProject, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		p, err := f.projectLocked("GetProject", r.PathValue("pid"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"project": p.Project})
		return nil
	})
	h(RoutePatchProject, func(w http.ResponseWriter, r *http.Request) error {
		var req struct{ Project neon.ProjectUpdate }
		decode(r, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		p, ops, err := f.updateProjectLocked("UpdateProject", r.PathValue("pid"), req.Project)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"project": p, "operations": ops})
		return nil
	})
	h(RouteDeleteProject, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		p, err := f.deleteProjectLocked("DeleteProject", r.PathValue("pid"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"project": p})
		return nil
	})
	h(RouteConnectionURI, func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		opts := neon.ConnectionURIOptions{BranchID: q.Get("branch_id"), EndpointID: q.Get("endpoint_id"),
			DatabaseName: q.Get("database_name"), RoleName: q.Get("role_name"), Pooled: q.Get("pooled") == "true"}
		f.mu.Lock()
		defer f.mu.Unlock()
		uri, err := f.connectionURILocked("ConnectionURI", r.PathValue("pid"), opts)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"uri": uri})
		return nil
	})
	h(RouteTransfer, func(w http.ResponseWriter, r *http.Request) error {
		var req struct {
			DestinationOrgID string   `json:"destination_org_id"`
			ProjectIDs       []string `json:"project_ids"`
		}
		decode(r, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.transferLocked(req.DestinationOrgID, req.ProjectIDs)
		writeJSON(w, http.StatusOK, map[string]any{})
		return nil
	})
	h(RouteGetBranches, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		all, err := f.branchesLocked("ListBranches", r.PathValue("pid"))
		if err != nil {
			return err
		}
		start, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		start = min(max(start, 0), len(all))
		end := len(all)
		if f.branchPage > 0 {
			end = min(start+f.branchPage, len(all))
		}
		out := map[string]any{"branches": all[start:end], "annotations": map[string]any{}}
		if end < len(all) {
			out["pagination"] = map[string]string{"next": strconv.Itoa(end), "sort_by": "updated_at", "sort_order": "desc"}
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
	h(RoutePostBranches, func(w http.ResponseWriter, r *http.Request) error {
		var req struct {
			Branch    neon.BranchCreate
			Endpoints []neon.EndpointCreate
		}
		decode(r, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		out, err := f.createBranchLocked("CreateBranch", r.PathValue("pid"), req.Branch, req.Endpoints)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, out)
		return nil
	})
	h(RouteGetBranch, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		b, err := f.getBranchLocked("GetBranch", r.PathValue("pid"), r.PathValue("bid"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"branch": b})
		return nil
	})
	h(RoutePatchBranch, func(w http.ResponseWriter, r *http.Request) error {
		// A map, to tell an absent expires_at (leave alone) from null (clear it).
		var body struct {
			Branch map[string]json.RawMessage `json:"branch"`
		}
		decode(r, &body)
		var req neon.BranchUpdate
		if raw, ok := body.Branch["name"]; ok {
			_ = json.Unmarshal(raw, &req.Name)
		}
		if raw, ok := body.Branch["expires_at"]; ok {
			var t time.Time
			if string(raw) == "null" {
				req.ClearExpiry = true
			} else if err := json.Unmarshal(raw, &t); err == nil {
				req.ExpiresAt = &t
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		b, err := f.updateBranchLocked("UpdateBranch", r.PathValue("pid"), r.PathValue("bid"), req)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"branch": b, "operations": []neon.Operation{}})
		return nil
	})
	h(RouteDeleteBranch, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		b, ops, err := f.deleteBranchLocked("DeleteBranch", r.PathValue("pid"), r.PathValue("bid"))
		if err != nil {
			return err
		}
		if b == nil {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		writeJSON(w, http.StatusOK, map[string]any{"branch": b, "operations": ops})
		return nil
	})
	h(RouteRestoreBranch, func(w http.ResponseWriter, r *http.Request) error {
		var req neon.BranchRestore
		decode(r, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		b, ops, err := f.restoreBranchLocked("RestoreBranch", r.PathValue("pid"), r.PathValue("bid"), req)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"branch": b, "operations": ops})
		return nil
	})
	h(RouteBranchEndpoints, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		eps, err := f.branchEndpointsLocked("ListBranchEndpoints", r.PathValue("pid"), r.PathValue("bid"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"endpoints": eps})
		return nil
	})
	h(RouteBranchRoles, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		p, err := f.projectLocked("ListRoles", r.PathValue("pid"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"roles": []neon.Role{{BranchID: r.PathValue("bid"), Name: p.role}}})
		return nil
	})
	h(RouteBranchDatabases, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		p, err := f.projectLocked("ListDatabases", r.PathValue("pid"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"databases": []neon.Database{{ID: 1, BranchID: r.PathValue("bid"), Name: p.database, OwnerName: p.role}}})
		return nil
	})
	h(RoutePostSnapshot, func(w http.ResponseWriter, r *http.Request) error {
		// Every field is a query parameter (the spec has no body).
		q := r.URL.Query()
		req := neon.SnapshotCreate{Name: q.Get("name"), LSN: q.Get("lsn")}
		for key, dst := range map[string]**time.Time{"timestamp": &req.Timestamp, "expires_at": &req.ExpiresAt} {
			if v := q.Get(key); v != "" {
				if t, err := time.Parse(time.RFC3339, v); err == nil {
					*dst = &t
				}
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		s, ops, err := f.createSnapshotLocked("CreateSnapshot", r.PathValue("pid"), r.PathValue("bid"), req)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"snapshot": s, "operations": ops})
		return nil
	})
	h(RouteGetSnapshots, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		list, err := f.snapshotsLocked("ListSnapshots", r.PathValue("pid"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"snapshots": list})
		return nil
	})
	h(RouteDeleteSnapshot, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		ops, err := f.deleteSnapshotLocked("DeleteSnapshot", r.PathValue("pid"), r.PathValue("sid"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"operations": ops})
		return nil
	})
	h(RouteRestoreSnapshot, func(w http.ResponseWriter, r *http.Request) error {
		var req neon.SnapshotRestore
		decode(r, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		out, err := f.restoreSnapshotLocked("RestoreSnapshot", r.PathValue("pid"), r.PathValue("sid"), req)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
	h(RouteFinalizeRestore, func(w http.ResponseWriter, r *http.Request) error {
		var req struct {
			Name string `json:"name"`
		}
		decode(r, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		ops, err := f.finalizeRestoreLocked("FinalizeRestore", r.PathValue("pid"), r.PathValue("bid"), req.Name)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"operations": ops})
		return nil
	})
	h(RouteGetEndpoints, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		eps, err := f.endpointsLocked("ListEndpoints", r.PathValue("pid"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"endpoints": eps})
		return nil
	})
	h(RoutePostEndpoints, func(w http.ResponseWriter, r *http.Request) error {
		var req struct {
			Endpoint struct {
				BranchID string `json:"branch_id"`
				neon.EndpointCreate
			} `json:"endpoint"`
		}
		decode(r, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		ep, ops, err := f.createEndpointLocked("CreateEndpoint", r.PathValue("pid"), req.Endpoint.BranchID, req.Endpoint.EndpointCreate)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, map[string]any{"endpoint": ep, "operations": ops})
		return nil
	})
	h(RouteGetOperation, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		o := f.ops[r.PathValue("opid")]
		if o == nil || o.op.ProjectID != r.PathValue("pid") {
			return apiError("GetOperation", http.StatusNotFound, "", "operation %s not found", r.PathValue("opid"))
		}
		switch {
		case o.op.Terminal():
		case !o.until.IsZero():
			if !f.now().Before(o.until) {
				f.finishOp(&o.op)
			}
		default:
			if o.polls > 0 {
				o.polls--
			}
			if o.polls == 0 {
				f.finishOp(&o.op)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"operation": o.op})
		return nil
	})
	h(RouteGetOperations, func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		list := []neon.Operation{}
		for _, id := range f.opOrder {
			if o := f.ops[id]; o.op.ProjectID == r.PathValue("pid") {
				list = append(list, o.op)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"operations": list})
		return nil
	})
	return mux
}

// wrap checks the key, records the request, answers scripted failures, drops scripted
// connections, and renders fn's error as Neon's error answer.
func (f *Fake) wrap(route string, fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	serve := func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeError(w, err)
		}
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if f.apiKey != "" && r.Header.Get("Authorization") != "Bearer "+f.apiKey {
			writeErr(w, http.StatusUnauthorized, "", "invalid API key")
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.hits[route]++
		f.bodies[route] = append(f.bodies[route], string(body))
		f.queries[route] = append(f.queries[route], r.URL.RawQuery)
		var status int
		if s := f.failHTTP[route]; len(s) > 0 {
			status, f.failHTTP[route] = s[0], s[1:]
		}
		lose := status == 0 && f.loseHTTP[route] > 0
		if lose {
			f.loseHTTP[route]--
		}
		f.mu.Unlock()
		switch {
		case status != 0:
			writeErr(w, status, "", "scripted failure")
		case lose:
			serve(httptest.NewRecorder(), r) // applied …
			dropConnection(w)                // … but the answer is lost
		default:
			serve(w, r)
		}
	}
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // net/http closes the connection without logging
}

func decode(r *http.Request, v any) { _ = json.NewDecoder(r.Body).Decode(v) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "message": msg, "request_id": "req-" + strconv.Itoa(status)})
}

func writeError(w http.ResponseWriter, err error) {
	var ae *neon.APIError
	if errors.As(err, &ae) {
		writeErr(w, ae.StatusCode, ae.Code, ae.Message)
		return
	}
	writeErr(w, http.StatusBadRequest, "", err.Error())
}
