package neonlocal

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holdLock takes the data dir's lock on a descriptor of its own, as another process would,
// with pid recorded as the holder.
func holdLock(t *testing.T, dataDir string, pid int) (release func()) {
	t.Helper()
	dir := filepath.Join(dataDir, "neonlocal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// A neonguard started right after its predecessor was killed can find the lock still held by
// a child the dead process was starting (until that child execs): it waits for it, briefly.
func TestLockDataDirWaitsForADeadHoldersDescriptor(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	release := holdLock(t, dir, dead.Process.Pid)
	go func() {
		time.Sleep(200 * time.Millisecond)
		release()
	}()
	l, err := LockDataDir(dir)
	if err != nil {
		t.Fatalf("LockDataDir after the dead holder's descriptor closed: %v", err)
	}
	defer l.Close()
	b, _ := os.ReadFile(l.Path())
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q, want this process's pid", b)
	}
}

// A live holder is another neonguard on the same data dir: refused, naming it.
func TestLockDataDirRefusesALiveHolder(t *testing.T) {
	dir := t.TempDir()
	release := holdLock(t, dir, os.Getpid())
	defer release()
	_, err := LockDataDir(dir)
	if err == nil || !strings.Contains(err.Error(), "in use by another neonguard (pid "+strconv.Itoa(os.Getpid())+")") {
		t.Fatalf("LockDataDir with a live holder: %v, want the in-use error naming pid %d", err, os.Getpid())
	}
}
