package controlplane

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
)

// allocPortLocked picks a free loopback TCP port that no endpoint holds
// (nor any in exclude). The port is kept for the endpoint's life, so a
// connection string never changes.
func (s *Server) allocPortLocked(exclude ...int) (int, error) {
	used := map[int]bool{}
	for _, e := range s.st.Endpoints {
		used[e.Port] = true
	}
	for _, p := range exclude {
		used[p] = true
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("allocate port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !used[port] {
			return port, nil
		}
	}
	return 0, fmt.Errorf("allocate port: no free port found")
}

func (s *Server) addEndpointLocked(prj *project, branchID, typ string, port int, minCU, maxCU *float64, suspend *int64, settings *endpointSettings) *endpoint {
	now := s.now()
	d := prj.DefaultEndpoint
	ep := &endpoint{
		ID: newEndpointID(), ProjectID: prj.ID, BranchID: branchID, Type: typ,
		MinCU: ptrOr(minCU, d.MinCU), MaxCU: ptrOr(maxCU, d.MaxCU), SuspendTimeout: ptrOr(suspend, d.SuspendTimeout),
		PgSettings: copyMap(d.PgSettings), Port: port, CurrentState: "init", PendingState: "active",
		CreatedAt: now, UpdatedAt: now,
	}
	if settings != nil && settings.PgSettings != nil {
		ep.PgSettings = copyMap(settings.PgSettings)
	}
	s.st.Endpoints[ep.ID] = ep
	return ep
}

func (s *Server) endpointSpecLocked(e *endpoint) neonlocal.EndpointSpec {
	spec := neonlocal.EndpointSpec{ProjectID: e.ProjectID, BranchID: e.BranchID, EndpointID: e.ID, Port: e.Port,
		ReadOnly: e.Type == "read_only", PgSettings: copyMap(e.PgSettings),
		SuspendTimeout: time.Duration(e.SuspendTimeout) * time.Second}
	if prj := s.st.Projects[e.ProjectID]; prj != nil {
		spec.PgVersion, spec.RoleName, spec.RolePassword, spec.DatabaseName = prj.PgVersion, prj.RoleName, prj.RolePassword, prj.DatabaseName
	}
	return spec
}

func (s *Server) endpointsWhereLocked(keep func(*endpoint) bool) []*endpoint {
	var out []*endpoint
	for _, e := range s.st.Endpoints {
		if keep(e) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *endpoint) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
}

func (s *Server) endpointsOfBranchLocked(branchID string) []*endpoint {
	return s.endpointsWhereLocked(func(e *endpoint) bool { return e.BranchID == branchID })
}

func (s *Server) readWriteEndpointLocked(branchID string) *endpoint {
	for _, e := range s.endpointsOfBranchLocked(branchID) {
		if e.Type == "read_write" {
			return e
		}
	}
	return nil
}

func (s *Server) renderEndpoints(eps []*endpoint) []apiEndpoint {
	out := []apiEndpoint{}
	for _, e := range eps {
		out = append(out, s.renderEndpoint(e))
	}
	return out
}

func (s *Server) endpointLocked(prj *project, id string) (*endpoint, error) {
	e := s.st.Endpoints[id]
	if e == nil || e.ProjectID != prj.ID {
		return nil, errf(http.StatusNotFound, "endpoint not found")
	}
	return e, nil
}

func errRWExists() error {
	return errf(http.StatusConflict, "read-write endpoint already exists: a branch can have only one read_write endpoint")
}

func (s *Server) listEndpoints(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prj, err := s.projectLocked(p, r.PathValue("project_id"))
	if err != nil {
		return 0, nil, err
	}
	eps := s.endpointsWhereLocked(func(e *endpoint) bool { return e.ProjectID == prj.ID })
	return http.StatusOK, map[string]any{"endpoints": s.renderEndpoints(eps)}, nil
}

func (s *Server) listBranchEndpoints(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, b, err := s.branchOfLocked(r, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"endpoints": s.renderEndpoints(s.endpointsOfBranchLocked(b.ID))}, nil
}

