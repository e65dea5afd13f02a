package controlplane

import (
	"net/http"
	"strconv"
)

type limitUnsatisfied struct {
	Name     string `json:"name"`
	Expected string `json:"expected"`
	Actual   string `json:"actual"`
}

// transferProjects moves projects between the two orgs. Only the personal
// key may do it (Neon does not support org keys here). A project that would
// not fit the destination plan's hard limits gets 406 {"limits": [...]}, and
// nothing moves.
func (s *Server) transferProjects(r *http.Request, p principal) (int, any, error) {
	if !p.personal {
		return 0, nil, errf(http.StatusForbidden, "transferring projects requires a personal API key; organization API keys are not supported")
	}
	var req struct {
		DestinationOrgID string   `json:"destination_org_id"`
		ProjectIDs       []string `json:"project_ids"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.DestinationOrgID == "" {
		return 0, nil, errf(http.StatusBadRequest, "destination_org_id is required")
	}
	if n := len(req.ProjectIDs); n < 1 || n > 400 {
		return 0, nil, errf(http.StatusBadRequest, "project_ids must hold 1 to 400 project ids")
	}
	return s.mutate(func() (result, error) {
		src, dst := r.PathValue("source_org_id"), req.DestinationOrgID
		known := func(id string) bool { return id == s.st.FreeOrgID || id == s.st.PaidOrgID }
		if !known(src) || !known(dst) {
			return result{}, errf(http.StatusNotFound, "organization not found")
		}
		pl := s.planOf(dst)
		var limits []limitUnsatisfied
		var prjs []*project
		for _, id := range req.ProjectIDs {
			prj := s.st.Projects[id]
			if prj == nil || prj.OrgID != src {
				return result{}, errf(http.StatusNotFound, "project %s not found in organization %s", id, src)
			}
			if err := s.lockedLocked(prj.ID); err != nil {
				return result{}, err
			}
			prjs = append(prjs, prj)
			if src == dst {
				continue
			}
			if n := len(s.branchesOfLocked(id)); n > pl.MaxBranches {
				limits = append(limits, limitUnsatisfied{"branches_count", strconv.Itoa(pl.MaxBranches), strconv.Itoa(n)})
			}
			if n := len(s.snapshotsOfLocked(id)); n > pl.MaxSnapshots {
				limits = append(limits, limitUnsatisfied{"snapshots_count", strconv.Itoa(pl.MaxSnapshots), strconv.Itoa(n)})
			}
			if prj.HistoryRetention > pl.MaxRetention {
				limits = append(limits, limitUnsatisfied{"history_retention_seconds", strconv.Itoa(pl.MaxRetention), strconv.Itoa(prj.HistoryRetention)})
			}
			maxCU, minSuspend := prj.DefaultEndpoint.MaxCU, prj.DefaultEndpoint.SuspendTimeout
			for _, e := range s.endpointsWhereLocked(func(e *endpoint) bool { return e.ProjectID == id }) {
				maxCU = max(maxCU, e.MaxCU)
				if e.SuspendTimeout != 0 && (minSuspend == 0 || e.SuspendTimeout < minSuspend) {
					minSuspend = e.SuspendTimeout
				}
			}
			if maxCU > pl.MaxCU {
				limits = append(limits, limitUnsatisfied{"autoscaling_limit_max_cu", strconv.FormatFloat(pl.MaxCU, 'g', -1, 64), strconv.FormatFloat(maxCU, 'g', -1, 64)})
			}
			if (minSuspend == -1 && !pl.AllowNeverSuspend) || (minSuspend > 0 && minSuspend < pl.MinSuspend) {
				limits = append(limits, limitUnsatisfied{"suspend_timeout_seconds", strconv.FormatInt(pl.MinSuspend, 10), strconv.FormatInt(minSuspend, 10)})
			}
		}
		if len(limits) > 0 {
			// Nothing changed; mutate persists an identical state.
			return result{status: http.StatusNotAcceptable, body: map[string]any{"limits": limits}}, nil
		}
		now := s.now()
		for _, prj := range prjs {
			prj.OrgID, prj.UpdatedAt = dst, now
		}
		return result{status: http.StatusOK, body: map[string]any{}}, nil
	})
}
