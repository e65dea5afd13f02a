package dataplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
)

// holdGrace is how long a cluster started for the data plane's own work (a backup, a
// restore) keeps running afterwards, so the endpoint start that usually follows is warm.
const holdGrace = 10 * time.Second

// cluster is a branch's PostgreSQL: its directories and, while it runs, its process. It runs
// while an endpoint's proxy wants it or while the data plane holds it for its own work.
type cluster struct {
	dp        *DataPlane
	projectID string
	branchID  string

	mu     sync.Mutex
	proc   *pgctl.Process
	holds  int
	wanted bool // a proxy started it and has not stopped it
	timer  *time.Timer

	// Usage since the data plane started, read by sample.
	lastLSN  int64
	written  int64
	size     int64
	cpuDone  time.Duration // CPU of runs that ended
	cpuRun   time.Duration // CPU of the current run, as last sampled
	readOnly bool

	backingUp chan struct{} // closed when the base backup running in the background ends
	metaMu    sync.Mutex    // serializes read-modify-write of branch.json (backups, pruning)
}

func (dp *DataPlane) cluster(projectID, branchID string) *cluster {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	c, ok := dp.clusters[branchID]
	if !ok {
		c = &cluster{dp: dp, projectID: projectID, branchID: branchID}
		dp.clusters[branchID] = c
	}
	return c
}

func (c *cluster) dir() string        { return c.dp.branchDir(c.projectID, c.branchID) }
func (c *cluster) dataDir() string    { return filepath.Join(c.dir(), "data") }
func (c *cluster) archiveDir() string { return filepath.Join(c.dir(), "archive") }

// restoreArchiveDir receives the WAL archived while an in-place restore is rebuilt.
func (c *cluster) restoreArchiveDir() string { return filepath.Join(c.dir(), "archive.restore") }
func (c *cluster) backupsDir() string        { return filepath.Join(c.dir(), "backups") }
func (c *cluster) metaPath() string          { return filepath.Join(c.dir(), "branch.json") }
func (c *cluster) socketDir() string         { return filepath.Join(c.dp.sockRoot, c.branchID) }

func (c *cluster) meta() (branchMeta, error) {
	var m branchMeta
	err := readJSON(c.metaPath(), &m)
	if isNotExist(err) {
		return branchMeta{}, nil
	}
	return m, err
}

func (dp *DataPlane) serverConfig(dataDir, archiveDir, socketDir string) pgctl.ServerConfig {
	settings := map[string]string{"max_connections": "50", "shared_buffers": "16MB"}
	for k, v := range dp.o.Settings {
		settings[k] = v
	}
	return pgctl.ServerConfig{DataDir: dataDir, SocketDir: socketDir, ArchiveDir: archiveDir,
		CertFile: dp.cert, KeyFile: dp.key, Settings: settings}
}

// ensureDirs creates the branch's directories, owned by the PostgreSQL user.
func (c *cluster) ensureDirs() error {
	for _, d := range []string{c.dir(), c.archiveDir(), c.backupsDir(), c.socketDir()} {
		if err := c.dp.mkdir(d); err != nil {
			return err
		}
	}
	return nil
}

