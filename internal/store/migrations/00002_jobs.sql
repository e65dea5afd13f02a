-- Durable jobs (tier changes). 00001 created the jobs table; this adds what running a job
-- exactly once needs: a lease (one runner at a time across replicas), the last error, a start
-- count, the finish time, and "one unfinished job per tenant and kind".
--
-- Portable like 00001: TEXT/BIGINT/INTEGER only, times as BIGINT unix microseconds UTC.

-- +goose Up
ALTER TABLE jobs ADD COLUMN error TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
-- lease_owner '' = nobody runs the job; lease_until (unix micros) is when a runner that
-- stopped renewing (crashed) loses it.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN finished_at BIGINT;
-- A second tier change of a tenant while one is unfinished is refused by this index (both
-- engines support partial unique indexes), so the rule holds across replicas.
CREATE UNIQUE INDEX jobs_one_active ON jobs (tenant_id, kind) WHERE state IN ('pending', 'running', 'failed');
CREATE INDEX jobs_tenant_created ON jobs (tenant_id, created_at);

-- +goose Down
DROP INDEX jobs_tenant_created;
DROP INDEX jobs_one_active;
ALTER TABLE jobs DROP COLUMN finished_at;
ALTER TABLE jobs DROP COLUMN lease_until;
ALTER TABLE jobs DROP COLUMN lease_owner;
ALTER TABLE jobs DROP COLUMN attempts;
ALTER TABLE jobs DROP COLUMN error;
