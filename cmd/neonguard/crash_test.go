package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/neonguard/neonguard/internal/pgtest"
)

// The crash tests kill `neonguard serve` with SIGKILL while an undo_to_time or a
// create_dev_branch runs on real PostgreSQL, start it again on the same data dir, and check
// that every branch is usable and holds a consistent state. The postgres processes of the
// killed server survive it (they run in their own process groups); the restart must find and
// stop them.

// crashServer is one `neonguard serve` process and the MCP client driving it.
type crashServer struct {
	t      *testing.T
	c      *client.Client
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned (err set)
	err    error         // cmd.Wait's answer
	log    string
}

// shutdownBudget is how long a server closing cleanly may take: it stops its postgres
// processes, each with a shutdown checkpoint. (mcp-go's own stdio transport kills a child
// after 5 s, which a loaded 2-core machine can exceed; hence the transport over our own pipes.)
const shutdownBudget = 90 * time.Second

// crashEnv is where the servers of one test run: the data dir, and a short TMPDIR (the data
// plane's socket dir lives there; a killed server cannot remove its own).
type crashEnv struct {
	bin, dir, tmp string
	n             int
	env           []string // added to the next servers' environment
}

func newCrashEnv(t *testing.T) *crashEnv {
	tmp, err := os.MkdirTemp("", "ngcrash")
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL's user must reach the socket dirs under it.
	if err := os.Chmod(tmp, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	return &crashEnv{bin: buildBinary(t), dir: pgtest.ReachableDir(t), tmp: tmp}
}

func (e *crashEnv) start(t *testing.T) *crashServer {
	t.Helper()
	e.n++
	logPath := filepath.Join(e.tmp, fmt.Sprintf("serve-%d.log", e.n))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	s := &crashServer{t: t, log: logPath, exited: make(chan struct{})}
	cmd := exec.Command(e.bin, "serve", "--data-dir", e.dir)
	cmd.Env = append(os.Environ(), append([]string{"NEONGUARD_LOG_LEVEL=info", "NEONGUARD_LOCAL_POSTGRES=on", "TMPDIR=" + e.tmp}, e.env...)...)
	cmd.Stderr = logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Our own pipe, not StdoutPipe: Wait would close that one under the reader.
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = stdoutW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdoutW.Close()
	logf.Close() // the child holds its own descriptors
	s.cmd = cmd
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	c := client.NewClient(transport.NewIO(stdoutR, stdin, nil))
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.c = c
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
		_ = c.Close()
		t.Fatalf("initialize (server %d): %v\n%s", e.n, err, s.logTail())
	}
	return s
}

func (s *crashServer) logTail() string {
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// kill SIGKILLs the server, and only it: its postgres children live on as orphans.
func (s *crashServer) kill() {
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.t.Errorf("kill: %v", err)
	}
	_ = s.c.Close()
	<-s.exited
}

