package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func runHealth(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd(strings.NewReader(""), &out, &errOut)
	root.SetArgs(append([]string{"health"}, args...))
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestHealthCommand(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			w.WriteHeader(http.StatusOK)
		case r.URL.Path == "/readyz" && ready:
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	if out, _, err := runHealth(t, "--url", srv.URL+"/healthz"); err != nil || !strings.Contains(out, "healthy") {
		t.Fatalf("healthy server: err %v, out %q", err, out)
	}
	ready = false
	_, errOut, err := runHealth(t, "--url", srv.URL) // no path: /readyz
	if !errors.As(err, new(exitError)) || !strings.Contains(errOut, "answered 503") {
		t.Fatalf("unready server: err %v, stderr %q; want exit 1 naming the status", err, errOut)
	}
	srv.Close()
	if _, errOut, err := runHealth(t, "--url", srv.URL+"/healthz"); !errors.As(err, new(exitError)) || !strings.Contains(errOut, "unhealthy") {
		t.Fatalf("no server: err %v, stderr %q", err, errOut)
	}
	if _, _, err := runHealth(t, "--url", "ftp://x"); err == nil {
		t.Fatal("a non-HTTP URL was accepted")
	}
}

// TestHealthDefaultsToHTTPListen: without --url the probe goes to /readyz on http.listen, a
// wildcard address read as loopback (the image sets NEONGUARD_HTTP_LISTEN=0.0.0.0:8080).
func TestHealthDefaultsToHTTPListen(t *testing.T) {
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { path = r.URL.Path }))
	defer srv.Close()
	port := srv.Listener.Addr().String()[strings.LastIndex(srv.Listener.Addr().String(), ":")+1:]
	t.Setenv("NEONGUARD_CONFIG", "")
	t.Setenv("NEONGUARD_HTTP_LISTEN", "0.0.0.0:"+port)
	if _, errOut, err := runHealth(t); err != nil {
		t.Fatalf("health: %v (%s)", err, errOut)
	}
	if path != "/readyz" {
		t.Fatalf("probed %q, want /readyz", path)
	}
}
