package pgctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ServerConfig describes one run of a cluster.
type ServerConfig struct {
	DataDir    string
	Port       int    // TCP port on 127.0.0.1 (the proxy in front dials it); 0 = pick a free one
	SocketDir  string // unix socket dir, made private (0700, owned by RunAs); for admin connections
	ArchiveDir string // WAL archive (created, owned by RunAs); empty = no archiving
	CertFile   string // ssl=on with this pair (see EnsureCert)
	KeyFile    string
	// Settings are extra GUCs; they override the defaults (shared_buffers=16MB,
	// max_connections=50, min_wal_size=32MB, ...), e.g. fsync=off in tests or
	// archive_timeout.
	Settings map[string]string
}

// maxSocketPath is sizeof(sun_path)-1 on Linux.
const maxSocketPath = 107

// socketPath is where postgres puts its unix socket.
func socketPath(socketDir string, port int) string {
	return filepath.Join(socketDir, ".s.PGSQL."+strconv.Itoa(port))
}

func (c *ServerConfig) normalize() error {
	if c.DataDir == "" || c.SocketDir == "" {
		return errors.New("DataDir and SocketDir are required")
	}
	for _, p := range []*string{&c.DataDir, &c.SocketDir, &c.ArchiveDir, &c.CertFile, &c.KeyFile} {
		if *p == "" {
			continue
		}
		a, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = a
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("CertFile and KeyFile go together")
	}
	if n := len(socketPath(c.SocketDir, 65535)); n > maxSocketPath {
		return fmt.Errorf("socket dir %s is too long: the socket path would be %d bytes, the limit is %d", c.SocketDir, n, maxSocketPath)
	}
	return nil
}

// settings merges defaults, the per-run settings and the caller's extras.
func (t *Toolkit) settings(c ServerConfig, port int) map[string]string {
	s := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": c.SocketDir,
		"unix_socket_permissions": "0700",
		"password_encryption":     "scram-sha-256",
		"wal_level":               "replica", // needed by pg_basebackup and archiving
		"max_wal_senders":         "5",
		"shared_buffers":          "16MB", // many small clusters per host
		"max_connections":         "50",
		"min_wal_size":            "32MB", // smaller pg_wal → cheaper copies
		"huge_pages":              "off",
		"logging_collector":       "off", // stderr goes to our pipe
		"log_destination":         "stderr",
		"log_line_prefix":         "%m [%p] ",
		"log_timezone":            "UTC",
		"ssl":                     "off",
		"archive_mode":            "off",
	}
	if c.CertFile != "" {
		s["ssl"] = "on"
		s["ssl_cert_file"] = c.CertFile
		s["ssl_key_file"] = c.KeyFile
		s["ssl_min_protocol_version"] = "TLSv1.2"
	}
	if c.ArchiveDir != "" {
		s["archive_mode"] = "on"
		s["archive_command"] = archiveCommand(c.ArchiveDir, !t.NoSync)
	}
	if seg := WALSegmentBytes(c.DataDir); seg > 0 && seg < 16<<20 {
		// A cluster made with small segments (WALSegSizeMB) keeps two recycled ones, not
		// 32 MB of them (min_wal_size must be at least two segments).
		s["min_wal_size"] = strconv.FormatInt(2*seg>>20, 10) + "MB"
	}
	for k, v := range c.Settings {
		s[k] = v
	}
	return s
}

// Process is a postgres postmaster started by Start; we are its parent.
type Process struct {
	PID       int
	Port      int
	DataDir   string
	SocketDir string

	t       *Toolkit
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error // set before exited is closed
	logDone chan struct{}

	mu   sync.Mutex
	logs []string // last lines of the server log
}

const logTailLines = 40

// Exited is closed when the postmaster has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Wait blocks until the postmaster exits and returns its exit error.
func (p *Process) Wait() error {
	<-p.exited
	return p.waitErr
}

// LogTail returns the last lines the server wrote.
func (p *Process) LogTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

