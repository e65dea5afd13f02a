package guard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/errcode"
	"github.com/neonguard/neonguard/internal/neon"
	"github.com/neonguard/neonguard/internal/policy"
	"github.com/neonguard/neonguard/internal/progress"
	"github.com/neonguard/neonguard/internal/store"
)

// minUndoAgo is the smallest ago undo_to_time takes: a shorter one would restore to a moment
// indistinguishable from now (Neon resolves times to its own clock), while still replacing the
// branch and leaving a backup.
const minUndoAgo = time.Second

// undoIntent is an undo in progress: the restore and the backup branch it leaves.
type undoIntent struct {
	BranchID   string    `json:"branch_id"`
	BranchName string    `json:"branch_name"`
	Target     time.Time `json:"target"`
	BackupName string    `json:"backup_name"`
	ExpiresAt  time.Time `json:"expires_at"`
	Request    string    `json:"request"` // the call's arguments, to recognise its retry
	Restored   bool      `json:"restored,omitempty"`
	Backup     BranchRef `json:"backup,omitzero"`
}

func (p *undoIntent) result(databaseID string) *UndoResult {
	return &UndoResult{DatabaseID: databaseID, Branch: BranchRef{BranchID: p.BranchID, Name: p.BranchName},
		RestoredTo: p.Target, BackupBranch: p.Backup}
}

func undoRequest(in UndoInput) string {
	if in.Timestamp != nil {
		return "branch=" + in.Branch + " timestamp=" + in.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	return "branch=" + in.Branch + " ago=" + in.Ago.String()
}

// UndoToTime restores a branch in place to a time: same branch id, same endpoint, same
// connection string. Neon keeps the state from just before as a backup branch, which the guard
// gives the tier's backup TTL. Restoring main (a root branch) leaves it a root on Neon, so it
// can still be checkpointed; the backup is a separate root branch without children.
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
	case in.Ago >= minUndoAgo:
		target = now.Add(-in.Ago)
	case in.Ago != 0:
		return nil, invalid(fmt.Sprintf("ago %s is too short: the smallest undo is %s", in.Ago, minUndoAgo), "e.g. ago=\"30s\" or ago=\"15m\"")
	default:
		return nil, invalid("timestamp or ago is required", "e.g. ago=\"15m\" or timestamp=\"2026-01-02T15:04:05Z\"")
	}
	target = target.UTC()
	if target.After(now) {
		return nil, invalid(fmt.Sprintf("timestamp %s is in the future", target.Format(time.RFC3339)), "pass a time in the past, or ago")
	}
	if d := policy.CheckRestoreTarget(c.tier, now, target); !d.Allow {
		return nil, denied(d)
	}
	ctx, db, org, unlock, err := g.lockDatabase(ctx, c, in.DatabaseID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if rec, ok := g.claimRecovered(ctx, db, intentUndo, func(payload string) bool {
		p, err := decodePayload[undoIntent](payload)
		return err == nil && p.Request == undoRequest(in)
	}); ok {
		p, err := decodePayload[undoIntent](rec.Payload)
		if err != nil {
			return nil, err
		}
		return p.result(db.ID), nil
	}

	progress.Plan(ctx, 3)
	progress.Step(ctx, "reading the branches")
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
	p := undoIntent{BranchID: b.ID, BranchName: b.Name, Target: target, Request: undoRequest(in),
		BackupName: uniqueName(st, fmt.Sprintf("%s-undo-%s", b.Name, now.UTC().Format("20060102-150405"))),
		ExpiresAt:  now.Add(c.tier.UndoBackupTTL).UTC().Truncate(time.Second)}
	run, err := g.beginIntent(ctx, db, intentUndo, p)
	if err != nil {
		return nil, err
	}
	work, cancel := detach(ctx)
	defer cancel()
	progress.Step(ctx, fmt.Sprintf("restoring branch %q to %s", b.Name, target.Format(time.RFC3339)))
	restored, err := org.API.RestoreBranch(work, db.ID, b.ID, neon.BranchRestore{
		SourceBranchID: b.ID, SourceTimestamp: &target, PreserveUnderName: p.BackupName,
	})
	g.sql.evict(db.ID, b.ID) // its compute restarts: kept connections to it are dead
	if err != nil {
		return nil, run.firstChangeFailed(work, err, "undo_to_time", "the branch was not changed",
			fmt.Sprintf("whether the undo happened is found out on the next call for this database (a branch named %q exists if it did)", p.BackupName),
			"call list_branches in a moment before calling undo_to_time again")
	}
	p.Restored = true
	if restored.ParentID != "" && restored.ParentID != b.ParentID {
		p.Backup.BranchID = restored.ParentID // a non-root branch: Neon made the backup its parent
	}
	if err := run.save(work, p); err != nil {
		return nil, err
	}
	progress.Step(ctx, fmt.Sprintf("recording backup branch %q", p.BackupName))
	res, err := g.finishUndo(work, org, db, run, &p)
	if err != nil {
		return nil, happened(err, fmt.Sprintf("the undo happened (branch %q is restored to %s), but recording its backup %q did not finish",
			p.BranchName, p.Target.Format(time.RFC3339), p.BackupName),
			"do not call undo_to_time again for this: the next call for this database records the backup (list_branches shows it)")
	}
	return res, nil
}

