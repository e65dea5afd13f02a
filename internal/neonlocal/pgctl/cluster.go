package pgctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// AdminUser is the bootstrap superuser of every cluster. It logs in only over
// the private unix socket (trust); TCP requires TLS and a SCRAM password.
const AdminUser = "neonguard_admin"

// Toolkit runs PostgreSQL programs of one installation as one identity.
type Toolkit struct {
	Bin    Binaries
	RunAs  RunAs
	Logger *slog.Logger // nil: discard

	// NoSync skips fsync in initdb, pg_basebackup, CopyCluster and the
	// archive_command. Only for tests and benchmarks: a crash may corrupt.
	NoSync bool
	// WALSegSizeMB is initdb's --wal-segsize (a power of 2 from 1 to 1024); 0 keeps
	// PostgreSQL's 16. Small segments keep an empty cluster, its base backups and its WAL
	// archive small: a segment switch (ForceSwitch, a backup's end) archives a whole segment.
	WALSegSizeMB int
	// StopGrace is how long Stop waits after SIGINT (fast shutdown) before
	// SIGQUIT (immediate shutdown). Zero means 30s.
	StopGrace time.Duration
	// OwnerLock is the flock(2)ed file, holding its holder's PID, that the process owning
	// these clusters holds (neonguard's data-dir lock). StopOrphan leaves a postgres alone
	// while another live process holds it: that postgres has an owner. Empty: no check.
	OwnerLock string
}

func (t *Toolkit) log() *slog.Logger {
	if t.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Logger
}

// InitDB creates a new cluster in dataDir (which must not exist or be empty):
// superuser AdminUser, UTF8, C locale (locale-independent sort order, and
// no dependency on the host's installed locales), and our pg_hba.conf.
func (t *Toolkit) InitDB(ctx context.Context, dataDir string) error {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if ents, err := os.ReadDir(dataDir); err == nil && len(ents) > 0 {
		return fmt.Errorf("initdb: %s is not empty", dataDir)
	}
	if err := t.RunAs.mkdirPrivate(dataDir); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := t.RunAs.checkAccess(ctx, dataDir); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	args := []string{
		"-D", dataDir,
		"-U", AdminUser,
		"--auth-local=trust",
		"--auth-host=scram-sha-256",
		"-E", "UTF8",
		"--locale=C",
	}
	if t.Bin.Major >= 14 {
		args = append(args, "--no-instructions")
	}
	if t.NoSync {
		args = append(args, "--no-sync")
	}
	if t.WALSegSizeMB > 0 {
		args = append(args, fmt.Sprintf("--wal-segsize=%d", t.WALSegSizeMB))
	}
	start := time.Now()
	cmd := withHome(t.RunAs.Command(ctx, t.Bin.Path("initdb"), args...), dataDir)
	cmd.Dir = dataDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w: %s", dataDir, err, tail(string(out), 20))
	}
	if err := t.WriteHBA(dataDir); err != nil {
		return err
	}
	if err := t.includeConf(dataDir); err != nil {
		return err
	}
	t.log().Debug("initdb done", "data_dir", dataDir, "elapsed", time.Since(start))
	return nil
}

// hbaConf: the socket dir is private (0700, owned by RunAs), so trust on it
// admits only root, neonguard's own user and the PostgreSQL user. TCP is TLS
// + SCRAM only; no plain "host" line, as Neon requires TLS.
const hbaConf = `# Written by neonguard (pgctl). TCP requires TLS and a SCRAM password.
# TYPE   DATABASE     USER  ADDRESS        METHOD
local    all          all                  trust
local    replication  all                  trust
hostssl  all          all   127.0.0.1/32   scram-sha-256
hostssl  all          all   ::1/128        scram-sha-256
`

