package guard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
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
	var toDelete []neon.Snapshot
	if sameName != nil {
		toDelete = append(toDelete, *sameName)
	}
	// names leaves the same-named checkpoint out: replacing it frees its own slot.
	d, drop := policy.CheckCheckpoint(c.tier, names, in.Replace)
	if !d.Allow {
		return nil, denied(d)
	}
	for _, name := range drop {
		for _, s := range snaps {
			if s.Name == name {
				toDelete = append(toDelete, s)
				break
			}
		}
	}

	st, err := g.state(ctx, org, db)
	if err != nil {
		return nil, err
	}
	deleteOld := func() ([]string, error) {
		replaced := make([]string, 0, len(toDelete))
		for _, s := range toDelete {
			if err := org.API.DeleteSnapshot(ctx, db.ID, s.ID); err != nil && !errors.Is(err, neon.ErrNotFound) {
				return replaced, upstream("replace checkpoint "+s.Name, err)
			}
			if err := g.store.DeleteCheckpoint(ctx, db.ID, s.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return replaced, err
			}
			replaced = append(replaced, s.Name)
		}
		return replaced, nil
	}
	// When Neon's plan has room for one more snapshot, the new checkpoint is made before the
	// old ones go, so a failure never leaves the database without one. Otherwise (the free
	// plan keeps 1, or the same name is reused) the old one must go first; a failed create
	// then says so.
	plan, _ := g.policy.Plan(c.tier.Org)
	createFirst := sameName == nil && len(snaps) < plan.SnapshotsPerProject
	replaced := []string{}
	if !createFirst {
		if replaced, err = deleteOld(); err != nil {
			return nil, err
		}
	}
	snap, err := org.API.CreateSnapshot(ctx, db.ID, st.main.ID, neon.SnapshotCreate{Name: in.Name})
	if err != nil {
		err = upstream("checkpoint", err)
		if ge := AsError(err); ge != nil && len(replaced) > 0 {
			ge.Message += fmt.Sprintf("; the replaced checkpoint(s) %s were already deleted", strings.Join(replaced, ", "))
			ge.Hint = "call checkpoint again with the same name"
		}
		return nil, err
	}
	if createFirst {
		// The new checkpoint exists: a failed cleanup only leaves an old one over the
		// tier's count, which the next checkpoint with replace removes.
		if replaced, err = deleteOld(); err != nil {
			g.log.WarnContext(ctx, "could not delete a replaced checkpoint", "database_id", db.ID, "err", err)
		}
	}
	cp := store.Checkpoint{ID: snap.ID, DatabaseID: db.ID, Name: snap.Name, BranchID: st.main.ID, CreatedAt: snap.CreatedAt}
	if err := g.store.AddCheckpoint(ctx, cp); err != nil && !errors.Is(err, store.ErrConflict) {
		return nil, err
	}
	return &CheckpointResult{DatabaseID: db.ID, Checkpoint: toCheckpoint(*snap), Replaced: replaced}, nil
}

// ListCheckpoints lists a database's checkpoints, oldest first.
func (g *Guard) ListCheckpoints(ctx context.Context, databaseID string) (*ListCheckpointsResult, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	db, org, err := g.database(ctx, c, databaseID)
	if err != nil {
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

// RestoreCheckpoint restores the main branch to a checkpoint. Neon makes a new branch from the
// snapshot and moves main's compute to it (finalize), so the connection string is unchanged but
// main's branch id changes; the replaced branch is kept as a backup with the tier's backup TTL.
func (g *Guard) RestoreCheckpoint(ctx context.Context, databaseID, checkpoint string) (*RestoreCheckpointResult, error) {
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
		return nil, &Error{Code: policy.NotFound, Message: fmt.Sprintf("checkpoint %q not found in database %s", checkpoint, db.ID),
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
	old := st.main
	restored, err := org.API.RestoreSnapshot(ctx, db.ID, snap.ID, neon.SnapshotRestore{TargetBranchID: old.ID, FinalizeRestore: true})
	if err != nil {
		return nil, upstream("restore_checkpoint", err)
	}
	ctx = context.WithoutCancel(ctx) // restored: the bookkeeping must not be lost with the caller
	if err := g.store.SetRootBranch(ctx, db.ID, restored.Branch.ID); err != nil {
		return nil, err
	}
	if b, err := org.API.GetBranch(ctx, db.ID, old.ID); err == nil {
		old = *b // renamed "main (old)" by the finalize
	}
	prev := g.recordBackup(ctx, org, db.ID, old, g.now().Add(c.tier.UndoBackupTTL))
	return &RestoreCheckpointResult{DatabaseID: db.ID, Checkpoint: snap.Name, CheckpointID: snap.ID,
		MainBranchID: restored.Branch.ID, PreviousBranch: prev}, nil
}
