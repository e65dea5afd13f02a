package sqlhttp

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestParseCommandTag(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	for _, c := range []struct {
		tag   string
		name  string
		count *int64
	}{
		{"SELECT 2", "SELECT", n(2)},
		{"INSERT 0 3", "INSERT", n(3)},
		{"UPDATE 0", "UPDATE", n(0)},
		{"CREATE TABLE", "CREATE", nil},
		{"BEGIN", "BEGIN", nil},
		{"DELETE 7", "DELETE", n(7)},
	} {
		name, count := parseCommandTag(c.tag)
		if name != c.name || (count == nil) != (c.count == nil) || (count != nil && *count != *c.count) {
			t.Errorf("%q: %s %v, want %s %v", c.tag, name, count, c.name, c.count)
		}
	}
}

// Neon's compute takes EXPLAIN's FILECACHE option (Neon's MCP server sends it); a local
// PostgreSQL would reject it, so it is dropped, and nothing else is touched.
func TestDropFileCacheOption(t *testing.T) {
	for in, want := range map[string]string{
		"EXPLAIN (ANALYZE, VERBOSE, BUFFERS, FILECACHE, FORMAT JSON) SELECT 1": "EXPLAIN (ANALYZE, VERBOSE, BUFFERS, FORMAT JSON) SELECT 1",
		"  explain(filecache true) SELECT 1":                                   "EXPLAIN  SELECT 1",
		"EXPLAIN (VERBOSE, FORMAT JSON) SELECT 1":                              "EXPLAIN (VERBOSE, FORMAT JSON) SELECT 1",
		"SELECT 'EXPLAIN (FILECACHE)'":                                         "SELECT 'EXPLAIN (FILECACHE)'",
		"EXPLAIN SELECT filecache FROM t":                                      "EXPLAIN SELECT filecache FROM t",
	} {
		if got := dropFileCacheOption(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// Parameters become PostgreSQL text as Neon's proxy makes them (json_to_pg_text).
func TestParams(t *testing.T) {
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(`[null, "a\"b", 42, 1.5, true, {"k": [1, "x"]}, [1, null, "NULL", "q\"\\"], [[true, false], [null, 42]], [{"foo": 1}]]`), &raw); err != nil {
		t.Fatal(err)
	}
	got, err := pgParams(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []*string{nil, ptr(`a"b`), ptr("42"), ptr("1.5"), ptr("true"), ptr(`{"k":[1,"x"]}`),
		ptr(`{1,NULL,"NULL","q\"\\"}`), ptr(`{{true,false},{NULL,42}}`), ptr(`{"{\"foo\":1}"}`)}
	if len(got) != len(want) {
		t.Fatalf("%d params, want %d", len(got), len(want))
	}
	for i := range want {
		switch {
		case want[i] == nil && got[i] != nil:
			t.Errorf("param %d: %q, want NULL", i, got[i])
		case want[i] != nil && string(got[i]) != *want[i]:
			t.Errorf("param %d: %q, want %q", i, got[i], *want[i])
		}
	}
}

func ptr(s string) *string { return &s }

// Values are converted by type unless raw text output is asked for (pg_text_to_json).
func TestValues(t *testing.T) {
	s := New(Options{})
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		text string
		oid  uint32
		want string
	}{
		{"t", pgtype.BoolOID, "true"},
		{"f", pgtype.BoolOID, "false"},
		{"42", pgtype.Int4OID, "42"},
		{"-7", pgtype.Int2OID, "-7"},
		{"42", pgtype.Int8OID, `"42"`}, // int8 stays a string, as on Neon
		{"12.50", pgtype.NumericOID, `"12.50"`},
		{"42.42", pgtype.Float8OID, "42.42"},
		{"NaN", pgtype.Float4OID, `"NaN"`},
		{"-Infinity", pgtype.Float8OID, `"-Infinity"`},
		{`{"a": [1, null]}`, pgtype.JSONBOID, `{"a":[1,null]}`},
		{"{1,2,NULL}", pgtype.Int4ArrayOID, "[1,2,null]"},
		{`{"a b","c\"d",NULL,"NULL"}`, pgtype.TextArrayOID, `["a b","c\"d",null,"NULL"]`},
		{"{{1,2},{3,4}}", pgtype.Int4ArrayOID, "[[1,2],[3,4]]"},
		{"[0:1]={7,8}", pgtype.Int4ArrayOID, "[7,8]"},
		{"{}", pgtype.TextArrayOID, "[]"},
		{"{t,f}", pgtype.BoolArrayOID, "[true,false]"},
		{"hello", pgtype.TextOID, `"hello"`},
	} {
		if got := enc(s.value([]byte(c.text), c.oid, false)); got != c.want {
			t.Errorf("%q (oid %d): %s, want %s", c.text, c.oid, got, c.want)
		}
		if got := enc(s.value([]byte(c.text), c.oid, true)); got != enc(c.text) {
			t.Errorf("raw %q: %s", c.text, got)
		}
	}
	if got := s.value(nil, pgtype.TextOID, false); got != nil {
		t.Errorf("NULL: %v", got)
	}
}

func TestObjectRowKeepsColumnOrder(t *testing.T) {
	b, err := json.Marshal(orderedRow{{"b", 1}, {"a", "x"}, {"b", 2}})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"a":"x","b":2}` && string(b) != `{"b":2,"a":"x"}` {
		t.Fatalf("%s", b)
	}
}

// post posts to the handler and decodes an error answer in Neon's shape.
func post(t *testing.T, h http.Handler, header map[string]string, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest("POST", "/sql", strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

// Requests refused before any connection: Neon's error shape (message, code "" and the
// PostgreSQL fields, null), status 400.
func TestRequestErrors(t *testing.T) {
	s := New(Options{Allowed: func(host string, port int) bool { return IsLoopback(host) && port == 5999 }})
	good := "postgresql://u:p@127.0.0.1:5999/db?sslmode=require"
	for _, c := range []struct {
		name   string
		header map[string]string
		body   string
		msg    string
	}{
		{"no connection string", nil, `{"query":"SELECT 1"}`, "missing connection string"},
		{"not a postgres URL", map[string]string{hdrConnString: "http://x/y"}, `{"query":"SELECT 1"}`, "invalid connection string"},
		{"no password", map[string]string{hdrConnString: "postgresql://u@127.0.0.1:5999/db"}, `{"query":"SELECT 1"}`, "missing password"},
		{"no database", map[string]string{hdrConnString: "postgresql://u:p@127.0.0.1:5999"}, `{"query":"SELECT 1"}`, "missing database name"},
		{"another host", map[string]string{hdrConnString: "postgresql://u:p@10.1.2.3:5999/db"}, `{"query":"SELECT 1"}`, "unknown endpoint"},
		{"another port", map[string]string{hdrConnString: "postgresql://u:p@127.0.0.1:5432/db"}, `{"query":"SELECT 1"}`, "unknown endpoint"},
		{"bad isolation", map[string]string{hdrConnString: good, hdrIsolation: "Chaos"}, `{"queries":[]}`, "invalid isolation level"},
		{"bad body", map[string]string{hdrConnString: good}, `{"query":`, "could not parse the request body"},
		{"no query", map[string]string{hdrConnString: good}, `{}`, "missing field `query`"},
	} {
		code, body := post(t, s, c.header, c.body)
		if code != http.StatusBadRequest || !strings.Contains(body["message"].(string), c.msg) {
			t.Errorf("%s: %d %v, want 400 %q", c.name, code, body, c.msg)
			continue
		}
		if body["code"] != "" || body["position"] != nil || body["routine"] != nil {
			t.Errorf("%s: shape %v", c.name, body)
		}
	}
	// GET is not the protocol; OPTIONS is a CORS preflight.
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/sql", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("OPTIONS", "/sql", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("OPTIONS: %d %v", rec.Code, rec.Header())
	}
}

// An endpoint that does not answer (nothing listens on its port) is a 500 after the
// connect timeout, which the driver reports as a server error.
func TestUnreachableEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := New(Options{ConnectTimeout: 300 * time.Millisecond})
	code, body := post(t, s, map[string]string{hdrConnString: "postgresql://u:p@localhost:" + strconv.Itoa(port) + "/db"}, `{"query":"SELECT 1"}`)
	if code != http.StatusInternalServerError || !strings.Contains(body["message"].(string), "could not connect") {
		t.Fatalf("%d %v", code, body)
	}
}

// One port serves TLS (with the certificate EnsureCert made, trusted as its own CA) and plain
// HTTP.
func TestListenServesTLSAndPlain(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := EnsureCert(dir, []string{"localhost", "127.0.0.1", "api.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := EnsureCert(dir, []string{"localhost", "127.0.0.1"})
	if err != nil || again != certFile {
		t.Fatalf("EnsureCert again: %s %v", again, err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	})}
	go func() { _ = srv.Serve(Listen(raw, pair)) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := raw.Addr().String()

	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, url := range []string{"https://" + addr + "/", "https://localhost:" + strings.Split(addr, ":")[1] + "/", "http://" + addr + "/"} {
		res, err := tlsClient.Get(url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "hello" {
			t.Fatalf("%s: %q", url, b)
		}
	}
	// A client that does not trust the certificate is refused.
	if _, err := http.Get("https://" + addr + "/"); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}

// Every accepted isolation level opens its transaction at that level.
func TestBeginStatement(t *testing.T) {
	for _, c := range []struct {
		o    options
		want string
	}{
		{options{}, "BEGIN"},
		{options{isolation: "Serializable", readOnly: true, deferrable: true}, "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE"},
		{options{isolation: "ReadUncommitted"}, "BEGIN ISOLATION LEVEL READ UNCOMMITTED"},
		{options{isolation: "ReadCommitted"}, "BEGIN ISOLATION LEVEL READ COMMITTED"},
		{options{isolation: "RepeatableRead", readOnly: true}, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"},
	} {
		if got := beginStatement(c.o); got != c.want {
			t.Errorf("beginStatement(%+v) = %q, want %q", c.o, got, c.want)
		}
		if c.o.isolation != "" {
			if o, err := parseHeaders(http.Header{http.CanonicalHeaderKey(hdrIsolation): {c.o.isolation}}); err != nil || o.isolation != c.o.isolation {
				t.Errorf("parseHeaders(%s) = %+v, %v", c.o.isolation, o, err)
			}
		}
	}
}
