package neon

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	consumptionMaxIDs   = 100
	defaultConsumptionN = 10 // Neon's default page size for consumption
)

// Consumption reads one page of GET /consumption_history/projects (the legacy per-project
// endpoint). Calls pass a separate limiter (Neon's consumption bucket is ~30/min per account).
// NextCursor is set only when the page is full: Neon returns a cursor even on the last page.
func (c *Client) Consumption(ctx context.Context, opts ConsumptionOptions) (*ConsumptionPage, error) {
	if len(opts.ProjectIDs) > consumptionMaxIDs {
		return nil, fmt.Errorf("neon: consumption takes at most %d project ids, got %d: %w", consumptionMaxIDs, len(opts.ProjectIDs), ErrInvalidArgument)
	}
	if opts.From.IsZero() || opts.To.IsZero() {
		return nil, fmt.Errorf("neon: consumption needs from and to: %w", ErrInvalidArgument)
	}
	if opts.Granularity == "" {
		return nil, fmt.Errorf("neon: consumption needs a granularity: %w", ErrInvalidArgument)
	}
	for _, id := range opts.ProjectIDs {
		if id == "" || strings.Contains(id, ",") {
			return nil, fmt.Errorf("neon: consumption: bad project id: %w", ErrInvalidArgument)
		}
	}
	q := url.Values{
		"from":        {opts.From.UTC().Format(time.RFC3339)},
		"to":          {opts.To.UTC().Format(time.RFC3339)},
		"granularity": {opts.Granularity},
	}
	if len(opts.ProjectIDs) > 0 {
		q.Set("project_ids", strings.Join(opts.ProjectIDs, ","))
	}
	if len(opts.Metrics) > 0 {
		q.Set("metrics", strings.Join(opts.Metrics, ","))
	}
	if opts.OrgID != "" {
		q.Set("org_id", opts.OrgID)
	}
	limit := defaultConsumptionN
	if opts.Limit > 0 {
		limit = opts.Limit
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Cursor != "" {
		q.Set("cursor", opts.Cursor)
	}
	var out struct {
		Projects   []ProjectConsumption `json:"projects"`
		Pagination *struct {
			Cursor string `json:"cursor"`
		} `json:"pagination"`
	}
	if _, err := c.do(ctx, &call{
		method:      http.MethodGet,
		route:       "/consumption_history/projects",
		path:        "/consumption_history/projects",
		query:       q,
		out:         &out,
		consumption: true,
	}); err != nil {
		return nil, err
	}
	page := &ConsumptionPage{Projects: out.Projects}
	if len(out.Projects) >= limit && out.Pagination != nil && out.Pagination.Cursor != opts.Cursor {
		page.NextCursor = out.Pagination.Cursor
	}
	return page, nil
}
