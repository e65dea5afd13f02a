package neon

import (
	"log/slog"
	"net/http"
	"testing"
)

// Exports for the tests in package neon_test. They are external because they drive the client
// against neontest.Fake, and neontest imports this package.

const (
	TestKey      = testKey
	TestPassword = testPassword
	NpgPassword  = npgPassword
	Redacted     = redacted
)

// TestSecrets are the secrets TestMain looks for in the suite's logs and errors.
var TestSecrets = testSecrets

// FakeClock is the clock of NewTestClient: its sleeps return at once.
type FakeClock = fakeClock

// LockedBuffer is a log sink safe for concurrent writes.
type LockedBuffer = lockedBuffer

// NewTestClient returns a client for h whose sleeps are instant (see newTestClient).
func NewTestClient(t testing.TB, h http.Handler, mods ...func(*Config)) (*Client, *FakeClock) {
	return newTestClient(t, h, mods...)
}

// NoteErr records err for the suite-wide secrets scan and returns it.
func NoteErr(err error) error { return noteErr(err) }

// NewTeeLogger logs to buf and to the suite's log, which TestMain scans for secrets.
func NewTeeLogger(buf *LockedBuffer) *slog.Logger { return newTeeLogger(buf, &suiteLogs) }

// WriteJSON answers status with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }
