package controlplane

import (
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"
)

// consumptionAllowed takes a token from the caller's consumption bucket
// (Neon runs a separate, smaller limiter for these endpoints).
func (s *Server) consumptionAllowed(key string) error {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	lim := s.limiters[key]
	n := s.opts.ConsumptionRatePerMinute
	if lim == nil {
		lim = rate.NewLimiter(rate.Every(time.Minute/time.Duration(n)), n)
		s.limiters[key] = lim
	}
	now := s.opts.Now()
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return &apiError{status: http.StatusTooManyRequests, msg: "rate limit exceeded for consumption history",
			retryAfter: int(math.Ceil(d.Seconds()))}
	}
	return nil
}

type granularity struct {
	trunc    func(time.Time) time.Time
	next     func(time.Time) time.Time
	lookback time.Duration
}

func granularityOf(name string) (granularity, bool) {
	switch name {
	case "hourly":
		return granularity{
			trunc:    func(t time.Time) time.Time { return t.Truncate(time.Hour) },
			next:     func(t time.Time) time.Time { return t.Add(time.Hour) },
			lookback: 168 * time.Hour,
		}, true
	case "daily":
		return granularity{
			trunc:    func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) },
			next:     func(t time.Time) time.Time { return t.AddDate(0, 0, 1) },
			lookback: 60 * 24 * time.Hour,
		}, true
	case "monthly":
		return granularity{
			trunc:    func(t time.Time) time.Time { s, _ := monthBounds(t); return s },
			next:     func(t time.Time) time.Time { return t.AddDate(0, 1, 0) },
			lookback: 366 * 24 * time.Hour,
		}, true
	}
	return granularity{}, false
}

type consumptionFrame struct {
	TimeframeStart            string `json:"timeframe_start"`
	TimeframeEnd              string `json:"timeframe_end"`
	ActiveTimeSeconds         uint64 `json:"active_time_seconds"`
	ComputeTimeSeconds        uint64 `json:"compute_time_seconds"`
	WrittenDataBytes          uint64 `json:"written_data_bytes"`
	SyntheticStorageSizeBytes uint64 `json:"synthetic_storage_size_bytes"`
}

type consumptionPeriod struct {
	PeriodID    string             `json:"period_id"`
	PeriodPlan  string             `json:"period_plan"`
	PeriodStart string             `json:"period_start"`
	Consumption []consumptionFrame `json:"consumption"`
}

type consumptionProject struct {
	ProjectID string              `json:"project_id"`
	Periods   []consumptionPeriod `json:"periods"`
}

// consumptionProjects serves the legacy GET /consumption_history/projects.
func (s *Server) consumptionProjects(r *http.Request, p principal) (int, any, error) {
	if err := s.consumptionAllowed(p.key); err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	if q.Get("from") == "" || q.Get("to") == "" || q.Get("granularity") == "" {
		return 0, nil, errf(http.StatusBadRequest, "from, to and granularity are required")
	}
	g, ok := granularityOf(q.Get("granularity"))
	if !ok {
		return 0, nil, errf(http.StatusBadRequest, "granularity must be hourly, daily or monthly")
	}
	from, err := time.Parse(time.RFC3339, q.Get("from"))
	if err != nil {
		return 0, nil, errf(http.StatusBadRequest, "from must be an RFC 3339 date-time")
	}
	to, err := time.Parse(time.RFC3339, q.Get("to"))
	if err != nil {
		return 0, nil, errf(http.StatusBadRequest, "to must be an RFC 3339 date-time")
	}
	from, to = g.trunc(from.UTC()), g.trunc(to.UTC())
	if to.Before(from) {
		return 0, nil, errf(http.StatusBadRequest, "from must not be after to")
	}
	now := s.now()
	earliest := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	if from.Before(earliest) || from.Before(g.trunc(now.Add(-g.lookback))) {
		return 0, nil, errf(http.StatusNotAcceptable, "the requested range is outside the %s granularity limits", q.Get("granularity"))
	}
	limit, err := intParam(r, "limit", 10, 1, 100)
	if err != nil {
		return 0, nil, err
	}
	var wanted []string
	for _, v := range q["project_ids"] {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				wanted = append(wanted, id)
			}
		}
	}
	if len(wanted) > 100 {
		return 0, nil, errf(http.StatusBadRequest, "project_ids accepts at most 100 ids")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	orgID := q.Get("org_id")
	if orgID != "" {
		if (orgID != s.st.FreeOrgID && orgID != s.st.PaidOrgID) || !p.sees(orgID) {
			return 0, nil, errf(http.StatusNotFound, "organization not found")
		}
	}
	cursor := q.Get("cursor")
	var ids []string
	for id, prj := range s.st.Projects {
		if !p.seesProject(prj) || (orgID != "" && prj.OrgID != orgID) || (cursor != "" && id <= cursor) {
			continue
		}
		if len(wanted) > 0 && !slices.Contains(wanted, id) {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if len(ids) > limit {
		ids = ids[:limit]
	}
	out := []consumptionProject{}
	for _, id := range ids {
		prj := s.st.Projects[id]
		frames := []consumptionFrame{}
		for t := from; !t.After(to) && !t.After(now); t = g.next(t) {
			f := consumptionFrame{TimeframeStart: ts(t), TimeframeEnd: ts(g.next(t))}
			if !now.Before(t) && now.Before(g.next(t)) {
				// Counters accrue to the current frame (all zeros until a
				// data plane reports usage).
				f.ActiveTimeSeconds = uint64(max(prj.ActiveTimeSeconds, 0))
				f.ComputeTimeSeconds = uint64(max(prj.ComputeTimeSeconds, 0))
				f.WrittenDataBytes = uint64(max(prj.WrittenDataBytes, 0))
				f.SyntheticStorageSizeBytes = uint64(max(prj.SyntheticStorage, 0))
			}
			frames = append(frames, f)
		}
		start, _ := monthBounds(from)
		out = append(out, consumptionProject{ProjectID: id, Periods: []consumptionPeriod{{
			PeriodID:    uuid.NewSHA1(uuid.NameSpaceURL, []byte("neonlocal:"+id+":"+ts(start))).String(),
			PeriodPlan:  s.planOf(prj.OrgID).Name,
			PeriodStart: ts(start),
			Consumption: frames,
		}}})
	}
	next := cursor
	if len(ids) > 0 {
		next = ids[len(ids)-1]
	}
	return http.StatusOK, withCursor(map[string]any{"projects": out}, next), nil
}
