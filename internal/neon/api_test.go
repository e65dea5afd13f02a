package neon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/neonguard/neonguard/internal/neon" // the package under test: the tests read as they did inside it
	"github.com/neonguard/neonguard/internal/neon/neontest"
)

// newFake returns a neontest.Fake that wants the suite's key and hands out the suite's password
// (so the secrets scan covers it), and a client for it.
func newFake(t testing.TB, mods ...func(*Config)) (*neontest.Fake, func() *Client) {
	t.Helper()
	f := neontest.New(neontest.WithAPIKey(TestKey), neontest.WithPassword(TestPassword))
	return f, func() *Client {
		c, _ := NewTestClient(t, f.Handler(), mods...)
		return c
	}
}

func TestOperationsAreWaitedFor(t *testing.T) {
	f, client := newFake(t)
	pr, _, _ := f.AddProject("app", "org-a")
	f.ScriptOperations(3, OpFinished, "")
	f.FailHTTP(rGetOperation, 423, 503) // polling retries these too
	c := client()
	b, err := c.CreateBranch(context.Background(), pr.ID, BranchCreate{Name: "dev"}, []EndpointCreate{{Type: EndpointReadWrite}})
	if err != nil {
		t.Fatal(err)
	}
	if !f.OperationsTerminal() {
		t.Fatal("CreateBranch returned before its operations were terminal")
	}
	if len(b.Operations) != 2 {
		t.Errorf("operations = %d, want 2", len(b.Operations))
	}
	// 2 ops × 3 polls + the 2 scripted failures.
	if n := f.Hits(rGetOperation); n != 8 {
		t.Errorf("operation polls = %d, want 8", n)
	}
}

func TestFailedOperationIsOperationError(t *testing.T) {
	for _, status := range []string{OpFailed, OpError, OpCancelled} {
		t.Run(status, func(t *testing.T) {
			f, client := newFake(t)
			pr, b, _ := f.AddProject("app", "org-a")
			f.ScriptOperations(1, status, "compute failed: postgresql://u:"+TestPassword+"@h/db")
			c := client()
			_, err := c.RestoreBranch(context.Background(), pr.ID, b.ID, BranchRestore{SourceBranchID: b.ID,
				SourceTimestamp: ptr(time.Now().Add(-time.Minute)), PreserveUnderName: "old"})
			NoteErr(err)
			var oe *OperationError
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v, want *OperationError", err)
			}
			if oe.Status != status || oe.Action == "" || !strings.Contains(oe.Message, "compute failed") {
				t.Errorf("operation error = %+v", oe)
			}
			if strings.Contains(err.Error(), TestPassword) {
				t.Error("operation error leaks a password")
			}
		})
	}
}

func TestOperationTimeout(t *testing.T) {
	f, client := newFake(t, func(cfg *Config) { cfg.OperationTimeout = 10 * time.Second })
	pr, _, _ := f.AddProject("app", "org-a")
	f.ScriptOperations(1<<30, OpFinished, "")
	_, err := client().UpdateProject(context.Background(), pr.ID, ProjectUpdate{Name: "x"})
	NoteErr(err)
	if !errors.Is(err, ErrOperationTimeout) {
		t.Fatalf("err = %v, want ErrOperationTimeout", err)
	}
}

func TestDeleteSemantics(t *testing.T) {
	ctx := context.Background()
	f, client := newFake(t)
	pr, main, _ := f.AddProject("app", "org-a")
	f.ScriptOperations(1, OpFinished, "")
	c := client()

	b, err := c.CreateBranch(ctx, pr.ID, BranchCreate{Name: "dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	polls := f.Hits(rGetOperation)
	if err := c.DeleteBranch(ctx, pr.ID, b.Branch.ID); err != nil {
		t.Fatal(err)
	}
	if f.Hits(rGetOperation) == polls || !f.OperationsTerminal() {
		t.Error("DeleteBranch did not wait for its operation")
	}
	// Already gone: 204.
	if err := c.DeleteBranch(ctx, pr.ID, b.Branch.ID); err != nil {
		t.Fatalf("204 is success: %v", err)
	}

	s, err := c.CreateSnapshot(ctx, pr.ID, main.ID, SnapshotCreate{Name: "cp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSnapshot(ctx, pr.ID, s.ID); err != nil {
		t.Fatal(err)
	}
	if !f.OperationsTerminal() {
		t.Error("DeleteSnapshot did not wait for its 202 operations")
	}
	if err := c.DeleteSnapshot(ctx, pr.ID, s.ID); err != nil {
		t.Fatalf("a missing snapshot is already deleted: %v", err)
	}

	if err := c.DeleteProject(ctx, pr.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteProject(ctx, pr.ID); err != nil {
		t.Fatalf("404 on delete is success: %v", err)
	}
	// A lost DELETE answer is simply sent again.
	pr2, _, _ := f.AddProject("app2", "org-a")
	f.LoseHTTP(rDeleteProject, 1)
	if err := c.DeleteProject(ctx, pr2.ID); err != nil {
		t.Fatal(err)
	}
	if f.Hits(rDeleteProject) != 4 {
		t.Errorf("deletes = %d, want 4", f.Hits(rDeleteProject))
	}
}

func TestErrorTyping(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		want   error
	}{
		{400, "", ErrBadRequest},
		{401, "", ErrUnauthorized},
		{403, "", ErrForbidden},
		{404, "", ErrNotFound},
		{409, "", ErrConflict},
		{422, CodeBranchesLimitExceeded, ErrBranchLimit},
		{422, CodeSnapshotsLimitExceeded, ErrSnapshotLimit},
		{423, "", ErrLocked},
		{429, "", ErrRateLimited},
		{503, "", ErrUnavailable},
	} {
		t.Run(strconv.Itoa(tc.status)+tc.code, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				WriteJSON(w, tc.status, map[string]string{"code": tc.code, "message": "nope", "request_id": "r-1"})
			})
			c, _ := NewTestClient(t, h, func(cfg *Config) { cfg.MaxAttempts = 1 })
			_, err := c.ListBranches(context.Background(), "proj-1")
			NoteErr(err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrNotFound, ErrBranchLimit, ErrSnapshotLimit, ErrLocked} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("err also matches %v", other)
				}
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.RequestID != "r-1" || ae.Method != "GET" || ae.Route != "/projects/{project_id}/branches" {
				t.Errorf("api error = %+v", ae)
			}
		})
	}
}

func TestAPIErrorFormat(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, 422, map[string]string{"code": CodeBranchesLimitExceeded, "message": "branches limit exceeded", "request_id": "r-9"})
	})
	c, _ := NewTestClient(t, h)
	_, err := c.CreateBranch(context.Background(), "proj-1", BranchCreate{Name: "x"}, nil)
	want := "neon: POST /projects/{project_id}/branches: 422 BRANCHES_LIMIT_EXCEEDED: branches limit exceeded (request_id r-9)"
	if NoteErr(err) == nil || err.Error() != want {
		t.Fatalf("err = %q\nwant  %q", err, want)
	}
}

func TestNonJSONErrorBodyIsSummarised(t *testing.T) {
	html := "<!DOCTYPE html><html><head><title>example.neon.tech | 524: A timeout occurred</title></head><body>" +
		strings.Repeat("<div>cloudflare noise</div>", 2000) + "</body></html>"
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(524)
		_, _ = w.Write([]byte(html))
	})
	c, _ := NewTestClient(t, h, func(cfg *Config) { cfg.MaxAttempts = 2 })
	_, err := c.GetProject(context.Background(), "proj-1")
	NoteErr(err)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 524 {
		t.Fatalf("err = %v", err)
	}
	if ae.Message != "example.neon.tech | 524: A timeout occurred" {
		t.Errorf("message = %q", ae.Message)
	}
	if len(err.Error()) > 400 {
		t.Errorf("error is %d bytes long", len(err.Error()))
	}
}

func TestTransferLimitsAndBatches(t *testing.T) {
	t.Run("406", func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, 406, map[string]any{"limits": []TransferLimit{{Name: "subscription_type", Expected: "scale", Actual: "launch"}}})
		})
		c, _ := NewTestClient(t, h)
		err := c.TransferProjects(context.Background(), "org-a", "org-b", []string{"p-1"})
		NoteErr(err)
		var tl *TransferLimitsError
		if !errors.As(err, &tl) || len(tl.Limits) != 1 || tl.Limits[0].Expected != "scale" {
			t.Fatalf("err = %v, want *TransferLimitsError", err)
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != 406 {
			t.Errorf("TransferLimitsError does not unwrap to the 406 *APIError")
		}
	})
	t.Run("batches of 400", func(t *testing.T) {
		f, client := newFake(t)
		c := client()
		ids := make([]string, 950)
		for i := range ids {
			ids[i] = fmt.Sprintf("p-%d", i)
		}
		if err := c.TransferProjects(context.Background(), "org-a", "org-b", ids); err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for _, b := range f.Bodies(rTransfer) {
			var req struct {
				DestinationOrgID string   `json:"destination_org_id"`
				ProjectIDs       []string `json:"project_ids"`
			}
			if err := json.Unmarshal([]byte(b), &req); err != nil || req.DestinationOrgID != "org-b" {
				t.Fatalf("body %q: %v", b, err)
			}
			sizes = append(sizes, len(req.ProjectIDs))
		}
		if fmt.Sprint(sizes) != "[400 400 150]" {
			t.Errorf("batches = %v", sizes)
		}
	})
}

func TestListProjectsPagination(t *testing.T) {
	f, client := newFake(t)
	for i := range 450 {
		f.AddProject(fmt.Sprintf("app-%03d", i), "org-a")
	}
	c := client()
	all, cursor, err := c.ListProjects(context.Background(), ListProjectsOptions{OrgID: "org-a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 450 || cursor != "" || f.Hits(rGetProjects) != 2 {
		t.Errorf("got %d projects in %d pages, cursor %q", len(all), f.Hits(rGetProjects), cursor)
	}
	q := f.Queries(rGetProjects)
	if v, _ := url.ParseQuery(q[1]); v.Get("cursor") != all[399].ID || v.Get("org_id") != "org-a" || v.Get("limit") != "400" {
		t.Errorf("second page query = %q", q[1])
	}
	page, next, err := c.ListProjects(context.Background(), ListProjectsOptions{Limit: 10, Search: "app-44"})
	if err != nil || len(page) != 10 || next != page[9].ID {
		t.Errorf("one page: %d projects, next %q, err %v", len(page), next, err)
	}
	page, next, err = c.ListProjects(context.Background(), ListProjectsOptions{Limit: 10, Search: "app-44", Cursor: next})
	if err != nil || len(page) != 0 || next != "" {
		t.Errorf("last page: %d projects, next %q, err %v", len(page), next, err)
	}
}

func TestListBranchesPagination(t *testing.T) {
	f, client := newFake(t)
	pr, _, _ := f.AddProject("app", "org-a")
	for i := range 6 {
		if _, err := f.AddBranch(pr.ID, fmt.Sprintf("b%d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	f.SetBranchPageSize(3)
	c := client()
	bs, err := c.ListBranches(context.Background(), pr.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 7 || f.Hits(rGetBranches) != 3 {
		t.Errorf("branches = %d in %d pages", len(bs), f.Hits(rGetBranches))
	}
}

func TestConsumption(t *testing.T) {
	var got url.Values
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Query()
		ps := []map[string]any{{"project_id": "p-1", "periods": []map[string]any{{"period_id": "x", "period_plan": "scale", "period_start": "2026-01-01T00:00:00Z",
			"consumption": []map[string]any{{"timeframe_start": "2026-01-01T00:00:00Z", "timeframe_end": "2026-01-02T00:00:00Z", "compute_time_seconds": 42}}}}}}
		if got.Get("cursor") != "" {
			ps = nil
		}
		WriteJSON(w, 200, map[string]any{"projects": ps, "pagination": map[string]string{"cursor": "p-1"}})
	})
	c, _ := NewTestClient(t, h)
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	page, err := c.Consumption(context.Background(), ConsumptionOptions{
		OrgID: "org-a", ProjectIDs: []string{"p-1", "p-2"}, From: from, To: from.Add(48 * time.Hour),
		Granularity: "daily", Metrics: []string{"compute_time_seconds", "written_data_bytes"}, Limit: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Get("project_ids") != "p-1,p-2" || got.Get("metrics") != "compute_time_seconds,written_data_bytes" ||
		got.Get("from") != "2026-01-01T00:00:00Z" || got.Get("granularity") != "daily" || got.Get("limit") != "1" || got.Get("org_id") != "org-a" {
		t.Errorf("query = %v", got)
	}
	if len(page.Projects) != 1 || page.Projects[0].Periods[0].Consumption[0].ComputeTimeSeconds != 42 || page.NextCursor != "p-1" {
		t.Errorf("page = %+v", page)
	}
	page, err = c.Consumption(context.Background(), ConsumptionOptions{From: from, To: from.Add(time.Hour), Granularity: "hourly", Limit: 1, Cursor: page.NextCursor})
	if err != nil || page.NextCursor != "" {
		t.Errorf("last page: %+v %v", page, err)
	}
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprint("p-", i)
	}
	_, err = c.Consumption(context.Background(), ConsumptionOptions{ProjectIDs: ids, From: from, To: from, Granularity: "daily"})
	if !errors.Is(NoteErr(err), ErrInvalidArgument) {
		t.Errorf("101 project ids: err = %v", err)
	}
}

func TestRequestShapes(t *testing.T) {
	ctx := context.Background()
	// Neon's clock half an hour before exp, so that exp is in the future and ts in the past.
	neonNow := time.Date(2026, 5, 1, 11, 30, 0, 0, time.UTC)
	f := neontest.New(neontest.WithAPIKey(TestKey), neontest.WithPassword(TestPassword),
		neontest.WithClock(func() time.Time { return neonNow }))
	pr, main, _ := f.AddProject("app", "org-a")
	b, err := f.AddBranch(pr.ID, "dev", main.ID) // Neon takes no expiry on the default branch
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewTestClient(t, f.Handler())

	if _, err := c.UpdateBranch(ctx, pr.ID, b.ID, BranchUpdate{ClearExpiry: true}); err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2026, 5, 1, 12, 0, 0, 123, time.UTC)
	if _, err := c.UpdateBranch(ctx, pr.ID, b.ID, BranchUpdate{Name: "n", ExpiresAt: &exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateBranch(ctx, pr.ID, b.ID, BranchUpdate{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	bodies := f.Bodies(neontest.RoutePatchBranch)
	want := []string{`{"branch":{"expires_at":null}}`, `{"branch":{"expires_at":"2026-05-01T12:00:00Z","name":"n"}}`, `{"branch":{"name":"m"}}`}
	if fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Errorf("PATCH bodies = %v\nwant %v", bodies, want)
	}
	_, err = c.UpdateBranch(ctx, pr.ID, b.ID, BranchUpdate{ClearExpiry: true, ExpiresAt: &exp})
	if !errors.Is(NoteErr(err), ErrInvalidArgument) {
		t.Errorf("ClearExpiry with ExpiresAt: %v", err)
	}

	ts := time.Date(2026, 5, 1, 11, 0, 0, 0, time.UTC)
	snap, err := c.CreateSnapshot(ctx, pr.ID, main.ID, SnapshotCreate{Name: "cp 1", Timestamp: &ts, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.ParseQuery(f.Queries(rPostSnapshot)[0])
	if q.Get("name") != "cp 1" || q.Get("timestamp") != "2026-05-01T11:00:00Z" || q.Get("expires_at") != "2026-05-01T12:00:00Z" || f.Bodies(rPostSnapshot)[0] != "" {
		t.Errorf("snapshot query = %v body = %q", q, f.Bodies(rPostSnapshot)[0])
	}

	if _, err := c.RestoreSnapshot(ctx, pr.ID, snap.ID, SnapshotRestore{TargetBranchID: b.ID}); err != nil {
		t.Fatal(err)
	}
	if got := f.Bodies(rRestoreSnap)[0]; got != `{"target_branch_id":"`+b.ID+`","finalize_restore":false}` {
		t.Errorf("restore body = %s", got)
	}

	if _, err := c.CreateEndpoint(ctx, pr.ID, b.ID, EndpointCreate{Type: EndpointReadOnly, AutoscalingLimitMaxCU: 2}); err != nil {
		t.Fatal(err)
	}
	if got := f.Bodies(rPostEndpoints)[0]; got != `{"endpoint":{"branch_id":"`+b.ID+`","type":"read_only","autoscaling_limit_max_cu":2}}` {
		t.Errorf("endpoint body = %s", got)
	}

	uri, err := c.ConnectionURI(ctx, pr.ID, ConnectionURIOptions{DatabaseName: "neondb", RoleName: "neondb_owner", Pooled: true})
	if err != nil || !strings.Contains(uri, TestPassword) {
		t.Fatalf("uri = %q err = %v", uri, err)
	}
	q, _ = url.ParseQuery(f.Queries(neontest.RouteConnectionURI)[0])
	if q.Get("pooled") != "true" || q.Get("database_name") != "neondb" {
		t.Errorf("connection_uri query = %v", q)
	}
	_, err = c.ConnectionURI(ctx, pr.ID, ConnectionURIOptions{})
	if !errors.Is(NoteErr(err), ErrInvalidArgument) {
		t.Errorf("missing names: %v", err)
	}
	_, err = c.GetBranch(ctx, "", "x")
	if !errors.Is(NoteErr(err), ErrInvalidArgument) {
		t.Errorf("empty project id: %v", err)
	}
}

// TestSecretsNeverLeak drives error paths whose upstream text carries the key and passwords,
// and scans every error and every log line of this client.
func TestSecretsNeverLeak(t *testing.T) {
	var n atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		key := strings.TrimPrefix(auth, "Bearer ") // bare: only the client's own key scrub can catch it
		uri := "postgresql://neondb_owner:" + TestPassword + "@ep-x.neon.tech/neondb"
		switch n.Add(1) % 5 {
		case 0:
			WriteJSON(w, 400, map[string]string{"code": "BAD " + key, "message": "bad key " + key + " (" + auth + ") for " + uri, "request_id": key})
		case 1:
			w.WriteHeader(502)
			_, _ = fmt.Fprintf(w, "<html><title>%s %s</title></html>", key, uri)
		case 2:
			w.Header().Set("X-Request-Id", key)
			WriteJSON(w, 409, map[string]any{"message": map[string]string{"password": NpgPassword, "key": auth}})
		case 3:
			WriteJSON(w, 403, map[string]any{"message": `{"password": "` + TestPassword + `"} password=` + TestPassword})
		case 4:
			WriteJSON(w, 406, map[string]any{"limits": []TransferLimit{{Name: key, Expected: uri, Actual: NpgPassword}}})
		}
	})
	var logs LockedBuffer
	c, _ := NewTestClient(t, h, func(cfg *Config) {
		cfg.MaxAttempts = 2
		cfg.Logger = NewTeeLogger(&logs) // the suite's sink, and this test's lines alone
	})
	var errs []string
	for range 10 {
		_, err := c.GetProject(context.Background(), "proj-1")
		if err == nil {
			t.Fatal("expected an error")
		}
		errs = append(errs, NoteErr(err).Error())
		err = c.TransferProjects(context.Background(), "org-a", "org-b", []string{"p"})
		if err != nil {
			errs = append(errs, NoteErr(err).Error())
		}
	}
	uri, err := c.ConnectionURI(context.Background(), "p", ConnectionURIOptions{DatabaseName: "d", RoleName: "r"})
	if err != nil {
		errs = append(errs, NoteErr(err).Error())
	}
	_ = uri
	text := strings.Join(errs, "\n") + logs.String()
	if logs.String() == "" {
		t.Fatal("no log lines captured")
	}
	for _, s := range TestSecrets {
		if strings.Contains(text, s) {
			t.Errorf("secret %q… leaked:\n%s", s[:4], text)
		}
	}
	if !strings.Contains(text, Redacted) {
		t.Error("nothing was redacted: the test does not exercise the scrubber")
	}
}

func TestConnectionURINeverLogged(t *testing.T) {
	var logs LockedBuffer
	f, client := newFake(t, func(cfg *Config) { cfg.Logger = NewTeeLogger(&logs) })
	pr, _, ep := f.AddProject("app", "org-a")
	uri, err := client().ConnectionURI(context.Background(), pr.ID, ConnectionURIOptions{DatabaseName: "neondb", RoleName: "neondb_owner"})
	if err != nil || !strings.Contains(uri, TestPassword) || !strings.Contains(uri, ep.Host) {
		t.Fatalf("uri = %q, err = %v", uri, err)
	}
	if logs.String() == "" || strings.Contains(logs.String(), TestPassword) || strings.Contains(logs.String(), ep.Host) {
		t.Errorf("logs = %s", logs.String())
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgresql://neondb_owner:s3cr3t@ep-a.neon.tech/db?sslmode=require": "postgresql://neondb_owner:REDACTED@ep-a.neon.tech/db?sslmode=require",
		"dsn POSTGRES://u:p%40ss@h:5432/d and more":                          "dsn POSTGRES://u:REDACTED@h:5432/d and more",
		"key napi_abc123XYZ in text":                                         "key napi_REDACTED in text",
		"role password npg_AbC123":                                           "role password npg_REDACTED",
		`{"password":"x\"y","user":"u"}`:                                     `{"password":"REDACTED","user":"u"}`,
		"host=h password=hunter2 dbname=d":                                   "host=h password=REDACTED dbname=d",
		"Authorization: Bearer abc.def":                                      "Authorization: Bearer REDACTED",
		"postgresql://host/db without password":                              "postgresql://host/db without password",
		"nothing secret here":                                                "nothing secret here",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkGetProject(b *testing.B) {
	body, _ := json.Marshal(map[string]any{"project": Project{ID: "proj-1", Name: "app", RegionID: "aws-us-east-2", CreatedAt: time.Now()}})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	c, _ := NewTestClient(b, h, func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
		cfg.Logger = nil
		cfg.RequestsPerSecond = 1e9
	})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetProject(ctx, "proj-1"); err != nil {
			b.Fatal(err)
		}
	}
}
