package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/neonguard/neonguard/tools"
)

// runBinary runs the built binary with args in a fresh data dir (the local backend without
// PostgreSQL: API only, fast) and returns its stdout, stderr and exit status.
func runBinary(t *testing.T, bin string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	return runBinaryEnv(t, bin, nil, args...)
}

// runBinaryEnv is runBinary with env added to the environment.
func runBinaryEnv(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "NEONGUARD_DATA_DIR="+t.TempDir(), "NEONGUARD_LOCAL_POSTGRES=off",
		"NEONGUARD_LOG_LEVEL=warn", "NEONGUARD_CONFIG=")
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		status = exit.ExitCode()
	default:
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), status
}

// Usage errors exit 2 and say where the usage is; runtime errors exit 1.
func TestExitStatusUsageTwoRuntimeOne(t *testing.T) {
	bin := buildBinary(t)
	cases := []struct {
		args   []string
		status int
		stderr string // a part of stderr
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate" for "neonguard"`},
		{[]string{"serv"}, 2, "did you mean serve?"},
		{[]string{"--no-such-flag"}, 2, "unknown flag: --no-such-flag"},
		{[]string{"serve", "--no-such-flag"}, 2, "Run 'neonguard serve --help' for usage."},
		{[]string{"serve", "extra"}, 2, `unknown command "extra" for "neonguard serve"`},
		{[]string{"serve", "--transport", "carrier-pigeon"}, 2, `--transport "carrier-pigeon"`},
		{[]string{"tenant", "frobnicate"}, 2, `unknown command "frobnicate" for "neonguard tenant"`},
		{[]string{"tenant", "token", "frobnicate"}, 2, `unknown command "frobnicate" for "neonguard tenant token"`},
		{[]string{"tenant", "create"}, 2, "accepts 1 arg(s), received 0"},
		{[]string{"tenant", "token", "create", "acme", "--output", "yaml"}, 2, `--output "yaml"`},
		{[]string{"tenant", "inactive"}, 2, "--days N is required"},
		{[]string{"tenant", "delete-database", "acme", "db"}, 2, "--confirm NAME is required"},
		{[]string{"call"}, 2, "accepts between 1 and 2 arg(s), received 0"},
		{[]string{"call", "describe_limits", "{not json"}, 2, "arguments must be a JSON object"},
		{[]string{"health", "--url", "ftp://x"}, 2, `--url "ftp://x"`},
		{[]string{"jobs", "cancel"}, 2, "accepts 1 arg(s), received 0"},
		{[]string{"serve", "--log-level", "loud"}, 2, "log.level (flag --log-level)"},
		// Runtime errors: the command was used rightly and failed.
		{[]string{"tenant", "token", "create", "no-such-tenant"}, 1, "no-such-tenant"},
		{[]string{"health", "--url", "http://127.0.0.1:1/readyz", "--timeout", "2s"}, 1, ""},
		// Help and success exit 0.
		{[]string{"--help"}, 0, ""},
		{[]string{"tenant"}, 0, ""},
		{[]string{"version"}, 0, ""},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, stderr, status := runBinary(t, bin, c.args...)
			if status != c.status {
				t.Errorf("exit status %d, want %d; stderr:\n%s", status, c.status, stderr)
			}
			if !strings.Contains(stderr, c.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", c.stderr, stderr)
			}
			if c.status == 2 && !strings.Contains(stderr, "--help' for usage.") {
				t.Errorf("a usage error does not point to the help:\n%s", stderr)
			}
		})
	}
}

// A flag's value that the configuration refuses is a usage error (2) naming the flag, on any
// command, even beside other problems; the same bad value from the environment or the config
// file is a configuration the command runs with, not a misuse of the command line (1).
func TestBadFlagValueIsAUsageError(t *testing.T) {
	bin := buildBinary(t)
	file := filepath.Join(t.TempDir(), "neonguard.yaml")
	if err := os.WriteFile(file, []byte("tier: gold\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env    []string
		args   []string
		status int
		stderr []string
	}{
		{nil, []string{"serve", "--transport", "http", "--listen", "8080"}, 2,
			[]string{`http.listen (flag --listen): "8080" is not host:port`, "Run 'neonguard serve --help' for usage."}},
		{nil, []string{"tenant", "create", "acme", "--store", "mysql://db"}, 2,
			[]string{"store (flag --store)", "Run 'neonguard tenant create --help' for usage."}},
		{nil, []string{"call", "describe_limits", "--log-format", "yaml"}, 2,
			[]string{"log.format (flag --log-format)", "Run 'neonguard call --help' for usage."}},
		{[]string{"NEONGUARD_TIER=gold"}, []string{"serve", "--tools", "nosuch"}, 2,
			[]string{"tools (flag --tools)", "tier (environment NEONGUARD_TIER)", "--help' for usage."}},
		{[]string{"NEONGUARD_LOG_LEVEL=loud"}, []string{"serve"}, 1, []string{"log.level (environment NEONGUARD_LOG_LEVEL)"}},
		{[]string{"NEONGUARD_CONFIG=" + file}, []string{"serve"}, 1, []string{"tier (config file " + file + ", line 1)"}},
	} {
		t.Run(strings.Join(append(c.env, c.args...), " "), func(t *testing.T) {
			_, stderr, status := runBinaryEnv(t, bin, c.env, c.args...)
			if status != c.status {
				t.Errorf("exit status %d, want %d; stderr:\n%s", status, c.status, stderr)
			}
			for _, want := range c.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, stderr)
				}
			}
			if c.status == 1 && strings.Contains(stderr, "for usage.") {
				t.Errorf("a configuration error points to the command's help:\n%s", stderr)
			}
		})
	}
}

