// Package spectest checks HTTP traffic against Neon's OpenAPI v2 spec
// (testdata/openapi/neon-openapi-v2.json at the module root). Tests wrap a
// handler (typically the emulator's control plane) with Wrap; every request and
// response on a path the spec knows is validated and each mismatch is
// reported with t.Errorf.
package spectest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// SpecPath is the spec's location relative to the module root.
const SpecPath = "testdata/openapi/neon-openapi-v2.json"

// APIPrefix is stripped from request paths before matching the spec's paths.
const APIPrefix = "/api/v2"

// Spec is the parsed spec and a router over its paths.
type Spec struct {
	Doc    *openapi3.T
	Router routers.Router
}

// loadOnce caches the parsed spec: parsing 550 KB of JSON per test would
// dominate test time. It is the package's only state and is immutable once
// loaded.
var loadOnce = sync.OnceValues(func() (*Spec, error) {
	path, err := findSpec()
	if err != nil {
		return nil, err
	}
	return LoadFile(context.Background(), path)
})

// Load returns the module's spec, parsed once per process.
func Load() (*Spec, error) { return loadOnce() }

// LoadFile parses a spec file. Servers are dropped so that paths match
// after APIPrefix is stripped, whatever host the test server has.
func LoadFile(ctx context.Context, path string) (*Spec, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load spec %s: %w", path, err)
	}
	doc.Servers = nil
	// Go's regexp caps repeat counts at 1000, which one spec pattern
	// (project_ids, "{0,99}" around "{1,60}") exceeds; patterns are still
	// checked at validation time through relaxedRegex.
	router, err := legacy.NewRouter(doc, openapi3.DisableSchemaPatternValidation())
	if err != nil {
		return nil, fmt.Errorf("route spec %s: %w", path, err)
	}
	return &Spec{Doc: doc, Router: router}, nil
}

// findSpec walks up from the working directory to the module root.
func findSpec() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find spec: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, SpecPath), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find spec: no go.mod above the working directory")
		}
		dir = parent
	}
}

// bearerAuth accepts any bearer token: checking keys is the server's job.
func bearerAuth(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecuritySchemeName != "BearerAuth" {
		return fmt.Errorf("scheme %s not used", in.SecuritySchemeName)
	}
	if !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
		return errors.New("missing bearer token")
	}
	return nil
}

// Wrap returns h with spec validation. Requests outside the spec (e.g.
// /__neonlocal/*) pass through unchecked. A request the spec rejects is
// only reported when h accepted it (2xx): rejecting invalid input with a
// 4xx is the faithful behaviour. Responses are always validated, except
// when the handler hijacked the connection.
func Wrap(t testing.TB, h http.Handler) http.Handler {
	spec, err := Load()
	if err != nil {
		t.Fatalf("spectest: %v", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, ok := strings.CutPrefix(r.URL.Path, APIPrefix)
		if !ok {
			h.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("spectest: read request body: %v", err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))

		vr := r.Clone(r.Context())
		vr.URL.Path, vr.URL.RawPath = path, ""
		vr.Body = io.NopCloser(bytes.NewReader(body))
		route, params, err := spec.Router.FindRoute(vr)
		if err != nil {
			h.ServeHTTP(w, r) // not in the spec
			return
		}
		in := &openapi3filter.RequestValidationInput{
			Request: vr, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: bearerAuth, SkipSettingDefaults: true, MultiError: true, RegexCompiler: relaxedRegex,
				SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.SetSchemaRegexCompiler(relaxedRegex)}},
		}
		reqErr := openapi3filter.ValidateRequest(r.Context(), in)

		rec := &recorder{under: w, header: http.Header{}, status: http.StatusOK}
		for k, v := range w.Header() {
			rec.header[k] = v
		}
		h.ServeHTTP(rec, r)
		if rec.hijacked {
			return
		}
		op := r.Method + " " + r.URL.Path
		if reqErr != nil && rec.status < 300 {
			t.Errorf("spectest: %s: request violates the spec but was answered %d: %v", op, rec.status, reqErr)
		}
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: rec.status, Header: rec.header,
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, RegexCompiler: relaxedRegex,
				SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.SetSchemaRegexCompiler(relaxedRegex)}},
		}
		out.SetBodyBytes(rec.body.Bytes())
		if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
			t.Errorf("spectest: %s: response %d violates the spec: %v\nbody: %s", op, rec.status, err, truncate(rec.body.String(), 2000))
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
	})
}

// relaxedRegex compiles a spec pattern with Go's regexp; a pattern whose
// bounded repeats exceed Go's limit is retried with "{0,n}" → "*" and
// "{1,n}" → "+" on the outer groups, a slightly weaker but close check.
func relaxedRegex(expr string) (openapi3.RegexMatcher, error) {
	re, err := regexp.Compile(expr)
	if err == nil {
		return re, nil
	}
	relaxed := bigRepeat.ReplaceAllStringFunc(expr, func(m string) string {
		if strings.HasPrefix(m, "){0,") {
			return ")*"
		}
		return ")+"
	})
	re, err2 := regexp.Compile(relaxed)
	if err2 != nil {
		return nil, fmt.Errorf("compile pattern %q: %w", expr, err)
	}
	return re, nil
}

// bigRepeat matches "{0,n}" / "{1,n}" quantifiers that follow a group.
var bigRepeat = regexp.MustCompile(`\)\{[01],\d+\}`)

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// recorder buffers a response so it can be validated before it is sent.
type recorder struct {
	under       http.ResponseWriter
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
	hijacked    bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = status, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// Hijack passes through so "drop the response" faults still reach the
// client's connection.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(r.under).Hijack()
	if err == nil {
		r.hijacked = true
	}
	return conn, rw, err
}
