package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
)

// usageMark is a project's data-plane counters at the last sample, and the sub-second
// remainders not yet added to the whole-second counters.
type usageMark struct {
	u               neonlocal.Usage
	activeRemainder time.Duration
	cpuRemainder    time.Duration
}

// usageLoop adds what the data plane measured to the projects' period counters and
// enforces their quotas, as Neon does: over an active-time, compute-time, written-data or
// data-transfer quota every compute of the project is suspended and new connections are
// refused until the quota is raised (or the period ends); over the logical-size quota a
// branch's database refuses writes.
func (s *Server) usageLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.UsageInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.CollectUsage(s.ctx)
		}
	}
}

// CollectUsage samples the data plane once for every project (the loop calls it; tests
// call it to avoid waiting for the interval).
func (s *Server) CollectUsage(ctx context.Context) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.st.Projects))
	for id := range s.st.Projects {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		u, err := s.dp.Usage(ctx, id)
		if err != nil {
			s.log.Warn("usage sample failed", "project_id", id, "err", err)
			continue
		}
		s.mu.Lock()
		var retention time.Duration
		if prj, ok := s.st.Projects[id]; ok {
			retention = time.Duration(prj.HistoryRetention) * time.Second
		}
		s.mu.Unlock()
		if err := s.dp.Prune(ctx, id, s.now().Add(-retention)); err != nil {
			s.log.Warn("history pruning failed", "project_id", id, "err", err)
		}
		reason, readOnly, changed := s.addUsage(id, u)
		if changed {
			if err := s.dp.Restrict(ctx, id, reason, readOnly); err != nil {
				s.log.Error("quota enforcement failed", "project_id", id, "err", err)
			} else if reason != "" {
				s.log.Warn("project over quota: computes suspended", "project_id", id, "quota", reason)
			}
		}
	}
}

// addUsage adds the increase since the last sample to the project's counters and reports
// the quota state when it changed.
func (s *Server) addUsage(projectID string, u neonlocal.Usage) (reason string, readOnly []string, changed bool) {
	s.usageMu.Lock()
	last := s.usage[projectID]
	grow := func(cur, prev int64) int64 {
		if cur >= prev {
			return cur - prev
		}
		return cur // the data plane restarted its counters
	}
	growD := func(cur, prev time.Duration) time.Duration {
		if cur >= prev {
			return cur - prev
		}
		return cur
	}
	active := last.activeRemainder + growD(u.ActiveTime, last.u.ActiveTime)
	cpu := last.cpuRemainder + growD(u.CPUTime, last.u.CPUTime)
	written := grow(u.WrittenBytes, last.u.WrittenBytes)
	transfer := grow(u.TransferBytes, last.u.TransferBytes)
	s.usage[projectID] = usageMark{u: u, activeRemainder: active % time.Second, cpuRemainder: cpu % time.Second}
	s.usageMu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	prj, ok := s.st.Projects[projectID]
	if !ok {
		return "", nil, false
	}
	now := s.now()
	if start, _ := monthBounds(now); !prj.PeriodStart.Equal(start) {
		prj.PeriodStart = start
		prj.ActiveTimeSeconds, prj.ComputeTimeSeconds, prj.WrittenDataBytes, prj.DataTransferBytes = 0, 0, 0, 0
	}
	if u.ActiveTime > last.u.ActiveTime || (u.ActiveTime < last.u.ActiveTime && u.ActiveTime > 0) {
		s.touchProjectLocked(projectID, now) // a compute ran since the last sample
	}
	prj.ActiveTimeSeconds += int64(active / time.Second)
	prj.ComputeTimeSeconds += int64(cpu / time.Second)
	prj.WrittenDataBytes += written
	prj.DataTransferBytes += transfer
	q := projectQuota(prj.Settings)
	for _, b := range s.st.Branches {
		if b.ProjectID != projectID {
			continue
		}
		if size, ok := u.LogicalSize[b.ID]; ok && size > 0 {
			b.LogicalSize = size
		}
		if q.LogicalSizeBytes > 0 && b.LogicalSize > q.LogicalSizeBytes {
			readOnly = append(readOnly, b.ID)
		}
	}
	switch {
	case q.ActiveTimeSeconds > 0 && prj.ActiveTimeSeconds >= q.ActiveTimeSeconds:
		reason = fmt.Sprintf("Your project has exceeded the active time quota (%d s); raise the quota or wait for the next period", q.ActiveTimeSeconds)
	case q.ComputeTimeSeconds > 0 && prj.ComputeTimeSeconds >= q.ComputeTimeSeconds:
		reason = fmt.Sprintf("Your project has exceeded the compute time quota (%d s); raise the quota or wait for the next period", q.ComputeTimeSeconds)
	case q.WrittenDataBytes > 0 && prj.WrittenDataBytes >= q.WrittenDataBytes:
		reason = fmt.Sprintf("Your project has exceeded the written data quota (%d bytes)", q.WrittenDataBytes)
	case q.DataTransferBytes > 0 && prj.DataTransferBytes >= q.DataTransferBytes:
		reason = fmt.Sprintf("Your project has exceeded the data transfer quota (%d bytes)", q.DataTransferBytes)
	}
	changed = s.readOnlyChangedLocked(projectID, readOnly) || reason != prj.QuotaExceeded
	if reason != prj.QuotaExceeded {
		prj.QuotaExceeded = reason
		for _, e := range s.st.Endpoints {
			if e.ProjectID == projectID && reason != "" {
				e.CurrentState, e.PendingState, e.UpdatedAt = "idle", "", now
				e.SuspendedAt = &now
			}
		}
	}
	if err := s.saveLocked(); err != nil {
		s.log.Error("save state", "err", err)
	}
	return reason, readOnly, changed
}

// readOnlyChangedLocked reports whether the set of read-only branches differs from the last
// one applied (kept per project), and remembers the new one.
func (s *Server) readOnlyChangedLocked(projectID string, readOnly []string) bool {
	key := fmt.Sprint(readOnly)
	prev, ok := s.readOnly[projectID]
	if s.readOnly == nil {
		s.readOnly = map[string]string{}
	}
	s.readOnly[projectID] = key
	return !ok || prev != key
}

type quota struct {
	ActiveTimeSeconds  int64 `json:"active_time_seconds"`
	ComputeTimeSeconds int64 `json:"compute_time_seconds"`
	WrittenDataBytes   int64 `json:"written_data_bytes"`
	DataTransferBytes  int64 `json:"data_transfer_bytes"`
	LogicalSizeBytes   int64 `json:"logical_size_bytes"`
}

func projectQuota(settings json.RawMessage) quota {
	var v struct {
		Quota quota `json:"quota"`
	}
	_ = json.Unmarshal(settings, &v)
	return v.Quota
}