func (s *Server) getEndpoint(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prj, err := s.projectLocked(p, r.PathValue("project_id"))
	if err != nil {
		return 0, nil, err
	}
	e, err := s.endpointLocked(prj, r.PathValue("endpoint_id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"endpoint": s.renderEndpoint(e)}, nil
}

func (s *Server) createEndpoint(r *http.Request, p principal) (int, any, error) {
	var req struct {
		Endpoint *struct {
			BranchID string `json:"branch_id"`
			RegionID string `json:"region_id"`
			endpointOptionsReq
			Disabled bool   `json:"disabled"`
			Name     string `json:"name"`
		} `json:"endpoint"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	re := req.Endpoint
	if re == nil || re.BranchID == "" || re.Type == "" {
		return 0, nil, errf(http.StatusBadRequest, "endpoint.branch_id and endpoint.type are required")
	}
	if re.Type != "read_write" && re.Type != "read_only" {
		return 0, nil, errf(http.StatusBadRequest, "endpoint type must be read_write or read_only")
	}
	return s.mutate(func() (result, error) {
		prj, err := s.mutableProjectLocked(p, r)
		if err != nil {
			return result{}, err
		}
		b, err := s.branchLocked(prj, re.BranchID)
		if err != nil {
			return result{}, err
		}
		if re.RegionID != "" && re.RegionID != prj.RegionID {
			return result{}, errf(http.StatusBadRequest, "region_id must be the project's region %s", prj.RegionID)
		}
		d := prj.DefaultEndpoint
		if err := checkCompute(s.planOf(prj.OrgID), ptrOr(re.MinCU, d.MinCU), ptrOr(re.MaxCU, d.MaxCU), ptrOr(re.SuspendTimeout, d.SuspendTimeout)); err != nil {
			return result{}, err
		}
		if re.Type == "read_write" && s.readWriteEndpointLocked(b.ID) != nil {
			return result{}, errRWExists()
		}
		port, err := s.allocPortLocked()
		if err != nil {
			return result{}, err
		}
		ep := s.addEndpointLocked(prj, b.ID, re.Type, port, re.MinCU, re.MaxCU, re.SuspendTimeout, re.Settings)
		ep.Name, ep.Disabled = re.Name, re.Disabled
		espec := s.endpointSpecLocked(ep)
		steps := []opStep{s.newOpLocked(prj.ID, b.ID, ep.ID, "start_compute", func(ctx context.Context) error {
			return s.dp.StartEndpoint(ctx, espec)
		})}
		return result{status: http.StatusCreated, steps: steps,
			body: map[string]any{"endpoint": s.renderEndpoint(ep), "operations": opsOf(steps)},
			done: func(bool) { s.settleEndpointLocked(ep.ID) }}, nil
	})
}

func (s *Server) updateEndpoint(r *http.Request, p principal) (int, any, error) {
	var req struct {
		Endpoint *struct {
			BranchID       string            `json:"branch_id"`
			MinCU          *float64          `json:"autoscaling_limit_min_cu"`
			MaxCU          *float64          `json:"autoscaling_limit_max_cu"`
			SuspendTimeout *int64            `json:"suspend_timeout_seconds"`
			Settings       *endpointSettings `json:"settings"`
			Disabled       *bool             `json:"disabled"`
			Name           *string           `json:"name"`
		} `json:"endpoint"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	re := req.Endpoint
	if re == nil {
		return 0, nil, errf(http.StatusBadRequest, "endpoint is required")
	}
	return s.mutate(func() (result, error) {
		prj, err := s.mutableProjectLocked(p, r)
		if err != nil {
			return result{}, err
		}
		e, err := s.endpointLocked(prj, r.PathValue("endpoint_id"))
		if err != nil {
			return result{}, err
		}
		minCU, maxCU, suspend := ptrOr(re.MinCU, e.MinCU), ptrOr(re.MaxCU, e.MaxCU), ptrOr(re.SuspendTimeout, e.SuspendTimeout)
		if err := checkCompute(s.planOf(prj.OrgID), minCU, maxCU, suspend); err != nil {
			return result{}, err
		}
		if re.BranchID != "" && re.BranchID != e.BranchID {
			b, err := s.branchLocked(prj, re.BranchID)
			if err != nil {
				return result{}, err
			}
			if e.Type == "read_write" && s.readWriteEndpointLocked(b.ID) != nil {
				return result{}, errRWExists()
			}
			e.BranchID = b.ID
		}
		e.MinCU, e.MaxCU, e.SuspendTimeout = minCU, maxCU, suspend
		if re.Settings != nil && re.Settings.PgSettings != nil {
			e.PgSettings = copyMap(re.Settings.PgSettings)
		}
		if re.Disabled != nil {
			e.Disabled = *re.Disabled
		}
		if re.Name != nil {
			e.Name = *re.Name
		}
		e.UpdatedAt = s.now()
		var steps []opStep
		if e.CurrentState == "active" {
			// A running compute restarts to apply the new configuration.
			espec := s.endpointSpecLocked(e)
			steps = append(steps, s.newOpLocked(prj.ID, e.BranchID, e.ID, "apply_config", func(ctx context.Context) error {
				return s.dp.StartEndpoint(ctx, espec)
			}))
		}
		return result{status: http.StatusOK, steps: steps,
			body: map[string]any{"endpoint": s.renderEndpoint(e), "operations": opsOf(steps)}}, nil
	})
}

func (s *Server) deleteEndpoint(r *http.Request, p principal) (int, any, error) {
	return s.mutate(func() (result, error) {
		prj, err := s.projectLocked(p, r.PathValue("project_id"))
		if err != nil {
			return result{}, err
		}
		e := s.st.Endpoints[r.PathValue("endpoint_id")]
		if e == nil || e.ProjectID != prj.ID {
			return result{status: http.StatusNoContent}, nil
		}
		if err := s.lockedLocked(prj.ID); err != nil {
			return result{}, err
		}
		espec := s.endpointSpecLocked(e)
		steps := []opStep{s.newOpLocked(prj.ID, e.BranchID, e.ID, "suspend_compute", func(ctx context.Context) error {
			return s.dp.SuspendEndpoint(ctx, espec)
		})}
		body := map[string]any{"endpoint": s.renderEndpoint(e), "operations": opsOf(steps)}
		delete(s.st.Endpoints, e.ID)
		return result{status: http.StatusOK, steps: steps, body: body}, nil
	})
}

func (s *Server) startEndpoint(r *http.Request, p principal) (int, any, error) {
	return s.endpointAction(r, p, "start_compute", "active")
}

func (s *Server) suspendEndpoint(r *http.Request, p principal) (int, any, error) {
	return s.endpointAction(r, p, "suspend_compute", "idle")
}

func (s *Server) endpointAction(r *http.Request, p principal, action, target string) (int, any, error) {
	return s.mutate(func() (result, error) {
		prj, err := s.mutableProjectLocked(p, r)
		if err != nil {
			return result{}, err
		}
		e, err := s.endpointLocked(prj, r.PathValue("endpoint_id"))
		if err != nil {
			return result{}, err
		}
		espec := s.endpointSpecLocked(e)
		run := func(ctx context.Context) error { return s.dp.StartEndpoint(ctx, espec) }
		if target == "idle" {
			run = func(ctx context.Context) error { return s.dp.SuspendEndpoint(ctx, espec) }
		}
		e.PendingState, e.UpdatedAt = target, s.now()
		steps := []opStep{s.newOpLocked(prj.ID, e.BranchID, e.ID, action, run)}
		return result{status: http.StatusOK, steps: steps,
			body: map[string]any{"endpoint": s.renderEndpoint(e), "operations": opsOf(steps)},
			done: func(bool) { s.settleEndpointLocked(e.ID) }}, nil
	})
}

// ServesPort reports whether port is one of the endpoints' ports: SQL over HTTP connects
// only to those.
func (s *Server) ServesPort(port int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.st.Endpoints {
		if e.Port == port {
			return true
		}
	}
	return false
}

// EndpointHost is the host name the endpoints are given (Options.EndpointHost).
func (s *Server) EndpointHost() string { return s.opts.EndpointHost }
