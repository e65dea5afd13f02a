package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The usage monitor's SQL (see UsageStore); portable like queries.go.
const (
	qAddUsageSample = `INSERT INTO usage_samples (database_id, tenant_id, taken_at, period_start, period_end,
active_time_seconds, compute_time_seconds, written_data_bytes, data_transfer_bytes, logical_size_bytes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`
	qLatestUsageSample = `SELECT database_id, tenant_id, taken_at, period_start, period_end,
active_time_seconds, compute_time_seconds, written_data_bytes, data_transfer_bytes, logical_size_bytes
FROM usage_samples WHERE database_id = $1 ORDER BY taken_at DESC LIMIT 1`
	qPruneUsageSamples = `DELETE FROM usage_samples WHERE taken_at < $1`

	// No conflict target: a clash on the id or on (database, metric, threshold, period) both
	// make the insert a no-op.
	qRaiseAlert = `INSERT INTO usage_alerts (id, database_id, tenant_id, metric, threshold, level,
used, quota, period_start, period_end, raised_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING`
	qAddOutbox = `INSERT INTO usage_outbox (alert_id, payload, next_attempt_at, created_at)
VALUES ($1, $2, $3, $4)`
	qListAlerts = `SELECT a.id, a.database_id, a.tenant_id, a.metric, a.threshold, a.level, a.used, a.quota,
a.period_start, a.period_end, a.raised_at,
CASE WHEN o.alert_id IS NULL THEN 0 ELSE 1 END, o.delivered_at, COALESCE(o.attempts, 0)
FROM usage_alerts a LEFT JOIN usage_outbox o ON o.alert_id = a.id
WHERE a.database_id = $1 AND a.period_start <= $2 AND a.period_end > $2
ORDER BY a.raised_at, a.metric, a.threshold`

	// A row is claimable when undelivered, due, and not leased (or its lease ran out).
	qDueDeliveries = `SELECT alert_id FROM usage_outbox
WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND lease_until <= $1
ORDER BY next_attempt_at, alert_id LIMIT $2`
	qClaimDelivery = `UPDATE usage_outbox SET lease_owner = $2, lease_until = $3
WHERE alert_id = $1 AND delivered_at IS NULL AND next_attempt_at <= $4 AND lease_until <= $4`
	qGetDelivery = `SELECT alert_id, payload, attempts, next_attempt_at, last_error, lease_until
FROM usage_outbox WHERE alert_id = $1 AND lease_owner = $2`
	qDeliverySucceeded = `UPDATE usage_outbox SET delivered_at = $3, lease_owner = '', lease_until = 0, last_error = ''
WHERE alert_id = $1 AND lease_owner = $2 AND delivered_at IS NULL`
	qDeliveryFailed = `UPDATE usage_outbox SET attempts = attempts + 1, last_error = $3, next_attempt_at = $4,
lease_owner = '', lease_until = 0
WHERE alert_id = $1 AND lease_owner = $2 AND delivered_at IS NULL`
)

// maxLastError bounds the stored delivery error.
const maxLastError = 1000