// waitExit waits for the server to end by itself (a crash hook) or on its closed stdin.
func (s *crashServer) waitExit() {
	_ = s.c.Close()
	select {
	case <-s.exited:
	case <-time.After(shutdownBudget):
		s.t.Errorf("the server did not exit within %s\n%s", shutdownBudget, s.logTail())
		_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// stop shuts the server down cleanly (stdin closed): it stops its postgres processes.
func (s *crashServer) stop() {
	s.waitExit()
	if s.err != nil {
		s.t.Errorf("server exit: %v\n%s", s.err, s.logTail())
	}
}

// call runs a tool; code is "" on success, else the error's code.
func (s *crashServer) call(tool string, args map[string]any) (map[string]any, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var req mcp.CallToolRequest
	req.Params.Name = tool
	req.Params.Arguments = args
	res, err := s.c.CallTool(ctx, req)
	if err != nil {
		return nil, "", err
	}
	if res.IsError {
		text := ""
		if len(res.Content) > 0 {
			if tc, ok := res.Content[0].(mcp.TextContent); ok {
				text = tc.Text
			}
		}
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal([]byte(text), &body)
		return nil, body.Error.Code, fmt.Errorf("%s: %s", tool, text)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out, "", nil
}

func (s *crashServer) mustCall(tool string, args map[string]any) map[string]any {
	s.t.Helper()
	out, _, err := s.call(tool, args)
	if err != nil {
		s.t.Fatalf("%v\n%s", err, s.logTail())
	}
	return out
}

type branchInfo struct {
	ID, Name, Kind string
}

func (s *crashServer) branches(id string) []branchInfo {
	s.t.Helper()
	res := s.mustCall("list_branches", map[string]any{"database_id": id})
	var out []branchInfo
	list, _ := res["branches"].([]any)
	for _, x := range list {
		m, _ := x.(map[string]any)
		b := branchInfo{}
		b.ID, _ = m["branch_id"].(string)
		b.Name, _ = m["name"].(string)
		b.Kind, _ = m["kind"].(string)
		out = append(out, b)
	}
	return out
}

func (s *crashServer) uri(id, branch string) (string, error) {
	out, _, err := s.call("get_connection_string", map[string]any{"database_id": id, "branch": branch})
	if err != nil {
		return "", err
	}
	u, _ := out["connection_string"].(string)
	return u, nil
}

func pgConnect(uri string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return pgx.Connect(ctx, uri)
}

func pgExec(uri, sql string, args ...any) error {
	conn, err := pgConnect(uri)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), sql, args...)
	return err
}

// tableRows returns the values of t(n), sorted.
func tableRows(uri string) ([]int, error) {
	conn, err := pgConnect(uri)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	r, err := conn.Query(context.Background(), "SELECT n FROM t ORDER BY n")
	if err != nil {
		return nil, err
	}
	var out []int
	for r.Next() {
		var n int
		if err := r.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, r.Err()
}

func insertRows(t *testing.T, uri string, from, to int) {
	t.Helper()
	if err := pgExec(uri, "CREATE TABLE IF NOT EXISTS t (n int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if err := pgExec(uri, "INSERT INTO t SELECT generate_series($1::int, $2::int)", from, to); err != nil {
		t.Fatal(err)
	}
}

func pgNow(t *testing.T, uri string) time.Time {
	t.Helper()
	conn, err := pgConnect(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var now time.Time
	if err := conn.QueryRow(context.Background(), "SELECT now()").Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now.UTC()
}

func span(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// trigger decides when to kill: it returns once the server should die, with what it saw.
type trigger struct {
	name string
	wait func(ctx context.Context, dir string) string
}

func after(d time.Duration) trigger {
	return trigger{fmt.Sprintf("after %v", d), func(ctx context.Context, _ string) string {
		select {
		case <-ctx.Done():
			return "call ended first"
		case <-time.After(d):
			return "timer"
		}
	}}
}

// whenGlob fires as soon as a path matching one of the patterns (relative to the data dir)
// exists, polling every millisecond.
func whenGlob(name string, patterns ...string) trigger {
	return trigger{name, func(ctx context.Context, dir string) string {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			for _, p := range patterns {
				if m, _ := filepath.Glob(filepath.Join(dir, p)); len(m) > 0 {
					rel, _ := filepath.Rel(dir, m[0])
					return "saw " + rel
				}
			}
			select {
			case <-ctx.Done():
				return "call ended first"
			case <-tick.C:
			}
		}
	}}
}

// whenRenamedInto fires on the inotify event of a file named name being renamed into (or
// created in) dirRel: the restore journal lives only for the few syscalls of the swap, too
// short for polling.
func whenRenamedInto(label, dirRel, name string) trigger {
	return trigger{label, func(ctx context.Context, dir string) string {
		fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
		if err != nil {
			return "inotify: " + err.Error()
		}
		defer syscall.Close(fd)
		if _, err := syscall.InotifyAddWatch(fd, filepath.Join(dir, dirRel), syscall.IN_MOVED_TO|syscall.IN_CREATE); err != nil {
			return "inotify watch: " + err.Error()
		}
		buf := make([]byte, 64*1024)
		for {
			n, err := syscall.Read(fd, buf)
			if err == nil {
				for off := 0; off+syscall.SizeofInotifyEvent <= n; {
					ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
					nameBytes := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
					if strings.TrimRight(string(nameBytes), "\x00") == name {
						return "saw " + filepath.Join(dirRel, name)
					}
					off += syscall.SizeofInotifyEvent + int(ev.Len)
				}
				continue
			}
			if !errors.Is(err, syscall.EAGAIN) {
				return "inotify read: " + err.Error()
			}
			select {
			case <-ctx.Done():
				return "call ended first"
			default:
			}
			// Busy-wait: the window is microseconds wide.
			time.Sleep(20 * time.Microsecond)
		}
	}}
}

// crashDuring runs the tool call and SIGKILLs the server when the trigger fires. It returns
// the trigger's observation and whether the call had finished (successfully) before the kill.
func crashDuring(t *testing.T, e *crashEnv, s *crashServer, tr trigger, tool string, args map[string]any) (seen string, completed bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	type outcome struct {
		err  error
		code string
	}
	done := make(chan outcome, 1)
	go func() {
		_, code, err := s.call(tool, args)
		done <- outcome{err, code}
		cancel()
	}()
	seen = tr.wait(ctx, e.dir)
	s.kill()
	cancel()
	select {
	case o := <-done:
		completed = o.err == nil && seen == "call ended first"
		if seen == "call ended first" && o.err != nil {
			t.Fatalf("%s failed before the kill: %v\n%s", tool, o.err, s.logTail())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return after the kill", tool)
	}
	return seen, completed
}

// checkBranches connects to every branch of the database and returns the rows of each by
// name, failing on any branch that is not usable.
func checkBranches(t *testing.T, s *crashServer, id string) (map[string][]int, []branchInfo) {
	t.Helper()
	bs := s.branches(id)
	out := map[string][]int{}
	for _, b := range bs {
		uri, err := s.uri(id, b.Name)
		if err != nil {
			t.Errorf("branch %s (%s, %s): get_connection_string: %v", b.Name, b.ID, b.Kind, err)
			continue
		}
		got, err := tableRows(uri)
		if err != nil {
			t.Errorf("branch %s (%s, %s): SELECT n FROM t: %v", b.Name, b.ID, b.Kind, err)
			continue
		}
		out[b.Name] = got
	}
	return out, bs
}

// settleBackups waits until no base backup of the branch runs and it has one. Base backups
// run in the background; a point in time before the first one ends resolves to the state at
// its end (see the report of this test), which is not what these tests are about.
func settleBackups(t *testing.T, dir, id, branch string) {
	t.Helper()
	bd := filepath.Join(dir, branchDir(id, branch))
	deadline := time.Now().Add(time.Minute)
	for {
		var m struct{ Backups []json.RawMessage }
		b, _ := os.ReadFile(filepath.Join(bd, "branch.json"))
		_ = json.Unmarshal(b, &m)
		tmps, _ := filepath.Glob(filepath.Join(bd, "backups", "*.tmp"))
		if len(m.Backups) > 0 && len(tmps) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("branch %s: no settled base backup after a minute", branch)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// prepare makes a database with rows 1..10 before the returned time and 11..20 after it.
func prepare(t *testing.T, e *crashEnv, s *crashServer, name string) (id, uri, mainID string, at time.Time) {
	t.Helper()
	db := s.mustCall("create_database", map[string]any{"name": name})
	id, _ = db["database_id"].(string)
	uri, _ = db["connection_string"].(string)
	for _, b := range s.branches(id) {
		if b.Kind == "main" {
			mainID = b.ID
		}
	}
	if mainID == "" {
		t.Fatal("no main branch")
	}
	settleBackups(t, e.dir, id, mainID)
	insertRows(t, uri, 1, 10)
	time.Sleep(300 * time.Millisecond)
	at = pgNow(t, uri)
	time.Sleep(300 * time.Millisecond)
	insertRows(t, uri, 11, 20)
	return id, uri, mainID, at
}

func branchDir(id, branch string) string {
	return filepath.Join("pg", "projects", id, "branches", branch)
}

// startCrashTest builds the binary and starts the first server on a fresh data dir. At the
// end it stops the last server cleanly and checks that no postgres process of the data dir
// is left: each restart must have stopped the ones its killed predecessor left behind.
func startCrashTest(t *testing.T) (*crashEnv, **crashServer) {
	if testing.Short() {
		t.Skip("crash tests run real PostgreSQL clusters")
	}
	pgtest.Require(t)
	// Not parallel: endpoint ports are fixed for an endpoint's life, and the random ports of
	// another test's postgres processes could take one while a killed server is down.
	e := newCrashEnv(t)
	s := e.start(t)
	sp := &s
	t.Cleanup(func() {
		(*sp).t = t
		(*sp).stop()
		deadline := time.Now().Add(15 * time.Second)
		for {
			left := postgresUnder(e.dir)
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("postgres processes left after the last server stopped:\n%s", strings.Join(left, "\n"))
				for _, p := range left { // do not leak them into the next test
					pid, _ := strconv.Atoi(strings.Fields(p)[1])
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return e, sp
}

// postgresUnder lists the PostgreSQL processes (postgres, pg_basebackup) working in or on
// dir: their working directory or their command line is under it.
func postgresUnder(dir string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, p := range procs {
		exe, err := os.Readlink(filepath.Join(p, "exe"))
		if err != nil {
			continue
		}
		switch filepath.Base(strings.TrimSuffix(exe, " (deleted)")) {
		case "postgres", "postmaster", "pg_basebackup":
		default:
			continue
		}
		cwd, _ := os.Readlink(filepath.Join(p, "cwd"))
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		args := strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")
		if strings.HasPrefix(cwd, dir+"/") || strings.Contains(args, dir+"/") {
			out = append(out, fmt.Sprintf("pid %s cwd %s: %s", filepath.Base(p), cwd, args))
		}
	}
	return out
}

// TestCrashDuringUndoRecovers kills the server at several points of an undo_to_time (timed,
// and at the restore's phase markers on disk), starts it again, and checks every branch:
// main holds the rows before the undo or the rows at its target, nothing else; the undo's
// backup branch holds the rows before the undo; a second undo works.
func TestCrashDuringUndoRecovers(t *testing.T) {
	e, sp := startCrashTest(t)
	// One database per case, four in all: one more than the free tier allows by default. The
	// first server makes only the first; the ones started after each crash allow more.
	cfg := filepath.Join(t.TempDir(), "neonguard.yaml")
	if err := os.WriteFile(cfg, []byte("policy:\n  tiers:\n    free:\n      max_databases: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.env = []string{"NEONGUARD_CONFIG=" + cfg}
	cases := []struct {
		name string
		tr   func(id, mainID string) trigger
	}{
		{"timed-50ms", func(string, string) trigger { return after(50 * time.Millisecond) }},
		{"during-recovery", func(id, mainID string) trigger {
			return whenGlob("recovery runs in data.restore", filepath.Join(branchDir(id, mainID), "data.restore", "postmaster.pid"))
		}},
		{"at-journal", func(id, mainID string) trigger {
			return whenRenamedInto("journal written", branchDir(id, mainID), "restore.json")
		}},
		{"after-swap", func(id, mainID string) trigger {
			// After the swap, the restored branch gets a new base backup.
			return whenGlob("new base backup runs", filepath.Join(branchDir(id, mainID), "backups", "*.tmp"))
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := *sp
			s.t = t
			t0 := time.Now()
			id, uri, mainID, at := prepare(t, e, s, fmt.Sprintf("undo-%d", i))
			t1 := time.Now()
			tr := tc.tr(id, mainID)
			seen, completed := crashDuring(t, e, s, tr, "undo_to_time",
				map[string]any{"database_id": id, "timestamp": at.Format(time.RFC3339Nano)})
			t2 := time.Now()
			s = e.start(t)
			*sp = s
			defer func() {
				if t.Failed() {
					t.Logf("server log:\n%s", s.logTail())
				}
			}()
			t3 := time.Now()
			got, bs := checkBranches(t, s, id)
			t.Logf("timing: prepare %v, call+kill %v, restart %v, check %v", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), time.Since(t3))
			t.Logf("kill %s: %s; undo answered before the kill: %v; rows after restart: %v", tr.name, seen, completed, got)
			var mainRows []int
			backups := 0
			for _, b := range bs {
				switch m := got[b.Name]; b.Kind {
				case "main":
					mainRows = m
					if !slices.Equal(m, span(1, 20)) && !slices.Equal(m, span(1, 10)) {
						t.Errorf("main holds %v: want 1..20 (undo not done) or 1..10 (undo done)", m)
					} else if completed && !slices.Equal(m, span(1, 10)) {
						t.Errorf("the undo answered but main holds %v", m)
					}
				case "backup":
					backups++
					if !slices.Equal(m, span(1, 20)) {
						t.Errorf("backup branch %s holds %v, want 1..20 (the state before the undo)", b.Name, m)
					}
				default:
					t.Errorf("unexpected branch %+v", b)
				}
			}
			if backups > 1 || (completed && backups != 1) {
				t.Errorf("%d backup branches", backups)
			}
			if backups == 1 && !slices.Equal(mainRows, span(1, 10)) {
				// The control plane answered the restore (its backup exists): so must the data.
				t.Errorf("the undo's backup branch exists but main holds %v, want 1..10", mainRows)
			}
			// The database is usable: another undo works.
			settleBackups(t, e.dir, id, mainID)
			insertRows(t, uri, 100, 100)
			time.Sleep(300 * time.Millisecond)
			at2 := pgNow(t, uri)
			time.Sleep(300 * time.Millisecond)
			insertRows(t, uri, 101, 101)
			s.mustCall("undo_to_time", map[string]any{"database_id": id, "timestamp": at2.Format(time.RFC3339Nano)})
			want := append(slices.Clone(mainRows), 100)
			if m, err := tableRows(uri); err != nil || !slices.Equal(m, want) {
				t.Errorf("second undo: main holds %v (%v), want %v", m, err, want)
			}
		})
	}
}

// TestCrashDuringDevBranchRecovers kills the server while create_dev_branch makes a branch
// from main's head or from a time, starts it again, and checks every branch: main is
// unchanged, the dev branch is absent or holds the rows of its source; a new dev branch works.
func TestCrashDuringDevBranchRecovers(t *testing.T) {
	e, sp := startCrashTest(t)
	cases := []struct {
		name     string
		fromTime bool
		tr       func(id string) trigger
	}{
		{"from-main/timed-100ms", false, func(string) trigger { return after(100 * time.Millisecond) }},
		{"from-time/during-recovery", true, func(id string) trigger {
			return whenGlob("recovery runs in data.new", filepath.Join(branchDir(id, "*"), "data.new", "postmaster.pid"))
		}},
		{"from-time/at-first-backup", true, func(id string) trigger {
			return whenGlob("the new branch's first base backup runs", filepath.Join(branchDir(id, "*"), "backups", "*.tmp"))
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := *sp
			s.t = t
			id, _, _, at := prepare(t, e, s, fmt.Sprintf("dev-%d", i))
			args := map[string]any{"database_id": id, "name": "feat"}
			want := span(1, 20)
			if tc.fromTime {
				args["from"] = at.Format(time.RFC3339Nano)
				want = span(1, 10)
			}
			tr := tc.tr(id)
			seen, completed := crashDuring(t, e, s, tr, "create_dev_branch", args)
			s = e.start(t)
			*sp = s
			defer func() {
				if t.Failed() {
					t.Logf("server log:\n%s", s.logTail())
				}
			}()
			got, bs := checkBranches(t, s, id)
			t.Logf("kill %s: %s; create_dev_branch answered before the kill: %v; rows after restart: %v", tr.name, seen, completed, got)
			dev := false
			for _, b := range bs {
				m := got[b.Name]
				switch {
				case b.Kind == "main":
					if !slices.Equal(m, span(1, 20)) {
						t.Errorf("main holds %v, want 1..20 (unchanged)", m)
					}
				case b.Name == "feat":
					dev = true
					if !slices.Equal(m, want) {
						t.Errorf("dev branch holds %v, want %v", m, want)
					}
				default:
					t.Errorf("unexpected branch %+v", b)
				}
			}
			if completed && !dev {
				t.Errorf("create_dev_branch answered but the branch is gone")
			}
			// The database is usable: a new dev branch works.
			res := s.mustCall("create_dev_branch", map[string]any{"database_id": id, "name": "feat2"})
			uri, _ := res["connection_string"].(string)
			if m, err := tableRows(uri); err != nil || !slices.Equal(m, span(1, 20)) {
				t.Errorf("new dev branch holds %v (%v), want 1..20", m, err)
			}
		})
	}
}
