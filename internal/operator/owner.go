package operator

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// newOwner names this process as a job runner: host/pid/nonce. The host and pid let another
// process on the same host see that a lease holder has died (ownerDead) and take its job at
// once, instead of waiting for the lease to run out after a crash; the nonce tells two
// Services of one process apart.
func newOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// ownerDead reports whether owner is a process on this host that no longer exists. Anything it
// cannot tell (another host, an unparsable owner) is "not known dead": the lease then ends by
// time. A pid reused by an unrelated process only delays the takeover until the lease expires.
func ownerDead(owner string) bool {
	parts := strings.Split(owner, "/")
	if len(parts) != 3 {
		return false
	}
	host, _ := os.Hostname()
	pid, err := strconv.Atoi(parts[1])
	if err != nil || parts[0] != host || pid <= 0 || pid == os.Getpid() {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	err = p.Signal(syscall.Signal(0))
	return errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH)
}
