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
)

// headSlack is how close to now a snapshot time must be to be taken as the branch's head.
const headSlack = 5 * time.Second

func (dp *DataPlane) snapshotDir(projectID, snapshotID string) string {
	return filepath.Join(dp.projectDir(projectID), "snapshots", snapshotID)
}

// CreateSnapshot keeps the state of a branch at a time as a startable copy.
func (dp *DataPlane) CreateSnapshot(ctx context.Context, spec neonlocal.SnapshotSpec) error {
	lock := dp.projectLock(spec.ProjectID)
	lock.Lock()
	defer lock.Unlock()

	dst := dp.snapshotDir(spec.ProjectID, spec.SnapshotID)
	if exists(dst) {
		return nil
	}
	if err := dp.mkdir(filepath.Dir(dst)); err != nil {
		return err
	}
	src := dp.cluster(spec.ProjectID, spec.BranchID)
	tmp := dst + ".tmp"
	_ = os.RemoveAll(tmp)
	var at *time.Time
	if !spec.At.IsZero() && time.Since(spec.At) > headSlack {
		at = &spec.At
	}
	// A point-in-time snapshot replays into a scratch archive that is not kept.
	scratch := tmp + "-archive"
	if err := dp.mkdir(scratch); err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	if err := dp.materialize(ctx, src, at, tmp, scratch); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("snapshot %s of %s: %w", spec.SnapshotID, spec.BranchID, err)
	}
	return os.Rename(tmp, dst)
}

// RestoreSnapshot makes a new branch from a snapshot.
func (dp *DataPlane) RestoreSnapshot(ctx context.Context, spec neonlocal.SnapshotSpec, newBranchID string) error {
	lock := dp.projectLock(spec.ProjectID)
	lock.Lock()
	defer lock.Unlock()

	c := dp.cluster(spec.ProjectID, newBranchID)
	if exists(filepath.Join(c.dataDir(), "PG_VERSION")) {
		return nil
	}
	if err := c.ensureDirs(); err != nil {
		return err
	}
	tmp := c.dataDir() + ".new"
	_ = os.RemoveAll(tmp)
	if err := dp.fromSnapshot(ctx, c, dp.snapshotDir(spec.ProjectID, spec.SnapshotID), tmp); err != nil {
		return fmt.Errorf("restore snapshot %s: %w", spec.SnapshotID, err)
	}
	return dp.publish(c, tmp)
}

// deletedSuffix marks a deleted snapshot's copy or branch directory whose files are not yet
// removed from disk.
const deletedSuffix = ".deleted"

// DeleteSnapshot drops a snapshot's copy. Removing its files takes ~0.1 s (their blocks are its
// own, unlinked one by one), so the operation only renames the copy out of the way and the
// files go in the background, as Neon frees a deleted snapshot's storage after its operation.
func (dp *DataPlane) DeleteSnapshot(_ context.Context, projectID, snapshotID string) error {
	return dp.removeInBackground(dp.snapshotDir(projectID, snapshotID), "snapshot")
}

// removeInBackground renames dir out of the way and removes its files in the background.
// Nothing reads a renamed directory; one a crash leaves is removed at the next start (recover).
func (dp *DataPlane) removeInBackground(dir, what string) error {
	gone := dir + deletedSuffix
	if err := os.Rename(dir, gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return os.RemoveAll(dir) // e.g. a leftover under the new name: remove in place
	}
	if !dp.background(func(context.Context) {
		if err := os.RemoveAll(gone); err != nil {
			dp.log.Warn("could not remove a deleted "+what+"'s files; the next start does", "dir", gone, "err", err)
		}
	}) {
		return os.RemoveAll(gone) // closing: nothing waits for a new goroutine
	}
	return nil
}

// DeleteProject stops and removes everything of a project.
func (dp *DataPlane) DeleteProject(ctx context.Context, projectID string) error {
	dp.mu.Lock()
	var eps []*endpoint
	for _, e := range dp.endpoints {
		if e.projectID == projectID {
			eps = append(eps, e)
		}
	}
	var cls []*cluster
	for id, c := range dp.clusters {
		if c.projectID == projectID {
			cls = append(cls, c)
			delete(dp.clusters, id)
		}
	}
	dp.mu.Unlock()
	for _, e := range eps {
		_ = e.close()
		dp.mu.Lock()
		delete(dp.endpoints, e.id)
		dp.mu.Unlock()
	}
	for _, c := range cls {
		if err := c.stop(ctx); err != nil {
			return err
		}
		_ = os.RemoveAll(c.socketDir())
	}
	dir := dp.projectDir(projectID)
	if !strings.HasPrefix(dir, dp.o.Dir) {
		return fmt.Errorf("refusing to remove %s", dir)
	}
	return os.RemoveAll(dir)
}
