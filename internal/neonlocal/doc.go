// Package neonlocal is the root of a local emulator of Neon: what a real Neon client (the
// neonguard backend "local", neonctl, a test) talks to when there is no Neon account. This
// package holds only what the emulator's two planes share; each plane is a sub-package.
//
// # Sub-packages
//
//   - controlplane: Neon's API v2 (an http.Handler serving /api/v2/...): projects, branches,
//     snapshots, endpoints, roles, operations, consumption, org plans and their limits,
//     persisted state, the expiry sweep, the disk budget and fault injection. Its doc.go
//     lists what it emulates as Neon does, what it simplifies and where Neon is undocumented.
//   - dataplane: real PostgreSQL behind the control plane: a branch is a cluster, an endpoint
//     a loopback port with a wake-on-connect proxy, restores are point-in-time recovery. It
//     implements DataPlane.
//   - pgctl: runs real PostgreSQL clusters (finding the binaries, creating, copying,
//     starting and stopping clusters, base backups, WAL archiving, point-in-time recovery);
//     it knows nothing of Neon. Used by dataplane and by internal/pgtest.
//   - proxy: the TCP proxy in front of each endpoint (wakes the compute on connect, counts
//     bytes, refuses connections while a quota is exceeded).
//   - sqlhttp: Neon's SQL-over-HTTP protocol (POST /sql, what @neondatabase/serverless's
//     neon() speaks) in front of the endpoints, over TLS or plain HTTP on one port; it
//     connects to an endpoint through its port like any client. Wired by internal/app.
//   - spectest: a test helper that checks HTTP traffic against Neon's OpenAPI v2 spec
//     (testdata/openapi/neon-openapi-v2.json); the control plane's tests wrap it around the
//     handler.
//
// # How they fit
//
// The control plane answers every request from its own state and never waits on the data
// plane: after committing a change it runs the change's operations asynchronously, each one
// a call of the DataPlane interface (this package), whose error marks the operation failed.
// The data plane depends on this package for that contract and never on the control plane;
// the control plane only sees the interface (NopDataPlane when no PostgreSQL is used). An
// optional PGVersioner lets the data plane say which PostgreSQL majors it can serve.
//
// Both planes live under one data dir (the control plane's state in DataDir/neonlocal, the
// data plane's clusters beside it), so the data dir's lock (LockDataDir) is here too: the
// caller (internal/app) takes it before starting the data plane, which stops the postgres
// processes it finds running only when no other process holds the lock, and hands it to the
// control plane (controlplane.Options.Lock).
//
// Nothing under internal/neonlocal imports the rest of neonguard: the emulator is a stand-in
// for Neon and must not know its client.
package neonlocal
