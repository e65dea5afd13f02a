package dataplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/neonguard/neonguard/internal/neonlocal"
)

// recover runs at start: it finishes journaled restores and stops postgres processes a
// crashed neonguard left behind, so every branch is in its old state or its new one.
func (dp *DataPlane) recover(ctx context.Context) error {
	branches, _ := filepath.Glob(filepath.Join(dp.o.Dir, "projects", "*", "branches", "*"))
	for _, dir := range branches {
		projectID := filepath.Base(filepath.Dir(filepath.Dir(dir)))
		branchID := filepath.Base(dir)
		c := dp.cluster(projectID, branchID)
		if _, err := dp.tk.StopOrphan(ctx, c.dataDir()); err != nil {
			return fmt.Errorf("dataplane: branch %s: %w", branchID, err)
		}
		var j restoreJournal
		if err := readJSON(filepath.Join(dir, "restore.json"), &j); err == nil {
			dp.log.Warn("finishing a restore interrupted by a crash", "branch", branchID)
			if err := dp.finishRestore(projectID, branchID, j.BackupBranchID); err != nil {
				return fmt.Errorf("dataplane: finish restore of %s: %w", branchID, err)
			}
		} else {
			// A restore that had not reached its journal never happened.
			_ = os.RemoveAll(c.dataDir() + ".restore")
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
		if strings.HasSuffix(s, ".tmp") || strings.HasSuffix(s, ".tmp-archive") {
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
	for _, b := range branches {
		if exists(filepath.Join(dp.cluster(b.ProjectID, b.BranchID).dataDir(), "PG_VERSION")) {
			made[b.BranchID] = true
		}
	}
	// Parents first: repeat until nothing more can be made.
	for progress := true; progress; {
		progress = false
		for _, b := range branches {
			if made[b.BranchID] || (b.ParentID != "" && !made[b.ParentID]) {
				continue
			}
			dp.log.Warn("making a branch whose creation was interrupted", "branch", b.BranchID)
			if err := dp.CreateBranch(ctx, b); err != nil {
				return fmt.Errorf("dataplane: remake branch %s: %w", b.BranchID, err)
			}
			made[b.BranchID], progress = true, true
		}
	}
	for _, e := range endpoints {
		if _, err := dp.attach(ctx, e); err != nil {
			return err
		}
	}
	return nil
}
