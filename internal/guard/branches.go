package guard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/store"
)

// UndoToTime restores a branch in place to a time: same branch id, same endpoint, same
// connection string. Neon keeps the state from just before as a backup branch, which the guard
// gives the tier's backup TTL.
func (g *Guard) UndoToTime(ctx context.Context, in UndoInput) (*UndoResult, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	now := g.now()
	var target time.Time
	switch {
	case in.Timestamp != nil && in.Ago != 0:
		return nil, invalid("pass either timestamp or ago, not both", "e.g. ago=\"15m\" or timestamp=\"2026-01-02T15:04:05Z\"")
	case in.Timestamp != nil:
		target = *in.Timestamp
	case in.Ago > 0:
		target = now.Add(-in.Ago)
	default:
		return nil, invalid("timestamp or ago is required", "e.g. ago=\"15m\" or timestamp=\"2026-01-02T15:04:05Z\"")
	}
	target = target.UTC()
	if d := policy.CheckRestoreTarget(c.tier, now, target); !d.Allow {
		return nil, denied(d)
	}
	ctx, db, org, unlock, err := g.lockDatabase(ctx, c, in.DatabaseID)
	if err != nil {
		return nil, err
	}
	defer unlock()

	st, err := g.state(ctx, org, db)
	if err != nil {
		return nil, err
	}
	b, err := st.resolve(in.Branch)
	if err != nil {
		return nil, err
	}
	if target.Before(b.CreatedAt) {
		return nil, invalid(fmt.Sprintf("branch %q did not exist at %s (created %s)", b.Name, target.Format(time.RFC3339), b.CreatedAt.UTC().Format(time.RFC3339)),
			"choose a time after the branch was created")
	}
	// The backup is a new branch: it needs a free slot.
	if d := policy.CheckNewBranch(c.tier, st.refs()); !d.Allow {
		return nil, denied(d)
	}
	backupName := uniqueName(st, fmt.Sprintf("%s-undo-%s", b.Name, now.UTC().Format("20060102-150405")))
	restored, err := org.API.RestoreBranch(ctx, db.ID, b.ID, neon.BranchRestore{
		SourceBranchID: b.ID, SourceTimestamp: &target, PreserveUnderName: backupName,
	})
	if err != nil {
		return nil, upstream("undo_to_time", err, fmt.Sprintf("call list_branches: if a branch named %q exists, the undo happened; otherwise call undo_to_time again", backupName))
	}
	// The undo happened: what follows is bookkeeping that must not be lost with the caller.
	ctx = context.WithoutCancel(ctx)
	backup, err := g.findBackup(ctx, org, db.ID, restored, backupName)
	if err != nil {
		return nil, err
	}
	ref := g.recordBackup(ctx, org, db.ID, backup, now.Add(c.tier.UndoBackupTTL))
	return &UndoResult{DatabaseID: db.ID, Branch: BranchRef{BranchID: restored.ID, Name: restored.Name},
		RestoredTo: target, BackupBranch: ref}, nil
}

// findBackup finds the branch Neon preserved the pre-restore state under. Neon makes it the
// restored branch's parent; an emulator or a future Neon may not, so fall back to its name.
func (g *Guard) findBackup(ctx context.Context, org Org, projectID string, restored *neon.Branch, name string) (neon.Branch, error) {
	if restored.ParentID != "" {
		if p, err := org.API.GetBranch(ctx, projectID, restored.ParentID); err == nil && p.Name == name {
			return *p, nil
		}
	}
	branches, err := org.API.ListBranches(ctx, projectID)
	if err != nil {
		return neon.Branch{}, upstream("find the undo backup", err)
	}
	for _, b := range branches {
		if b.Name == name {
			return b, nil
		}
	}
	return neon.Branch{}, &Error{Code: policy.Upstream, Message: "the undo succeeded but its backup branch was not found",
		Hint: "call list_branches; the restored branch is usable"}
}

