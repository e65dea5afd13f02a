package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
)

// CreateBranch makes a branch's cluster: a root from the template with the project's role and
// database, or a child from its parent's head or a point of its history.
func (dp *DataPlane) CreateBranch(ctx context.Context, spec neonlocal.BranchSpec) error {
	lock := dp.projectLock(spec.ProjectID)
	lock.Lock()
	defer lock.Unlock()

	c := dp.cluster(spec.ProjectID, spec.BranchID)
	if exists(filepath.Join(c.dataDir(), "PG_VERSION")) {
		return nil // already made (an operation re-run after a restart)
	}
	// An attempt a crash interrupted may have archived WAL of a timeline that never came to
	// be: the branch's history starts over.
	if err := os.RemoveAll(c.archiveDir()); err != nil {
		return err
	}
	if err := c.ensureDirs(); err != nil {
		return err
	}
	tmp := c.dataDir() + ".new"
	_ = os.RemoveAll(tmp)
	var ref string // what the first base backup links unchanged files to
	switch {
	case spec.FromSnapshotID != "":
		if err := dp.fromSnapshot(ctx, c, dp.snapshotDir(spec.ProjectID, spec.FromSnapshotID), tmp); err != nil {
			return fmt.Errorf("branch %s from snapshot %s: %w", spec.BranchID, spec.FromSnapshotID, err)
		}
		return dp.publish(c, tmp)
	case spec.ParentID == "":
		if err := dp.newRoot(ctx, spec, tmp); err != nil {
			return err
		}
		if tk, err := dp.toolkitOf(tmp); err == nil {
			ref = dp.templateDir(tk.Bin.Major)
		}
	default:
		parent := dp.cluster(spec.ProjectID, spec.ParentID)
		var at *time.Time
		if !spec.ParentTime.IsZero() {
			at = &spec.ParentTime
		}
		if err := dp.materialize(ctx, parent, at, tmp, c.archiveDir()); err != nil {
			return fmt.Errorf("branch %s from %s: %w", spec.BranchID, spec.ParentID, err)
		}
		ref = parent.newestBackupDir()
	}
	if err := c.seedBackup(ctx, tmp, ref, c.archiveDir()); err != nil {
		return err
	}
	return dp.publish(c, tmp)
}

// publish moves a branch's finished data dir (tmp, synced) into place and syncs the rename:
// once CreateBranch returns, a crash, even of the machine, cannot take the branch away (a
// lost rename would leave data.new, which the next start drops and rebuilds from the
// parent's state then, not the state the branch was made with).
func (dp *DataPlane) publish(c *cluster, tmp string) error {
	if err := os.Rename(tmp, c.dataDir()); err != nil {
		return err
	}
	if dp.tk.NoSync {
		return nil
	}
	return syncDir(c.dir())
}

// fromSnapshot makes a branch's data dir (dst) and its first base backup from a snapshot:
// the data is a copy (a reflink where the filesystem can), the backup hard links to the
// snapshot's files, as neither is ever written in place.
func (dp *DataPlane) fromSnapshot(ctx context.Context, c *cluster, snapDir, dst string) error {
	if err := dp.tk.CopyCluster(ctx, snapDir, dst); err != nil {
		return err
	}
	if err := dp.mkdir(c.backupsDir()); err != nil {
		return err
	}
	name := strconv.FormatInt(time.Now().UnixMicro(), 10)
	if err := dp.tk.LinkCluster(ctx, snapDir, filepath.Join(c.backupsDir(), name)); err != nil {
		return fmt.Errorf("branch %s: base backup: %w", c.branchID, err)
	}
	return c.addBackup(name)
}