func (p *Process) readLog(r io.ReadCloser) {
	defer close(p.logDone)
	defer r.Close()
	lg := p.t.log()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		if len(p.logs) == logTailLines {
			copy(p.logs, p.logs[1:])
			p.logs = p.logs[:logTailLines-1]
		}
		p.logs = append(p.logs, line)
		p.mu.Unlock()
		lg.Debug("postgres", "port", p.Port, "data_dir", p.DataDir, "line", line)
	}
}

// Start writes neonguard.conf, runs `postgres -D` as our child (not pg_ctl,
// so we own the process and see its exit), forwards its log to the Logger at
// debug, and returns once it accepts connections on the socket. On failure
// the error carries the tail of the server log.
func (t *Toolkit) Start(ctx context.Context, cfg ServerConfig) (*Process, error) {
	if err := cfg.normalize(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "PG_VERSION")); err != nil {
		return nil, fmt.Errorf("start postgres: %s is not a data directory: %w", cfg.DataDir, err)
	}
	if err := t.RunAs.mkdirPrivate(cfg.SocketDir); err != nil {
		return nil, fmt.Errorf("start postgres: socket dir: %w", err)
	}
	if cfg.ArchiveDir != "" {
		if err := t.RunAs.mkdirPrivate(cfg.ArchiveDir); err != nil {
			return nil, fmt.Errorf("start postgres: archive dir: %w", err)
		}
		// %p and %f expand to at most ~60 bytes; beyond the limit PostgreSQL cuts the command.
		if n := len(archiveCommand(cfg.ArchiveDir, true)); n+64 > maxCommand {
			return nil, fmt.Errorf("start postgres: archive dir path too long for archive_command (%d bytes): use a shorter data dir", n)
		}
	}
	if err := t.includeConf(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	attempts := 1
	if cfg.Port == 0 {
		attempts = 3 // the free port we picked may be taken before postgres binds it
	}
	var err error
	for i := 0; i < attempts; i++ {
		port := cfg.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, fmt.Errorf("start postgres: %w", err)
			}
		}
		var p *Process
		p, err = t.launch(ctx, cfg, port)
		if err == nil {
			return p, nil
		}
		if !strings.Contains(err.Error(), "could not bind") && !strings.Contains(err.Error(), "could not create any TCP/IP sockets") {
			break
		}
	}
	if aerr := t.RunAs.checkAccess(context.WithoutCancel(ctx), nonEmpty(cfg.DataDir, cfg.SocketDir, cfg.ArchiveDir, cfg.CertFile, cfg.KeyFile)...); aerr != nil {
		err = fmt.Errorf("%w\n%w", err, aerr)
	}
	return nil, err
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Internal ports (the proxies dial them) come from a range below Linux's ephemeral range
// (32768-60999), where the endpoints' own ports are allocated: a postgres started while
// neonguard is down can then never take the port an endpoint comes back on.
const internalPortMin, internalPortMax = 20000, 30000