// startLocked starts postgres unless it runs; c.mu is held.
func (c *cluster) startLocked(ctx context.Context) (*pgctl.Process, error) {
	if c.proc != nil {
		select {
		case <-c.proc.Exited():
			c.proc = nil // it died: start it again
		default:
			return c.proc, nil
		}
	}
	if !exists(filepath.Join(c.dataDir(), "PG_VERSION")) {
		return nil, fmt.Errorf("branch %s has no data", c.branchID)
	}
	if err := c.ensureDirs(); err != nil {
		return nil, err
	}
	if _, err := c.dp.tk.StopOrphan(ctx, c.dataDir()); err != nil {
		return nil, fmt.Errorf("branch %s: stop orphaned postgres: %w", c.branchID, err)
	}
	tk, err := c.dp.toolkitOf(c.dataDir())
	if err != nil {
		return nil, fmt.Errorf("branch %s: %w", c.branchID, err)
	}
	p, err := tk.Start(ctx, c.dp.serverConfig(c.dataDir(), c.archiveDir(), c.socketDir()))
	if err != nil {
		return nil, fmt.Errorf("branch %s: start postgres: %w", c.branchID, err)
	}
	c.proc = p
	if c.lastLSN == 0 {
		// Written data counts from the first start in this process: the WAL position now.
		if lsn, err := c.dp.tk.CurrentLSN(ctx, c.socketDir(), p.Port); err == nil {
			c.lastLSN = parseLSN(lsn)
		}
	}
	return p, nil
}

// hold starts the cluster for the data plane's own work; release ends the hold.
func (c *cluster) hold(ctx context.Context) (*pgctl.Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.startLocked(ctx)
	if err != nil {
		return nil, err
	}
	c.holds++
	c.stopTimerLocked()
	return p, nil
}

func (c *cluster) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holds--
	if c.holds == 0 && !c.wanted && c.proc != nil {
		c.stopTimerLocked()
		c.timer = time.AfterFunc(holdGrace, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.holds == 0 && !c.wanted {
				_ = c.stopLocked(context.Background())
			}
		})
	}
}

func (c *cluster) stopTimerLocked() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

// want starts the cluster for an endpoint (the proxy's Start).
func (c *cluster) want(ctx context.Context) (*pgctl.Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.startLocked(ctx)
	if err != nil {
		return nil, err
	}
	c.wanted = true
	c.stopTimerLocked()
	return p, nil
}

// unwant is the proxy's Stop: the endpoint suspended. The process stops unless the data
// plane holds it.
func (c *cluster) unwant(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wanted = false
	if c.holds > 0 {
		return nil
	}
	return c.stopLocked(ctx)
}

// stop stops the process whatever wants it (restore, delete, close).
func (c *cluster) stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(ctx)
}

func (c *cluster) stopLocked(ctx context.Context) error {
	c.stopTimerLocked()
	if c.proc == nil {
		return nil
	}
	// A stop always runs to a clean shutdown (pgctl escalates after its own grace period):
	// a caller giving up must not turn it into an immediate one, which needs crash recovery.
	ctx = context.WithoutCancel(ctx)
	cpu := cpuTime(c.proc.PID) // the last reading before the process is gone
	err := c.proc.Stop(ctx)
	c.cpuDone += max(cpu, c.cpuRun)
	c.cpuRun = 0
	c.proc = nil
	return err
}

func (c *cluster) running() *pgctl.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return nil
	}
	select {
	case <-c.proc.Exited():
		c.proc = nil
		return nil
	default:
		return c.proc
	}
}

// takeBackup adds a base backup of the running cluster to the branch's history.
func (c *cluster) takeBackup(ctx context.Context) error {
	p, err := c.hold(ctx)
	if err != nil {
		return err
	}
	defer c.release()
	lsn, err := c.dp.tk.CurrentLSN(ctx, c.socketDir(), p.Port)
	if err != nil {
		return fmt.Errorf("branch %s: %w", c.branchID, err)
	}
	name := strconv.FormatInt(time.Now().UnixMicro(), 10)
	dst := filepath.Join(c.backupsDir(), name)
	tk, err := c.dp.toolkitOf(c.dataDir())
	if err != nil {
		return fmt.Errorf("branch %s: %w", c.branchID, err)
	}
	if err := tk.BaseBackup(ctx, c.socketDir(), p.Port, dst); err != nil {
		return fmt.Errorf("branch %s: base backup: %w", c.branchID, err)
	}
	// The backup is consistent at its end, which is before now: a target at or after now
	// can start from it.
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	m, err := c.meta()
	if err != nil {
		return err
	}
	m.Backups = append(m.Backups, backup{Dir: name, Time: time.Now().UTC(), LSN: lsn})
	sortBackups(m.Backups)
	return writeJSON(c.metaPath(), m)
}

