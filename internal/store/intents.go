package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Intent is a multi-step operation of the guard on one database, recorded before its first
// Neon call. Payload is the use case's own JSON (what it creates, with kind and expiry, and the
// steps done); the store only keeps it. An intent is open until Finish.
type Intent struct {
	ID         string
	TenantID   string
	DatabaseID string
	Kind       string
	Payload    string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	DoneAt     *time.Time
	Outcome    string // "done" or "rolled_back" once finished
}

// IntentStore keeps intents. Every write is durable when it returns.
type IntentStore interface {
	AddIntent(ctx context.Context, in Intent) error
	// UpdateIntent replaces an open intent's payload (a step was done).
	UpdateIntent(ctx context.Context, id, payload string) error
	// FinishIntent closes an open intent with its outcome; finishing a closed one is ErrNotFound.
	FinishIntent(ctx context.Context, id, outcome string) error
	// OpenIntents lists the open intents of a database ("" = of every database), oldest first.
	OpenIntents(ctx context.Context, databaseID string) ([]Intent, error)
	// RecoveredIntents lists a database's intents finished with outcome "recovered" (by a
	// resume, for a call that never answered) since the given time, newest first.
	RecoveredIntents(ctx context.Context, databaseID string, since time.Time) ([]Intent, error)
	// CompletedIntents lists a database's intents of kind whose work was done (outcome done,
	// recovered or answered), newest first.
	CompletedIntents(ctx context.Context, databaseID, kind string) ([]Intent, error)
	// ClaimIntent turns a "recovered" intent into "answered" (a retry of its call took its
	// result); ErrNotFound when it is not "recovered" (another retry took it).
	ClaimIntent(ctx context.Context, id string) error
	// PruneIntents deletes intents finished before the given time.
	PruneIntents(ctx context.Context, before time.Time) (int64, error)
}

const (
	intentColumns  = `id, tenant_id, database_id, kind, payload, created_at, updated_at, done_at, outcome`
	qAddIntent     = `INSERT INTO intents (id, tenant_id, database_id, kind, payload, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)`
	qUpdateIntent  = `UPDATE intents SET payload = $2, updated_at = $3 WHERE id = $1 AND done_at IS NULL`
	qFinishIntent  = `UPDATE intents SET outcome = $2, done_at = $3, updated_at = $3 WHERE id = $1 AND done_at IS NULL`
	qOpenIntents   = `SELECT ` + intentColumns + ` FROM intents WHERE done_at IS NULL AND database_id = $1 ORDER BY created_at, id`
	qAllOpenIntent = `SELECT ` + intentColumns + ` FROM intents WHERE done_at IS NULL ORDER BY created_at, id`
	qRecovered     = `SELECT ` + intentColumns + ` FROM intents WHERE database_id = $1 AND outcome = 'recovered' AND done_at >= $2 ORDER BY done_at DESC, id`
	qCompleted     = `SELECT ` + intentColumns + ` FROM intents WHERE database_id = $1 AND kind = $2 AND outcome IN ('done', 'recovered', 'answered') ORDER BY done_at DESC, id`
	qClaimIntent   = `UPDATE intents SET outcome = 'answered', updated_at = $2 WHERE id = $1 AND outcome = 'recovered'`
	qPruneIntents  = `DELETE FROM intents WHERE done_at IS NOT NULL AND done_at < $1`
)

func (s *sqlStore) RecoveredIntents(ctx context.Context, databaseID string, since time.Time) ([]Intent, error) {
	rows, err := s.w.QueryContext(ctx, qRecovered, databaseID, micros(since))
	if err != nil {
		return nil, fmt.Errorf("store: recovered intents: %w", err)
	}
	out, err := collect(rows, scanIntent)
	if err != nil {
		return nil, fmt.Errorf("store: recovered intents: %w", err)
	}
	return out, nil
}

func (s *sqlStore) CompletedIntents(ctx context.Context, databaseID, kind string) ([]Intent, error) {
	rows, err := s.r.QueryContext(ctx, qCompleted, databaseID, kind)
	if err != nil {
		return nil, fmt.Errorf("store: completed intents: %w", err)
	}
	out, err := collect(rows, scanIntent)
	if err != nil {
		return nil, fmt.Errorf("store: completed intents: %w", err)
	}
	return out, nil
}

func (s *sqlStore) ClaimIntent(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, qClaimIntent, id, micros(time.Now()))
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: claim intent %s: %w", id, err)
	}
	return nil
}

func (s *sqlStore) PruneIntents(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, qPruneIntents, micros(before))
	if err != nil {
		return 0, fmt.Errorf("store: prune intents: %w", err)
	}
	return res.RowsAffected()
}

func (s *sqlStore) AddIntent(ctx context.Context, in Intent) error {
	if in.ID == "" || in.DatabaseID == "" || in.Kind == "" {
		return errors.New("store: add intent: empty id, database id or kind")
	}
	_, err := s.w.ExecContext(ctx, qAddIntent, in.ID, in.TenantID, in.DatabaseID, in.Kind, in.Payload, micros(orNow(in.CreatedAt)))
	if err != nil {
		return fmt.Errorf("store: add intent %s: %w", in.ID, mapWriteErr(err))
	}
	return nil
}

func (s *sqlStore) UpdateIntent(ctx context.Context, id, payload string) error {
	res, err := s.w.ExecContext(ctx, qUpdateIntent, id, payload, micros(time.Now()))
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: update intent %s: %w", id, err)
	}
	return nil
}

func (s *sqlStore) FinishIntent(ctx context.Context, id, outcome string) error {
	res, err := s.w.ExecContext(ctx, qFinishIntent, id, outcome, micros(time.Now()))
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: finish intent %s: %w", id, err)
	}
	return nil
}

func (s *sqlStore) OpenIntents(ctx context.Context, databaseID string) ([]Intent, error) {
	q, args := qOpenIntents, []any{databaseID}
	if databaseID == "" {
		q, args = qAllOpenIntent, nil
	}
	// From the writer: an intent written a moment ago must be seen by the next call.
	rows, err := s.query(ctx, s.w, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: open intents: %w", err)
	}
	out, err := collect(rows, scanIntent)
	if err != nil {
		return nil, fmt.Errorf("store: open intents: %w", err)
	}
	return out, nil
}

func scanIntent(sc scanner) (Intent, error) {
	var in Intent
	var created, updated int64
	var done sql.NullInt64
	if err := sc.Scan(&in.ID, &in.TenantID, &in.DatabaseID, &in.Kind, &in.Payload, &created, &updated, &done, &in.Outcome); err != nil {
		return Intent{}, err
	}
	in.CreatedAt, in.UpdatedAt = fromMicros(created), fromMicros(updated)
	if done.Valid {
		t := fromMicros(done.Int64)
		in.DoneAt = &t
	}
	return in, nil
}