// syncDir makes the entries of dir (a rename into it) durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// newRoot copies the template into dst and creates the project's role and database in it.
func (dp *DataPlane) newRoot(ctx context.Context, spec neonlocal.BranchSpec, dst string) error {
	pm := projectMeta{PgVersion: spec.PgVersion, RoleName: spec.RoleName, RolePassword: spec.RolePassword, DatabaseName: spec.DatabaseName}
	if old, err := dp.project(spec.ProjectID); err == nil {
		pm = old // a root made again (reconciling after a crash) keeps the project's role
	}
	tk, err := dp.toolkit(pm.PgVersion)
	if err != nil {
		return fmt.Errorf("branch %s: %w", spec.BranchID, err)
	}
	if err := dp.ensureTemplate(ctx, tk); err != nil {
		return err
	}
	if err := dp.mkdir(dp.projectDir(spec.ProjectID)); err != nil {
		return err
	}
	// A ready copy from the pool, or the template copied now; the pool refills behind.
	if !dp.poolTake(tk, dst) {
		if err := tk.CopyCluster(ctx, dp.templateDir(tk.Bin.Major), dst); err != nil {
			return err
		}
	}
	dp.poolRefill(tk)
	// Set the role up on a private instance (no TCP listener for clients yet). It does not
	// archive: with archiving on, PostgreSQL ends a run with a segment switch, which leaves
	// a second segment in pg_wal and in the first base backup, and a third in the archive.
	// The branch's history starts at that backup, taken after this run, whose pg_wal holds
	// the segment its checkpoint is in; the branch archives that segment once it is full.
	sock := filepath.Join(dp.sockRoot, spec.BranchID+".init")
	if err := dp.mkdir(sock); err != nil {
		return err
	}
	defer os.RemoveAll(sock)
	p, err := tk.Start(ctx, privateConfig(dp.serverConfig(dst, "", sock), tk.Bin.Major))
	if err != nil {
		return err
	}
	defer p.Stop(context.WithoutCancel(ctx))
	conn, err := tk.Admin(ctx, sock, p.Port, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	role, db := pgx.Identifier{pm.RoleName}.Sanitize(), pgx.Identifier{pm.DatabaseName}.Sanitize()
	// The template holds a role and a database made for it (ensureTemplate): they become the
	// project's by name, and the role gets the project's password (a new SCRAM verifier, with
	// its own salt); the template's role has none, so nothing of it can log in.
	// The password is a literal in DDL (no parameters there); it is generated by the control
	// plane from [a-zA-Z0-9_], and quoted anyway.
	stmts := []string{
		fmt.Sprintf("ALTER ROLE %s RENAME TO %s", pgx.Identifier{templateRole}.Sanitize(), role),
		fmt.Sprintf("ALTER ROLE %s PASSWORD %s", role, quoteLiteral(pm.RolePassword)),
		fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", pgx.Identifier{templateDB}.Sanitize(), db),
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("set up role and database: %w", err)
		}
	}
	if err := writeJSON(filepath.Join(dp.projectDir(spec.ProjectID), "project.json"), pm); err != nil {
		return err
	}
	return p.Stop(ctx)
}

func quoteLiteral(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}

// materialize builds in dst the state of src at a point in time (nil = its head). The
// result is a stopped cluster on a timeline of its own, archiving into archiveDir.
func (dp *DataPlane) materialize(ctx context.Context, src *cluster, at *time.Time, dst, archiveDir string) error {
	if at == nil {
		// pg_basebackup of the parent's own major: an older one refuses a newer server.
		tk, err := dp.toolkitOf(src.dataDir())
		if err != nil {
			return err
		}
		if src.running() != nil {
			// A base backup of the running parent is its head. The hold pins the process
			// (it may have restarted, on another port, since running() looked).
			p, err := src.hold(ctx)
			if err != nil {
				return err
			}
			defer src.release()
			return tk.BaseBackup(ctx, src.socketDir(), p.Port, dst)
		}
		// Hold the parent's lock so it cannot start while it is copied.
		src.mu.Lock()
		defer src.mu.Unlock()
		if src.proc == nil {
			if _, err := dp.tk.StopOrphan(ctx, src.dataDir()); err != nil {
				return err
			}
			return dp.tk.CopyCluster(ctx, src.dataDir(), dst)
		}
		return tk.BaseBackup(ctx, src.socketDir(), src.proc.Port, dst)
	}
	return dp.pointInTime(ctx, src, *at, dst, archiveDir)
}