func (s *sqlStore) AddUsageSamples(ctx context.Context, samples []UsageSample) (err error) {
	if len(samples) == 0 {
		return nil
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("store: add %d usage samples: %w", len(samples), err)
		}
	}()
	for _, u := range samples {
		if u.DatabaseID == "" || u.TakenAt.IsZero() {
			return errors.New("empty database id or time")
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, qAddUsageSample)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, u := range samples {
		if _, err := stmt.ExecContext(ctx, u.DatabaseID, u.TenantID, micros(u.TakenAt), micros(u.PeriodStart),
			micros(u.PeriodEnd), u.ActiveTimeSeconds, u.ComputeTimeSeconds, u.WrittenDataBytes,
			u.DataTransferBytes, u.LogicalSizeBytes); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (s *sqlStore) LatestUsageSample(ctx context.Context, databaseID string) (UsageSample, error) {
	var u UsageSample
	var taken, start, end int64
	err := s.queryRow(ctx, s.r, qLatestUsageSample, databaseID).Scan(&u.DatabaseID, &u.TenantID,
		&taken, &start, &end, &u.ActiveTimeSeconds, &u.ComputeTimeSeconds, &u.WrittenDataBytes,
		&u.DataTransferBytes, &u.LogicalSizeBytes)
	if err != nil {
		return UsageSample{}, fmt.Errorf("store: latest usage sample of database %q: %w", databaseID, notFound(err))
	}
	u.TakenAt, u.PeriodStart, u.PeriodEnd = fromMicros(taken), fromMicros(start), fromMicros(end)
	return u, nil
}

func (s *sqlStore) PruneUsageSamples(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, qPruneUsageSamples, micros(before))
	if err != nil {
		return 0, fmt.Errorf("store: prune usage samples: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: prune usage samples: %w", err)
	}
	return n, nil
}

// RaiseAlert inserts the alert and, only when that insert took effect, its outbox row, in one
// transaction: there is never an alert whose delivery was lost, nor a second delivery of one.
// On PostgreSQL a concurrent insert of the same alert waits for the first transaction and
// then does nothing (as ReserveDatabase relies on).
func (s *sqlStore) RaiseAlert(ctx context.Context, a Alert, payload []byte) (raised bool, err error) {
	if a.ID == "" || a.DatabaseID == "" || a.Metric == "" || a.PeriodStart.IsZero() {
		return false, errors.New("store: raise alert: empty id, database id, metric or period start")
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("store: raise alert %s (%s %s %d%%): %w", a.ID, a.DatabaseID, a.Metric, a.Threshold, err)
		}
	}()
	raisedAt := orNow(a.RaisedAt)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, qRaiseAlert, a.ID, a.DatabaseID, a.TenantID, a.Metric, a.Threshold,
		a.Level, a.Used, a.Quota, micros(a.PeriodStart), micros(a.PeriodEnd), micros(raisedAt))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return false, err
	}
	if payload != nil {
		if _, err := tx.ExecContext(ctx, qAddOutbox, a.ID, string(payload), micros(raisedAt), micros(raisedAt)); err != nil {
			return false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

func (s *sqlStore) ListAlerts(ctx context.Context, databaseID string, at time.Time) ([]Alert, error) {
	rows, err := s.query(ctx, s.r, qListAlerts, databaseID, micros(at))
	if err != nil {
		return nil, fmt.Errorf("store: list alerts of database %q: %w", databaseID, err)
	}
	out, err := collect(rows, scanAlert)
	if err != nil {
		return nil, fmt.Errorf("store: list alerts of database %q: %w", databaseID, err)
	}
	return out, nil
}

func scanAlert(r scanner) (Alert, error) {
	var a Alert
	var start, end, raised int64
	var queued int
	var delivered sql.NullInt64
	if err := r.Scan(&a.ID, &a.DatabaseID, &a.TenantID, &a.Metric, &a.Threshold, &a.Level, &a.Used,
		&a.Quota, &start, &end, &raised, &queued, &delivered, &a.Attempts); err != nil {
		return Alert{}, notFound(err)
	}
	a.PeriodStart, a.PeriodEnd, a.RaisedAt = fromMicros(start), fromMicros(end), fromMicros(raised)
	a.Queued = queued == 1
	a.DeliveredAt = fromNullMicros(delivered)
	return a, nil
}

// ClaimDeliveries lists due rows, then claims each with a conditional UPDATE: of concurrent
// claimers only the one whose UPDATE matched gets it, on both engines and across replicas.
func (s *sqlStore) ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Delivery, error) {
	if owner == "" || lease <= 0 || limit <= 0 {
		return nil, errors.New("store: claim deliveries: empty owner, or lease or limit not positive")
	}
	wrap := func(err error) error { return fmt.Errorf("store: claim deliveries: %w", err) }
	rows, err := s.w.QueryContext(ctx, qDueDeliveries, micros(now), limit)
	if err != nil {
		return nil, wrap(err)
	}
	ids, err := collect(rows, func(r scanner) (string, error) {
		var id string
		return id, r.Scan(&id)
	})
	if err != nil {
		return nil, wrap(err)
	}
	var out []Delivery
	for _, id := range ids {
		res, err := s.w.ExecContext(ctx, qClaimDelivery, id, owner, micros(now.Add(lease)), micros(now))
		if err != nil {
			return out, wrap(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return out, wrap(err)
		} else if n == 0 {
			continue // another claimer won it
		}
		var d Delivery
		var payload string
		var next, until int64
		if err := s.w.QueryRowContext(ctx, qGetDelivery, id, owner).Scan(&d.AlertID, &payload, &d.Attempts,
			&next, &d.LastError, &until); err != nil {
			return out, wrap(notFound(err))
		}
		d.Payload, d.NextAttemptAt, d.LeaseUntil = []byte(payload), fromMicros(next), fromMicros(until)
		out = append(out, d)
	}
	return out, nil
}

func (s *sqlStore) DeliverySucceeded(ctx context.Context, alertID, owner string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, qDeliverySucceeded, alertID, owner, micros(orNow(at)))
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: delivery of alert %s succeeded: %w", alertID, err)
	}
	return nil
}

func (s *sqlStore) DeliveryFailed(ctx context.Context, alertID, owner, lastError string, next time.Time) error {
	if len(lastError) > maxLastError {
		lastError = strings.ToValidUTF8(lastError[:maxLastError], "") // PostgreSQL refuses invalid UTF-8
	}
	res, err := s.w.ExecContext(ctx, qDeliveryFailed, alertID, owner, lastError, micros(next))
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("store: delivery of alert %s failed: %w", alertID, err)
	}
	return nil
}