// takeBackupAsync takes a base backup in the background: a new branch or a restored one is
// usable at once, and its point-in-time history starts when the backup ends (waitBackup).
func (c *cluster) takeBackupAsync() {
	c.mu.Lock()
	if c.backingUp != nil {
		c.mu.Unlock()
		return
	}
	done := make(chan struct{})
	c.backingUp = done
	c.mu.Unlock()
	c.dp.wg.Add(1)
	go func() {
		defer c.dp.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		if err := c.takeBackup(ctx); err != nil {
			c.dp.log.Error("base backup failed; point-in-time history of the branch starts at its next backup",
				"branch", c.branchID, "err", err)
		}
		c.mu.Lock()
		c.backingUp = nil
		c.mu.Unlock()
		close(done)
	}()
}

// waitBackup waits for a background base backup of the cluster, if one runs.
func (c *cluster) waitBackup(ctx context.Context) error {
	c.mu.Lock()
	done := c.backingUp
	c.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// seedBackup records a copy of a branch's data dir, made before the branch first starts (a
// cleanly stopped cluster or a fresh base backup), as its first base backup: the branch's
// point-in-time history then starts at its creation, not when a later backup ends.
//
// ref is an immutable dir the copy links identical files to (pgctl.CopyBackupLinking): the
// template or a base backup of where the data came from; "" copies everything. walArchive
// is the archive the copied cluster archived into, whose segments its pg_wal still holds.
func (c *cluster) seedBackup(ctx context.Context, dataDir, ref, walArchive string) error {
	name, err := c.copyBackup(ctx, dataDir, ref, walArchive)
	if err != nil {
		return err
	}
	return c.addBackup(name)
}

// copyBackup copies a stopped data dir under backups/ without listing it in the branch's
// history yet (addBackup does).
func (c *cluster) copyBackup(ctx context.Context, dataDir, ref, walArchive string) (string, error) {
	if err := c.dp.mkdir(c.backupsDir()); err != nil {
		return "", err
	}
	name := strconv.FormatInt(time.Now().UnixMicro(), 10)
	if err := c.dp.tk.CopyBackupLinking(ctx, dataDir, filepath.Join(c.backupsDir(), name), ref, walArchive); err != nil {
		return "", fmt.Errorf("branch %s: base backup: %w", c.branchID, err)
	}
	return name, nil
}

// newestBackupDir is the directory of the branch's newest listed base backup ("" if none).
func (c *cluster) newestBackupDir() string {
	m, err := c.meta()
	if err != nil || len(m.Backups) == 0 {
		return ""
	}
	return filepath.Join(c.backupsDir(), m.Backups[len(m.Backups)-1].Dir)
}

// addBackup lists a copied backup in the branch's history (idempotent).
func (c *cluster) addBackup(name string) error {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	m, err := c.meta()
	if err != nil {
		return err
	}
	for _, b := range m.Backups {
		if b.Dir == name {
			return nil
		}
	}
	m.Backups = append(m.Backups, backup{Dir: name, Time: time.Now().UTC()})
	sortBackups(m.Backups)
	return writeJSON(c.metaPath(), m)
}

// dropUnlistedBackups removes backup copies that never entered the branch's history (a
// restore that crashed before its swap).
func (c *cluster) dropUnlistedBackups() {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	m, err := c.meta()
	if err != nil {
		return
	}
	listed := map[string]bool{}
	for _, b := range m.Backups {
		listed[b.Dir] = true
	}
	entries, _ := os.ReadDir(c.backupsDir())
	for _, e := range entries {
		if !listed[e.Name()] {
			_ = os.RemoveAll(filepath.Join(c.backupsDir(), e.Name()))
		}
	}
}
