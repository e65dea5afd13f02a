package store

// UsageStore keeps the usage monitor's samples, the alerts it raised (one per database, metric,
// threshold and billing period) and the webhook outbox that delivers them.
type UsageStore interface {
}