// pointInTime replays src's archived WAL from its latest base backup before t up to t.
func (dp *DataPlane) pointInTime(ctx context.Context, src *cluster, t time.Time, dst, archiveDir string) error {
	if err := src.waitBackup(ctx); err != nil {
		return err
	}
	// A commit after t must be in the archive, or recovery never reaches t.
	p, err := src.hold(ctx)
	if err != nil {
		return err
	}
	_, err = dp.tk.ForceSwitch(ctx, src.socketDir(), p.Port)
	src.release()
	if err != nil {
		return err
	}
	m, err := src.meta()
	if err != nil {
		return err
	}
	target := pgctl.RecoveryTarget{Time: &t}
	b, ok := m.latestBefore(t)
	if !ok {
		if len(m.Backups) == 0 {
			return fmt.Errorf("branch %s has no base backup", src.branchID)
		}
		// t is before the first backup, taken right after the branch was made: the state
		// at that backup is the branch's first state, and so the state at t.
		b = m.Backups[0]
		first := b.Time
		target = pgctl.RecoveryTarget{Time: &first}
	}
	if err := dp.tk.CopyCluster(ctx, filepath.Join(src.backupsDir(), b.Dir), dst); err != nil {
		return err
	}
	if err := dp.tk.PrepareRecovery(dst, []string{src.archiveDir()}, target); err != nil {
		return err
	}
	return dp.recoverAndStop(ctx, dst, archiveDir)
}

// recoverAndStop starts a cluster in recovery on a private socket, waits until it is
// promoted, and stops it cleanly.
func (dp *DataPlane) recoverAndStop(ctx context.Context, dataDir, archiveDir string) error {
	sock, err := os.MkdirTemp(dp.sockRoot, "r")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sock)
	if err := dp.tk.RunAs.Chown(sock); err != nil {
		return err
	}
	tk, err := dp.toolkitOf(dataDir)
	if err != nil {
		return err
	}
	p, err := tk.Start(ctx, dp.serverConfig(dataDir, archiveDir, sock))
	if err != nil {
		return err
	}
	if err := dp.tk.WaitPromoted(ctx, sock, p.Port); err != nil {
		_ = p.Stop(context.WithoutCancel(ctx))
		return err
	}
	return p.Stop(ctx)
}

// DeleteBranch stops and removes a branch's cluster.
func (dp *DataPlane) DeleteBranch(ctx context.Context, projectID, branchID string) error {
	c := dp.cluster(projectID, branchID)
	if err := c.waitBackup(ctx); err != nil {
		return err
	}
	for _, e := range dp.endpointsOf(branchID) {
		if err := e.suspend(ctx); err != nil {
			return err
		}
	}
	if err := c.stop(ctx); err != nil {
		return err
	}
	dp.mu.Lock()
	delete(dp.clusters, branchID)
	dp.mu.Unlock()
	if err := os.RemoveAll(c.socketDir()); err != nil {
		return err
	}
	// Its files go after the operation, as a deleted snapshot's do: unlinking an initdb'd
	// cluster's 39 MB took 60–90 ms here.
	return dp.removeInBackground(c.dir(), "branch")
}

// restoreJournal records an in-place restore between its two renames, so a crash in
// between is finished at the next start.
type restoreJournal struct {
	BranchID       string `json:"branch_id"`
	BackupBranchID string `json:"backup_branch_id,omitempty"`
	Seed           string `json:"seed,omitempty"` // the new timeline's base backup, listed at the swap
}

