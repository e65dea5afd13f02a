-- neonguard metadata schema.
--
-- Portable on purpose: the same file runs on SQLite (embedded default) and on PostgreSQL
-- (hosted, several replicas). Hence only TEXT, BIGINT and INTEGER columns, times as BIGINT
-- unix microseconds UTC (converted in Go), no AUTOINCREMENT/SERIAL/IDENTITY, no SQLite-only
-- syntax. Partial unique indexes and CHECK constraints are supported by both.

-- +goose Up
CREATE TABLE tenants (
    id         TEXT   NOT NULL PRIMARY KEY,
    tier       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- Only the hash of a token is stored. Used by a later issue (internal/auth).
CREATE TABLE tokens (
    id           TEXT   NOT NULL PRIMARY KEY,
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    hash         TEXT   NOT NULL UNIQUE,
    scopes       TEXT   NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX tokens_tenant ON tokens (tenant_id);

-- One row per Neon project the guard created. id (the Neon project id) is NULL while the
-- create is in flight (a reservation); UNIQUE still allows any number of NULLs on both
-- engines, so "unique when set" needs no partial index.
CREATE TABLE databases (
    id             TEXT UNIQUE,
    tenant_id      TEXT    NOT NULL REFERENCES tenants (id),
    name           TEXT    NOT NULL,
    org_id         TEXT    NOT NULL DEFAULT '',
    root_branch_id TEXT    NOT NULL DEFAULT '',
    region_id      TEXT    NOT NULL DEFAULT '',
    pg_version     INTEGER NOT NULL DEFAULT 0,
    role_name      TEXT    NOT NULL DEFAULT '',
    database_name  TEXT    NOT NULL DEFAULT '',
    created_at     BIGINT  NOT NULL,
    deleted_at     BIGINT
);
-- (tenant, name) is unique among live databases only, so a tenant can reuse the name of a
-- database it deleted. ReserveDatabase's ON CONFLICT names this index's columns and predicate.
CREATE UNIQUE INDEX databases_tenant_name ON databases (tenant_id, name) WHERE deleted_at IS NULL;

CREATE TABLE checkpoints (
    id          TEXT   NOT NULL PRIMARY KEY,
    database_id TEXT   NOT NULL REFERENCES databases (id),
    name        TEXT   NOT NULL DEFAULT '',
    branch_id   TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
CREATE INDEX checkpoints_database ON checkpoints (database_id, created_at);

CREATE TABLE branches (
    id          TEXT   NOT NULL PRIMARY KEY,
    database_id TEXT   NOT NULL REFERENCES databases (id),
    name        TEXT   NOT NULL DEFAULT '',
    kind        TEXT   NOT NULL CHECK (kind IN ('main', 'dev', 'backup')),
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX branches_database ON branches (database_id, created_at);
-- The expiry sweeper looks for expired dev/backup branches across all databases.
CREATE INDEX branches_expires ON branches (expires_at);

-- One row per tool call. The id is generated in Go (time-ordered int64, see auditIDs in
-- sqlite.go) rather than by the engine: SQLite would need INTEGER PRIMARY KEY (rowid alias)
-- and PostgreSQL BIGINT GENERATED ALWAYS AS IDENTITY, which no single file can express.
-- No foreign keys: the audit must record calls for unknown tenants and deleted databases.
CREATE TABLE audit (
    id          BIGINT NOT NULL PRIMARY KEY,
    at          BIGINT NOT NULL,
    tenant_id   TEXT   NOT NULL DEFAULT '',
    tool        TEXT   NOT NULL DEFAULT '',
    args        TEXT   NOT NULL DEFAULT '',
    database_id TEXT   NOT NULL DEFAULT '',
    decision    TEXT   NOT NULL DEFAULT '',
    outcome     TEXT   NOT NULL DEFAULT '',
    error       TEXT   NOT NULL DEFAULT '',
    duration_ms BIGINT NOT NULL DEFAULT 0,
    request_id  TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX audit_tenant_at ON audit (tenant_id, at);
-- Unfiltered (operator) listings read newest first without sorting the whole table.
CREATE INDEX audit_at ON audit (at);

-- Resumable multi-step work (tier changes move projects between orgs). Used by a later issue.
CREATE TABLE jobs (
    id         TEXT   NOT NULL PRIMARY KEY,
    kind       TEXT   NOT NULL,
    tenant_id  TEXT   NOT NULL,
    state      TEXT   NOT NULL,
    step       TEXT   NOT NULL DEFAULT '',
    payload    TEXT   NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_state ON jobs (state, updated_at);

-- +goose Down
DROP TABLE jobs;
DROP TABLE audit;
DROP TABLE branches;
DROP TABLE checkpoints;
DROP TABLE databases;
DROP TABLE tokens;
DROP TABLE tenants;
