package pgctl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultRunAsUser is the account PostgreSQL runs as when neonguard is root.
const DefaultRunAsUser = "postgres"

// RunAs is the identity PostgreSQL programs run under. initdb and postgres
// refuse to run as root, so a root neonguard switches to an unprivileged user.
type RunAs struct {
	Name   string
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups, kept so the switch does not drop them
	Switch bool     // false when neonguard is not root: run as ourselves
}

// ResolveRunAs picks the identity. As root it looks up name (default
// "postgres"); otherwise it is the current user and no switch happens.
func ResolveRunAs(name string) (RunAs, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return RunAs{}, fmt.Errorf("current user: %w", err)
		}
		return RunAs{Name: u.Username, UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}, nil
	}
	if name == "" {
		name = DefaultRunAsUser
	}
	u, err := user.Lookup(name)
	if err != nil {
		return RunAs{}, fmt.Errorf("PostgreSQL refuses to run as root, so neonguard runs it as user %q, which does not exist (%w); create it (useradd --system --home-dir /var/lib/postgresql %s) or configure another unprivileged user", name, err, name)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return RunAs{}, fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return RunAs{}, fmt.Errorf("user %q: gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return RunAs{}, fmt.Errorf("user %q has uid 0; PostgreSQL refuses to run as root: configure an unprivileged user", name)
	}
	r := RunAs{Name: name, UID: uint32(uid), GID: uint32(gid), Switch: true}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				r.Groups = append(r.Groups, uint32(n))
			}
		}
	}
	return r, nil
}

// Chown gives path (recursively) to r; a no-op when no switch happens.
func (r RunAs) Chown(path string) error {
	if !r.Switch {
		return nil
	}
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, int(r.UID), int(r.GID)); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}

// chownOne gives a single path to r.
func (r RunAs) chownOne(path string) error {
	if !r.Switch {
		return nil
	}
	if err := os.Lchown(path, int(r.UID), int(r.GID)); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// mkdirPrivate creates dir (and missing parents, 0755) with mode 0700 owned
// by r; an existing dir is tightened to 0700 and given to r.
func (r RunAs) mkdirPrivate(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	return r.chownOne(dir)
}

// writeFile writes data atomically (temp file + rename) with mode perm, owned by r.
func (r RunAs) writeFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil { // umask may have narrowed it
		return err
	}
	if err := r.chownOne(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func localeEnv() string {
	for _, d := range []string{"/usr/lib/locale/C.utf8", "/usr/lib/locale/C.UTF-8"} {
		if _, err := os.Stat(d); err == nil {
			return "LANG=C.UTF-8"
		}
	}
	return "LANG=C"
}

// Command builds a command running as r with a minimal environment: nothing
// of neonguard's environment (PG* variables, secrets) leaks into PostgreSQL.
// It runs in its own process group so a terminal's SIGINT to neonguard's group
// does not race our orderly shutdown; cancelling ctx kills the whole group
// (pg_basebackup forks a WAL streamer). Set cmd.Dir to choose HOME's value
// before running; HOME defaults to /tmp.
func (r RunAs) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		localeEnv(),
		"LC_MESSAGES=C", // server messages are parsed and shown in English
		"TZ=UTC",
		"HOME=/tmp",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if r.Switch {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: r.UID, Gid: r.GID, Groups: r.Groups}
	}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// withHome points HOME at dir (the cluster), for tools that look there.
func withHome(cmd *exec.Cmd, dir string) *exec.Cmd {
	for i, e := range cmd.Env {
		if strings.HasPrefix(e, "HOME=") {
			cmd.Env[i] = "HOME=" + dir
		}
	}
	return cmd
}

// checkAccess reports which of paths r cannot reach (search permission on
// every ancestor), to turn PostgreSQL's "Permission denied" into advice.
func (r RunAs) checkAccess(ctx context.Context, paths ...string) error {
	if !r.Switch || len(paths) == 0 {
		return nil
	}
	args := append([]string{"-c", `for p; do if test -d "$p"; then test -x "$p"; else test -r "$p"; fi || { echo "$p"; exit 1; }; done`, "sh"}, paths...)
	out, err := r.Command(ctx, "/bin/sh", args...).Output()
	if err != nil {
		return fmt.Errorf("user %s cannot reach %s: every ancestor directory must be searchable (o+x) by it", r.Name, strings.TrimSpace(string(out)))
	}
	return nil
}
