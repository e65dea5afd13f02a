// Package pgctl is the mechanism layer that runs real PostgreSQL clusters for
// the local Neon emulator: finding the server binaries, running them as an
// unprivileged user when neonguard is root, creating, copying, starting and
// stopping clusters, base backups, WAL archiving and point-in-time recovery.
//
// It knows nothing about Neon projects, branches or endpoints; the data plane
// composes these primitives:
//
//   - a branch is a data directory made by InitDB, CopyCluster (cold copy of a
//     stopped cluster) or BaseBackup (hot copy of a running one);
//   - an endpoint is a Process started by Start on a loopback TCP port with
//     TLS on (pg_hba accepts only hostssl + SCRAM on TCP) and a private unix
//     socket for the superuser AdminUser (trust, reachable only by root, the
//     neonguard user and the PostgreSQL user);
//   - every started cluster archives finished WAL segments to its ArchiveDir;
//   - branching at a time / LSN and restore are BaseBackup (taken before the
//     target) + PrepareRecovery(archives, target) + Start + WaitPromoted.
//
// Recovery caveats the caller must honour:
//
//   - PostgreSQL ≥ 13 treats "recovery ended before configured recovery target
//     was reached" as FATAL. A time target is only reached when recovery sees a
//     commit record stamped after it, and only finished (archived) segments are
//     visible to restore_command. So call ForceSwitch on the source after the
//     target time and before starting the recovery: it writes a commit record,
//     switches the segment and waits until it is archived.
//   - The base backup must be older than the target: recovery cannot stop
//     before the backup's consistency point ("requested recovery stop point is
//     before consistent recovery point").
//   - Each promotion starts a new timeline. Archive directories passed to
//     PrepareRecovery must describe one lineage (child first, then ancestors);
//     never mix archives of sibling branches, whose timelines can share IDs.
//
// Paths handed to PostgreSQL are made absolute. The unix socket path
// (SocketDir + "/.s.PGSQL.<port>") must fit in 107 bytes, so keep SocketDir
// short. When running as root every directory PostgreSQL touches (data,
// socket, archive, certificate) is owned by RunAs and every ancestor must be
// traversable (o+x) by it: a data root under /root (mode 0700) does not work.
package pgctl