// WriteHBA (re)writes dataDir/pg_hba.conf with neonguard's rules.
func (t *Toolkit) WriteHBA(dataDir string) error {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if err := t.RunAs.writeFile(filepath.Join(dataDir, "pg_hba.conf"), []byte(hbaConf), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return nil
}

// Configuration files written into the data directory and included from
// postgresql.conf, so a copied cluster is startable by hand for debugging.
const (
	serverConfName   = "neonguard.conf"          // rewritten by every Start
	recoveryConfName = "neonguard.recovery.conf" // written by PrepareRecovery
)

// includeConf makes postgresql.conf include our files (after its own
// settings, so ours win; postgresql.auto.conf still overrides both).
func (t *Toolkit) includeConf(dataDir string) error {
	p := filepath.Join(dataDir, "postgresql.conf")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	s := string(b)
	for _, n := range []string{serverConfName, recoveryConfName} {
		line := "include_if_exists = '" + n + "'"
		if !strings.Contains(s, line) {
			s += "\n" + line + "\n"
		}
	}
	if s != string(b) {
		if err := t.RunAs.writeFile(p, []byte(s), 0o600); err != nil {
			return err
		}
	}
	// Present even when empty: postgres logs every missing include_if_exists.
	rc := filepath.Join(dataDir, recoveryConfName)
	if _, err := os.Stat(rc); errors.Is(err, fs.ErrNotExist) {
		return t.RunAs.writeFile(rc, nil, 0o600)
	}
	return nil
}

// CopyCluster makes a cold copy of the STOPPED cluster src at dst, preserving
// modes and ownership. Each file is a reflink (FICLONE) where the filesystem
// supports them, else a copy of its bytes (copy_file_range). The copy is
// assembled in dst+".tmp", synced once (syncfs) and renamed, so a crash never
// leaves a half copy at dst.
func (t *Toolkit) CopyCluster(ctx context.Context, src, dst string) error {
	return t.copyCluster(ctx, src, dst, false, "", "")
}

// CopyClusterLinking is CopyCluster for a dst that nothing ever writes in place (a base
// backup): a file whose bytes equal the file at the same path under ref, an equally
// immutable directory (the template, an earlier base backup), becomes a hard link to it
// instead of a copy. Most of a new branch's first backup is its template's or its parent's
// backup's files: they take no space twice, and are not written and synced again.
func (t *Toolkit) CopyClusterLinking(ctx context.Context, src, dst, ref string) error {
	return t.copyCluster(ctx, src, dst, false, ref, "")
}

// CopyBackupLinking is CopyClusterLinking that also links a file of src's pg_wal (a segment,
// a timeline history) to the file of the same name in walArchive, a WAL archive, when their
// bytes are equal: a cluster stopped with archiving on keeps segments it archived, and
// archived WAL is as immutable (the archive_command writes a new file and renames it into
// place; a cleanup only removes files; a restore_command copies).
func (t *Toolkit) CopyBackupLinking(ctx context.Context, src, dst, ref, walArchive string) error {
	return t.copyCluster(ctx, src, dst, false, ref, walArchive)
}

// LinkCluster is CopyCluster with hard links instead of copies of the files: only for a src
// and a dst that nothing ever writes in place (base backups and snapshots, which are only
// copied from and removed whole), as both share every file. The links are synced (one
// syncfs) before the rename, as a copy is.
func (t *Toolkit) LinkCluster(ctx context.Context, src, dst string) error {
	return t.copyCluster(ctx, src, dst, true, "", "")
}

func (t *Toolkit) copyCluster(ctx context.Context, src, dst string, link bool, ref, walArchive string) error {
	src, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	dst, err = filepath.Abs(dst)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(src, "PG_VERSION")); err != nil {
		return fmt.Errorf("copy cluster: %s is not a data directory: %w", src, err)
	}
	if pid, alive := postmasterAlive(src); alive {
		return fmt.Errorf("copy cluster: %s is in use by running postgres (pid %d); stop it first", src, pid)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("copy cluster: %s already exists", dst)
	}
	if ents, _ := os.ReadDir(filepath.Join(src, "pg_tblspc")); len(ents) > 0 {
		return fmt.Errorf("copy cluster: %s uses tablespaces, which are not supported", src)
	}
	tmp := dst + ".tmp"
	if err := os.RemoveAll(tmp); err != nil { // leftover of an earlier crash
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	start := time.Now()
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "postmaster.pid" || rel == "postmaster.opts" {
			return nil // stale: the copy has never run
		}
		target := filepath.Join(tmp, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
		case d.Type().IsRegular() && link:
			return os.Link(p, target) // the same inode: owner and mode are src's
		case d.Type().IsRegular() && ref != "" && sameFile(p, info, filepath.Join(ref, rel)) &&
			os.Link(filepath.Join(ref, rel), target) == nil:
			return nil // (ref removed meanwhile: copied below)
		case d.Type().IsRegular() && walArchive != "" && filepath.Dir(rel) == "pg_wal" &&
			sameFile(p, info, filepath.Join(walArchive, d.Name())) && os.Link(filepath.Join(walArchive, d.Name()), target) == nil:
			return nil
		case d.Type().IsRegular():
			if err := copyFile(p, target, info.Mode().Perm(), false); err != nil {
				return err
			}
		default:
			return nil // sockets etc. do not belong in a data dir
		}
		return preserveOwner(target, info)
	})
	if err == nil && !t.NoSync {
		// One syncfs for the whole copy instead of an fsync per file (a cluster has ~1000
		// files): the same durability before the rename, at a fraction of the cost.
		err = syncFS(tmp)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("copy cluster %s → %s: %w", src, dst, err)
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("copy cluster: %w", err)
	}
	if !t.NoSync {
		_ = syncDir(filepath.Dir(dst))
	}
	t.log().Debug("cluster copied", "src", src, "dst", dst, "elapsed", time.Since(start))
	return nil
}