// `call` with a tool the server does not offer is a usage error that names every valid tool.
func TestCallUnknownToolListsTheTools(t *testing.T) {
	bin := buildBinary(t)
	stdout, stderr, status := runBinary(t, bin, "call", "list_database")
	if status != 2 {
		t.Errorf("exit status %d, want 2", status)
	}
	if stdout != "" {
		t.Errorf("stdout: %q, want nothing", stdout)
	}
	if !strings.Contains(stderr, `unknown tool "list_database"`) {
		t.Errorf("stderr does not name the unknown tool:\n%s", stderr)
	}
	for _, name := range tools.Names() {
		if !strings.Contains(stderr, name) {
			t.Errorf("stderr does not list %s:\n%s", name, stderr)
		}
	}
	// With tool groups, the valid tools are those served.
	_, stderr, status = runBinaryEnv(t, bin, []string{"NEONGUARD_TOOLS=usage"}, "call", "list_databases")
	if status != 2 || !strings.Contains(stderr, `unknown tool "list_databases": the tools are describe_limits, get_usage`) {
		t.Errorf("with --tools usage: status %d, stderr:\n%s", status, stderr)
	}
}

// A long operation run by `call` prints each of its real steps on stderr as it goes; stdout
// holds the result alone.
func TestCallPrintsProgressOnStderr(t *testing.T) {
	bin := buildBinary(t)
	stdout, stderr, status := runBinary(t, bin, "call", "create_database", `{"name":"my-app"}`)
	if status != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", status, stderr)
	}
	var res struct {
		DatabaseID string `json:"database_id"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.DatabaseID == "" {
		t.Fatalf("stdout is not the result alone (%v):\n%s", err, stdout)
	}
	var steps []string
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.HasPrefix(line, "create_database [") {
			steps = append(steps, line)
		}
	}
	if len(steps) < 3 {
		t.Fatalf("want a line per step on stderr, got:\n%s", stderr)
	}
	if !strings.HasPrefix(steps[0], "create_database [1/") || !strings.Contains(stderr, "waiting for Neon operation") {
		t.Errorf("steps: %q", steps)
	}
	// A fast call reports nothing.
	_, stderr, status = runBinary(t, bin, "call", "describe_limits")
	if status != 0 || strings.Contains(stderr, "describe_limits [") {
		t.Errorf("describe_limits: status %d, stderr:\n%s", status, stderr)
	}
}

// `make run` is the README's way to start the server: stdout is the MCP channel, so every line
// on it must be JSON-RPC (make's echo of the recipe, `go run ./c…`, broke the TypeScript SDK).
func TestMakeRunSpeaksOnlyMCPOnStdout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server with go run")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		dir  string
		args []string
	}{
		{"make run", root, []string{"run"}},
		// For a client that cannot set the working directory; -s keeps "Entering directory" off.
		{"make -s -C root run", t.TempDir(), []string{"-s", "-C", root, "run"}},
	} {
		t.Run(c.name, func(t *testing.T) { mcpOverMake(t, c.dir, c.args...) })
	}
}

func mcpOverMake(t *testing.T, dir string, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", args...)
	cmd.Dir = dir
	// make's children (go run, the server) hold stdout too: end the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	// A user's shell: not inside another make (which passes its MAKEFLAGS and MAKELEVEL).
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAKEFLAGS=") && !strings.HasPrefix(kv, "MAKELEVEL=") && !strings.HasPrefix(kv, "MFLAGS=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "NEONGUARD_DATA_DIR="+t.TempDir(), "NEONGUARD_LOCAL_POSTGRES=off", "NEONGUARD_LOG_LEVEL=warn")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var lines chan string
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for range lines { // unblock the reader, which then waits for make
		}
		<-done
	}()

	lines = make(chan string)
	go func() {
		defer func() { close(lines); done <- cmd.Wait() }()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// next returns the answer to request id, failing on any stdout line that is not JSON.
	next := func(id int) map[string]any {
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("stdout closed before the answer to request %d; stderr:\n%s", id, stderr.String())
				}
				var msg map[string]any
				if err := json.Unmarshal([]byte(line), &msg); err != nil {
					t.Fatalf("stdout line is not JSON (%v): %q", err, line)
				}
				if got, ok := msg["id"].(float64); ok && int(got) == id {
					return msg
				}
			case <-ctx.Done():
				t.Fatalf("no answer to request %d; stderr:\n%s", id, stderr.String())
			}
		}
	}
	send := func(msg string) {
		if _, err := io.WriteString(stdin, msg+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"make-run-test","version":"1"}}}`)
	if init := next(1); init["result"] == nil {
		t.Fatalf("initialize: %v", init)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	listed := next(2)
	result, _ := listed["result"].(map[string]any)
	toolList, _ := result["tools"].([]any)
	if len(toolList) != len(tools.Names()) {
		t.Fatalf("tools/list: %d tools, want %d: %v", len(toolList), len(tools.Names()), listed)
	}
	// The client closes stdin: the server stops, and make with it, having printed nothing else.
	_ = stdin.Close()
	for line := range lines {
		if !json.Valid([]byte(line)) {
			t.Errorf("stdout line is not JSON: %q", line)
		}
	}
	select {
	case err := <-done:
		done <- err // for the deferred wait
		if err != nil {
			t.Errorf("make exited with %v after stdin closed; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("make still running 30 s after stdin closed")
	}
}
