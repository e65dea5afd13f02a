// Package dataplane is the local emulator's data plane: real PostgreSQL behind the control
// plane's projects, branches, snapshots and endpoints (it implements neonlocal.DataPlane).
//
// # Model
//
//   - A branch is a PostgreSQL cluster (a data directory) with its own WAL archive and the
//     base backups taken of it: one when it is made, one after each in-place restore.
//   - An endpoint is a loopback port owned by a wake-on-connect proxy (package proxy) in
//     front of its branch's postgres process: the port is the endpoint's for its whole life;
//     the process stops after the endpoint's suspend timeout without connections and starts
//     again on the next connection. PostgreSQL serves TLS itself (one self-signed certificate
//     per data dir), so `sslmode=require` connection strings work unchanged.
//   - Branch from a parent's head: a base backup of the running parent (or a copy of the
//     stopped one). At a time or LSN: the parent's latest base backup before that point plus
//     its archived WAL, replayed with recovery_target_time/lsn and promoted. The parent first
//     writes a commit record and switches WAL (pgctl.ForceSwitch), or recovery could never
//     reach a target after the parent's last commit.
//   - Restore in place (undo): the point in time is rebuilt next to the branch in a temporary
//     directory; then the branch's process stops, its old data directory becomes the backup
//     branch's, the rebuilt one takes its place, and the same endpoints start again on the
//     same ports. A journal file makes the swap crash-safe: after a crash it is finished or
//     undone, never left half done.
//   - A snapshot is a base backup kept under the project; restoring it copies it into the
//     new branch.
//
// Clusters use 1 MB WAL segments (initdb --wal-segsize=1). Copies reflink (FICLONE) where
// the filesystem can and are synced once (syncfs) before they are renamed into place; a base
// backup or snapshot is never written in place, so a branch's first base backup hard links
// the files it shares with the template, its parent's newest backup, its snapshot or the WAL
// archive (byte for byte equal).
//
// Layout under Options.Dir: tls/ (certificate), pg_config.json (pg_config's answer, reused
// while its inputs are unchanged), template/PGMAJOR-wal1mb-owner-compact/ (an initdb'd cluster
// with a role and database that each new project's copy renames to its own, its databases
// compacted with VACUUM (FULL, FREEZE); made in the background at the first start),
// pool/TEMPLATE/N (ready copies of a template, made and synced in the background),
// projects/PROJECT/project.json (role, password, database),
// projects/PROJECT/branches/BRANCH/{data,archive,backups/N,branch.json},
// projects/PROJECT/snapshots/SNAPSHOT/ (BRANCH.deleted and SNAPSHOT.deleted while a deleted one
// is removed in the background).
package dataplane
