package dataplane

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/neonlocal/proxy"
)

// clockTicks is the kernel's USER_HZ, the unit of CPU times in /proc/PID/stat (100 on
// every Linux this runs on).
const clockTicks = 100

// cpuTime reads the CPU time of a postmaster and its reaped children.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the ")" of the command name: utime is 14th, stime 15th, cutime 16th,
	// cstime 17th of the whole line.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, idx := range []int{11, 12, 13, 14} {
		n, _ := strconv.ParseInt(f[idx], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// sample reads a running cluster's counters: WAL position and the database's size.
func (c *cluster) sample(ctx context.Context, db string) {
	c.mu.Lock()
	p := c.proc
	c.mu.Unlock()
	if p == nil {
		return
	}
	conn, err := c.dp.tk.Admin(ctx, c.socketDir(), p.Port, "postgres")
	if err != nil {
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var lsn int64
	var size int64
	err = conn.QueryRow(ctx, `SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, COALESCE((SELECT pg_database_size(datname) FROM pg_database WHERE datname = $1), 0)`, db).Scan(&lsn, &size)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastLSN > 0 && lsn > c.lastLSN {
		c.written += lsn - c.lastLSN
	}
	c.lastLSN = lsn
	c.size = size
	if c.proc != nil {
		c.cpuRun = cpuTime(c.proc.PID)
	}
}

// Usage reports a project's consumption since the data plane started.
func (dp *DataPlane) Usage(ctx context.Context, projectID string) (neonlocal.Usage, error) {
	pm, err := dp.project(projectID)
	if err != nil {
		if isNotExist(err) {
			return neonlocal.Usage{LogicalSize: map[string]int64{}}, nil
		}
		return neonlocal.Usage{}, err
	}
	dp.mu.Lock()
	var cls []*cluster
	for _, c := range dp.clusters {
		if c.projectID == projectID {
			cls = append(cls, c)
		}
	}
	var eps []*endpoint
	for _, e := range dp.endpoints {
		if e.projectID == projectID {
			eps = append(eps, e)
		}
	}
	dp.mu.Unlock()

	u := neonlocal.Usage{LogicalSize: map[string]int64{}}
	for _, c := range cls {
		c.sample(ctx, pm.DatabaseName)
		c.mu.Lock()
		u.CPUTime += c.cpuDone + c.cpuRun
		u.WrittenBytes += c.written
		u.LogicalSize[c.branchID] = c.size
		c.mu.Unlock()
	}
	for _, e := range eps {
		e.mu.Lock()
		px := e.px
		e.mu.Unlock()
		if px == nil {
			continue
		}
		st := px.Stats()
		u.ActiveTime += st.ActiveTime
		u.TransferBytes += st.BytesOut
	}
	return u, nil
}

// Restrict refuses or accepts new connections to a project's endpoints and makes the
// branches over the logical size quota refuse writes.
func (dp *DataPlane) Restrict(ctx context.Context, projectID, reason string, readOnly []string) error {
	var refuse error
	if reason != "" {
		refuse = proxy.RefuseError{Code: "53400", Message: reason}
	}
	dp.mu.Lock()
	var eps []*endpoint
	for _, e := range dp.endpoints {
		if e.projectID == projectID {
			eps = append(eps, e)
		}
	}
	dp.mu.Unlock()
	for _, e := range eps {
		e.mu.Lock()
		changed := (e.refuse == nil) != (refuse == nil)
		e.refuse = refuse
		e.mu.Unlock()
		if changed && refuse != nil {
			// A quota suspends every compute of the project, as on Neon.
			if err := e.suspend(ctx); err != nil {
				return err
			}
		}
	}
	pm, err := dp.project(projectID)
	if err != nil {
		return nil
	}
	ro := map[string]bool{}
	for _, id := range readOnly {
		ro[id] = true
	}
	dp.mu.Lock()
	var cls []*cluster
	for _, c := range dp.clusters {
		if c.projectID == projectID {
			cls = append(cls, c)
		}
	}
	dp.mu.Unlock()
	for _, c := range cls {
		if err := c.setReadOnly(ctx, pm.DatabaseName, ro[c.branchID]); err != nil {
			return err
		}
	}
	return nil
}

// setReadOnly makes a database refuse writes (new sessions default to read-only
// transactions; sessions already open are ended so they reconnect under the rule).
func (c *cluster) setReadOnly(ctx context.Context, db string, on bool) error {
	c.mu.Lock()
	if c.readOnly == on {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	p, err := c.hold(ctx)
	if err != nil {
		return err
	}
	defer c.release()
	conn, err := c.dp.tk.Admin(ctx, c.socketDir(), p.Port, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ident := pgx.Identifier{db}.Sanitize()
	stmt := fmt.Sprintf("ALTER DATABASE %s SET default_transaction_read_only = %t", ident, on)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("branch %s: %w", c.branchID, err)
	}
	if on {
		if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", db); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.readOnly = on
	c.mu.Unlock()
	return nil
}

// Prune drops the history of a project's branches older than before (now minus the
// project's history_retention_seconds): base backups older than the newest one at or before
// that point, and the WAL segments those backups alone needed. Targets older than the
// retention are refused by the control plane, as on Neon.
func (dp *DataPlane) Prune(ctx context.Context, projectID string, before time.Time) error {
	lock := dp.projectLock(projectID)
	if !lock.TryLock() {
		return nil // a restore or branch is busy with the project: prune next time
	}
	defer lock.Unlock()
	dirs, _ := filepath.Glob(filepath.Join(dp.projectDir(projectID), "branches", "*"))
	for _, dir := range dirs {
		if strings.HasSuffix(dir, deletedSuffix) {
			continue // a deleted branch whose files are being removed
		}
		c := dp.cluster(projectID, filepath.Base(dir))
		c.metaMu.Lock()
		err := dp.pruneBranch(ctx, c, before)
		c.metaMu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

func (dp *DataPlane) pruneBranch(ctx context.Context, c *cluster, before time.Time) error {
	m, err := c.meta()
	if err != nil || len(m.Backups) < 2 {
		return nil
	}
	keep, ok := m.latestBefore(before)
	if !ok {
		return nil
	}
	var kept []backup
	for _, b := range m.Backups {
		if b.Time.Before(keep.Time) {
			if err := os.RemoveAll(filepath.Join(c.backupsDir(), b.Dir)); err != nil {
				return err
			}
			continue
		}
		kept = append(kept, b)
	}
	if len(kept) == len(m.Backups) {
		return nil
	}
	m.Backups = kept
	if err := writeJSON(c.metaPath(), m); err != nil {
		return err
	}
	if seg := startSegment(filepath.Join(c.backupsDir(), keep.Dir)); seg != "" {
		// pg_archivecleanup removes the segments before seg (and keeps timeline history).
		tk, err := dp.toolkitOf(c.dataDir())
		if err != nil {
			return fmt.Errorf("prune %s: %w", c.branchID, err)
		}
		cmd := exec.CommandContext(ctx, tk.Bin.Path("pg_archivecleanup"), c.archiveDir(), seg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("prune %s: pg_archivecleanup: %v: %s", c.branchID, err, out)
		}
	}
	return nil
}

// startSegment reads the WAL file a base backup starts in from its backup_label.
func startSegment(backupDir string) string {
	b, err := os.ReadFile(filepath.Join(backupDir, "backup_label"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		// START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
		if _, rest, ok := strings.Cut(line, "(file "); ok && strings.HasPrefix(line, "START WAL LOCATION") {
			return strings.TrimSuffix(strings.TrimSpace(rest), ")")
		}
	}
	return ""
}

// parseLSN reads a PostgreSQL LSN ("16/B374D848") as a byte position; 0 when malformed.
func parseLSN(s string) int64 {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0
	}
	return int64(h<<32 | l)
}