// happened turns the failure of the bookkeeping after a change into an error that says the
// change happened: the intent stays open and the next call for the database finishes it.
func happened(err error, what, hint string) error {
	ge := errcode.As(upstream("record", err))
	if ge == nil {
		return err
	}
	return &errcode.Error{Code: errcode.Upstream, Message: what + ": " + ge.Message, Hint: hint, Err: err}
}

// finishUndo records an undo that happened: its backup branch, with its expiry on Neon and in
// the store.
func (g *Guard) finishUndo(ctx context.Context, org Org, db store.Database, run *intentRun, p *undoIntent) (*UndoResult, error) {
	backup, err := g.branchNamed(ctx, org, db.ID, p.Backup.BranchID, p.BackupName)
	if err != nil {
		return nil, err
	}
	if backup != nil {
		if p.Backup, err = g.recordBackup(ctx, org, db.ID, *backup, p.ExpiresAt); err != nil {
			return nil, err
		}
	}
	if err := run.complete(ctx, p); err != nil {
		return nil, err
	}
	return p.result(db.ID), nil
}

// resumeUndo finishes an interrupted undo: it happened when its backup branch exists (Neon
// makes the backup with the restore, in one request).
func (g *Guard) resumeUndo(ctx context.Context, org Org, db store.Database, run *intentRun) error {
	p, err := decodePayload[undoIntent](run.rec.Payload)
	if err != nil {
		return err
	}
	if !p.Restored {
		backup, err := g.branchNamed(ctx, org, db.ID, "", p.BackupName)
		if err != nil {
			return err
		}
		if backup == nil {
			return run.rollBack(ctx)
		}
		p.Restored, p.Backup.BranchID = true, backup.ID
	}
	_, err = g.finishUndo(ctx, org, db, run, &p)
	return err
}

// branchNamed finds a branch by id (when known) or by name; nil when Neon has neither.
func (g *Guard) branchNamed(ctx context.Context, org Org, projectID, id, name string) (*neon.Branch, error) {
	if id != "" {
		b, err := org.API.GetBranch(ctx, projectID, id)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, neon.ErrNotFound) {
			return nil, upstream("read branch", err)
		}
	}
	branches, err := org.API.ListBranches(ctx, projectID)
	if err != nil {
		return nil, upstream("list branches", err)
	}
	for _, b := range branches {
		if b.Name == name {
			return &b, nil
		}
	}
	return nil, nil
}