// recordBackup gives a backup branch (an undo's pre-restore state, or the branch a
// checkpoint restore replaced) its expiry on Neon and records it with that expiry. The restore
// already happened, so a failure here is logged, not returned. Neon may refuse the expiry (it
// allows none on a branch with children, and an undo backup is the restored branch's parent):
// the record keeps the expiry anyway, and the janitor deletes the backup once it has passed.
func (g *Guard) recordBackup(ctx context.Context, org Org, databaseID string, b neon.Branch, expires time.Time) BranchRef {
	expires = expires.UTC().Truncate(time.Second)
	ref := BranchRef{BranchID: b.ID, Name: b.Name, ExpiresAt: &expires}
	if _, err := org.API.UpdateBranch(ctx, databaseID, b.ID, neon.BranchUpdate{ExpiresAt: &expires}); err != nil {
		g.log.WarnContext(ctx, "Neon did not take a backup branch's expiry; the janitor deletes it when it passes",
			"database_id", databaseID, "branch_id", b.ID, "expires_at", expires, "err", err)
	}
	if err := g.store.AddBranch(ctx, store.Branch{ID: b.ID, DatabaseID: databaseID, Name: b.Name, Kind: store.BranchBackup,
		ExpiresAt: ref.ExpiresAt, CreatedAt: g.now()}); err != nil && !errors.Is(err, store.ErrConflict) {
		g.log.ErrorContext(ctx, "could not record a backup branch", "database_id", databaseID, "branch_id", b.ID, "err", err)
	}
	return ref
}