// RestoreBranch rewrites a branch in place: the new state is built next to it, then swapped
// in under a journal; the old state becomes the backup branch.
func (dp *DataPlane) RestoreBranch(ctx context.Context, spec neonlocal.RestoreSpec) error {
	lock := dp.projectLock(spec.ProjectID)
	lock.Lock()
	defer lock.Unlock()

	b := dp.cluster(spec.ProjectID, spec.BranchID)
	src := dp.cluster(spec.ProjectID, spec.SourceBranchID)
	next := b.dataDir() + ".restore"
	_ = os.RemoveAll(next)
	var at *time.Time
	if !spec.Target.IsZero() {
		at = &spec.Target
	}
	// The rebuilt state archives its new timeline into a scratch archive, moved into the
	// branch's archive with the swap: a restore a crash cut short leaves no trace of its
	// timeline behind to mislead a later recovery.
	scratch := b.restoreArchiveDir()
	_ = os.RemoveAll(scratch)
	if err := dp.mkdir(scratch); err != nil {
		return err
	}
	if err := dp.materialize(ctx, src, at, next, scratch); err != nil {
		_ = os.RemoveAll(next)
		_ = os.RemoveAll(scratch)
		return fmt.Errorf("restore branch %s: %w", spec.BranchID, err)
	}
	// The branch's new timeline starts here: its base backup is copied while the old state
	// still serves, and enters the branch's history with the swap (the journal names it).
	seed, err := b.copyBackup(ctx, next, src.newestBackupDir(), scratch)
	if err != nil {
		_ = os.RemoveAll(next)
		return err
	}

	// Swap: connections drop briefly, as on Neon.
	for _, e := range dp.endpointsOf(spec.BranchID) {
		if err := e.suspend(ctx); err != nil {
			return err
		}
	}
	if err := b.stop(ctx); err != nil {
		return err
	}
	journal := filepath.Join(b.dir(), "restore.json")
	if err := writeJSON(journal, restoreJournal{BranchID: spec.BranchID, BackupBranchID: spec.BackupBranchID, Seed: seed}); err != nil {
		return err
	}
	if err := dp.finishRestore(spec.ProjectID, spec.BranchID, spec.BackupBranchID, seed); err != nil {
		return err
	}
	if spec.BackupBranchID != "" {
		// The backup's history starts here: it gets a base backup when first needed.
		if err := dp.cluster(spec.ProjectID, spec.BackupBranchID).ensureDirs(); err != nil {
			return err
		}
	}
	for _, e := range dp.endpointsOf(spec.BranchID) {
		e.warm()
	}
	return nil
}

// finishRestore does the two renames of a journaled restore, idempotently: run again after
// a crash at any point, it ends in the same state.
func (dp *DataPlane) finishRestore(projectID, branchID, backupID, seed string) error {
	b := dp.cluster(projectID, branchID)
	next := b.dataDir() + ".restore"
	journal := filepath.Join(b.dir(), "restore.json")
	if exists(next) {
		if exists(b.dataDir()) {
			if backupID != "" {
				bk := dp.cluster(projectID, backupID)
				if err := dp.mkdir(bk.dir()); err != nil {
					return err
				}
				if err := os.Rename(b.dataDir(), bk.dataDir()); err != nil {
					return err
				}
			} else if err := os.RemoveAll(b.dataDir()); err != nil {
				return err
			}
		}
		if err := os.Rename(next, b.dataDir()); err != nil {
			return err
		}
	}
	if !dp.tk.NoSync {
		// The renames are durable before the journal that would redo them goes.
		dirs := []string{b.dir()}
		if backupID != "" {
			dirs = append(dirs, dp.branchDir(projectID, backupID))
		}
		for _, d := range dirs {
			if err := syncDir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	if err := mergeArchive(b.restoreArchiveDir(), b.archiveDir()); err != nil {
		return err
	}
	if seed != "" {
		if err := b.addBackup(seed); err != nil {
			return err
		}
	}
	if err := os.Remove(journal); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// mergeArchive moves the WAL files a restore's recovery archived (its new timeline's history
// and segments) from scratch into the branch's archive, then removes scratch. Idempotent.
func mergeArchive(scratch, archive string) error {
	entries, err := os.ReadDir(scratch)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			continue // an archive_command cut short
		}
		if err := os.Rename(filepath.Join(scratch, e.Name()), filepath.Join(archive, e.Name())); err != nil {
			return err
		}
	}
	return os.RemoveAll(scratch)
}
