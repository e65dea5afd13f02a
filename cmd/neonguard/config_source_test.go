package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigErrorsNameTheFlagEnvOrFile: the command's configuration errors say where the bad
// value came from.
func TestConfigErrorsNameTheFlagEnvOrFile(t *testing.T) {
	run := func(args ...string) error {
		t.Helper()
		var out, errOut bytes.Buffer
		root := newRootCmd(strings.NewReader(""), &out, &errOut)
		root.SetArgs(args)
		return root.ExecuteContext(context.Background())
	}
	t.Setenv("NEONGUARD_CONFIG", "")
	t.Setenv("NEONGUARD_LOG_LEVEL", "")
	t.Setenv("NEONGUARD_DATA_DIR", t.TempDir())
	if err := run("serve", "--log-level", "loud"); err == nil || !strings.Contains(err.Error(), "log.level (flag --log-level)") {
		t.Errorf("flag: err = %v", err)
	}
	if err := run("serve", "--listen", "8080", "--transport", "http"); err == nil || !strings.Contains(err.Error(), "http.listen (flag --listen)") {
		t.Errorf("flag --listen: err = %v", err)
	}
	t.Setenv("NEONGUARD_LOG_LEVEL", "loud")
	if err := run("serve"); err == nil || !strings.Contains(err.Error(), "log.level (environment NEONGUARD_LOG_LEVEL)") {
		t.Errorf("environment: err = %v", err)
	}
	t.Setenv("NEONGUARD_LOG_LEVEL", "")
	file := filepath.Join(t.TempDir(), "neonguard.yaml")
	if err := os.WriteFile(file, []byte("log:\n  level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run("serve", "--config", file); err == nil || !strings.Contains(err.Error(), "log.level (config file "+file+", line 2)") {
		t.Errorf("file: err = %v", err)
	}
}
