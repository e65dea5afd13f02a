package pgctl

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pg_config's answer is reused while its file and the glob's directories are unchanged, and
// asked again as soon as any of them changes or the cache is unusable.
func TestPGConfigCache(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	root := t.TempDir()
	d15 := fakeInstall(t, root, "15")
	glob := filepath.Join(root, "*", "bin")
	runs := filepath.Join(t.TempDir(), "runs")
	pgConfig := filepath.Join(t.TempDir(), "pg_config")
	writeScript := func(answer string) {
		t.Helper()
		script := "#!/bin/sh\necho run >> " + runs + "\necho " + answer + "\n"
		if err := os.WriteFile(pgConfig, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeScript(d15)
	s := search{
		lookPath: func(name string) (string, error) {
			if name == "pg_config" {
				return pgConfig, nil
			}
			return "", exec.ErrNotFound
		},
		pgConfig: func(ctx context.Context) (string, error) {
			out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
			return strings.TrimSpace(string(out)), err
		},
		glob: glob,
	}
	cache := filepath.Join(t.TempDir(), "pg_config.json")
	s.pgConfig = cachedPGConfig(s, cache)
	wantRuns := 0
	find := func(step string, ran bool) {
		t.Helper()
		got, err := findInstallations(ctx, "", s)
		if err != nil || len(got) == 0 {
			t.Fatalf("%s: %v, %v", step, got, err)
		}
		if ran {
			wantRuns++
		}
		b, _ := os.ReadFile(runs)
		if n := strings.Count(string(b), "run"); n != wantRuns {
			t.Fatalf("%s: pg_config ran %d times in all, want %d", step, n, wantRuns)
		}
	}
	find("first start", true)
	find("second start", false)
	find("third start", false)

	// A new major installed: the glob finds another directory.
	fakeInstall(t, root, "16")
	find("after installing 16", true)
	find("again", false)

	// A package update touched an existing bin dir.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(d15, later, later); err != nil {
		t.Fatal(err)
	}
	find("after a bin dir changed", true)

	// pg_config itself changed.
	writeScript(d15 + " ")
	find("after pg_config changed", true)

	// A damaged cache is not trusted.
	if err := os.WriteFile(cache, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	find("damaged cache", true)
	find("rewritten cache", false)
}
