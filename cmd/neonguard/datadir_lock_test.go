package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A second neonguard on a data dir a running one owns must be refused before it touches the
// owner's PostgreSQL: the owner's clients keep their sessions, open transactions included.
func TestSecondProcessLeavesOwnersDatabasesAlone(t *testing.T) {
	e, sp := startCrashTest(t)
	s := *sp
	db := s.mustCall("create_database", map[string]any{"name": "owned"})
	uri, _ := db["connection_string"].(string)
	if err := pgExec(uri, "CREATE TABLE t (n int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgConnect(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	env := append(os.Environ(), "NEONGUARD_LOG_LEVEL=info", "NEONGUARD_LOCAL_POSTGRES=on", "TMPDIR="+e.tmp)
	for i, args := range [][]string{
		{"call", "describe_limits", "--data-dir", e.dir},
		{"serve", "--data-dir", e.dir}, // stdin is /dev/null: it would end at once if it started
	} {
		// The deadline only keeps a hung process from hanging the test.
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		cmd := exec.CommandContext(cctx, e.bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		cancel()
		var exit *exec.ExitError
		if err == nil || !errors.As(err, &exit) {
			t.Fatalf("second process %d (%s): err = %v, want a non-zero exit\n%s", i, args[0], err, out)
		}
		if !strings.Contains(string(out), "is in use by another neonguard") {
			t.Errorf("second process %d (%s): output lacks the in-use error:\n%s", i, args[0], out)
		}
		if strings.Contains(string(out), "stopping orphaned postgres") {
			t.Errorf("second process %d (%s) stopped the owner's postgres:\n%s", i, args[0], out)
		}
	}

	// The owner's session survived: its transaction commits and its row is there.
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		t.Fatalf("COMMIT of the owner's open transaction: %v\n%s", err, s.logTail())
	}
	rows, err := tableRows(uri)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0] != 1 {
		t.Fatalf("rows after COMMIT = %v, want [1]", rows)
	}
}
