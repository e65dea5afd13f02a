package guard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/progress"
	"github.com/neonguard/neonguard/internal/store"
)

// snapshots lists a database's snapshots, oldest first.
func snapshots(ctx context.Context, org Org, databaseID string) ([]neon.Snapshot, error) {
	snaps, err := org.API.ListSnapshots(ctx, databaseID)
	if err != nil {
		return nil, upstream("list checkpoints", err)
	}
	slices.SortStableFunc(snaps, func(a, b neon.Snapshot) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return snaps, nil
}

func toCheckpoint(s neon.Snapshot) Checkpoint {
	return Checkpoint{CheckpointID: s.ID, Name: s.Name, CreatedAt: s.CreatedAt.UTC()}
}

// checkpointIntent is a checkpoint in progress: the snapshot it makes and those it replaces.
type checkpointIntent struct {
	Name     string        `json:"name"`
	Replace  bool          `json:"replace"`
	BranchID string        `json:"branch_id"` // main when the call started
	Delete   []snapshotRef `json:"delete,omitempty"`
	// CreateFirst: Neon's plan has room for one more snapshot, so the new one is made before the
	// old ones go and the database never has fewer checkpoints than before.
	CreateFirst bool      `json:"create_first"`
	CreatedID   string    `json:"created_id,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	Deleted     []string  `json:"deleted,omitempty"` // names of the replaced ones deleted so far
}

type snapshotRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (p *checkpointIntent) replacing(id string) bool {
	return slices.ContainsFunc(p.Delete, func(r snapshotRef) bool { return r.ID == id })
}

func (p *checkpointIntent) result(databaseID string) *CheckpointResult {
	return &CheckpointResult{DatabaseID: databaseID, Replaced: append([]string{}, p.Deleted...),
		Checkpoint: Checkpoint{CheckpointID: p.CreatedID, Name: p.Name, CreatedAt: p.CreatedAt.UTC()}}
}

// Checkpoint snapshots the database's main branch.
func (g *Guard) Checkpoint(ctx context.Context, in CheckpointInput) (*CheckpointResult, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkName("name", in.Name); err != nil {
		return nil, err
	}
	ctx, db, org, unlock, err := g.lockDatabase(ctx, c, in.DatabaseID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// A retry of a call that was interrupted and finished since: its result.
	if rec, ok := g.claimRecovered(ctx, db, intentCheckpoint, func(payload string) bool {
		p, err := decodePayload[checkpointIntent](payload)
		return err == nil && p.Name == in.Name && p.Replace == in.Replace
	}); ok {
		p, err := decodePayload[checkpointIntent](rec.Payload)
		if err != nil {
			return nil, err
		}
		return p.result(db.ID), nil
	}

	progress.Step(ctx, "reading the checkpoints")
	snaps, err := snapshots(ctx, org, db.ID)
	if err != nil {
		return nil, err
	}
	// A same-named checkpoint is replaced only when asked; otherwise names stay unique, which
	// is what restore_checkpoint and lost-answer recovery look them up by.
	var sameName *neon.Snapshot
	names := make([]string, 0, len(snaps))
	for i, s := range snaps {
		if s.Name == in.Name {
			sameName = &snaps[i]
			continue
		}
		names = append(names, s.Name)
	}
	if sameName != nil && !in.Replace {
		return nil, invalid(fmt.Sprintf("checkpoint %q already exists", in.Name),
			"choose another name, or call checkpoint with replace=true to replace it")
	}
	p := checkpointIntent{Name: in.Name, Replace: in.Replace}
	if sameName != nil {
		p.Delete = append(p.Delete, snapshotRef{ID: sameName.ID, Name: sameName.Name})
	}
	// names leaves the same-named checkpoint out: replacing it frees its own slot.
	d, drop := policy.CheckCheckpoint(c.tier, names, in.Replace)
	if !d.Allow {
		return nil, denied(d)
	}
	for _, name := range drop {
		for _, s := range snaps {
			if s.Name == name {
				p.Delete = append(p.Delete, snapshotRef{ID: s.ID, Name: s.Name})
				break
			}
		}
	}
	st, err := g.state(ctx, org, db)
	if err != nil {
		return nil, err
	}
	p.BranchID = st.main.ID
	// When Neon's plan has room for one more snapshot the new checkpoint is made first.
	// Otherwise (the free plan keeps 1) the old one must go first; the intent then makes the
	// new one even if this call is interrupted.
	plan, _ := g.policy.Plan(c.tier.Org)
	p.CreateFirst = len(snaps) < plan.SnapshotsPerProject
	progress.Plan(ctx, 2+len(p.Delete))
	run, err := g.beginIntent(ctx, db, intentCheckpoint, p)
	if err != nil {
		return nil, err
	}
	work, cancel := detach(ctx)
	defer cancel()
	return g.runCheckpoint(work, org, db, run, &p, false)
}

// runCheckpoint does (or, resuming, finishes) a checkpoint intent. Every step first checks
// what an interrupted run already did.
func (g *Guard) runCheckpoint(ctx context.Context, org Org, db store.Database, run *intentRun, p *checkpointIntent, resuming bool) (*CheckpointResult, error) {
	if p.CreateFirst {
		if err := g.makeCheckpoint(ctx, org, db, run, p, resuming); err != nil {
			return nil, err
		}
		if err := g.deleteReplaced(ctx, org, db, run, p); err != nil {
			// The new checkpoint exists; the old ones go on the next call for this database.
			g.log.WarnContext(ctx, "could not delete a replaced checkpoint yet; the next call for the database does", "database_id", db.ID, "err", err)
			return p.result(db.ID), nil
		}
	} else {
		if err := g.deleteReplaced(ctx, org, db, run, p); err != nil {
			return nil, err
		}
		if err := g.makeCheckpoint(ctx, org, db, run, p, resuming); err != nil {
			return nil, err
		}
	}
	if err := run.done(ctx); err != nil {
		return nil, err
	}
	return p.result(db.ID), nil
}

// makeCheckpoint makes the intent's snapshot unless an interrupted run already did.
func (g *Guard) makeCheckpoint(ctx context.Context, org Org, db store.Database, run *intentRun, p *checkpointIntent, resuming bool) error {
	if p.CreatedID == "" && resuming {
		// The newest snapshot with the name that is not one being replaced is the one an
		// interrupted run made (its answer was lost before it was recorded).
		snaps, err := snapshots(ctx, org, db.ID)
		if err != nil {
			return err
		}
		for i := len(snaps) - 1; i >= 0; i-- {
			if s := snaps[i]; s.Name == p.Name && !p.replacing(s.ID) {
				p.CreatedID, p.CreatedAt = s.ID, s.CreatedAt
				break
			}
		}
	}
	if p.CreatedID == "" {
		progress.Step(ctx, fmt.Sprintf("taking snapshot %q of main", p.Name))
		snap, err := org.API.CreateSnapshot(ctx, db.ID, p.BranchID, neon.SnapshotCreate{Name: p.Name})
		if err != nil {
			return g.checkpointFailed(ctx, run, p, err)
		}
		p.CreatedID, p.CreatedAt = snap.ID, snap.CreatedAt
	}
	if err := run.save(ctx, p); err != nil {
		return err
	}
	cp := store.Checkpoint{ID: p.CreatedID, DatabaseID: db.ID, Name: p.Name, BranchID: p.BranchID, CreatedAt: p.CreatedAt}
	if err := g.store.AddCheckpoint(ctx, cp); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}

// checkpointFailed is the error of a snapshot create that failed, saying exactly what state
// the database is in. Nothing changed yet (create first, or nothing to replace): the intent is
// rolled back when Neon refused, and kept to be resolved when the outcome is unknown.
func (g *Guard) checkpointFailed(ctx context.Context, run *intentRun, p *checkpointIntent, cause error) error {
	err := upstream("checkpoint", cause)
	ge := errcode.As(err)
	if ge == nil {
		return err
	}
	refused := ge.Code != errcode.Upstream
	switch {
	case len(p.Deleted) > 0:
		ge.Message += fmt.Sprintf("; the replaced checkpoint(s) %s were already deleted and checkpoint %q is not made yet: neonguard makes it on the next call for this database",
			strings.Join(p.Deleted, ", "), p.Name)
		ge.Hint = "call checkpoint again with the same arguments (or list_checkpoints) in a moment: it finishes this one first"
	case refused:
		if rerr := run.rollBack(ctx); rerr != nil {
			return errors.Join(err, rerr)
		}
		ge.Message += "; no checkpoint was made or deleted"
	default:
		ge.Message += fmt.Sprintf("; no checkpoint was deleted, and whether %q was made is found out on the next call for this database", p.Name)
		ge.Hint = "call checkpoint again with the same arguments in a moment, or list_checkpoints"
	}
	return ge
}

// deleteReplaced deletes the snapshots the intent replaces (already gone is fine).
func (g *Guard) deleteReplaced(ctx context.Context, org Org, db store.Database, run *intentRun, p *checkpointIntent) error {
	for _, s := range p.Delete {
		if slices.Contains(p.Deleted, s.Name) {
			continue
		}
		progress.Step(ctx, fmt.Sprintf("deleting replaced checkpoint %q", s.Name))
		if err := org.API.DeleteSnapshot(ctx, db.ID, s.ID); err != nil && !errors.Is(err, neon.ErrNotFound) {
			ge := errcode.As(upstream("replace checkpoint "+s.Name, err))
			if ge != nil {
				ge.Message += fmt.Sprintf("; checkpoint %q was not made", p.Name)
				if p.CreatedID != "" {
					ge.Message = fmt.Sprintf("checkpoint %q was made, but replacing %s failed: %s", p.Name, s.Name, ge.Message)
				}
				if len(p.Deleted) == 0 && p.CreatedID == "" && ge.Code != errcode.Upstream {
					_ = run.rollBack(ctx) // Neon refused the first change: nothing happened
				} else {
					ge.Hint = "call checkpoint again with the same arguments in a moment: the next call for this database finishes it"
				}
				return ge
			}
			return err
		}
		if err := g.store.DeleteCheckpoint(ctx, db.ID, s.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		p.Deleted = append(p.Deleted, s.Name)
		if err := run.save(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (g *Guard) resumeCheckpoint(ctx context.Context, org Org, db store.Database, run *intentRun) error {
	p, err := decodePayload[checkpointIntent](run.rec.Payload)
	if err != nil {
		return err
	}
	_, err = g.runCheckpoint(ctx, org, db, run, &p, true)
	return err
}

// ListCheckpoints lists a database's checkpoints, oldest first.
func (g *Guard) ListCheckpoints(ctx context.Context, in DatabaseInput) (*ListCheckpointsResult, error) {
	databaseID := in.DatabaseID
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	db, org, err := g.database(ctx, c, databaseID)
	if err != nil {
		return nil, err
	}
	if err := g.settleForRead(ctx, org, db); err != nil {
		return nil, err
	}
	snaps, err := snapshots(ctx, org, db.ID)
	if err != nil {
		return nil, err
	}
	out := &ListCheckpointsResult{DatabaseID: db.ID, Checkpoints: make([]Checkpoint, 0, len(snaps)), Limit: c.tier.Checkpoints}
	for _, s := range snaps {
		out.Checkpoints = append(out.Checkpoints, toCheckpoint(s))
	}
	return out, nil
}

// restoreIntent is a checkpoint restore in progress.
type restoreIntent struct {
	SnapshotID   string    `json:"snapshot_id"`
	SnapshotName string    `json:"snapshot_name"`
	OldMainID    string    `json:"old_main_id"`
	BackupExpiry time.Time `json:"backup_expires_at"`
	NewMainID    string    `json:"new_main_id,omitempty"`
	Backup       BranchRef `json:"backup,omitzero"`
}

func (p *restoreIntent) result(databaseID string) *RestoreCheckpointResult {
	return &RestoreCheckpointResult{DatabaseID: databaseID, Checkpoint: p.SnapshotName, CheckpointID: p.SnapshotID,
		MainBranchID: p.NewMainID, PreviousBranch: p.Backup}
}

// RestoreCheckpoint restores the main branch to a checkpoint. Neon makes a new branch from the
// snapshot and moves main's compute to it (finalize), so the connection string is unchanged but
// main's branch id changes; the replaced branch is kept as a backup with the tier's backup TTL.
// The new main is a root branch (a snapshot restore makes one), so checkpoints keep working.
func (g *Guard) RestoreCheckpoint(ctx context.Context, in RestoreCheckpointInput) (*RestoreCheckpointResult, error) {
	databaseID, checkpoint := in.DatabaseID, in.Checkpoint
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	if checkpoint == "" {
		return nil, invalid("checkpoint is required", "pass a checkpoint name or id from list_checkpoints")
	}
	ctx, db, org, unlock, err := g.lockDatabase(ctx, c, databaseID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if rec, ok := g.claimRecovered(ctx, db, intentRestoreCheckpoint, func(payload string) bool {
		p, err := decodePayload[restoreIntent](payload)
		return err == nil && (p.SnapshotID == checkpoint || p.SnapshotName == checkpoint)
	}); ok {
		p, err := decodePayload[restoreIntent](rec.Payload)
		if err != nil {
			return nil, err
		}
		return p.result(db.ID), nil
	}

	progress.Plan(ctx, 3)
	progress.Step(ctx, "reading the checkpoints and branches")
	snaps, err := snapshots(ctx, org, db.ID)
	if err != nil {
		return nil, err
	}
	var snap *neon.Snapshot
	for i, s := range snaps {
		if s.ID == checkpoint || s.Name == checkpoint {
			snap = &snaps[i]
			break
		}
	}
	if snap == nil {
		return nil, &errcode.Error{Code: errcode.NotFound, Message: fmt.Sprintf("checkpoint %q not found in database %s", checkpoint, db.ID),
			Hint: "call list_checkpoints to see the database's checkpoints"}
	}
	st, err := g.state(ctx, org, db)
	if err != nil {
		return nil, err
	}
	// The restore adds a branch (the replaced main stays as a backup).
	if d := policy.CheckNewBranch(c.tier, st.refs()); !d.Allow {
		return nil, denied(d)
	}
	p := restoreIntent{SnapshotID: snap.ID, SnapshotName: snap.Name, OldMainID: st.main.ID,
		BackupExpiry: g.now().Add(c.tier.UndoBackupTTL).UTC().Truncate(time.Second)}
	run, err := g.beginIntent(ctx, db, intentRestoreCheckpoint, p)
	if err != nil {
		return nil, err
	}
	work, cancel := detach(ctx)
	defer cancel()
	progress.Step(ctx, fmt.Sprintf("restoring main to checkpoint %q", snap.Name))
	restored, err := org.API.RestoreSnapshot(work, db.ID, snap.ID, neon.SnapshotRestore{TargetBranchID: p.OldMainID, FinalizeRestore: true})
	g.sql.evict(db.ID, "") // main's compute moves to the restored branch: kept connections to it are dead
	if err != nil {
		return nil, run.firstChangeFailed(work, err, "restore_checkpoint", "main was not changed",
			"whether main was restored is found out on the next call for this database",
			"call list_branches in a moment: main's branch id changed if the restore happened")
	}
	p.NewMainID = restored.Branch.ID
	if err := run.save(work, p); err != nil {
		return nil, err
	}
	progress.Step(ctx, "recording the replaced branch as a backup")
	res, err := g.finishRestoreCheckpoint(work, org, db, run, &p)
	if err != nil {
		return nil, happened(err, fmt.Sprintf("main was restored to checkpoint %q (its branch id is now %s), but recording the replaced branch did not finish",
			p.SnapshotName, p.NewMainID), "do not call restore_checkpoint again for this: the next call for this database finishes it")
	}
	return res, nil
}

// finishRestoreCheckpoint records a checkpoint restore that happened: the new main, and the
// replaced branch as a backup with its expiry.
func (g *Guard) finishRestoreCheckpoint(ctx context.Context, org Org, db store.Database, run *intentRun, p *restoreIntent) (*RestoreCheckpointResult, error) {
	if err := g.store.SetRootBranch(ctx, db.ID, p.NewMainID); err != nil {
		return nil, err
	}
	old, err := org.API.GetBranch(ctx, db.ID, p.OldMainID) // renamed "main (old)" by the finalize
	switch {
	case errors.Is(err, neon.ErrNotFound):
		p.Backup = BranchRef{BranchID: p.OldMainID} // deleted meanwhile: nothing to keep
	case err != nil:
		return nil, upstream("restore_checkpoint: read the replaced branch", err)
	default:
		if p.Backup, err = g.recordBackup(ctx, org, db.ID, *old, p.BackupExpiry); err != nil {
			return nil, err
		}
	}
	if err := run.complete(ctx, p); err != nil {
		return nil, err
	}
	return p.result(db.ID), nil
}

// resumeRestoreCheckpoint finishes an interrupted checkpoint restore: it happened when main is
// no longer the branch it replaced.
func (g *Guard) resumeRestoreCheckpoint(ctx context.Context, org Org, db store.Database, run *intentRun) error {
	p, err := decodePayload[restoreIntent](run.rec.Payload)
	if err != nil {
		return err
	}
	if p.NewMainID == "" {
		branches, err := org.API.ListBranches(ctx, db.ID)
		if err != nil {
			return upstream("list branches", err)
		}
		for _, b := range branches {
			if b.Default && b.ID != p.OldMainID {
				p.NewMainID = b.ID
			}
		}
		if p.NewMainID == "" {
			return run.rollBack(ctx) // main is still the old branch: the restore never happened
		}
	}
	_, err = g.finishRestoreCheckpoint(ctx, org, db, run, &p)
	return err
}
