// Package controlplane is the control plane of a local emulator of Neon's API
// v2: an http.Handler serving /api/v2/... with Neon's paths, status codes
// and JSON bodies (checked against testdata/openapi/neon-openapi-v2.json by
// the spectest package), so a real Neon client pointed at
// http://127.0.0.1:PORT/api/v2 works. Storage and computes are behind the
// neonlocal.DataPlane interface (package dataplane implements it);
// neonlocal.NopDataPlane is used when none is given.
//
// # Emulated as Neon does it
//
//   - Projects: create (201 with project, connection_uris, roles, databases,
//     operations create_timeline + start_compute, branch "main" or the
//     requested name, one read_write endpoint), list (search, org_id, limit
//     1..400, cursor = last project id), get, patch, delete.
//   - Branches: create (parent, parent_timestamp/parent_lsn inside
//     [now - history_retention_seconds, now], expires_at, endpoints,
//     annotation_value), list (search, sort_by, sort_order, limit, cursor =
//     last branch id, annotations map), get ({branch, annotation}), patch
//     (name, protected, expires_at with null clearing it), delete (200, 204
//     when already gone), in-place restore, expiry sweep.
//   - Snapshots (beta): create from query parameters (or a JSON body), list,
//     patch, delete (202), restore (always a new branch), finalize_restore.
//   - Endpoints: list, get, create (one read_write per branch, 409), patch,
//     delete, start, suspend. Operations: get, list (newest first).
//   - Org-to-org transfer (personal key only, 406 {"limits": [...]}) and the
//     legacy GET /consumption_history/projects.
//   - Keys: a personal key (both orgs) and one key per org. An org key only
//     sees its org: another org's project is a 404. With the personal key,
//     GET and POST /projects need org_id (400 "org_id is required").
//   - Account: GET /auth ({account_id, auth_method}: "api_key_user" with the
//     user's id for the personal key, "api_key_org" with the org id for an org
//     key), GET /users/me (the personal key's user; with no billing account,
//     as a user of the organizations era; an org key gets 404 "not allowed for
//     organization API keys", the message neonctl looks for), GET
//     /users/me/organizations (both orgs, managed_by "console"; an org key gets
//     its own org, as the spec says), GET /organizations/{org_id} and
//     .../members (the user, admin), GET /projects/shared (empty).
//   - Organization API keys: POST /organizations/{org_id}/api_keys ({key_name,
//     project_id?}; the personal key only, 403 for org keys), GET (list),
//     DELETE .../{key_id} (revoke: the key stops working). A key with
//     project_id is project-scoped: it sees that project only (and not once
//     the project is transferred out), gets 403 "not allowed for
//     project-scoped API keys" on creating or deleting projects and on the
//     org's members, and is otherwise an org key (/auth says api_key_org).
//     The two org keys of Credentials are not listed.
//   - POST .../branches/{branch_id}/set_as_default: the previous default loses
//     the flag; no operation. A branch that expires cannot become the default
//     (400, as a TTL on the default is refused).
//   - Operations run asynchronously: "scheduling", then "running" for
//     Options.OperationDelay each, one after the other, then "finished" (or
//     "failed" when the data plane fails; later ones are "cancelled").
//     While any operation of a project is not terminal, every mutating call
//     on it gets 423 with Neon's message and Retry-After: 1. GETs never lock.
//   - Errors are GeneralError {code, message, request_id}; X-Request-ID is
//     echoed or generated. Codes: BRANCHES_LIMIT_EXCEEDED and
//     SNAPSHOTS_LIMIT_EXCEEDED (422); others are "".
//   - Plans (hard limits): free org 10 branches and 1 snapshot per project,
//     0.25–2 CU, history_retention_seconds ≤ 86400, suspend ≥ 300 s (no -1);
//     paid org 1000 branches, 10 snapshots, 0.25–16 CU, retention ≤ 604800,
//     suspend ≥ 60 s. Every branch counts, restore backups and "(old)"
//     branches included.
//
// # Simplified
//
//   - The lock is project-wide; Neon only locks on conflicting operations.
//   - Roles and databases are per branch. A new project's branch has one of
//     each (default neondb_owner/neondb, password "npg_…"); a child branch,
//     an in-place restore and a snapshot restore copy the source's lists at
//     their point in time, leaving out what was created after it (Neon's
//     documented rule); what was deleted, renamed or re-owned after it is not
//     brought back (the lists keep no history), while passwords reset after
//     it are set again in the copy's data. A state file without lists loads
//     with the project's one role and database on every branch.
//   - Every endpoint gets a loopback port at creation, kept for its life and
//     persisted. endpoint.host is "HOST:PORT" (clients such as neonctl build
//     URIs from it) with HOST Options.EndpointHost (default 127.0.0.1, a name
//     that resolves to it such as localhost otherwise);
//     connection_parameters.host is HOST and the URIs carry the port. URIs carry
//     ?sslmode=require as Neon's do, so the data plane must serve TLS.
//     Pooled URIs are the same as direct ones (no pooler).
//   - LSNs are emulated: the microseconds since the Unix epoch of a point in
//     time, written "X/Y" like Postgres LSNs, so an LSN maps back to a time
//     for the restore-window checks. Timestamps before the project existed
//     are rejected with 400.
//   - Consumption: counters are zeros until a data plane reports usage; one
//     period per project; frames run from "from" to "to" (rounded to the
//     granularity, not past now), with the counters in the current frame.
//     Not plan-gated (Neon answers 403 on some plans). The personal key
//     without org_id sees both orgs' projects.
//   - Deleted projects and branches are gone at once (no recovery window),
//     DELETE /projects calls neonlocal.DataPlane.DeleteProject in the
//     background.
//   - Transfer checks the destination's hard limits (branches, snapshots,
//     history retention, max CU, suspend timeout), not plan tiers, regions
//     or project counts. Integrations do not exist, so there is no 422.
//   - Usage comes from the data plane (see neonlocal.DataPlane.Usage):
//     active time, compute (CPU) time, written WAL, bytes sent to clients,
//     and each branch's logical size; quotas suspend computes or make writes
//     fail.
//   - Roles and databases: create (201, role password in the answer),
//     list, get, PATCH database (name, owner_name), delete (200, 204 when
//     gone), reset_password, reveal_password (412 without store_passwords).
//     Each change is apply_config per compute of the branch (the read_write
//     one first; without computes one apply_config without endpoint_id),
//     then suspend_compute per compute that was idle, as in Neon's examples;
//     423 while operations run. 409 for an existing name, 400 for reserved
//     names (pg_*, neon_superuser, cloud_admin, the emulator's superuser;
//     databases postgres, template0/1), names over 63 bytes, or an owner not
//     in the branch; 422 for deleting a role that owns a database ([DOC]
//     manage/roles) and past 500 per branch. Connections are not dropped by
//     role changes (Neon restarts the compute); a database's own sessions end
//     when it is renamed or deleted. Logical size and the read-only quota
//     still measure the project's first database only.
//   - connection_uris of a branch create are omitted when the branch has
//     more than one role or database, as Neon does.
//
// # Choices where Neon is undocumented
//
//   - In-place restore (POST .../restore) keeps the branch id and endpoints.
//     With preserve_under_name a backup branch holds the pre-restore state and
//     the branch's children move under it. As Neon's "Instant restore" docs
//     say: a root branch stays a root and its backup is a separate root
//     (no parent, no children); the backup of a non-root branch takes the
//     branch's old parent and becomes its parent (branch.parent_id = backup
//     id). Operations: create_branch (the restore), then start_compute per
//     endpoint (restart on the same port).
//   - Snapshots only of root branches (no parent); others get 400.
//   - The default branch cannot be deleted (400), nor a branch with children
//     (422). Root branches that are not the default (undo backups of a root,
//     "main (old)" after a finalized snapshot restore) can be deleted, as
//     Neon's docs ask for them to be cleaned up.
//   - Snapshot restore makes a new root branch (restore_status "restored",
//     restored_from = snapshot id); its default name is
//     "TARGET (restored TIMESTAMP)". Finalizing (finalize_restore: true or
//     POST .../finalize_restore) gives it the target's name, default flag,
//     protection and endpoints (same ids and ports, so connection strings do
//     not change); the target becomes "NAME (old)" ("NAME (old 2)", … when
//     taken) or the given name, and gets restored_as = the new id. The target
//     defaults to the snapshot's source branch, which after one finalized
//     restore is the "(old)" branch: clients should pass target_branch_id.
//     Operations: timeline_unarchive, create_branch, then per moved endpoint
//     suspend_compute and start_compute.
//   - Snapshot create emits timeline_archive, snapshot delete
//     delete_timeline; branch delete suspend_compute per endpoint then
//     delete_timeline; retention changes apply_storage_config; settings
//     changes apply_config; branch patches no operation.
//   - Expired branches (and snapshots) are deleted by a background sweep
//     every Options.SweepInterval; one that cannot be deleted yet (project
//     busy, children) is retried on the next sweep.
//   - History-retention above the org plan's maximum is 400 on create and
//     patch. The default is 86400 s on both plans.
//   - On restart, operations that were still running are marked finished
//     and transient branch/endpoint states settle.
//
// # Fault injection
//
// Server.Faults (and POST /__neonlocal/faults with a FaultConfig JSON body;
// GET returns the current one; no auth, the emulator listens on loopback)
// can answer a fraction of API requests with given statuses plus
// Retry-After: 1 before any state change, add fixed or random latency, and
// "drop the response after commit" for a method + route template: the
// change is applied, then the connection is closed without an answer.
// Seeds make the draws reproducible. Server.Requests counts requests by
// "METHOD /route/template", injected failures included.
//
// # Persistence
//
// State lives in DataDir/neonlocal/state.json, written atomically (temp
// file, fsync, rename, directory fsync) after every change. Keys and org ids
// are generated once (crypto/rand) unless given in Options, and persisted.
package controlplane