func copyFile(src, dst string, perm os.FileMode, sync bool) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if !cloneFile(out, in) {
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
	}
	if sync {
		if err := out.Sync(); err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, perm) // umask
}

// noReflink forces copies to write every byte (tests of the fallback).
var noReflink atomic.Bool

// reflinks counts the files copied by a reflink (tests).
var reflinks atomic.Int64

// cloneFile makes out share in's blocks (FICLONE: a reflink, copy on write) where the
// filesystem supports it (Btrfs, XFS with reflink=1, bcachefs, ...): a copy of any size in
// one system call and no space until either side changes. False: not done (another
// filesystem, or src and dst on different ones), and the caller copies the bytes; out is
// still empty then, as a failed FICLONE changes nothing.
func cloneFile(out, in *os.File) bool {
	if noReflink.Load() {
		return false
	}
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err != nil {
		return false
	}
	reflinks.Add(1)
	return true
}

func preserveOwner(path string, info fs.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	return os.Lchown(path, int(st.Uid), int(st.Gid))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stderrOf returns ": <stderr>" of a failed exec.Cmd.Output, or "".
func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// syncFS flushes the filesystem holding path (syncfs(2)).
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// WALSegmentBytes is the WAL segment size of the cluster in dataDir, read from the size of
// a segment in pg_wal (a stopped or running cluster always has one); 0 if none is found.
func WALSegmentBytes(dataDir string) int64 {
	ents, err := os.ReadDir(filepath.Join(dataDir, "pg_wal"))
	if err != nil {
		return 0
	}
	for _, e := range ents {
		if len(e.Name()) != 24 || !e.Type().IsRegular() || strings.Trim(e.Name(), "0123456789ABCDEF") != "" {
			continue
		}
		if info, err := e.Info(); err == nil && info.Size() > 0 {
			return info.Size()
		}
	}
	return 0
}

var cmpBufs = sync.Pool{New: func() any { return &[2][]byte{make([]byte, 128<<10), make([]byte, 128<<10)} }}

// sameFile reports whether the regular file other has the size and the bytes of p (info).
func sameFile(p string, info fs.FileInfo, other string) bool {
	oi, err := os.Lstat(other)
	if err != nil || !oi.Mode().IsRegular() || oi.Size() != info.Size() || oi.Mode().Perm() != info.Mode().Perm() {
		return false
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		if ot, ok := oi.Sys().(*syscall.Stat_t); ok && (st.Uid != ot.Uid || st.Gid != ot.Gid) {
			return false
		}
	}
	a, err := os.Open(p)
	if err != nil {
		return false
	}
	defer a.Close()
	b, err := os.Open(other)
	if err != nil {
		return false
	}
	defer b.Close()
	bufs := cmpBufs.Get().(*[2][]byte)
	defer cmpBufs.Put(bufs)
	ba, bb := bufs[0], bufs[1]
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF)
		}
	}
}
