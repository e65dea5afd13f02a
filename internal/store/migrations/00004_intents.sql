-- Intents of the guard's multi-step operations (checkpoint replace, undo, dev branch, checkpoint
-- restore). Each is written before the first Neon call and carries what the next start or the
-- next call for its database needs to finish or roll it back: the names of what it creates,
-- their kind and expiry, and the steps done so far (payload, JSON).
--
-- Portable like 00001: TEXT/BIGINT only, times as BIGINT unix microseconds UTC.

-- +goose Up
CREATE TABLE intents (
    id          TEXT   NOT NULL PRIMARY KEY,
    tenant_id   TEXT   NOT NULL,
    database_id TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    payload     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    done_at     BIGINT,
    outcome     TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX intents_open ON intents (database_id, created_at) WHERE done_at IS NULL;
CREATE INDEX intents_database_done ON intents (database_id, done_at);

-- +goose Down
DROP INDEX intents_database_done;
DROP INDEX intents_open;
DROP TABLE intents;
