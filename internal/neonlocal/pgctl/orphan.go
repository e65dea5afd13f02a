package pgctl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// readPidFile returns the postmaster PID recorded in dataDir/postmaster.pid.
func readPidFile(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("malformed postmaster.pid in %s", dataDir)
	}
	return pid, nil
}

// procState returns the state letter and process group of pid from
// /proc/PID/stat ("pid (comm) S ppid pgrp ..."; comm may hold spaces).
func procState(pid int) (state byte, pgrp int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	pgrp, _ = strconv.Atoi(f[2])
	return f[0][0], pgrp, nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st, _, err := procState(pid)
	return err == nil && st != 'Z' && st != 'X'
}

// isPostmasterOf reports whether pid is a postgres running in dataDir
// (postgres chdirs into its data dir), so a recycled PID is never signalled.
func isPostmasterOf(pid int, dataDir string) bool {
	if !alive(pid) {
		return false
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	exe = strings.TrimSuffix(exe, " (deleted)") // binary upgraded under it
	if b := filepath.Base(exe); b != "postgres" && b != "postmaster" {
		return false
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return false
	}
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		want = dataDir
	}
	return cwd == want
}

// postmasterAlive reports whether dataDir's postmaster.pid names a live
// postgres of that directory.
func postmasterAlive(dataDir string) (int, bool) {
	pid, err := readPidFile(dataDir)
	if err != nil {
		return 0, false
	}
	return pid, isPostmasterOf(pid, dataDir)
}

// ErrOwned is wrapped by StopOrphan when the postgres it found belongs to a live process.
var ErrOwned = errors.New("postgres is not orphaned: another live process owns it")

// ownerElsewhere reports the PID of another live process holding the flock of path. The
// probe takes the lock on a fresh descriptor: it fails while anyone holds it, this process
// included, so the PID the holder wrote tells the two apart.
func ownerElsewhere(path string) (int, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("owner lock: %w", err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return 0, false, nil // no holder (closing f releases the probe's lock)
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return 0, false, fmt.Errorf("owner lock %s: %w", path, err)
	}
	b, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == os.Getpid() {
		return 0, false, nil
	}
	// Held, by a PID not yet written (the holder writes it right after locking) or by
	// another process: either way not ours.
	return pid, true, nil
}

// StopOrphan stops a postgres left running on dataDir by a crashed
// neonguard: it reads postmaster.pid and, only if that PID is a live postgres
// whose working directory is dataDir, stops it (SIGINT, then SIGQUIT, then
// SIGKILL of its group). A stale pid file (dead or recycled PID) is removed,
// so the next Start cannot trip over it. Returns whether a server was stopped.
// While another live process holds t.OwnerLock, dataDir and its postgres are that
// process's: StopOrphan touches nothing and returns ErrOwned.
func (t *Toolkit) StopOrphan(ctx context.Context, dataDir string) (stopped bool, err error) {
	dataDir, err = filepath.Abs(dataDir)
	if err != nil {
		return false, err
	}
	pidFile := filepath.Join(dataDir, "postmaster.pid")
	pid, err := readPidFile(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	// Before anything is touched: under a live owner even a stale-looking pid file may be a
	// server starting right now.
	if t.OwnerLock != "" {
		owner, held, lerr := ownerElsewhere(t.OwnerLock)
		if lerr != nil {
			return false, lerr
		}
		if held {
			return false, fmt.Errorf("postgres pid %d on %s: %w (pid %d holds %s)", pid, dataDir, ErrOwned, owner, t.OwnerLock)
		}
	}
	if err != nil || !isPostmasterOf(pid, dataDir) {
		// Re-check just before removing: a server starting right now
		// rewrites the file with its own (live) PID.
		if p2, err2 := readPidFile(dataDir); err2 == nil && isPostmasterOf(p2, dataDir) {
			return false, fmt.Errorf("postgres pid %d started on %s while checking", p2, dataDir)
		}
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("remove stale %s: %w", pidFile, err)
		}
		t.log().Info("removed stale postmaster.pid", "data_dir", dataDir, "pid", pid)
		return false, nil
	}
	t.log().Warn("stopping orphaned postgres", "pid", pid, "data_dir", dataDir)
	// Not our child: poll /proc for its disappearance.
	gone := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if !alive(pid) {
				close(gone)
				return
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	grace := t.StopGrace
	if grace == 0 {
		grace = 30 * time.Second
	}
	if err := stopPID(ctx, t.log(), pid, gone, grace); err != nil {
		return false, err
	}
	// A SIGKILLed postmaster leaves its pid file; postgres itself copes with
	// that, but remove it if it still names the dead PID.
	if p2, err := readPidFile(dataDir); err == nil && p2 == pid {
		_ = os.Remove(pidFile)
	}
	return true, nil
}
