package neonlocal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DataDirLock is the exclusive lock of an emulator's data dir (LockDataDir).
type DataDirLock struct {
	f    *os.File
	path string
}

// LockDataDir takes an exclusive lock on the emulator's data dir for the life of the
// process: a second neonguard on the same dir would overwrite its state and fight over its
// PostgreSQL clusters, so it gets a clear error instead. The kernel drops the lock when the
// process dies, so a crash never leaves it stale. The lock file holds the holder's PID (the
// data plane reads it to tell its own lock from another process's).
//
// Take it before anything touches the dir's PostgreSQL processes: the data plane stops the
// ones it finds running as orphans of a crash, which they are only when no one holds the lock.
func LockDataDir(dataDir string) (*DataDirLock, error) {
	dir := filepath.Join(dataDir, "neonlocal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := flockWhileHolderIsGone(f, path); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(holder))
			return nil, fmt.Errorf("data dir %s is in use by another neonguard (pid %s); stop it or use another --data-dir", dataDir, pid)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &DataDirLock{f: f, path: path}, nil
}

// deadHolderGrace is how long a lock whose recorded holder has died may stay held: a process
// killed while starting a child leaves the lock's descriptor in that child until it execs
// (close-on-exec), which under load can take a moment. A supervisor that restarts a crashed
// neonguard at once would otherwise be refused.
const deadHolderGrace = 3 * time.Second

// flockWhileHolderIsGone takes the lock, and waits up to deadHolderGrace for it while the
// process recorded in the file no longer exists. A live holder is refused at once.
func flockWhileHolderIsGone(f *os.File, path string) error {
	deadline := time.Now().Add(deadHolderGrace)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) || holderAlive(path) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holderAlive reports whether the process whose PID the lock file holds exists (an unreadable
// or empty file counts as alive: nothing says the holder is gone).
func holderAlive(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return true
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return true
	}
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// Path is the lock file.
func (l *DataDirLock) Path() string { return l.path }

// Close releases the lock; later calls do nothing.
func (l *DataDirLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
