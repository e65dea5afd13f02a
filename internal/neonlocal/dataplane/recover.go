package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/neonlocal/pgctl"
)

// recover runs at start: it finishes journaled restores and stops postgres processes a
// crashed neonguard left behind, so every branch is in its old state or its new one.
func (dp *DataPlane) recover(ctx context.Context) error {
	branches, _ := filepath.Glob(filepath.Join(dp.o.Dir, "projects", "*", "branches", "*"))
	for _, dir := range branches {
		if strings.HasSuffix(dir, deletedSuffix) { // deleted before a crash: its files go now
			_ = os.RemoveAll(dir)
			continue
		}
		projectID := filepath.Base(filepath.Dir(filepath.Dir(dir)))
		branchID := filepath.Base(dir)
		c := dp.cluster(projectID, branchID)
		if _, err := dp.tk.StopOrphan(ctx, c.dataDir()); err != nil {
			return fmt.Errorf("dataplane: branch %s: %w", branchID, err)
		}
		var j restoreJournal
		if err := readJSON(filepath.Join(dir, "restore.json"), &j); err == nil {
			dp.log.Warn("finishing a restore interrupted by a crash", "branch", branchID)
			if err := dp.finishRestore(projectID, branchID, j.BackupBranchID, j.Seed); err != nil {
				return fmt.Errorf("dataplane: finish restore of %s: %w", branchID, err)
			}
		} else {
			// A restore that had not reached its journal never happened: its rebuilt data
			// and its base backup go.
			_ = os.RemoveAll(c.dataDir() + ".restore")
			_ = os.RemoveAll(c.restoreArchiveDir())
			c.dropUnlistedBackups()
		}
		// Half-made copies are rebuilt by Reconcile.
		_ = os.RemoveAll(c.dataDir() + ".new")
		tmps, _ := filepath.Glob(filepath.Join(c.backupsDir(), "*.tmp"))
		for _, t := range tmps {
			_ = os.RemoveAll(t)
		}
	}
	snaps, _ := filepath.Glob(filepath.Join(dp.o.Dir, "projects", "*", "snapshots", "*"))
	for _, s := range snaps {
		if strings.HasSuffix(s, ".tmp") || strings.HasSuffix(s, ".tmp-archive") || strings.HasSuffix(s, deletedSuffix) {
			_ = os.RemoveAll(s)
		}
	}
	return nil
}

// Reconcile brings the data plane in line with the control plane's state after a start:
// branches whose making was interrupted are made (parents first), and every endpoint's port
// listens again, waking its compute on the first connection.
func (dp *DataPlane) Reconcile(ctx context.Context, branches []neonlocal.BranchSpec, endpoints []neonlocal.EndpointSpec) error {
	made := map[string]bool{}
	lacking := map[string]bool{} // roots whose PostgreSQL major is not installed
	for _, b := range branches {
		c := dp.cluster(b.ProjectID, b.BranchID)
		if exists(filepath.Join(c.dataDir(), "PG_VERSION")) {
			made[b.BranchID] = true
			// A crash before its first base backup ended leaves a branch without history:
			// point-in-time work on it (a child at a time, an undo) fails until it has one.
			if m, err := c.meta(); err == nil && len(m.Backups) == 0 {
				c.takeBackupAsync()
			}
		}
	}
	// Parents first: repeat until nothing more can be made.
	for progress := true; progress; {
		progress = false
		for _, b := range branches {
			if made[b.BranchID] || lacking[b.BranchID] || (b.ParentID != "" && !made[b.ParentID]) {
				continue
			}
			if r := b.RestoreOf; r != nil {
				if !made[r.BranchID] || !made[r.SourceBranchID] {
					continue
				}
				if err := dp.redoRestore(ctx, b, *r); err != nil {
					return err
				}
				made[b.BranchID], progress = true, true
				continue
			}
			dp.log.Warn("making a branch whose creation was interrupted", "branch", b.BranchID)
			if err := dp.CreateBranch(ctx, b); errors.Is(err, ErrMajorNotInstalled) {
				// Its major is not installed (any more, or it was made without PostgreSQL): the
				// rest of the data dir still serves.
				dp.log.Error("branch left without data", "branch", b.BranchID, "err", err)
				lacking[b.BranchID] = true
				continue
			} else if err != nil {
				return fmt.Errorf("dataplane: remake branch %s: %w", b.BranchID, err)
			}
			made[b.BranchID], progress = true, true
		}
	}
	for _, e := range endpoints {
		if _, err := dp.attach(ctx, e); err != nil {
			// Another program took the port while neonguard was down: the rest of the
			// project must not wait for it. Keep trying until the port is free again.
			dp.log.Error("endpoint port unavailable; retrying", "endpoint", e.EndpointID, "port", e.Port, "err", err)
			dp.wg.Add(1)
			go dp.attachLater(e)
		}
	}
	return nil
}

// attachLater retries attaching an endpoint whose port was taken, until it works or the data
// plane closes.
func (dp *DataPlane) attachLater(spec neonlocal.EndpointSpec) {
	defer dp.wg.Done()
	for {
		select {
		case <-time.After(5 * time.Second):
		case <-dp.done:
			return
		}
		if _, err := dp.attach(context.Background(), spec); err == nil {
			dp.log.Info("endpoint port available again", "endpoint", spec.EndpointID, "port", spec.Port)
			return
		}
	}
}

// redoRestore makes the missing backup branch of an in-place restore: its data is missing only
// when a crash came before the restore's swap (recover finished or undid every journaled swap),
// so the restored branch still holds its old state. The control plane already answered that the
// restore happened: do it again. If it fails now, the backup gets the restored branch's current
// (pre-restore) state instead, so both branches hold a state that existed; the restored branch
// is then unchanged, as after a failed restore.
func (dp *DataPlane) redoRestore(ctx context.Context, b neonlocal.BranchSpec, r neonlocal.RestoreSpec) error {
	dp.log.Warn("redoing a restore interrupted before its swap", "branch", r.BranchID, "backup", b.BranchID)
	err := dp.RestoreBranch(ctx, r)
	if err == nil {
		return nil
	}
	dp.log.Error("redo of an interrupted restore failed; keeping the branch's state", "branch", r.BranchID, "err", err)
	c := dp.cluster(b.ProjectID, b.BranchID)
	if exists(filepath.Join(c.dataDir(), "PG_VERSION")) {
		return nil // the swap happened after all
	}
	b.ParentID, b.ParentTime, b.FromSnapshotID = r.BranchID, time.Time{}, ""
	if err := dp.CreateBranch(ctx, b); err != nil {
		return fmt.Errorf("dataplane: remake backup branch %s of %s: %w", b.BranchID, r.BranchID, err)
	}
	return nil
}

// chownTree gives dir and everything under it to PostgreSQL's user. Entries that vanish during
// the walk are skipped: a pg_basebackup of a crashed neonguard may still be writing its files.
func chownTree(dir string, ra pgctl.RunAs) error {
	if !ra.Switch {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil
			}
			return err
		}
		if err := os.Lchown(p, int(ra.UID), int(ra.GID)); err != nil && !(errors.Is(err, fs.ErrNotExist) && p != dir) {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}