// recordBackup gives a backup branch (an undo's pre-restore state, or the branch a checkpoint
// restore replaced) its expiry on Neon and records it with that expiry. Neon may refuse the
// expiry (it allows none on a branch with children: the backup of a non-root branch is that
// branch's parent): the record keeps the expiry anyway, and the janitor deletes the backup
// once it has passed. Only a failure to record is an error.
func (g *Guard) recordBackup(ctx context.Context, org Org, databaseID string, b neon.Branch, expires time.Time) (BranchRef, error) {
	expires = expires.UTC().Truncate(time.Second)
	ref := BranchRef{BranchID: b.ID, Name: b.Name, ExpiresAt: &expires}
	if b.ExpiresAt == nil || !b.ExpiresAt.Equal(expires) {
		if _, err := org.API.UpdateBranch(ctx, databaseID, b.ID, neon.BranchUpdate{ExpiresAt: &expires}); err != nil {
			g.log.WarnContext(ctx, "Neon did not take a backup branch's expiry; the janitor deletes it when it passes",
				"database_id", databaseID, "branch_id", b.ID, "expires_at", expires, "err", err)
		}
	}
	if err := g.store.AddBranch(ctx, store.Branch{ID: b.ID, DatabaseID: databaseID, Name: b.Name, Kind: store.BranchBackup,
		ExpiresAt: ref.ExpiresAt, CreatedAt: g.now()}); err != nil && !errors.Is(err, store.ErrConflict) {
		return ref, err
	}
	return ref, nil
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

// devIntent is a dev branch in progress.
type devIntent struct {
	Name       string              `json:"name"`
	From       string              `json:"from"`
	ExpiresAt  time.Time           `json:"expires_at"`
	ParentID   string              `json:"parent_id,omitempty"`   // main: the parent, or the snapshot restore's target
	At         *time.Time          `json:"at,omitempty"`          // from a time
	SnapshotID string              `json:"snapshot_id,omitempty"` // from a checkpoint
	Endpoint   neon.EndpointCreate `json:"endpoint"`
	BranchID   string              `json:"branch_id,omitempty"`
	// HasExpiry and HasEndpoint: Neon has them (known from the create's answer); a resume does
	// not know and checks.
	HasExpiry   bool `json:"has_expiry,omitempty"`
	HasEndpoint bool `json:"has_endpoint,omitempty"`
}

// CreateDevBranch branches the database for development, with a compute in the tier's range
// and an expiry. It is idempotent per name: a dev branch of that name is returned as it is.
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
	progress.Plan(ctx, 3)
	progress.Step(ctx, "checking the branch limit and quota")
	if res, done, err := g.createDevBranchFast(ctx, c, org, db, in, from, at, ttl, now); done {
		return res, err
	}

	st, err := g.state(ctx, org, db)
	if err != nil {
		return nil, err
	}
	if b, taken := st.byName(in.Name); taken {
		if st.kind(b) != store.BranchDev {
			return nil, invalid(fmt.Sprintf("branch %q already exists and is not a dev branch", in.Name), "choose another name")
		}
		// A retry (or a repeat) of this call: the branch it made.
		exp := now.Add(ttl).UTC().Truncate(time.Second)
		if b.ExpiresAt != nil {
			exp = b.ExpiresAt.UTC()
		}
		uri, err := g.connectionURI(ctx, org, db, b.ID, true)
		if err != nil {
			return nil, err
		}
		return &DevBranchResult{DatabaseID: db.ID, BranchID: b.ID, Name: b.Name, From: g.devFrom(ctx, db.ID, b.Name, from),
			ExpiresAt: exp, ConnectionString: uri}, nil
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
	di := devIntent{Name: in.Name, From: from, ExpiresAt: now.Add(ttl).UTC().Truncate(time.Second),
		Endpoint: neon.EndpointCreate{Type: neon.EndpointReadWrite, AutoscalingLimitMinCU: c.tier.MinComputeCU,
			AutoscalingLimitMaxCU: c.tier.MaxComputeCU, SuspendTimeoutSeconds: int64(c.tier.SuspendTimeout.Seconds())}}
	di.ParentID, di.At = st.main.ID, at
	if from != mainBranchName && at == nil {
		snap, err := g.checkpointNamed(ctx, org, db.ID, from)
		if err != nil {
			return nil, err
		}
		di.SnapshotID = snap.ID
	}
	run, err := g.beginIntent(ctx, db, intentDevBranch, di)
	if err != nil {
		return nil, err
	}
	work, cancel := detach(ctx)
	defer cancel()
	created, err := g.makeDevBranch(work, org, db, run, &di)
	if err != nil {
		return nil, err
	}
	if err := g.finishDevBranch(work, org, db, run, &di); err != nil {
		return nil, err
	}
	uri := pooledURI(created, db) // the create's answer carries it, when made from main or a time
	if uri == "" {
		if uri, err = g.connectionURI(work, org, db, di.BranchID, true); err != nil {
			return nil, err
		}
	}
	return &DevBranchResult{DatabaseID: db.ID, BranchID: di.BranchID, Name: in.Name, From: from, ExpiresAt: di.ExpiresAt, ConnectionString: uri}, nil
}

// devFrom is what a dev branch was made from, as its intent recorded it; fallback when no
// intent is kept (made before intents, or pruned).
func (g *Guard) devFrom(ctx context.Context, databaseID, name, fallback string) string {
	recs, err := g.store.CompletedIntents(ctx, databaseID, intentDevBranch)
	if err != nil {
		return fallback
	}
	for _, rec := range recs {
		if p, err := decodePayload[devIntent](rec.Payload); err == nil && p.Name == name {
			return p.From
		}
	}
	return fallback
}

// checkpointNamed finds a checkpoint by name or id for a dev branch's from.
func (g *Guard) checkpointNamed(ctx context.Context, org Org, databaseID, ref string) (neon.Snapshot, error) {
	snaps, err := snapshots(ctx, org, databaseID)
	if err != nil {
		return neon.Snapshot{}, err
	}
	for _, s := range snaps {
		if s.Name == ref || s.ID == ref {
			return s, nil
		}
	}
	return neon.Snapshot{}, invalid(fmt.Sprintf("from %q is neither main, a checkpoint, nor an RFC 3339 time", ref),
		"use from=\"main\", a name from list_checkpoints, or a time like 2026-01-02T15:04:05Z")
}

// makeDevBranch creates the intent's branch: from main or a time, a branch with its compute and
// expiry in one request; from a checkpoint, a snapshot restore that is not finalized (a new
// branch of its own, leaving main alone), whose expiry and compute follow.
func (g *Guard) makeDevBranch(ctx context.Context, org Org, db store.Database, run *intentRun, di *devIntent) (*neon.CreatedBranch, error) {
	var err error
	var created *neon.CreatedBranch
	if di.SnapshotID == "" {
		progress.Step(ctx, fmt.Sprintf("creating branch %q with its compute", di.Name))
		created, err = org.API.CreateBranch(ctx, db.ID, neon.BranchCreate{
			ParentID: di.ParentID, Name: di.Name, ParentTimestamp: di.At, ExpiresAt: &di.ExpiresAt,
		}, []neon.EndpointCreate{di.Endpoint})
		if err == nil {
			di.BranchID, di.HasExpiry, di.HasEndpoint = created.Branch.ID, created.Branch.ExpiresAt != nil, len(created.Endpoints) > 0
		}
	} else {
		// The target must be today's main: after a checkpoint restore the snapshot's source is
		// the replaced branch, which may be gone.
		var restored *neon.RestoredSnapshot
		progress.Step(ctx, fmt.Sprintf("restoring checkpoint %q into branch %q", di.From, di.Name))
		restored, err = org.API.RestoreSnapshot(ctx, db.ID, di.SnapshotID, neon.SnapshotRestore{Name: di.Name, TargetBranchID: di.ParentID})
		if err == nil {
			di.BranchID, di.HasEndpoint = restored.Branch.ID, len(restored.Endpoints) > 0
		}
	}
	if err != nil {
		return nil, run.firstChangeFailed(ctx, err, "create_dev_branch", "no branch was created",
			fmt.Sprintf("whether %q was created is found out on the next call for this database", di.Name),
			"call create_dev_branch again with the same name in a moment: it returns the branch if it was created")
	}
	return created, run.save(ctx, di)
}

// finishDevBranch records a dev branch that exists and gives it what it lacks: its expiry and
// its compute (both part of the create request from main or a time).
func (g *Guard) finishDevBranch(ctx context.Context, org Org, db store.Database, run *intentRun, di *devIntent) error {
	progress.Step(ctx, fmt.Sprintf("recording branch %q", di.Name))
	if err := g.recordDev(ctx, db.ID, di.BranchID, di.Name, di.ExpiresAt); err != nil {
		return err
	}
	if !di.HasExpiry {
		progress.Step(ctx, "setting the branch's expiry")
		b, err := org.API.GetBranch(ctx, db.ID, di.BranchID)
		if err != nil {
			return upstream("create_dev_branch: read the new branch", err)
		}
		if b.ExpiresAt == nil || !b.ExpiresAt.Equal(di.ExpiresAt) {
			if _, err := org.API.UpdateBranch(ctx, db.ID, di.BranchID, neon.BranchUpdate{ExpiresAt: &di.ExpiresAt}); err != nil {
				return g.devPartial(ctx, di, "set its expiry", err)
			}
		}
		di.HasExpiry = true
		if err := run.save(ctx, di); err != nil {
			return err
		}
	}
	if !di.HasEndpoint {
		eps, err := org.API.ListBranchEndpoints(ctx, db.ID, di.BranchID)
		if err != nil {
			return upstream("create_dev_branch: list computes", err)
		}
		if len(eps) == 0 {
			progress.Step(ctx, "starting the branch's compute")
			if _, err := org.API.CreateEndpoint(ctx, db.ID, di.BranchID, di.Endpoint); err != nil {
				return g.devPartial(ctx, di, "start its compute", err)
			}
		}
		di.HasEndpoint = true
		if err := run.save(ctx, di); err != nil {
			return err
		}
	}
	return run.done(ctx)
}

// devPartial is the error of a dev branch that exists without its expiry or compute yet; the
// intent stays open and the next call for the database finishes it.
func (g *Guard) devPartial(_ context.Context, di *devIntent, what string, err error) error {
	ge := errcode.As(upstream("create_dev_branch: "+what, err))
	if ge == nil {
		return err
	}
	ge.Code = errcode.Upstream // the branch exists: retrying finishes it, whatever Neon said
	ge.Message += fmt.Sprintf("; branch %q was created and is finished (expiry, compute) on the next call for this database", di.Name)
	ge.Hint = "call create_dev_branch again with the same name in a moment: it returns the branch"
	return ge
}

// resumeDevBranch finishes an interrupted dev branch: it was created when Neon has a branch of
// its name.
func (g *Guard) resumeDevBranch(ctx context.Context, org Org, db store.Database, run *intentRun) error {
	di, err := decodePayload[devIntent](run.rec.Payload)
	if err != nil {
		return err
	}
	if di.BranchID == "" {
		b, err := g.branchNamed(ctx, org, db.ID, "", di.Name)
		if err != nil {
			return err
		}
		if b == nil {
			return run.rollBack(ctx)
		}
		di.BranchID = b.ID
		if err := run.save(ctx, di); err != nil {
			return err
		}
	}
	return g.finishDevBranch(ctx, org, db, run, &di)
}

func (g *Guard) recordDev(ctx context.Context, databaseID, branchID, name string, expires time.Time) error {
	err := g.store.AddBranch(ctx, store.Branch{ID: branchID, DatabaseID: databaseID, Name: name, Kind: store.BranchDev,
		ExpiresAt: &expires, CreatedAt: g.now()})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}

// ListBranches lists a database's branches with their kinds and compute states.
func (g *Guard) ListBranches(ctx context.Context, in DatabaseInput) (*ListBranchesResult, error) {
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
func (g *Guard) DeleteDevBranch(ctx context.Context, in DeleteBranchInput) (*DeleteBranchResult, error) {
	databaseID, branch := in.DatabaseID, in.Branch
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
	if err := g.deleteBranch(ctx, org, db.ID, b); err != nil {
		children := hasChildren(err)
		err = upstream("delete_dev_branch", err)
		if ge := errcode.As(err); ge != nil && children {
			ge.Hint = "Neon keeps a branch that has children: delete the branches whose parent_id is this branch first (list_branches shows them)"
		}
		return nil, err
	}
	if err := g.store.DeleteBranch(ctx, db.ID, b.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return &DeleteBranchResult{DatabaseID: db.ID, BranchID: b.ID, Name: b.Name, Deleted: true}, nil
}

// deleteBranch deletes a branch; already gone is fine. Neon refuses (422) a branch that has
// children; that refusal is final until the children are gone, so it is not retried.
func (g *Guard) deleteBranch(ctx context.Context, org Org, databaseID string, b neon.Branch) error {
	err := org.API.DeleteBranch(ctx, databaseID, b.ID)
	g.sql.evict(databaseID, b.ID)
	if err != nil && !errors.Is(err, neon.ErrNotFound) {
		return err
	}
	return nil
}

// hasChildren reports whether err is Neon's refusal to delete a branch that has children.
func hasChildren(err error) bool {
	var apiErr *neon.APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnprocessableEntity && strings.Contains(apiErr.Message, "children")
}