func freePort() (int, error) {
	for range 50 {
		port := internalPortMin + rand.IntN(internalPortMax-internalPortMin)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("pick a free port: none free in %d-%d", internalPortMin, internalPortMax)
}

func (t *Toolkit) launch(ctx context.Context, cfg ServerConfig, port int) (*Process, error) {
	conf, err := renderConf("# Written by neonguard (pgctl) at every start; do not edit.\n", t.settings(cfg, port))
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := t.RunAs.writeFile(filepath.Join(cfg.DataDir, serverConfName), []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("start postgres: write %s: %w", serverConfName, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	// Background: ctx bounds the startup only, not the server's life.
	cmd := withHome(t.RunAs.Command(context.Background(), t.Bin.Path("postgres"), "-D", cfg.DataDir), cfg.DataDir)
	cmd.Dir = cfg.DataDir
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	w.Close()
	p := &Process{
		PID: cmd.Process.Pid, Port: port, DataDir: cfg.DataDir, SocketDir: cfg.SocketDir,
		t: t, cmd: cmd, exited: make(chan struct{}), logDone: make(chan struct{}),
	}
	go p.readLog(r)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := t.waitReady(ctx, p); err != nil {
		return nil, err
	}
	t.log().Debug("postgres ready", "pid", p.PID, "port", port, "data_dir", cfg.DataDir, "elapsed", time.Since(start))
	return p, nil
}

// waitReady polls postmaster.pid's status line (cheap: failed connection
// attempts would each fork a backend during startup) until the postmaster
// says it accepts connections, then confirms with an admin connection.
func (t *Toolkit) waitReady(ctx context.Context, p *Process) error {
	sock := socketPath(p.SocketDir, p.Port)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if _, err := os.Stat(sock); err == nil && pmAccepting(p.DataDir, p.PID) {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := t.Admin(cctx, p.SocketDir, p.Port, "postgres")
			cancel()
			if err == nil {
				_ = c.Close(context.WithoutCancel(ctx))
				return nil
			}
			last = err
		}
		select {
		case <-p.exited:
			return fmt.Errorf("postgres (%s, port %d) exited during startup: %v\n%s", p.DataDir, p.Port, p.waitErr, p.finalLog())
		case <-ctx.Done():
			_ = p.Stop(context.WithoutCancel(ctx))
			return fmt.Errorf("postgres (%s, port %d) not ready (last error: %v): %w\n%s", p.DataDir, p.Port, last, ctx.Err(), p.finalLog())
		case <-tick.C:
		}
	}
}

// pmAccepting reports whether postmaster.pid (written by pid) says
// "ready" or "standby" (hot standby: read-only connections during
// recovery). Unknown formats count as accepting, leaving it to the
// connection attempt.
func pmAccepting(dataDir string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	if strings.TrimSpace(lines[0]) != strconv.Itoa(pid) {
		return false // a stale file, not yet rewritten
	}
	if len(lines) < 8 {
		return false
	}
	switch strings.TrimSpace(lines[7]) {
	case "ready", "standby":
		return true
	case "starting", "stopping":
		return false
	}
	return true
}

// finalLog waits briefly for the log reader to drain after an exit.
func (p *Process) finalLog() string {
	select {
	case <-p.logDone:
	case <-time.After(time.Second):
	}
	return p.LogTail()
}

// Stop shuts the server down: SIGINT (fast shutdown: roll back sessions,
// checkpoint), then SIGQUIT (immediate: next start does crash recovery) after
// StopGrace or when ctx ends, then SIGKILL of the process group. It returns
// once the postmaster has exited.
func (p *Process) Stop(ctx context.Context) error {
	grace := p.t.StopGrace
	if grace == 0 {
		grace = 30 * time.Second
	}
	return stopPID(ctx, p.t.log(), p.PID, p.exited, grace)
}

// stopPID escalates signals to pid until gone is closed.
func stopPID(ctx context.Context, lg *slog.Logger, pid int, gone <-chan struct{}, grace time.Duration) error {
	signal := func(sig syscall.Signal) {
		select {
		case <-gone:
		default:
			_ = syscall.Kill(pid, sig)
		}
	}
	wait := func(d time.Duration) bool {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-gone:
			return true
		case <-tm.C:
			return false
		}
	}
	signal(syscall.SIGINT)
	tm := time.NewTimer(grace)
	defer tm.Stop()
	select {
	case <-gone:
		return nil
	case <-ctx.Done():
	case <-tm.C:
	}
	lg.Warn("postgres did not stop in time; immediate shutdown", "pid", pid)
	signal(syscall.SIGQUIT)
	if wait(5 * time.Second) {
		return nil
	}
	lg.Warn("postgres ignored immediate shutdown; killing its process group", "pid", pid)
	select {
	case <-gone:
	default:
		_ = syscall.Kill(-pid, syscall.SIGKILL) // we made it a group leader (Setpgid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if wait(10 * time.Second) {
		return nil
	}
	return fmt.Errorf("postgres pid %d survived SIGKILL", pid)
}
