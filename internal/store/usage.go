package store

import (
	"context"
	"time"
)

// UsageStore keeps the usage monitor's samples, the alerts it raised (one per database, metric,
// threshold and billing period) and the webhook outbox that delivers them.
type UsageStore interface {
	// AddUsageSamples stores samples in one transaction. A sample of the same database at the
	// same instant is kept once.
	AddUsageSamples(ctx context.Context, samples []UsageSample) error
	// LatestUsageSample returns the database's newest sample, or ErrNotFound.
	LatestUsageSample(ctx context.Context, databaseID string) (UsageSample, error)
	// PruneUsageSamples deletes the samples taken before before and returns how many.
	PruneUsageSamples(ctx context.Context, before time.Time) (int64, error)

	// RaiseAlert records a once and reports whether it is new: an alert of the same database,
	// metric, threshold and period start (or the same id) already stored makes it a no-op,
	// so "once per period" holds across rounds, restarts and replicas. With a non-nil
	// payload the alert's outbox row is written in the same transaction, due at once.
	RaiseAlert(ctx context.Context, a Alert, payload []byte) (raised bool, err error)
	// ListAlerts returns the database's alerts whose period contains at, oldest first, each
	// with its delivery state.
	ListAlerts(ctx context.Context, databaseID string, at time.Time) ([]Alert, error)

	// ClaimDeliveries leases up to limit undelivered outbox rows that are due at now and not
	// leased by anyone (or whose lease ran out) to owner until now+lease, oldest first. Of
	// any number of concurrent claimers (replicas), one gets each row.
	ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// DeliverySucceeded marks the row delivered. It is a no-op (ErrNotFound) when owner no
	// longer holds the lease and someone else already finished it.
	DeliverySucceeded(ctx context.Context, alertID, owner string, at time.Time) error
	// DeliveryFailed counts an attempt, records the error, releases the lease and makes the
	// row due again at next. ErrNotFound when owner no longer holds it or it was delivered.
	DeliveryFailed(ctx context.Context, alertID, owner, lastError string, next time.Time) error
}

// UsageSample is one database's consumption this billing period, as the monitor read it.
type UsageSample struct {
	DatabaseID  string
	TenantID    string
	TakenAt     time.Time
	PeriodStart time.Time
	PeriodEnd   time.Time

	ActiveTimeSeconds  int64
	ComputeTimeSeconds int64
	WrittenDataBytes   int64
	DataTransferBytes  int64
	LogicalSizeBytes   int64
}

// Alert is a quota threshold a database crossed in a billing period.
type Alert struct {
	ID          string // chosen by the caller, e.g. derived from the unique key
	DatabaseID  string
	TenantID    string
	Metric      string // policy.Metric* name
	Threshold   int    // percent: 80, 95 or 100
	Level       string // policy.Level* at the threshold
	Used        int64
	Quota       int64
	PeriodStart time.Time
	PeriodEnd   time.Time
	RaisedAt    time.Time

	// Read-only delivery state (ListAlerts): Queued when an outbox row exists.
	Queued      bool
	DeliveredAt *time.Time
	Attempts    int
}

// Delivery is a claimed outbox row.
type Delivery struct {
	AlertID       string
	Payload       []byte
	Attempts      int // failed attempts so far
	NextAttemptAt time.Time
	LastError     string
	LeaseUntil    time.Time
}
