package pgctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Admin opens a superuser connection over the unix socket (trust auth; the
// socket dir is private). db "" means "postgres".
func (t *Toolkit) Admin(ctx context.Context, socketDir string, port int, db string) (*pgx.Conn, error) {
	socketDir, err := filepath.Abs(socketDir)
	if err != nil {
		return nil, err
	}
	if db == "" {
		db = "postgres"
	}
	cfg, err := pgx.ParseConfig("sslmode=disable connect_timeout=10")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port = socketDir, uint16(port)
	cfg.User, cfg.Password, cfg.Database = AdminUser, "", db
	cfg.TLSConfig, cfg.Fallbacks = nil, nil
	cfg.RuntimeParams["application_name"] = "neonguard"
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("admin connection to %s port %d: %w", socketDir, port, err)
	}
	return c, nil
}

// BaseBackup takes a base backup of the running cluster into dst (which must
// not exist), via dst+".tmp" and a rename. WAL is streamed (-X stream) so the
// result is self-contained: it starts as is (crash recovery from its
// backup_label) or, with PrepareRecovery, replays archived WAL to a target.
func (t *Toolkit) BaseBackup(ctx context.Context, socketDir string, port int, dst string) error {
	socketDir, err := filepath.Abs(socketDir)
	if err != nil {
		return err
	}
	dst, err = filepath.Abs(dst)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("base backup: %s already exists", dst)
	}
	tmp := dst + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := t.RunAs.mkdirPrivate(tmp); err != nil {
		return fmt.Errorf("base backup: %w", err)
	}
	args := []string{
		"-h", socketDir, "-p", fmt.Sprint(port), "-U", AdminUser, "-w",
		"-D", tmp, "-F", "p", "-X", "stream", "--checkpoint=fast",
		"--label", "neonguard " + filepath.Base(dst),
		// One syncfs below instead of pg_basebackup's fsync of every file.
		"--no-sync",
	}
	start := time.Now()
	cmd := withHome(t.RunAs.Command(ctx, t.Bin.Path("pg_basebackup"), args...), tmp)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("pg_basebackup to %s: %w: %s", dst, err, tail(string(out), 20))
	}
	// A backup of a recovering or standby cluster must not inherit its signals.
	for _, n := range []string{"standby.signal", "recovery.signal"} {
		_ = os.Remove(filepath.Join(tmp, n))
	}
	if !t.NoSync {
		if err := syncFS(tmp); err != nil {
			_ = os.RemoveAll(tmp)
			return fmt.Errorf("base backup: sync: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("base backup: %w", err)
	}
	if !t.NoSync {
		_ = syncDir(filepath.Dir(dst))
	}
	t.log().Debug("base backup done", "dst", dst, "elapsed", time.Since(start))
	return nil
}

// RecoveryTarget is where recovery stops. Set at most one field; none means
// replay to the end of the archive.
type RecoveryTarget struct {
	Time *time.Time
	LSN  string // e.g. "0/3000060"
	Name string // a restore point made with pg_create_restore_point
}

// RecoveryTimeLayout formats recovery_target_time with an explicit offset, so
// the server's timezone setting cannot shift it.
const RecoveryTimeLayout = "2006-01-02 15:04:05.999999-07"

var lsnRE = regexp.MustCompile(`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`)

// PrepareRecovery turns the stopped cluster in dataDir (normally a copy of a
// base backup) into an archive recovery: recovery.signal plus
// neonguard.recovery.conf with a restore_command that takes each WAL file
// from the first of archiveDirs holding it (child first, then ancestors), the
// target, recovery_target_action=promote, inclusive=on and timeline=latest.
// The next Start replays and promotes; wait with WaitPromoted.
//
// The target must be reached or PostgreSQL ≥ 13 fails with "recovery ended
// before configured recovery target was reached": for a time target, run
// ForceSwitch on the source after the target time first.
func (t *Toolkit) PrepareRecovery(dataDir string, archiveDirs []string, target RecoveryTarget) error {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err != nil {
		return fmt.Errorf("prepare recovery: %s is not a data directory: %w", dataDir, err)
	}
	if len(archiveDirs) == 0 {
		return errors.New("prepare recovery: no archive directories")
	}
	dirs := make([]string, len(archiveDirs))
	for i, d := range archiveDirs {
		if dirs[i], err = filepath.Abs(d); err != nil {
			return err
		}
	}
	if n := len(restoreCommand(dirs)); n+64 > maxCommand {
		return fmt.Errorf("prepare recovery: archive paths too long for restore_command (%d bytes): use a shorter data dir", n)
	}
	n := 0
	s := map[string]string{
		"restore_command":          restoreCommand(dirs),
		"recovery_target_timeline": "latest",
	}
	if target.Time != nil {
		n++
		s["recovery_target_time"] = target.Time.UTC().Format(RecoveryTimeLayout)
	}
	if target.LSN != "" {
		if !lsnRE.MatchString(target.LSN) {
			return fmt.Errorf("prepare recovery: malformed LSN %q", target.LSN)
		}
		n++
		s["recovery_target_lsn"] = target.LSN
	}
	if target.Name != "" {
		n++
		s["recovery_target_name"] = target.Name
	}
	if n > 1 {
		return errors.New("prepare recovery: set at most one recovery target")
	}
	if n == 1 {
		s["recovery_target_action"] = "promote"
		s["recovery_target_inclusive"] = "on"
	}
	conf, err := renderConf("# Written by neonguard (pgctl) for one archive recovery; ignored without recovery.signal.\n", s)
	if err != nil {
		return fmt.Errorf("prepare recovery: %w", err)
	}
	if err := t.includeConf(dataDir); err != nil {
		return fmt.Errorf("prepare recovery: %w", err)
	}
	if err := t.RunAs.writeFile(filepath.Join(dataDir, recoveryConfName), []byte(conf), 0o600); err != nil {
		return fmt.Errorf("prepare recovery: %w", err)
	}
	_ = os.Remove(filepath.Join(dataDir, "standby.signal")) // standby would never promote
	if err := t.RunAs.writeFile(filepath.Join(dataDir, "recovery.signal"), nil, 0o600); err != nil {
		return fmt.Errorf("prepare recovery: %w", err)
	}
	return nil
}

// ClearRecovery empties the recovery settings after promotion, so copies of
// this cluster do not carry a stale restore_command and target (harmless, as
// they are ignored without recovery.signal, but confusing).
func (t *Toolkit) ClearRecovery(dataDir string) error {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	return t.RunAs.writeFile(filepath.Join(dataDir, recoveryConfName), nil, 0o600)
}

// WaitPromoted waits until the server at socketDir/port has left recovery
// (pg_is_in_recovery() is false). It gives up when ctx ends, or when the
// server has been unreachable for 3s (it died, e.g. on an unreachable target).
func (t *Toolkit) WaitPromoted(ctx context.Context, socketDir string, port int) error {
	var last error
	var downSince time.Time
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		inRecovery, err := t.inRecovery(ctx, socketDir, port)
		switch {
		case err == nil && !inRecovery:
			return nil
		case err == nil:
			downSince = time.Time{}
		default:
			last = err
			if _, serr := os.Stat(socketPath(socketDir, port)); serr != nil {
				if downSince.IsZero() {
					downSince = time.Now()
				} else if time.Since(downSince) > 3*time.Second {
					return fmt.Errorf("wait for promotion: server on port %d is gone: %w", port, err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for promotion on port %d (last error: %v): %w", port, last, ctx.Err())
		case <-tick.C:
		}
	}
}

// WaitPromoted is Toolkit.WaitPromoted that also fails fast, with the server
// log, if the process exits (e.g. "recovery ended before configured recovery
// target was reached").
func (p *Process) WaitPromoted(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := p.t.WaitPromoted(ctx, p.SocketDir, p.Port)
	select {
	case <-p.exited:
		return fmt.Errorf("postgres (%s) exited during recovery: %v\n%s", p.DataDir, p.waitErr, p.finalLog())
	default:
	}
	return err
}

func (t *Toolkit) inRecovery(ctx context.Context, socketDir string, port int) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := t.Admin(cctx, socketDir, port, "")
	if err != nil {
		return false, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var b bool
	err = c.QueryRow(cctx, "SELECT pg_is_in_recovery()").Scan(&b)
	return b, err
}

// ForceSwitch makes the WAL up to now restorable from the archive: it commits
// a transaction with an xid (a commit record stamped now: recovery to a time
// target stops only at a commit after the target), switches to a new segment
// (only finished segments are archived) and waits until every segment up to
// that one is archived. It returns the insert LSN right after the commit,
// which is a valid recovery_target_lsn for "now".
func (t *Toolkit) ForceSwitch(ctx context.Context, socketDir string, port int) (lsn string, err error) {
	c, err := t.Admin(ctx, socketDir, port, "")
	if err != nil {
		return "", err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var mode string
	if err := c.QueryRow(ctx, "SELECT current_setting('archive_mode')").Scan(&mode); err != nil {
		return "", fmt.Errorf("force switch: %w", err)
	}
	if mode == "off" {
		return "", errors.New("force switch: archive_mode is off (start the cluster with an ArchiveDir)")
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("force switch: %w", err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		_ = tx.Rollback(ctx)
		return "", fmt.Errorf("force switch: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("force switch: %w", err)
	}
	var seg string
	if err := c.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return "", fmt.Errorf("force switch: %w", err)
	}
	// pg_walfile_name of the switch's end position names the segment just finished.
	if err := c.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg); err != nil {
		return "", fmt.Errorf("force switch: %w", err)
	}
	// Archived = no .ready status file left for it or anything older. The
	// switch flushed the segment, so its .ready already exists.
	const q = `SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready' AND left(name, -6) <= $1`
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var pending int
		if err := c.QueryRow(ctx, q, seg).Scan(&pending); err != nil {
			return "", fmt.Errorf("force switch: %w", err)
		}
		if pending == 0 {
			return lsn, nil
		}
		select {
		case <-ctx.Done():
			var failed, lastFailed string
			_ = c.QueryRow(context.WithoutCancel(ctx), "SELECT failed_count::text, coalesce(last_failed_wal, '') FROM pg_stat_archiver").Scan(&failed, &lastFailed)
			return "", fmt.Errorf("force switch: segment %s not archived (archiver failures: %s, last failed: %q; see server log): %w", seg, failed, lastFailed, ctx.Err())
		case <-tick.C:
		}
	}
}

// CurrentLSN returns the current WAL insert position (or, during recovery,
// the last replayed position).
func (t *Toolkit) CurrentLSN(ctx context.Context, socketDir string, port int) (string, error) {
	c, err := t.Admin(ctx, socketDir, port, "")
	if err != nil {
		return "", err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var lsn string
	err = c.QueryRow(ctx, "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text").Scan(&lsn)
	if err != nil {
		return "", fmt.Errorf("current lsn: %w", err)
	}
	return lsn, nil
}

// ControlData runs pg_controldata on dataDir and returns its "key: value"
// lines, e.g. "Latest checkpoint's REDO location", "Latest checkpoint's
// TimeLineID", "Database cluster state".
func (t *Toolkit) ControlData(ctx context.Context, dataDir string) (map[string]string, error) {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	cmd := t.RunAs.Command(ctx, t.Bin.Path("pg_controldata"), "-D", dataDir)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pg_controldata %s: %w%s", dataDir, err, stderrOf(err))
	}
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m, nil
}
