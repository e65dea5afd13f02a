package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal/spectest"
)

type env struct {
	t     *testing.T
	dir   string
	srv   *Server
	hs    *httptest.Server
	creds Credentials
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.OperationDelay == 0 {
		opts.OperationDelay = 5 * time.Millisecond
	}
	if opts.FaultSeed == 0 {
		opts.FaultSeed = 1
	}
	srv, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(spectest.Wrap(t, srv))
	e := &env{t: t, dir: opts.DataDir, srv: srv, hs: hs, creds: srv.Credentials()}
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (e *env) do(method, path, key string, body any) resp {
	e.t.Helper()
	r, err := e.try(method, path, key, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (e *env) try(method, path, key string, body any) (resp, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return resp{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.hs.URL+"/api/v2"+path, rd)
	if err != nil {
		return resp{}, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.hs.Client().Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	out := resp{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out.body)
	}
	return out, nil
}

func (e *env) expect(r resp, status int) resp {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// waitOps polls until every operation of the project is terminal.
func (e *env) waitOps(key, projectID string) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r := e.expect(e.do("GET", "/projects/"+projectID+"/operations?limit=1000", key, nil), 200)
		busy := false
		for _, o := range r.body["operations"].([]any) {
			switch o.(map[string]any)["status"] {
			case "finished", "skipped":
			case "failed", "error", "cancelled":
				e.t.Fatalf("operation failed: %v", o)
			default:
				busy = true
			}
		}
		if !busy {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("operations of %s did not finish", projectID)
}

// createProject creates a project with an org key and waits for its operations.
func (e *env) createProject(key string, project map[string]any) map[string]any {
	e.t.Helper()
	if project == nil {
		project = map[string]any{}
	}
	r := e.expect(e.do("POST", "/projects", key, map[string]any{"project": project}), 201)
	e.waitOps(key, str(r.body, "project", "id"))
	return r.body
}

func (e *env) createBranch(key, projectID string, body map[string]any) resp {
	e.t.Helper()
	r := e.do("POST", "/projects/"+projectID+"/branches", key, body)
	if r.status == 201 {
		e.waitOps(key, projectID)
	}
	return r
}

// str digs a string out of decoded JSON: str(m, "branch", "id").
func str(m map[string]any, keys ...string) string {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	s, _ := cur.(string)
	return s
}

func mustContain(t *testing.T, r resp, sub string) {
	t.Helper()
	if !strings.Contains(str(r.body, "message"), sub) {
		t.Fatalf("message %q does not contain %q", str(r.body, "message"), sub)
	}
}

// newEnvFrom serves an existing Server; the caller closes it.
func newEnvFrom(t *testing.T, srv *Server) *env {
	hs := httptest.NewServer(spectest.Wrap(t, srv))
	t.Cleanup(hs.Close)
	return &env{t: t, srv: srv, hs: hs, creds: srv.Credentials()}
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
