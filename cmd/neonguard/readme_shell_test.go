package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/neonguard/neonguard/internal/pgtest"
)

// A shell block of the README and what the line before its fence says about it:
// <!-- readme-test: run (…) --> or <!-- readme-test: skip (why) -->.
type readmeBlock struct {
	line   int // of the fence, 1-based
	marker string
	lines  []string
}

// readmeShellBlocks returns every ```sh block of the README with its readme-test marker (found
// among the HTML comment lines right above the fence).
func readmeShellBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var blocks []readmeBlock
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```sh" {
			continue
		}
		blk := readmeBlock{line: i + 1}
		for j := i - 1; j >= 0 && strings.HasPrefix(lines[j], "<!--"); j-- {
			if m, ok := strings.CutPrefix(lines[j], "<!-- readme-test: "); ok {
				blk.marker = m
			}
		}
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			blk.lines = append(blk.lines, lines[i])
		}
		blocks = append(blocks, blk)
	}
	return blocks
}

// Every shell block of the README says whether TestREADMEShellBlocks runs it, so a new example
// cannot escape it by accident; the quick start's runnable blocks are run.
func TestREADMEShellBlocksAreMarked(t *testing.T) {
	blocks := readmeShellBlocks(t)
	run := 0
	for _, b := range blocks {
		switch {
		case strings.HasPrefix(b.marker, "run"):
			run++
		case strings.HasPrefix(b.marker, "skip ("):
		default:
			t.Errorf("README.md:%d: a sh block without <!-- readme-test: run --> or <!-- readme-test: skip (why) --> above it", b.line)
		}
	}
	if run < 2 {
		t.Errorf("only %d runnable README blocks (the quick start's call block and the neonctl one)", run)
	}
}

// The README's runnable shell blocks run as written on a fresh machine (an empty HOME and data
// dir), with the built binary for `go run ./cmd/neonguard`, and print what the README shows.
func TestREADMEShellBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local backend")
	}
	bin := buildBinary(t)
	binDir := filepath.Dir(bin)
	compatBin, err := filepath.Abs("../../testdata/compat/node_modules/.bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range readmeShellBlocks(t) {
		if !strings.HasPrefix(b.marker, "run") {
			continue
		}
		t.Run(fmt.Sprintf("README.md:%d", b.line), func(t *testing.T) {
			text := strings.Join(b.lines, "\n")
			path := binDir + string(os.PathListSeparator) + os.Getenv("PATH")
			if strings.Contains(text, "neonctl") {
				if _, err := os.Stat(filepath.Join(compatBin, "neonctl")); err != nil {
					if os.Getenv("NEONGUARD_REQUIRE_NODE") == "1" {
						t.Fatalf("neonctl not installed in testdata/compat (scripts/test installs it): %v", err)
					}
					t.Skip("neonctl not installed in testdata/compat (scripts/test installs it)")
				}
				path = compatBin + string(os.PathListSeparator) + path
			}
			if strings.Contains(text, "psql") {
				requirePsql(t)
			}
			runREADMEBlock(t, b, path)
		})
	}
	t.Run("quick start: --stay, then psql", func(t *testing.T) {
		requirePsql(t)
		quickStartStayThenPsql(t, bin)
	})
}

func requirePsql(t *testing.T) {
	t.Helper()
	pgtest.Require(t)
	if _, err := exec.LookPath("psql"); err != nil {
		if os.Getenv("NEONGUARD_REQUIRE_POSTGRES") == "1" {
			t.Fatal("psql not installed")
		}
		t.Skip("psql not installed")
	}
}

// freshEnv is the environment of a fresh machine: no neonguard or Neon settings, an empty
// HOME, a data dir of its own.
func freshEnv(t *testing.T, path string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NEONGUARD_") || strings.HasPrefix(k, "NEON_") || k == "HOME" || k == "PATH" ||
			strings.HasPrefix(k, "XDG_") || strings.HasPrefix(k, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+path, "HOME="+t.TempDir(), "NEONGUARD_DATA_DIR="+pgtest.ReachableDir(t),
		"NEONGUARD_LOG_LEVEL=warn")
}

// runREADMEBlock runs the block's commands in one bash (set -euo pipefail), each preceded by a
// marker line on stdout so that each command's output can be checked against the "# " lines
// the README shows right after it.
func runREADMEBlock(t *testing.T, b readmeBlock, path string) {
	port := freePort(t)
	var script strings.Builder
	script.WriteString("set -euo pipefail\ntrap 'status=$?; set +e; kill $(jobs -p) 2>/dev/null; wait; exit $status' EXIT\n")
	var commands []string    // as the README writes them
	expected := [][]string{} // the output lines shown after each command
	for _, line := range b.lines {
		if shown, ok := strings.CutPrefix(line, "# "); ok || line == "#" {
			if len(commands) == 0 {
				t.Fatalf("README.md:%d: output shown before any command", b.line)
			}
			expected[len(expected)-1] = append(expected[len(expected)-1], shown)
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		cmd := line
		// What a fresh machine gets another way here: the binary just built (for go run),
		// neonctl pinned in testdata/compat (no network), ports no other test uses.
		cmd = strings.ReplaceAll(cmd, "go run ./cmd/neonguard", "neonguard")
		if strings.HasPrefix(cmd, "npm install -g neonctl") {
			cmd = "command -v neonctl >/dev/null"
		}
		cmd = strings.ReplaceAll(cmd, "127.0.0.1:4040", fmt.Sprintf("127.0.0.1:%d", port))
		if strings.HasPrefix(cmd, "neonguard local ") {
			cmd = strings.Replace(cmd, "neonguard local ", "neonguard local --sql-listen off ", 1)
		}
		if strings.HasPrefix(cmd, "until ") {
			cmd = "timeout 120 bash -c " + shellQuote(cmd)
		}
		fmt.Fprintf(&script, "echo '@@readme-command %d@@'\n%s\n", len(commands), cmd)
		commands = append(commands, line)
		expected = append(expected, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = t.TempDir()
	cmd.Env = freshEnv(t, path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	outputs := splitByCommand(stdout.String())
	if err != nil {
		last := len(outputs) - 1
		failed := "(before the first command)"
		if last >= 0 && last < len(commands) {
			failed = commands[last]
		}
		t.Fatalf("README.md:%d: %v at\n  %s\nstdout:\n%s\nstderr:\n%s", b.line, err, failed, stdout.String(), stderr.String())
	}
	for i, want := range expected {
		if len(want) == 0 {
			continue
		}
		if i >= len(outputs) {
			t.Fatalf("no output of %s", commands[i])
		}
		if msg := matchShown(want, outputs[i]); msg != "" {
			t.Errorf("README.md:%d: %s prints what the README does not show: %s\nit printed:\n%s", b.line, commands[i], msg, outputs[i])
		}
	}
}

func splitByCommand(out string) []string {
	var outputs []string
	for _, line := range strings.SplitAfter(out, "\n") {
		if strings.HasPrefix(line, "@@readme-command ") {
			outputs = append(outputs, "")
			continue
		}
		if len(outputs) > 0 {
			outputs[len(outputs)-1] += line
		}
	}
	return outputs
}

// matchShown checks that the shown lines appear in the output in order (other lines may come
// between); "…" in a shown line stands for any text, a shown line of "…" alone for lines left
// out. It returns what did not match, or "".
func matchShown(shown []string, output string) string {
	lines := strings.Split(strings.TrimRight(output, "\n"), "\n")
	at := 0
	for _, s := range shown {
		if strings.TrimSpace(s) == "…" {
			continue
		}
		parts := strings.Split(s, "…")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		re := regexp.MustCompile("^" + strings.Join(parts, ".*") + `\s*$`)
		for at < len(lines) && !re.MatchString(lines[at]) {
			at++
		}
		if at == len(lines) {
			return fmt.Sprintf("no line (after the ones before it) matches %q", s)
		}
		at++
	}
	return ""
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// The quick start's second block needs two terminals: `call create_database … --stay` keeps
// the databases up, and psql connects with the connection string it printed.
func quickStartStayThenPsql(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := freshEnv(t, filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	stay := exec.CommandContext(ctx, bin, "call", "create_database", `{"name":"my-app"}`, "--stay")
	stay.Env = env
	stay.Cancel = func() error { return stay.Process.Signal(os.Interrupt) }
	stay.WaitDelay = 30 * time.Second
	stdout, err := stay.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	stay.Stderr = &stderr
	if err := stay.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stay.Process.Signal(os.Interrupt)
		_ = stay.Wait()
	}()
	// The result is one indented JSON object, printed before the process stays up.
	var doc strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		doc.WriteString(sc.Text() + "\n")
		if sc.Text() == "}" {
			break
		}
	}
	var res struct {
		ConnectionString string `json:"connection_string"`
		Created          bool   `json:"created"`
	}
	if err := json.Unmarshal([]byte(doc.String()), &res); err != nil || !res.Created {
		t.Fatalf("call create_database --stay: %v\n%s\nstderr:\n%s", err, doc.String(), stderr.String())
	}
	psql := exec.CommandContext(ctx, "psql", res.ConnectionString, "-c", "select version()")
	psql.Env = env
	out, err := psql.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PostgreSQL") {
		t.Fatalf("psql: %v\n%s\nneonguard's stderr:\n%s", err, out, stderr.String())
	}
}
