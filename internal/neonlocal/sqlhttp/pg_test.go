package sqlhttp

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/neonlocal/dataplane"
	"github.com/neonguard/neonguard/internal/pgtest"
)

// A real endpoint of the emulator's data plane behind the handler: Neon's wire format with
// real rows, a transaction that commits, one that rolls back, and PostgreSQL's errors.
func TestSQLOverHTTPOnARealEndpoint(t *testing.T) {
	pgtest.Require(t)
	ctx := context.Background()
	dp, err := dataplane.New(ctx, dataplane.Options{Dir: filepath.Join(pgtest.ReachableDir(t), "pg"),
		Settings: map[string]string{"fsync": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dp.Close() })
	spec := neonlocal.BranchSpec{ProjectID: "p1", BranchID: "br-main", PgVersion: dp.PGVersions()[0],
		RoleName: "neondb_owner", RolePassword: "npg_secret", DatabaseName: "neondb"}
	if err := dp.CreateBranch(ctx, spec); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if err := dp.StartEndpoint(ctx, neonlocal.EndpointSpec{ProjectID: "p1", BranchID: "br-main", EndpointID: "ep-one",
		Port: port, PgVersion: spec.PgVersion, RoleName: spec.RoleName, RolePassword: spec.RolePassword,
		DatabaseName: spec.DatabaseName}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Allowed: func(host string, p int) bool { return IsLoopback(host) && p == port }}))
	t.Cleanup(srv.Close)
	conn := "postgresql://neondb_owner:npg_secret@localhost:" + strconv.Itoa(port) + "/neondb?sslmode=require&channel_binding=require"

	post := func(header map[string]string, body string) (int, http.Header, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/sql", strings.NewReader(body))
		req.Header.Set(hdrConnString, conn)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%d %s", res.StatusCode, raw)
		}
		return res.StatusCode, res.Header, m
	}
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }

	code, _, m := post(nil, `{"query":"CREATE TABLE t (id int PRIMARY KEY, name text, tags text[], meta jsonb, n int8)"}`)
	if code != 200 || m["command"] != "CREATE" || m["rowCount"] != nil {
		t.Fatalf("create: %d %v", code, m)
	}
	code, _, m = post(nil, `{"query":"INSERT INTO t VALUES ($1, $2, $3, $4, $5), (2, NULL, '{}', NULL, 9) RETURNING id","params":[1, "one", ["a","b c"], {"k":1}, "12345678901"]}`)
	if code != 200 || m["command"] != "INSERT" || m["rowCount"] != float64(2) || enc(m["rows"]) != `[{"id":1},{"id":2}]` {
		t.Fatalf("insert: %d %v", code, m)
	}
	// Object mode, typed values.
	code, _, m = post(nil, `{"query":"SELECT id, name, tags, meta, n FROM t ORDER BY id"}`)
	if code != 200 || enc(m["rows"]) != `[{"id":1,"meta":{"k":1},"n":"12345678901","name":"one","tags":["a","b c"]},{"id":2,"meta":null,"n":"9","name":null,"tags":[]}]` {
		t.Fatalf("select: %d %s", code, enc(m))
	}
	f := m["fields"].([]any)[0].(map[string]any)
	if f["name"] != "id" || f["dataTypeID"] != float64(23) || f["dataTypeSize"] != float64(4) || f["format"] != "text" || f["columnID"] != float64(1) || f["tableID"] == float64(0) {
		t.Fatalf("field: %v", f)
	}
	// The driver's headers: raw text, array mode.
	code, _, m = post(map[string]string{hdrRawText: "true", hdrArrayMode: "true"}, `{"query":"SELECT id, tags FROM t WHERE id = $1","params":[1]}`)
	if code != 200 || enc(m["rows"]) != `[["1","{a,\"b c\"}"]]` || m["rowAsArray"] != true {
		t.Fatalf("raw array mode: %d %s", code, enc(m))
	}
	// A transaction commits, with its headers echoed.
	code, h, m := post(map[string]string{hdrIsolation: "Serializable", hdrArrayMode: "true"},
		`{"queries":[{"query":"UPDATE t SET name = 'uno' WHERE id = 1"},{"query":"SELECT count(*)::int FROM t","arrayMode":false}]}`)
	if code != 200 || h.Get(hdrIsolation) != "Serializable" || enc(m["results"]) == "" {
		t.Fatalf("transaction: %d %v", code, m)
	}
	res := m["results"].([]any)
	if res[0].(map[string]any)["command"] != "UPDATE" || res[0].(map[string]any)["rowCount"] != float64(1) ||
		enc(res[1].(map[string]any)["rows"]) != `[{"count":2}]` {
		t.Fatalf("transaction results: %s", enc(res))
	}
	// A failing transaction rolls back everything and answers PostgreSQL's error.
	code, _, m = post(nil, `{"queries":[{"query":"UPDATE t SET name = 'gone'"},{"query":"INSERT INTO t (id) VALUES (1)"}]}`)
	if code != 400 || m["code"] != "23505" || m["constraint"] != "t_pkey" || m["severity"] != "ERROR" || m["table"] != "t" {
		t.Fatalf("failing transaction: %d %v", code, m)
	}
	if _, _, m = post(nil, `{"query":"SELECT name FROM t ORDER BY id"}`); enc(m["rows"]) != `[{"name":"uno"},{"name":null}]` {
		t.Fatalf("after rollback: %s", enc(m["rows"]))
	}
	// A syntax error carries its position; a read-only transaction refuses writes.
	code, _, m = post(nil, `{"query":"SELECT * FROM t WHERE"}`)
	if code != 400 || m["code"] != "42601" || m["position"] != "22" {
		t.Fatalf("syntax error: %d %v", code, m)
	}
	code, h, m = post(map[string]string{hdrReadOnly: "true"}, `{"queries":[{"query":"DELETE FROM t"}]}`)
	if code != 400 || m["code"] != "25006" {
		t.Fatalf("read-only transaction: %d %v %v", code, m, h)
	}
	// One statement per query (the extended protocol), as on Neon.
	if code, _, m = post(nil, `{"query":"SELECT 1; SELECT 2"}`); code != 400 || m["code"] != "42601" {
		t.Fatalf("two statements: %d %v", code, m)
	}
	// A wrong password is PostgreSQL's refusal.
	conn = strings.Replace(conn, "npg_secret", "wrong", 1)
	if code, _, m = post(nil, `{"query":"SELECT 1"}`); code != 400 || m["code"] != "28P01" {
		t.Fatalf("wrong password: %d %v", code, m)
	}
}
