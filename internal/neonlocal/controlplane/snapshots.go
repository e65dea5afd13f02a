package controlplane

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
)

func (s *Server) snapshotsOfLocked(projectID string) []*snapshot {
	var out []*snapshot
	for _, sn := range s.st.Snapshots {
		if sn.ProjectID == projectID {
			out = append(out, sn)
		}
	}
	slices.SortFunc(out, func(a, b *snapshot) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
}

func (s *Server) snapshotLocked(prj *project, id string) (*snapshot, error) {
	sn := s.st.Snapshots[id]
	if sn == nil || sn.ProjectID != prj.ID {
		return nil, errf(http.StatusNotFound, "snapshot not found")
	}
	return sn, nil
}

// mutableSnapshotLocked resolves the path's project and snapshot for a change (423 while an
// operation of the project runs, before the snapshot is looked up).
func (s *Server) mutableSnapshotLocked(r *http.Request, p principal) (*project, *snapshot, error) {
	prj, err := s.mutableProjectLocked(p, r)
	if err != nil {
		return nil, nil, err
	}
	sn, err := s.snapshotLocked(prj, r.PathValue("snapshot_id"))
	if err != nil {
		return nil, nil, err
	}
	return prj, sn, nil
}

func (s *Server) removeSnapshotLocked(sn *snapshot) []opStep {
	projectID, id := sn.ProjectID, sn.ID
	delete(s.st.Snapshots, id)
	return []opStep{s.newOpLocked(projectID, sn.SourceBranchID, "", "delete_timeline", func(ctx context.Context) error {
		return s.dp.DeleteSnapshot(ctx, projectID, id)
	})}
}

// createSnapshot takes lsn, timestamp, name and expires_at as query
// parameters (the spec) or, for clients following Neon's older docs, as a
// JSON body; query parameters win.
func (s *Server) createSnapshot(r *http.Request, p principal) (int, any, error) {
	var body struct {
		LSN       string `json:"lsn"`
		Timestamp string `json:"timestamp"`
		Name      string `json:"name"`
		ExpiresAt string `json:"expires_at"`
	}
	if err := decodeBody(r, &body); err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	lsn := cmp.Or(q.Get("lsn"), body.LSN)
	tsRaw := cmp.Or(q.Get("timestamp"), body.Timestamp)
	name := cmp.Or(q.Get("name"), body.Name)
	expRaw := cmp.Or(q.Get("expires_at"), body.ExpiresAt)
	at, err := parseTimePtr(&tsRaw, "timestamp")
	if err != nil {
		return 0, nil, err
	}
	expires, err := parseTimePtr(&expRaw, "expires_at")
	if err != nil {
		return 0, nil, err
	}
	return s.mutate(func() (result, error) {
		prj, b, err := s.mutableBranchLocked(r, p)
		if err != nil {
			return result{}, err
		}
		if b.ParentID != "" { // Neon: snapshots only of root branches
			return result{}, errf(http.StatusBadRequest, "snapshots can only be created from root branches; branch %s has parent %s", b.ID, b.ParentID)
		}
		t, pit, err := s.pointInTimeLocked(prj, lsn, at)
		if err != nil {
			return result{}, err
		}
		now := s.now()
		if !pit {
			t = now
		}
		if expires != nil && !expires.After(now) {
			return result{}, errf(http.StatusBadRequest, "expires_at must be in the future")
		}
		pl := s.planOf(prj.OrgID)
		if have := len(s.snapshotsOfLocked(prj.ID)); have >= pl.MaxSnapshots {
			return result{}, errCode(http.StatusUnprocessableEntity, "SNAPSHOTS_LIMIT_EXCEEDED",
				"snapshots limit exceeded: the project has %d snapshots and the organization plan allows %d", have, pl.MaxSnapshots)
		}
		sn := &snapshot{ID: newSnapshotID(), ProjectID: prj.ID, Name: name, SourceBranchID: b.ID, At: t, CreatedAt: now, ExpiresAt: expires}
		roles, dbs := s.listsLocked(b)
		sn.Roles, sn.Databases, _ = copyLists(roles, dbs, &t, now) // passwords: as the branch has them now
		if sn.Name == "" {
			sn.Name = fmt.Sprintf("%s %s", b.Name, ts(t))
		}
		s.st.Snapshots[sn.ID] = sn
		spec := neonlocal.SnapshotSpec{ProjectID: prj.ID, SnapshotID: sn.ID, BranchID: b.ID, At: t}
		steps := []opStep{s.newOpLocked(prj.ID, b.ID, "", "timeline_archive", func(ctx context.Context) error {
			return s.dp.CreateSnapshot(ctx, spec)
		})}
		return result{status: http.StatusOK, steps: steps,
			body: map[string]any{"snapshot": renderSnapshot(sn), "operations": opsOf(steps)}}, nil
	})
}

func (s *Server) listSnapshots(r *http.Request, p principal) (int, any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prj, err := s.projectLocked(p, r.PathValue("project_id"))
	if err != nil {
		return 0, nil, err
	}
	out := []apiSnapshot{}
	for _, sn := range s.snapshotsOfLocked(prj.ID) {
		out = append(out, renderSnapshot(sn))
	}
	return http.StatusOK, map[string]any{"snapshots": out}, nil
}

func (s *Server) updateSnapshot(r *http.Request, p principal) (int, any, error) {
	var req struct {
		Snapshot *struct {
			Name      *string         `json:"name"`
			ExpiresAt json.RawMessage `json:"expires_at"` // null = never expires
		} `json:"snapshot"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Snapshot == nil {
		return 0, nil, errf(http.StatusBadRequest, "snapshot is required")
	}
	rs := req.Snapshot
	clearExpiry := string(rs.ExpiresAt) == "null"
	var expires *time.Time
	if len(rs.ExpiresAt) > 0 && !clearExpiry {
		var v string
		if err := json.Unmarshal(rs.ExpiresAt, &v); err != nil {
			return 0, nil, errf(http.StatusBadRequest, "expires_at must be an RFC 3339 timestamp or null")
		}
		t, err := parseTimePtr(&v, "expires_at")
		if err != nil {
			return 0, nil, err
		}
		expires = t
	}
	return s.mutate(func() (result, error) {
		_, sn, err := s.mutableSnapshotLocked(r, p)
		if err != nil {
			return result{}, err
		}
		if expires != nil && !expires.After(s.now()) {
			return result{}, errf(http.StatusBadRequest, "expires_at must be in the future")
		}
		if rs.Name != nil {
			sn.Name = *rs.Name
		}
		switch {
		case clearExpiry:
			sn.ExpiresAt = nil
		case expires != nil:
			sn.ExpiresAt = expires
		}
		return result{status: http.StatusOK, body: map[string]any{"snapshot": renderSnapshot(sn)}}, nil
	})
}

func (s *Server) deleteSnapshot(r *http.Request, p principal) (int, any, error) {
	return s.mutate(func() (result, error) {
		_, sn, err := s.mutableSnapshotLocked(r, p)
		if err != nil {
			return result{}, err
		}
		steps := s.removeSnapshotLocked(sn)
		return result{status: http.StatusAccepted, steps: steps, body: map[string]any{"operations": opsOf(steps)}}, nil
	})
}

func (s *Server) restoreSnapshot(r *http.Request, p principal) (int, any, error) {
	var req struct {
		Name            string `json:"name"`
		TargetBranchID  string `json:"target_branch_id"`
		FinalizeRestore bool   `json:"finalize_restore"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	name := cmp.Or(req.Name, r.URL.Query().Get("name")) // query "name" is deprecated but accepted
	if err := s.disk.refresh(r.Context()); err != nil {
		return 0, nil, err
	}
	return s.mutate(func() (result, error) {
		prj, sn, err := s.mutableSnapshotLocked(r, p)
		if err != nil {
			return result{}, err
		}
		target, err := s.branchLocked(prj, cmp.Or(req.TargetBranchID, sn.SourceBranchID))
		if err != nil {
			return result{}, errf(http.StatusBadRequest, "target branch %s not found", cmp.Or(req.TargetBranchID, sn.SourceBranchID))
		}
		if name == "" {
			name = fmt.Sprintf("%s (restored %s)", target.Name, ts(sn.At))
		}
		if s.nameTakenLocked(prj.ID, name, "") {
			return result{}, errBranchExists(name)
		}
		if err := s.checkBranchRoomLocked(prj, 1); err != nil {
			return result{}, err
		}
		if err := s.disk.admit(); err != nil { // the restored branch is a new cluster
			return result{}, err
		}
		now := s.now()
		// A snapshot restore makes a new root branch, so the result can be
		// snapshotted again (checkpoint after undo).
		nb := &branch{
			ID: newBranchID(), ProjectID: prj.ID, Name: name, InitSource: "parent-data",
			CurrentState: "init", PendingState: "ready", StateChangedAt: now, CreatedAt: now, UpdatedAt: now,
			RestoreStatus: "restored", RestoredFrom: sn.ID, RestoreTargetID: target.ID,
		}
		// The snapshot's roles and databases (a snapshot of an older state file: the project's).
		var resync []*pgRole
		if sn.Roles != nil && sn.Databases != nil {
			nb.Roles, nb.Databases, resync = copyLists(sn.Roles, sn.Databases, &sn.At, now)
		} else {
			nb.Roles, nb.Databases = defaultLists(prj, now)
		}
		s.st.Branches[nb.ID] = nb
		spec := neonlocal.SnapshotSpec{ProjectID: prj.ID, SnapshotID: sn.ID, BranchID: sn.SourceBranchID, At: sn.At}
		steps := []opStep{
			s.newOpLocked(prj.ID, nb.ID, "", "timeline_unarchive", nil),
			s.newOpLocked(prj.ID, nb.ID, "", "create_branch", func(ctx context.Context) error {
				if err := s.dp.RestoreSnapshot(ctx, spec, nb.ID); err != nil {
					return err
				}
				return s.resyncPasswords(ctx, prj.ID, nb.ID, resync)
			}),
		}
		var moved []*endpoint
		if req.FinalizeRestore {
			more, eps, err := s.finalizeLocked(nb, target, "")
			if err != nil {
				s.disk.release()
				return result{}, err
			}
			steps, moved = append(steps, more...), eps
		}
		body := map[string]any{"branch": s.renderBranch(nb), "operations": opsOf(steps)}
		if req.FinalizeRestore {
			body["endpoints"] = s.renderEndpoints(moved)
		}
		return result{status: http.StatusOK, steps: steps, body: body, done: func(bool) {
			s.settleBranchLocked(nb.ID)
			for _, e := range moved {
				s.settleEndpointLocked(e.ID)
			}
			s.disk.release()
		}}, nil
	})
}

// finalizeLocked makes nb replace target: nb takes target's name, default
// flag and computes (same ids and ports, so connection strings stay), and
// target is renamed oldName (default "NAME (old)"). It validates before it
// changes anything.
func (s *Server) finalizeLocked(nb, target *branch, oldName string) ([]opStep, []*endpoint, error) {
	if oldName == "" {
		oldName = target.Name + " (old)"
		for i := 2; s.nameTakenLocked(nb.ProjectID, oldName, target.ID); i++ {
			oldName = fmt.Sprintf("%s (old %d)", target.Name, i)
		}
	} else if s.nameTakenLocked(nb.ProjectID, oldName, target.ID) {
		return nil, nil, errBranchExists(oldName)
	}
	now := s.now()
	newName := target.Name
	target.Name, nb.Name = oldName, newName
	nb.Default, target.Default = target.Default, false
	nb.Protected = target.Protected
	nb.RestoreStatus, nb.UpdatedAt = "finalized", now
	target.RestoredAs, target.UpdatedAt = nb.ID, now
	var steps []opStep
	eps := s.endpointsOfBranchLocked(target.ID)
	for _, e := range eps {
		oldSpec := s.endpointSpecLocked(e)
		e.BranchID, e.UpdatedAt = nb.ID, now
		e.PendingState = "active"
		newSpec := s.endpointSpecLocked(e)
		steps = append(steps,
			s.newOpLocked(nb.ProjectID, target.ID, e.ID, "suspend_compute", func(ctx context.Context) error {
				return s.dp.SuspendEndpoint(ctx, oldSpec)
			}),
			s.newOpLocked(nb.ProjectID, nb.ID, e.ID, "start_compute", func(ctx context.Context) error {
				return s.dp.StartEndpoint(ctx, newSpec)
			}))
	}
	return steps, eps, nil
}

func (s *Server) finalizeRestore(r *http.Request, p principal) (int, any, error) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	return s.mutate(func() (result, error) {
		_, nb, err := s.mutableBranchLocked(r, p)
		if err != nil {
			return result{}, err
		}
		if nb.RestoreStatus != "restored" {
			return result{}, errf(http.StatusBadRequest, "branch %s is not a restored branch awaiting finalization", nb.ID)
		}
		target := s.st.Branches[nb.RestoreTargetID]
		if target == nil {
			return result{}, errf(http.StatusBadRequest, "the branch to replace (%s) no longer exists", nb.RestoreTargetID)
		}
		steps, moved, err := s.finalizeLocked(nb, target, req.Name)
		if err != nil {
			return result{}, err
		}
		return result{status: http.StatusOK, steps: steps, body: map[string]any{"operations": opsOf(steps)},
			done: func(bool) {
				for _, e := range moved {
					s.settleEndpointLocked(e.ID)
				}
			}}, nil
	})
}