func uniqueName(st *dbState, base string) string {
	name := base
	for i := 2; ; i++ {
		if _, taken := st.byName(name); !taken {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

// CreateDevBranch branches the database for development, with a compute in the tier's range
// and an expiry.
func (g *Guard) CreateDevBranch(ctx context.Context, in DevBranchInput) (*DevBranchResult, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkName("name", in.Name); err != nil {
		return nil, err
	}
	if in.Name == mainBranchName {
		return nil, invalid("a dev branch cannot be named main", "choose another name")
	}
	ttl, d := policy.DevBranchTTL(c.tier, in.TTL)
	if !d.Allow {
		return nil, denied(d)
	}
	now := g.now()
	from := in.From
	if from == "" {
		from = mainBranchName
	}
	var at *time.Time
	if from != mainBranchName {
		if t, err := time.Parse(time.RFC3339, from); err == nil {
			t = t.UTC()
			if d := policy.CheckRestoreTarget(c.tier, now, t); !d.Allow {
				return nil, denied(d)
			}
			at = &t
		}
	}
	ctx, db, org, unlock, err := g.lockDatabase(ctx, c, in.DatabaseID)
	if err != nil {
		return nil, err
	}
	defer unlock()

	st, err := g.state(ctx, org, db)
	if err != nil {
		return nil, err
	}
	if _, taken := st.byName(in.Name); taken {
		return nil, invalid(fmt.Sprintf("branch %q already exists", in.Name),
			"choose another name, or use get_connection_string for the existing branch")
	}
	if d := policy.CheckNewBranch(c.tier, st.refs()); !d.Allow {
		return nil, denied(d)
	}
	// A new compute on a project over its quota would be suspended by Neon at once.
	p, err := org.API.GetProject(ctx, db.ID)
	if err != nil {
		return nil, upstream("create_dev_branch", err)
	}
	if d := policy.CheckQuota(c.tier, UsageOf(p, st.branches)); !d.Allow {
		return nil, denied(d)
	}
	expires := now.Add(ttl).UTC().Truncate(time.Second)
	endpoint := neon.EndpointCreate{Type: neon.EndpointReadWrite, AutoscalingLimitMinCU: c.tier.MinComputeCU,
		AutoscalingLimitMaxCU: c.tier.MaxComputeCU, SuspendTimeoutSeconds: int64(c.tier.SuspendTimeout.Seconds())}

	var branchID string
	if from == mainBranchName || at != nil {
		created, err := org.API.CreateBranch(ctx, db.ID, neon.BranchCreate{
			ParentID: st.main.ID, Name: in.Name, ParentTimestamp: at, ExpiresAt: &expires,
		}, []neon.EndpointCreate{endpoint})
		if err != nil {
			return nil, upstream("create_dev_branch", err, fmt.Sprintf("call list_branches: if %q exists it was created; otherwise call create_dev_branch again", in.Name))
		}
		branchID = created.Branch.ID
		ctx = context.WithoutCancel(ctx) // it exists now: record it whatever happens to the caller
		if err := g.recordDev(ctx, db.ID, branchID, in.Name, expires); err != nil {
			return nil, err
		}
	} else {
		branchID, err = g.branchFromCheckpoint(ctx, org, st, from, in.Name, expires, endpoint)
		if err != nil {
			return nil, err
		}
		ctx = context.WithoutCancel(ctx)
	}
	uri, err := g.connectionURI(ctx, org, db, branchID, true)
	if err != nil {
		return nil, err
	}
	return &DevBranchResult{DatabaseID: db.ID, BranchID: branchID, Name: in.Name, From: from, ExpiresAt: expires, ConnectionString: uri}, nil
}

func (g *Guard) recordDev(ctx context.Context, databaseID, branchID, name string, expires time.Time) error {
	err := g.store.AddBranch(ctx, store.Branch{ID: branchID, DatabaseID: databaseID, Name: name, Kind: store.BranchDev,
		ExpiresAt: &expires, CreatedAt: g.now()})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}

// branchFromCheckpoint makes a dev branch holding a checkpoint's data: a snapshot restore that
// is not finalized is a new branch of its own, leaving main alone.
func (g *Guard) branchFromCheckpoint(ctx context.Context, org Org, st *dbState, checkpoint, name string, expires time.Time, ep neon.EndpointCreate) (string, error) {
	db := st.db
	snaps, err := snapshots(ctx, org, db.ID)
	if err != nil {
		return "", err
	}
	var snap *neon.Snapshot
	for i, s := range snaps {
		if s.Name == checkpoint || s.ID == checkpoint {
			snap = &snaps[i]
			break
		}
	}
	if snap == nil {
		return "", invalid(fmt.Sprintf("from %q is neither main, a checkpoint, nor an RFC 3339 time", checkpoint),
			"use from=\"main\", a name from list_checkpoints, or a time like 2026-01-02T15:04:05Z")
	}
	// The target must be today's main: after a checkpoint restore the snapshot's source is
	// the replaced branch, which may be gone.
	restored, err := org.API.RestoreSnapshot(ctx, db.ID, snap.ID, neon.SnapshotRestore{Name: name, TargetBranchID: st.main.ID})
	if err != nil {
		return "", upstream("create_dev_branch", err, fmt.Sprintf("call list_branches: if %q exists it was created; otherwise call create_dev_branch again", name))
	}
	id := restored.Branch.ID
	ctx = context.WithoutCancel(ctx)
	if err := g.recordDev(ctx, db.ID, id, name, expires); err != nil {
		return "", err
	}
	partial := func(what string, err error) error {
		ge := AsError(upstream("create_dev_branch: "+what, err))
		ge.Message += fmt.Sprintf("; branch %q was created without it", name)
		ge.Hint = fmt.Sprintf("delete it with delete_dev_branch (branch=%q) and call create_dev_branch again", name)
		return ge
	}
	if _, err := org.API.UpdateBranch(ctx, db.ID, id, neon.BranchUpdate{ExpiresAt: &expires}); err != nil {
		return "", partial("set expiry", err)
	}
	if len(restored.Endpoints) == 0 {
		if _, err := org.API.CreateEndpoint(ctx, db.ID, id, ep); err != nil {
			return "", partial("create compute", err)
		}
	}
	return id, nil
}

// ListBranches lists a database's branches with their kinds and compute states.
func (g *Guard) ListBranches(ctx context.Context, databaseID string) (*ListBranchesResult, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	db, org, err := g.database(ctx, c, databaseID)
	if err != nil {
		return nil, err
	}
	st, err := g.state(ctx, org, db)
	if err != nil {
		return nil, err
	}
	eps, err := org.API.ListEndpoints(ctx, db.ID)
	if err != nil {
		return nil, upstream("list_branches", err)
	}
	state := map[string]string{}
	for _, e := range eps {
		if e.Type == neon.EndpointReadWrite || state[e.BranchID] == "" {
			state[e.BranchID] = e.CurrentState
		}
	}
	out := &ListBranchesResult{DatabaseID: db.ID, Branches: make([]Branch, 0, len(st.branches)), Limit: c.tier.Branches}
	for _, b := range st.branches {
		es := state[b.ID]
		switch es {
		case neon.EndpointStateActive, neon.EndpointStateIdle, neon.EndpointStateInit:
		default:
			es = "none" // no compute, or a state this contract does not know
		}
		var exp *time.Time
		if b.ExpiresAt != nil {
			t := b.ExpiresAt.UTC()
			exp = &t
		}
		out.Branches = append(out.Branches, Branch{BranchID: b.ID, Name: b.Name, Kind: st.kind(b), ParentID: b.ParentID,
			CreatedAt: b.CreatedAt.UTC(), ExpiresAt: exp, EndpointState: es})
	}
	return out, nil
}

// DeleteDevBranch deletes a dev or backup branch; main is never deleted.
func (g *Guard) DeleteDevBranch(ctx context.Context, databaseID, branch string) (*DeleteBranchResult, error) {
	c, err := g.caller(ctx)
	if err != nil {
		return nil, err
	}
	if branch == "" {
		return nil, invalid("branch is required", "pass a branch name or id from list_branches")
	}
	ctx, db, org, unlock, err := g.lockDatabase(ctx, c, databaseID)
	if err != nil {
		return nil, err
	}
	defer unlock()

	st, err := g.state(ctx, org, db)
	if err != nil {
		return nil, err
	}
	if branch == mainBranchName || branch == st.main.ID || branch == st.main.Name {
		return nil, invalid("the main branch cannot be deleted",
			"to go back in time use undo_to_time or restore_checkpoint")
	}
	b, err := st.resolve(branch)
	if err != nil {
		// Already gone: deleting is idempotent.
		_ = g.store.DeleteBranch(ctx, db.ID, branch)
		return &DeleteBranchResult{DatabaseID: db.ID, BranchID: branch, Name: branch, Deleted: false}, nil
	}
	// Whether a branch with children may go is Neon's call (an undo backup is the restored
	// branch's parent on Neon); its 422 comes back as INVALID_ARGUMENT with Neon's reason.
	if err := g.deleteBranch(ctx, org, db.ID, b, st.kind(b)); err != nil {
		return nil, upstream("delete_dev_branch", err)
	}
	if err := g.store.DeleteBranch(ctx, db.ID, b.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return &DeleteBranchResult{DatabaseID: db.ID, BranchID: b.ID, Name: b.Name, Deleted: true}, nil
}

// deleteBranch deletes a branch. On Neon an undo backup is the restored branch's parent and
// may be refused (422) for a while after the restore; a backup's deletion is retried a few
// times before the refusal reaches the agent.
func (g *Guard) deleteBranch(ctx context.Context, org Org, databaseID string, b neon.Branch, kind string) error {
	for attempt := 0; ; attempt++ {
		err := org.API.DeleteBranch(ctx, databaseID, b.ID)
		var apiErr *neon.APIError
		switch {
		case err == nil, errors.Is(err, neon.ErrNotFound):
			return nil
		case kind == store.BranchBackup && attempt < 3 && errors.As(err, &apiErr) && apiErr.StatusCode == 422:
			select {
			case <-time.After(time.Duration(attempt+1) * time.Second):
			case <-ctx.Done():
				return err
			}
		default:
			return err
		}
	}
}
