-- Usage monitor (issue 5): consumption samples, the alerts raised from them and the webhook
-- outbox that delivers those alerts. Portable like 00001: TEXT/BIGINT/INTEGER only, times as
-- BIGINT unix microseconds UTC, no engine-specific syntax.

-- +goose Up
-- One row per database per monitor round. No foreign keys: samples and alerts outlive a
-- deleted database (the audit trail of what was consumed).
CREATE TABLE usage_samples (
    database_id          TEXT   NOT NULL,
    tenant_id            TEXT   NOT NULL DEFAULT '',
    taken_at             BIGINT NOT NULL,
    period_start         BIGINT NOT NULL,
    period_end           BIGINT NOT NULL,
    active_time_seconds  BIGINT NOT NULL DEFAULT 0,
    compute_time_seconds BIGINT NOT NULL DEFAULT 0,
    written_data_bytes   BIGINT NOT NULL DEFAULT 0,
    data_transfer_bytes  BIGINT NOT NULL DEFAULT 0,
    logical_size_bytes   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (database_id, taken_at)
);
-- Pruning deletes by age across all databases.
CREATE INDEX usage_samples_taken ON usage_samples (taken_at);

-- An alert is raised once per (database, metric, threshold, billing period): the unique index
-- makes a second insert (a later round, a restart, another replica) a no-op.
CREATE TABLE usage_alerts (
    id           TEXT    NOT NULL PRIMARY KEY,
    database_id  TEXT    NOT NULL,
    tenant_id    TEXT    NOT NULL DEFAULT '',
    metric       TEXT    NOT NULL,
    threshold    INTEGER NOT NULL,
    level        TEXT    NOT NULL,
    used         BIGINT  NOT NULL DEFAULT 0,
    quota        BIGINT  NOT NULL DEFAULT 0,
    period_start BIGINT  NOT NULL,
    period_end   BIGINT  NOT NULL,
    raised_at    BIGINT  NOT NULL
);
CREATE UNIQUE INDEX usage_alerts_once ON usage_alerts (database_id, metric, threshold, period_start);

-- The webhook outbox: one row per alert to deliver, written in the alert's transaction. A
-- replica claims a due row by setting lease_owner/lease_until with a conditional UPDATE, so
-- one replica at a time delivers it; a crashed holder's lease simply runs out.
CREATE TABLE usage_outbox (
    alert_id        TEXT    NOT NULL PRIMARY KEY REFERENCES usage_alerts (id),
    payload         TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     BIGINT  NOT NULL DEFAULT 0,
    delivered_at    BIGINT,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL
);
-- The deliverer looks for undelivered rows that are due.
CREATE INDEX usage_outbox_due ON usage_outbox (delivered_at, next_attempt_at);

-- +goose Down
DROP TABLE usage_outbox;
DROP TABLE usage_alerts;
DROP TABLE usage_samples;
